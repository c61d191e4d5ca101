"""Pure conversions between trace values and table rows (plain dicts).

One path for every writer: the engine's spool, importers and exports all turn
:class:`~rlmine.trace.Trace` values into rows here, and the ``*_from_row``
functions turn rows back into values. JSON columns travel as JSON text
(:func:`dumps`). An importer that maps a source straight to rows, skipping the
trace values for speed, still names its columns from :data:`SCHEMAS` and uses
:func:`dumps` and :func:`prompt_columns`, so its rows equal :func:`trace_rows`'s.
"""

from __future__ import annotations

import json
from dataclasses import fields
from datetime import datetime
from typing import Any

import orjson
import pyarrow as pa

from rlmine.ids import sha256_text
from rlmine.trace import (
    MAX_STORED_PROMPT_CHARS,
    CodeBlock,
    ContextRef,
    Iteration,
    LLMCall,
    Run,
    StepLabel,
    Trace,
)

Row = dict[str, Any]
TraceRows = dict[str, list[Row]]  # table name → rows: one run (with nested children) or many

_S, _I, _B, _F, _T = pa.string(), pa.int64(), pa.bool_(), pa.float64(), pa.timestamp("us")

# Column order and Arrow type of every trace table (matches migrations.py).
SCHEMAS: dict[str, pa.Schema] = {
    "runs": pa.schema(
        [
            ("id", _S),
            ("task_id", _S),
            ("instance_id", _S),
            ("engine", _S),
            ("engine_version", _S),
            ("root_model", _S),
            ("sub_model", _S),
            ("params", _S),
            ("status", _S),
            ("question", _S),
            ("context_path", _S),
            ("context_generator", _S),
            ("context_sha256", _S),
            ("context_bytes", _I),
            ("context_kind", _S),
            ("final_answer", _S),
            ("expected", _S),
            ("score", _F),
            ("correct", _B),
            ("n_iterations", _I),
            ("n_llm_calls", _I),
            ("n_sub_calls", _I),
            ("tokens_in", _I),
            ("tokens_out", _I),
            ("cost", _F),
            ("wall_s", _F),
            ("started_at", _T),
            ("finished_at", _T),
            ("batch_id", _S),
            ("slot_key", _S),
            ("error", _S),
            ("parent_run_id", _S),
            ("parent_call_id", _S),
            ("source_hash", _S),
            ("owner", _S),
            ("metadata", _S),
        ]
    ),
    "iterations": pa.schema(
        [
            ("run_id", _S),
            ("idx", _I),
            ("reasoning", _S),
            ("code", _S),
            ("stdout", _S),
            ("stderr", _S),
            ("error", _S),
            ("error_kind", _S),
            ("duration_s", _F),
            ("root_tokens_in", _I),
            ("root_tokens_out", _I),
            ("root_latency_s", _F),
            ("output_truncated", _B),
            ("submitted", _B),
            ("started_at", _T),
            ("metadata", _S),
        ]
    ),
    "llm_calls": pa.schema(
        [
            ("id", _S),
            ("run_id", _S),
            ("iteration", _I),
            ("role", _S),
            ("model", _S),
            ("prompt", _S),
            ("prompt_sha256", _S),
            ("prompt_chars", _I),
            ("response", _S),
            ("reasoning", _S),
            ("tokens_in", _I),
            ("tokens_out", _I),
            ("cost", _F),
            ("latency_s", _F),
            ("started_at", _T),
            ("error", _S),
            ("child_run_id", _S),
            ("metadata", _S),
        ]
    ),
    "step_labels": pa.schema(
        [("run_id", _S), ("iteration", _I), ("line_start", _I), ("line_end", _I), ("tactic", _S)]
    ),
    "code_blocks": pa.schema(
        [
            ("run_id", _S),
            ("iteration", _I),
            ("idx", _I),
            ("code", _S),
            ("stdout", _S),
            ("stderr", _S),
            ("error", _S),
            ("error_kind", _S),
            ("duration_s", _F),
            ("ran", _B),
            ("metadata", _S),
        ]
    ),
}

# Columns that hold JSON text.
JSON_COLUMNS = {"params", "context_generator", "metadata"}


# One stdlib encoder, built once (json.dumps with options builds a new one per call): the
# fallback for what orjson refuses (integers over 64 bits).
_ENCODER = json.JSONEncoder(ensure_ascii=False, default=str, sort_keys=True)
# orjson writes the same JSON values 5-10x faster (compact separators). Datetimes and
# dataclasses go through ``default=str`` as with the stdlib, not orjson's own encodings.
_ORJSON_OPTIONS = (
    orjson.OPT_SORT_KEYS
    | orjson.OPT_NON_STR_KEYS
    | orjson.OPT_PASSTHROUGH_DATETIME
    | orjson.OPT_PASSTHROUGH_DATACLASS
)


def dumps(value: Any) -> str | None:
    """JSON text for a JSON column (keys sorted, non-ASCII kept, unknown types as ``str``, NaN as null)."""
    if value is None:
        return None
    if not value and isinstance(value, dict):
        return "{}"  # most metadata and params are empty
    try:
        return orjson.dumps(value, default=str, option=_ORJSON_OPTIONS).decode()
    except orjson.JSONEncodeError:
        return _ENCODER.encode(value)


def prompt_columns(
    prompt: str | None, sha256: str | None = None, chars: int | None = None
) -> tuple[str | None, str | None, int | None]:
    """``(prompt, prompt_sha256, prompt_chars)`` as stored: huge prompts keep only their hash and size."""
    if prompt is None:
        return None, sha256, chars
    return (
        None if len(prompt) > MAX_STORED_PROMPT_CHARS else prompt,
        sha256 or sha256_text(prompt),
        chars if chars is not None else len(prompt),
    )


def _loads(value: Any) -> Any:
    if value is None or isinstance(value, dict | list):
        return value
    return json.loads(value)


def run_row(run: Run) -> Row:
    ctx = run.context
    return {
        "id": run.id,
        "task_id": run.task_id,
        "instance_id": run.instance_id,
        "engine": run.engine,
        "engine_version": run.engine_version,
        "root_model": run.root_model,
        "sub_model": run.sub_model,
        "params": dumps(run.params),
        "status": run.status,
        "question": run.question,
        "context_path": ctx.path,
        "context_generator": dumps(ctx.generator),
        "context_sha256": ctx.sha256,
        "context_bytes": ctx.bytes,
        "context_kind": ctx.kind,
        "final_answer": run.final_answer,
        "expected": run.expected,
        "score": run.score,
        "correct": run.correct,
        "n_iterations": run.n_iterations,
        "n_llm_calls": run.n_llm_calls,
        "n_sub_calls": run.n_sub_calls,
        "tokens_in": run.tokens_in,
        "tokens_out": run.tokens_out,
        "cost": run.cost,
        "wall_s": run.wall_s,
        "started_at": run.started_at,
        "finished_at": run.finished_at,
        "batch_id": run.batch_id,
        "slot_key": run.slot_key,
        "error": run.error,
        "parent_run_id": run.parent_run_id,
        "parent_call_id": run.parent_call_id,
        "source_hash": run.source_hash,
        "owner": run.owner,
        "metadata": dumps(run.metadata),
    }


# Field names, looked up once (dataclasses.fields() is slow enough to matter per row).
_ITERATION_FIELDS = tuple(f.name for f in fields(Iteration) if f.name != "blocks")
_BLOCK_FIELDS = tuple(f.name for f in fields(CodeBlock))
_CALL_FIELDS = tuple(f.name for f in fields(LLMCall))
_LABEL_FIELDS = tuple(f.name for f in fields(StepLabel))


def iteration_row(it: Iteration) -> Row:
    row = {name: getattr(it, name) for name in _ITERATION_FIELDS}
    row["idx"] = row.pop("index")
    row["metadata"] = dumps(it.metadata)
    return row


def call_row(call: LLMCall) -> Row:
    row = {name: getattr(call, name) for name in _CALL_FIELDS}
    row["prompt"], row["prompt_sha256"], row["prompt_chars"] = prompt_columns(
        call.prompt, call.prompt_sha256, call.prompt_chars
    )
    row["metadata"] = dumps(call.metadata)
    return row


def label_row(label: StepLabel) -> Row:
    return {name: getattr(label, name) for name in _LABEL_FIELDS}


def block_row(block: CodeBlock) -> Row:
    row = {name: getattr(block, name) for name in _BLOCK_FIELDS}
    row["idx"] = row.pop("index")
    row["metadata"] = dumps(block.metadata)
    return row


def iteration_rows(it: Iteration) -> TraceRows:
    """The rows of one finished iteration: itself and its code blocks."""
    return {"iterations": [iteration_row(it)], "code_blocks": [block_row(b) for b in it.blocks]}


def trace_rows(trace: Trace) -> TraceRows:
    """Rows for every table, for this trace and its nested children."""
    out: TraceRows = {name: [] for name in SCHEMAS}
    for t in trace.walk():
        out["runs"].append(run_row(t.run))
        out["iterations"].extend(iteration_row(i) for i in t.iterations)
        out["code_blocks"].extend(block_row(b) for i in t.iterations for b in i.blocks)
        out["llm_calls"].extend(call_row(c) for c in t.calls)
        out["step_labels"].extend(label_row(s) for s in t.labels)
    return out


def to_arrow(table: str, rows: list[Row]) -> pa.Table:
    # from_pylist builds the columns in C++, not through per-column Python lists
    # (1.2-2x faster). Keys outside the schema are ignored; missing ones are NULL.
    return pa.Table.from_pylist(rows, schema=SCHEMAS[table])


def _ts(value: Any) -> datetime | None:
    if value is None or isinstance(value, datetime):
        return value
    return datetime.fromisoformat(str(value))


def run_from_row(row: Row) -> Run:
    ctx = ContextRef(
        path=row.get("context_path"),
        generator=_loads(row.get("context_generator")),
        sha256=row.get("context_sha256"),
        bytes=row.get("context_bytes"),
        kind=row.get("context_kind"),
    )
    names = {f.name for f in fields(Run)} - {"context"}
    values: dict[str, Any] = {k: row.get(k) for k in names}
    values["params"] = _loads(row.get("params")) or {}
    values["metadata"] = _loads(row.get("metadata")) or {}
    values["started_at"] = _ts(row.get("started_at"))
    values["finished_at"] = _ts(row.get("finished_at"))
    for counter in ("n_iterations", "n_llm_calls", "n_sub_calls"):
        values[counter] = int(row.get(counter) or 0)
    return Run(context=ctx, **values)


def iteration_from_row(row: Row, blocks: tuple[CodeBlock, ...] = ()) -> Iteration:
    values: dict[str, Any] = {
        f.name: row.get(f.name) for f in fields(Iteration) if f.name not in ("index", "blocks")
    }
    values["blocks"] = blocks
    values["metadata"] = _loads(row.get("metadata")) or {}
    values["started_at"] = _ts(row.get("started_at"))
    values["output_truncated"] = bool(row.get("output_truncated"))
    values["submitted"] = bool(row.get("submitted"))
    return Iteration(index=int(row["idx"]), **values)


def call_from_row(row: Row) -> LLMCall:
    values: dict[str, Any] = {f.name: row.get(f.name) for f in fields(LLMCall)}
    values["metadata"] = _loads(row.get("metadata")) or {}
    values["started_at"] = _ts(row.get("started_at"))
    return LLMCall(**values)


def label_from_row(row: Row) -> StepLabel:
    return StepLabel(**{f.name: row[f.name] for f in fields(StepLabel)})


def block_from_row(row: Row) -> CodeBlock:
    values: dict[str, Any] = {f.name: row.get(f.name) for f in fields(CodeBlock) if f.name != "index"}
    values["metadata"] = _loads(row.get("metadata")) or {}
    values["ran"] = bool(row.get("ran"))
    return CodeBlock(index=int(row["idx"]), **values)
