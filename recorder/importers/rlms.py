"""Import rlms (``pip install rlms``, alexzhang13/rlm) ``RLMLogger`` logs.

:mod:`recorder.importers.rlms_log` reads a log into compacted run logs; this
module maps each straight to table rows (what :func:`~rlmine.store.trace_rows`
makes of a :class:`~rlmine.trace.Trace`, built without the trace values: the
import is throughput-bound and the values would only be converted again).

Mapping to rlmine's trace model:

* each iteration → an :class:`~rlmine.trace.Iteration` (the reply's text
  outside code fences is the reasoning; the code blocks, joined, the code) and
  one root :class:`~rlmine.trace.LLMCall` whose stored prompt is the newest
  message only (like rlmine's own engine: the conversation is the iterations);
* each ``rlm_calls`` item → a sub call, with the tokens and cost of its
  ``usage_summary`` when present (root calls carry none in rlms logs: their
  tokens stay null, never guessed); a call whose ``metadata`` holds a nested
  trajectory becomes a child run linked both ways (``child_run_id`` /
  ``parent_call_id``), recursively;
* the final answer comes from the iteration (``FINAL``/``FINAL_VAR`` in the
  reply, rlms ≤ 0.1.1) or from a code block's result (an ``answer`` set in
  code, rlms ≥ 0.1.2); status: an answer → ``submitted``, ``max_iterations``
  turns without one → ``budget_exhausted``, otherwise ``error``;
* ``locals`` are reduced to names, types and sizes; a context string found in
  them (or in a ``run_context`` entry) is hashed and measured, never stored;
* secrets in ``backend_kwargs`` (keys, tokens) are redacted from the params.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from pathlib import Path
from typing import Any

from recorder.importers.base import ImportItem, ImportOptions, default_save, derive_id
from recorder.importers.rlms_log import (
    Block,
    EntryError,
    IterationEntry,
    RunLog,
    SubCall,
    read_runs,
    reasoning_of,
)
from recorder.importers.sources import LineReader, SourceError
from rlmine.store import SCHEMAS, Connection, Row, TraceRows, dumps, prompt_columns

VERSION = "rlms-import/1"
_SECRET_KEY = re.compile(r"api[_-]?key|secret|password|token|authorization|credential", re.IGNORECASE)
_PARAM_KEYS = (
    "max_iterations",
    "max_depth",
    "backend",
    "backend_kwargs",
    "environment_type",
    "environment_kwargs",
    "other_backends",
)
_MAX_CHILD_QUESTION = 4000


def redact(value: Any) -> Any:
    """A copy with the values of secret-looking keys replaced."""
    if isinstance(value, dict):
        return {k: "<redacted>" if _SECRET_KEY.search(str(k)) else redact(v) for k, v in value.items()}
    if isinstance(value, list):
        return [redact(v) for v in value]
    return value


def parse_time(text: str | None) -> datetime | None:
    """An ISO timestamp as a naive datetime (UTC when the text carries a zone)."""
    if not text:
        return None
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        return None
    return when.astimezone(UTC).replace(tzinfo=None) if when.tzinfo else when


def _joined(parts: Sequence[str]) -> str:
    return "\n".join([p.rstrip("\n") for p in parts if p])


@lru_cache(maxsize=1024)
def _messages_json(n: int) -> str | None:
    return dumps({"n_messages": n})  # a root call's metadata: memoized, one per turn adds up


@lru_cache(maxsize=64)
def _block_json(k: int) -> str | None:
    return dumps({"block": k})


def _minus(end: datetime | None, seconds: float | None) -> datetime | None:
    return end - timedelta(0, seconds) if end is not None and seconds is not None else None


def error_kind(error: str) -> str:
    return "timeout" if "Timeout" in error.split(":")[0] else "code"


def _block_row(run_id: str, index: int, k: int, block: Block) -> Row:
    return {
        "run_id": run_id,
        "iteration": index,
        "idx": k,
        "code": block.code,
        "stdout": block.stdout,
        "stderr": block.stderr or None,
        "error": block.error,
        "error_kind": error_kind(block.error) if block.error else None,
        "duration_s": block.execution_time,
        "ran": True,  # rlms runs every block of a reply, also after one fails
        "metadata": "{}",  # the locals are the iteration's (merged): not repeated per block
    }


_ESTIMATED = ("tokens_in", "tokens_out", "cost", "latency_s")


def batched_calls(calls: Sequence[SubCall]) -> list[int]:
    """For each call, the size of the batch it was logged in (0: a call of its own).

    rlms logs an ``llm_query_batched`` as one call per prompt, each carrying the
    batch's one usage figure and an even share of its time. Such a run (two or
    more neighbours with the same usage and time) is taken as a batch: its
    per-call figures are estimates, and are flagged so.
    """
    out = [0] * len(calls)
    start = 0
    while start < len(calls):
        end = start + 1
        sig = _figures(calls[start])
        while end < len(calls) and sig is not None and _figures(calls[end]) == sig:
            end += 1
        if end - start > 1:
            out[start:end] = [end - start] * (end - start)
        start = end
    return out


def _figures(call: SubCall) -> tuple[Any, ...] | None:
    figures = (call.tokens_in, call.tokens_out, call.cost, call.latency_s)
    return None if all(f is None for f in figures) else figures


def _call_meta(k: int, extra: dict[str, Any], batch: int) -> str | None:
    if not extra and not batch:
        return _block_json(k)
    meta: dict[str, Any] = {"block": k, **extra}
    if batch:
        meta["batch_size"] = batch
        meta["estimated"] = list(_ESTIMATED)  # one usage copied onto every prompt, time split evenly
    return dumps(meta)


@dataclass(frozen=True, slots=True)
class Source:
    """Where a run came from: its identity key and provenance."""

    key: str
    source_hash: str
    file: str
    ordinal: int


class _Builder:
    """Turns one run log into table rows (its own, then its nested children's, recursively).

    Rows are built straight from the compacted log, without the intermediate
    :class:`~rlmine.trace.Trace` values: the rows are what :func:`trace_rows`
    would make of the equivalent trace (same columns, same JSON text, same
    totals as :meth:`~rlmine.trace.Trace.with_totals`), at a third of the cost.
    """

    def __init__(
        self,
        log: RunLog,
        source: Source,
        out: TraceRows,
        *,
        parent: tuple[str, str] | None = None,
        fallback_question: str | None = None,
    ) -> None:
        self.log, self.source, self.out = log, source, out
        self.parent, self.fallback_question = parent, fallback_question

    def _started(self) -> datetime | None:
        if self.log.own_metadata and self.log.metadata_time:
            return parse_time(self.log.metadata_time)
        first = self.log.iterations[0] if self.log.iterations else None
        return _minus(parse_time(first.logged_at), first.iteration_time) if first else None

    def build(self) -> str:
        """Append this run's rows to ``out`` (its run row before its children's); its id."""
        log, out = self.log, self.out
        meta = log.metadata
        started = self._started()
        run_id = derive_id(self.source.key, started)
        runs = out["runs"]
        slot = len(runs)
        runs.append({})  # filled last: its totals need every call, but parents come first
        iterations, calls = out["iterations"], out["llm_calls"]
        totals = _Totals()
        sub_models: Counter[str] = Counter()
        root_model = meta.get("root_model") if isinstance(meta.get("root_model"), str) else None
        last_error: str | None = None
        for index, entry in enumerate(log.iterations):
            begun = _minus(parse_time(entry.logged_at), entry.iteration_time)
            it_row = self._iteration(run_id, index, entry, begun)
            iterations.append(it_row)
            last_error = it_row["error"]
            tin, tout = entry.usage
            prompt, prompt_sha, prompt_chars = prompt_columns(
                entry.prompt_last, None, entry.prompt_chars if entry.prompt_last is not None else None
            )
            calls.append(
                {
                    "id": f"{run_id}.r{index}",
                    "run_id": run_id,
                    "iteration": index,
                    "role": "root",
                    "model": root_model,
                    "prompt": prompt,
                    "prompt_sha256": prompt_sha,
                    "prompt_chars": prompt_chars,
                    "response": entry.response,
                    "reasoning": None,
                    "tokens_in": tin,
                    "tokens_out": tout,
                    "cost": None,
                    "latency_s": None,
                    "started_at": begun,
                    "error": None,
                    "child_run_id": None,
                    "metadata": _messages_json(entry.prompt_messages),
                }
            )
            totals.add(tin, tout, None, sub=False)
            blocks_out = self.out["code_blocks"]
            for k, block in enumerate(entry.blocks):
                blocks_out.append(_block_row(run_id, index, k, block))
                estimated = batched_calls(block.calls)
                for j, sub in enumerate(block.calls):
                    call_id = f"{run_id}.s{index}.{k}.{j}"
                    child_id: str | None = None
                    if sub.child is not None:
                        child_source = Source(
                            f"{run_id}/child/{index}/{k}/{j}",
                            self.source.source_hash,
                            self.source.file,
                            self.source.ordinal,
                        )
                        question = (
                            sub.prompt if sub.prompt and len(sub.prompt) <= _MAX_CHILD_QUESTION else None
                        )
                        child_id = _Builder(
                            sub.child, child_source, out, parent=(run_id, call_id), fallback_question=question
                        ).build()
                    if sub.model:
                        sub_models[sub.model] += 1
                    prompt, prompt_sha, prompt_chars = prompt_columns(sub.prompt)
                    calls.append(
                        {
                            "id": call_id,
                            "run_id": run_id,
                            "iteration": index,
                            "role": "sub",
                            "model": sub.model,
                            "prompt": prompt,
                            "prompt_sha256": prompt_sha,
                            "prompt_chars": prompt_chars,
                            "response": sub.response,
                            "reasoning": None,
                            "tokens_in": sub.tokens_in,
                            "tokens_out": sub.tokens_out,
                            "cost": sub.cost,
                            "latency_s": sub.latency_s,
                            "started_at": None,  # the log does not say; the iteration's would mislead
                            "error": sub.error,
                            "child_run_id": child_id,
                            "metadata": _call_meta(k, sub.extra, estimated[j]),
                        }
                    )
                    totals.add(sub.tokens_in, sub.tokens_out, sub.cost, sub=True)
        runs[slot] = self._run(run_id, started, last_error, totals, sub_models, root_model)
        return run_id

    @staticmethod
    def _iteration(run_id: str, index: int, entry: IterationEntry, begun: datetime | None) -> Row:
        # Plain loops rather than generator expressions: this runs for every iteration imported.
        blocks = entry.blocks
        errors: list[str] = []
        local_vars: dict[str, Any] = {}
        for block in blocks:
            if block.error is not None:
                errors.append(block.error)
            local_vars.update(block.locals)
        meta: dict[str, Any] = {"locals": local_vars} if local_vars else {}
        if entry.logged_at is not None:
            meta["logged_at"] = entry.logged_at
        if entry.answer is not None:
            meta["final_style"] = entry.final_style
        if len(blocks) > 1:
            meta["code_blocks"] = len(blocks)
        error = "\n".join(errors) if errors else None  # every block's error, one per line
        return {
            "run_id": run_id,
            "idx": index,
            "reasoning": reasoning_of(entry.response),
            "code": "\n\n".join([b.code for b in blocks]) if blocks else None,
            # Byte for byte: the blocks' outputs concatenated, as one cell would print them.
            "stdout": "".join([b.stdout for b in blocks]) if blocks else None,
            "stderr": "".join([b.stderr for b in blocks]) or None,
            "error": error,
            "error_kind": error_kind(errors[0]) if errors else None,
            # rlms's iteration_time: the whole turn, root model included (code time is per block).
            "duration_s": entry.iteration_time,
            "root_tokens_in": entry.usage[0],
            "root_tokens_out": entry.usage[1],
            "root_latency_s": None,
            "output_truncated": False,
            "submitted": entry.answer is not None,
            "started_at": begun,
            "metadata": dumps(meta),
        }

    def _run(
        self,
        run_id: str,
        started: datetime | None,
        last_error: str | None,
        totals: _Totals,
        sub_models: Counter[str],
        root_model: str | None,
    ) -> Row:
        log, meta = self.log, self.log.metadata
        entries = log.iterations
        answer = entries[-1].answer if entries else None
        max_iterations = meta.get("max_iterations")
        error: str | None = None
        if answer is not None:
            status = "submitted"
        elif isinstance(max_iterations, int) and max_iterations > 0 and len(entries) >= max_iterations:
            status = "budget_exhausted"
        else:
            status = "error"
            error = last_error or (
                f"the log ends after {len(entries)} iterations without a final answer"
                if entries
                else "the log has no iterations"
            )
        times = [e.iteration_time for e in entries]
        ctx = log.context
        question = log.root_prompt or (entries[0].question if entries else None) or self.fallback_question
        metadata: dict[str, Any] = {
            "source": {
                "format": "rlms",
                "file": self.source.file,
                "run_in_file": self.source.ordinal,
                "lines": [log.first_line, log.last_line],
            },
            "calls_without_usage": totals.no_usage,
        }
        for key, value in (
            ("final_style", entries[-1].final_style if entries else None),
            ("context_chars", ctx.chars),
            ("system_prompt_sha256", entries[0].system_sha256 if entries else None),
            ("source_version", meta.get("rlm_version") or meta.get("version")),
        ):
            if value is not None:
                metadata[key] = value
        return {
            "id": run_id,
            "task_id": None,
            "instance_id": None,
            "engine": "rlms",
            "engine_version": VERSION,
            "root_model": root_model,
            "sub_model": sub_models.most_common(1)[0][0] if sub_models else None,
            "params": dumps({k: redact(meta[k]) for k in _PARAM_KEYS if meta.get(k) is not None}),
            "status": status,
            "question": question,
            "context_path": None,
            "context_generator": None,
            "context_sha256": ctx.sha256,
            "context_bytes": ctx.bytes,
            "context_kind": ctx.kind,
            "final_answer": answer,
            "expected": None,
            "score": None,
            "correct": None,
            "n_iterations": len(entries),
            "n_llm_calls": totals.calls,
            "n_sub_calls": totals.sub_calls,
            "tokens_in": sum(totals.tokens_in) if totals.tokens_in else None,
            "tokens_out": sum(totals.tokens_out) if totals.tokens_out else None,
            "cost": sum(totals.costs) if totals.costs else None,
            "wall_s": sum(t for t in times if t is not None) if times and None not in times else None,
            "started_at": started,
            "finished_at": parse_time(entries[-1].logged_at) if entries else None,
            "batch_id": None,
            "slot_key": None,
            "error": error,
            "parent_run_id": self.parent[0] if self.parent else None,
            "parent_call_id": self.parent[1] if self.parent else None,
            "source_hash": self.source.source_hash,
            "owner": None,
            "metadata": dumps(metadata),
        }


@dataclass(slots=True)
class _Totals:
    """A run's counters over its calls, as :meth:`~rlmine.trace.Trace.with_totals` computes them.

    Token and cost totals stay None when no call reported them: unknown is not zero.
    """

    calls: int = 0
    sub_calls: int = 0
    no_usage: int = 0
    tokens_in: list[int] = field(default_factory=list)
    tokens_out: list[int] = field(default_factory=list)
    costs: list[float] = field(default_factory=list)

    def add(self, tin: int | None, tout: int | None, cost: float | None, *, sub: bool) -> None:
        self.calls += 1
        self.sub_calls += sub
        if tin is not None:
            self.tokens_in.append(tin)
        if tout is not None:
            self.tokens_out.append(tout)
        if tin is None and tout is None:
            self.no_usage += 1
        if cost is not None:
            self.costs.append(cost)  # summed in call order, like with_totals: float sums depend on it


def build_rows(log: RunLog, source: Source) -> TraceRows:
    """Table rows of one run log (with nested children); the top-level run's row comes first."""
    out: TraceRows = {name: [] for name in SCHEMAS}
    _Builder(log, source, out).build()
    return out


class RlmsImporter:
    """``rlmine import rlms``: RLMLogger ``.jsonl`` logs (also gzipped, also directories of them)."""

    name: str = "rlms"
    engine: str = "rlms"
    version: str = VERSION
    suffixes: tuple[str, ...] = (".jsonl", ".jsonl.gz")
    what: str = "rlms log"
    parallel: bool = True

    def parse(self, path: Path, opts: ImportOptions) -> Iterator[ImportItem]:
        reader = LineReader(path, opts.max_line_bytes)
        logs = read_runs(path, reader)
        for ordinal, log in enumerate(logs):
            # Keyed by the run's lines up to its first iteration, not the file's hash: a log imported while its run was
            # still being written, then again when finished, stays one run.
            source = Source(f"rlms:{log.anchor}:{ordinal}", reader.sha256, path.name, ordinal)
            try:
                rows = build_rows(log, source)
            except EntryError as exc:
                raise SourceError(path, f"malformed iteration entry: {exc}", line=log.first_line) from exc
            yield ImportItem(None, rows=rows)

    def save(self, con: Connection, items: Sequence[ImportItem]) -> None:
        default_save(con, items)


__all__ = ["VERSION", "RlmsImporter", "Source", "build_rows", "parse_time", "redact"]
