"""Import ``dspy.RLM`` results saved as JSON (one object, a list, or JSON lines).

Facts about the source (``dspy/predict/rlm.py``): ``RLM.forward`` returns a
``Prediction`` holding the signature's output fields, ``final_reasoning`` and
the REPL trajectory (``trajectory`` in earlier releases, ``repl_trajectory``
later): a list of ``{"reasoning", "code", "output"}``. A failed cell's output
starts with ``[Error]`` (``[Type Error]`` for a bad ``SUBMIT``); a successful
``SUBMIT`` shows ``FINAL: {...}``; after ``max_iters`` turns DSPy asks once
more for the outputs and sets ``final_reasoning`` to ``"Extract forced final
output"``. The sub-LLM calls are *not* in the trajectory.

Accepted records: a bare trajectory list, or an object with a trajectory plus
the outputs and, optionally, ``question`` (or ``query``), ``model``,
``sub_model``, ``expected``, ``max_iters``, ``max_llm_calls`` and a
``context`` (hashed and measured, never stored). A ``.jsonl`` file holds one
record per line; a ``.json`` list of such objects holds many.

Mapping: each trajectory entry → an iteration and its root LM call (prompt and
tokens unknown: null); the extract step, when forced, → one more root call.
Status: ``SUBMIT`` seen or outputs present → ``submitted``; forced extract →
``budget_exhausted`` (with the extracted answer); an ``[Error]`` last entry or
no outputs → ``error``. Sub-LLM calls: when an output reveals the count (the
"LLM call limit exceeded: N + k > max" message) ``n_sub_calls`` is set to the
revealed count; otherwise it stays 0 and the run's metadata says the count is
unknown. Never a guessed number.
"""

from __future__ import annotations

import ast
import hashlib
import json
import re
from collections.abc import Iterator, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from recorder.importers.base import ImportItem, ImportOptions, default_save, derive_id, loads_line
from recorder.importers.rlms_log import context_from_payload, text_of
from recorder.importers.sniff import found, hint_for
from recorder.importers.sources import LineReader, SourceError, read_whole
from rlmine.store import Connection
from rlmine.trace import ContextRef, Iteration, LLMCall, Run, Trace

VERSION = "dspy-import/1"
FORCED_EXTRACT = "Extract forced final output"
_TRAJECTORY_KEYS = ("trajectory", "repl_trajectory")
_RESERVED = frozenset(
    {
        *_TRAJECTORY_KEYS,
        "final_reasoning",
        "history",
        "question",
        "query",
        "context",
        "model",
        "sub_model",
        "expected",
        "max_iters",
        "max_llm_calls",
        "metadata",
        "usage",
        "lm_usage",
        "id",
    }
)
_ERROR_PREFIXES = ("[Error]", "[Type Error]")
_LIMIT = re.compile(r"LLM call limit exceeded: (\d+) \+ (\d+) > (\d+)")
_FINAL = re.compile(r"^FINAL: (.*)$", re.DOTALL)


class RecordError(ValueError):
    """A JSON value that is not a DSPy RLM result."""


def _entries(trajectory: Any) -> list[dict[str, str | None]]:
    if not isinstance(trajectory, list):
        raise RecordError(f"the trajectory is {type(trajectory).__name__}, not a list")
    out = []
    for n, item in enumerate(trajectory):
        if not isinstance(item, dict) or not ({"code", "output", "reasoning"} & item.keys()):
            raise RecordError(f"trajectory entry {n} is not a {{reasoning, code, output}} object")
        out.append({k: text_of(item.get(k)) for k in ("reasoning", "code", "output")})
    return out


def _final_from_output(output: str | None) -> str | None:
    """The submitted value from a ``FINAL: {...}`` output (a Python dict repr)."""
    match = _FINAL.match(output or "")
    if not match:
        return None
    try:
        value = ast.literal_eval(match.group(1).strip())
    except (ValueError, SyntaxError, MemoryError, RecursionError):
        return match.group(1).strip()
    if isinstance(value, dict) and len(value) == 1:
        value = next(iter(value.values()))
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, default=str)


def _answer(outputs: dict[str, Any]) -> str | None:
    present = {k: v for k, v in outputs.items() if v is not None}
    if not present:
        return None
    if len(present) == 1:
        return text_of(next(iter(present.values())))
    return json.dumps(present, ensure_ascii=False, default=str, sort_keys=True)


def _opt_str(value: Any) -> str | None:
    return value if isinstance(value, str) and value.strip() else None


def _submit_index(entries: list[dict[str, str | None]]) -> int | None:
    """The last entry whose output shows a successful ``SUBMIT``."""
    return next(
        (i for i in range(len(entries) - 1, -1, -1) if (entries[i]["output"] or "").startswith("FINAL:")),
        None,
    )


def _outcome(
    entries: list[dict[str, str | None]], answer: str | None, forced: bool
) -> tuple[str, str | None]:
    """(status, error) of a run, from how its trajectory ended."""
    if forced:
        return "budget_exhausted", None
    if answer is not None:
        return "submitted", None
    last = (entries[-1]["output"] or "") if entries else ""
    if last.startswith(_ERROR_PREFIXES):
        return "error", last.splitlines()[0]
    return "error", "the trajectory ends without a submitted output"


def _revealed_sub_calls(entries: list[dict[str, str | None]]) -> tuple[int, int] | None:
    """(count, iteration) from the largest "LLM call limit exceeded: N + k > max" message, if any."""
    best: tuple[int, int] | None = None
    for i, entry in enumerate(entries):
        for match in _LIMIT.finditer(entry["output"] or ""):
            count = int(match.group(1))
            if best is None or count > best[0]:
                best = (count, i)
    return best


def _iteration(run_id: str, index: int, entry: dict[str, str | None], submitted: bool) -> Iteration:
    output = entry["output"]
    failed = output is not None and output.startswith(_ERROR_PREFIXES)
    return Iteration(
        run_id=run_id,
        index=index,
        reasoning=entry["reasoning"],
        code=entry["code"],
        stdout=None if failed else output,
        stderr=output if failed else None,
        error=output.splitlines()[0] if failed and output else None,
        error_kind="code" if failed else None,
        submitted=submitted,
    )


def trace_from_dspy(record: Any, *, key: str, source_hash: str, file: str, ordinal: int) -> Trace:
    """One DSPy RLM result (a trajectory list or an object holding one) as a Trace."""
    obj: dict[str, Any] = {"trajectory": record} if isinstance(record, list) else record
    if not isinstance(obj, dict):
        raise RecordError(f"expected a trajectory list or an object, got {type(record).__name__}")
    tkey = next((k for k in _TRAJECTORY_KEYS if k in obj), None)
    if tkey is None:
        raise RecordError('no "trajectory" (or "repl_trajectory") in the object')
    entries = _entries(obj[tkey])
    outputs = {k: v for k, v in obj.items() if k not in _RESERVED}
    final_reasoning = _opt_str(obj.get("final_reasoning"))
    forced = final_reasoning == FORCED_EXTRACT
    submit_at = _submit_index(entries)
    answer = _answer(outputs)
    if answer is None and submit_at is not None:
        answer = _final_from_output(entries[submit_at]["output"])
    status, error = _outcome(entries, answer, forced)
    if status == "submitted" and submit_at is None:
        submit_at = len(entries) - 1  # the outputs were saved, the FINAL output was not
    model = _opt_str(obj.get("model"))
    run_id = derive_id(key)
    iterations = [_iteration(run_id, i, e, i == submit_at and not forced) for i, e in enumerate(entries)]
    note = {"text": "the reply is this iteration's reasoning and code"}

    def root_call(suffix: str, iteration: int | None, response: str | None, meta: dict[str, Any]) -> LLMCall:
        return LLMCall(f"{run_id}.{suffix}", run_id, iteration, "root", model, None, response, metadata=meta)

    calls = [root_call(f"r{i}", i, None, note) for i in range(len(entries))]
    if forced:
        calls.append(root_call("x", None, answer, {"purpose": "extract"}))
    revealed = _revealed_sub_calls(entries)
    metadata: dict[str, Any] = {"source": {"format": "dspy", "file": file, "record": ordinal, "field": tkey}}
    if final_reasoning is not None:
        metadata["final_reasoning"] = final_reasoning
    if len(outputs) > 1:
        metadata["output_fields"] = sorted(outputs)
    for extra in ("usage", "lm_usage", "metadata"):
        if obj.get(extra) is not None:
            metadata[extra] = obj[extra]
    if revealed is not None:
        metadata["sub_calls"] = {
            "recorded": False,
            "count": revealed[0],
            "count_source": f"LLM call limit message in iteration {revealed[1]}",
        }
    else:
        metadata["sub_calls"] = {
            "recorded": False,
            "count": None,
            "reason": "DSPy's trajectory does not record sub-LLM calls",
        }
    context = obj.get("context")
    ctx = context_from_payload(context) if context is not None else None
    if ctx is not None and ctx.chars is not None:
        metadata["context_chars"] = ctx.chars
    expected = obj.get("expected")
    run = Run(
        id=run_id,
        engine="dspy",
        engine_version=VERSION,
        status=status,
        question=_opt_str(obj.get("question")) or _opt_str(obj.get("query")),
        root_model=model,
        sub_model=_opt_str(obj.get("sub_model")),
        params={k: obj[k] for k in ("max_iters", "max_llm_calls") if isinstance(obj.get(k), int)},
        context=ContextRef(sha256=ctx.sha256, bytes=ctx.bytes, kind=ctx.kind) if ctx else ContextRef(),
        final_answer=answer,
        expected=None
        if expected is None
        else (
            expected
            if isinstance(expected, str)
            else json.dumps(expected, ensure_ascii=False, sort_keys=True)
        ),
        error=error,
        source_hash=source_hash,
        metadata=metadata,
    )
    trace = Trace(run=run, iterations=tuple(iterations), calls=tuple(calls)).with_totals()
    if revealed is None:
        return trace
    totals = trace.run  # the revealed sub-calls count, though no row describes them
    return replace(
        trace, run=replace(totals, n_sub_calls=revealed[0], n_llm_calls=totals.n_llm_calls + revealed[0])
    )


def _is_record_list(value: Any) -> bool:
    return (
        isinstance(value, list)
        and bool(value)
        and all(isinstance(v, dict) and any(k in v for k in _TRAJECTORY_KEYS) for v in value)
    )


class DspyImporter:
    """``rlmine import dspy``: saved ``dspy.RLM`` results (.json, .jsonl, also gzipped)."""

    name: str = "dspy"
    engine: str = "dspy"
    version: str = VERSION
    suffixes: tuple[str, ...] = (".json", ".jsonl", ".json.gz", ".jsonl.gz")
    what: str = "DSPy RLM result"
    parallel: bool = True

    def parse(self, path: Path, opts: ImportOptions) -> Iterator[ImportItem]:
        name = path.name.lower().removesuffix(".gz")
        if name.endswith((".jsonl", ".ndjson")):
            yield from self._lines(path, opts)
            return
        data, digest = read_whole(path, opts.max_line_bytes)
        value = loads_line(path, None, data)
        records = value if _is_record_list(value) else [value]
        for n, record in enumerate(records):
            key = f"dspy:{digest}:{n}"
            yield ImportItem(self._trace(path, None, record, key=key, source_hash=digest, ordinal=n))

    def _lines(self, path: Path, opts: ImportOptions) -> Iterator[ImportItem]:
        for n, (number, raw) in enumerate(LineReader(path, opts.max_line_bytes)):
            record = loads_line(path, number, raw)
            digest = hashlib.sha256(raw.strip()).hexdigest()
            yield ImportItem(
                self._trace(path, number, record, key=f"dspy:{digest}", source_hash=digest, ordinal=n)
            )

    @staticmethod
    def _trace(
        path: Path, line: int | None, record: Any, *, key: str, source_hash: str, ordinal: int
    ) -> Trace:
        try:
            return trace_from_dspy(record, key=key, source_hash=source_hash, file=path.name, ordinal=ordinal)
        except RecordError as exc:
            raise SourceError(
                path,
                f"not a DSPy RLM result: {exc}; found {found(record)}",
                line=line,
                hint=hint_for(record, "dspy"),
            ) from exc

    def save(self, con: Connection, items: Sequence[ImportItem]) -> None:
        default_save(con, items)


__all__ = ["FORCED_EXTRACT", "VERSION", "DspyImporter", "RecordError", "trace_from_dspy"]
