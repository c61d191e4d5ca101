"""Pure conversions between trace values and table rows (plain dicts).

One path for every writer: the engine's spool, importers and exports all turn
:class:`~rlmine.trace.Trace` values into rows here, and the ``*_from_row``
functions turn rows back into values. Column names and types come from the
values themselves (:mod:`rlmine.store._schema`). JSON columns travel as JSON text
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
from rlmine.store._schema import SCHEMAS
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
    row = {name: getattr(run, name) for name in _RUN_FIELDS}
    ctx = run.context
    row["context_path"], row["context_sha256"] = ctx.path, ctx.sha256
    row["context_bytes"], row["context_kind"] = ctx.bytes, ctx.kind
    row["context_generator"] = dumps(ctx.generator)
    row["params"] = dumps(run.params)
    row["metadata"] = dumps(run.metadata)
    return row


# Field names, looked up once (dataclasses.fields() is slow enough to matter per row).
_RUN_FIELDS = tuple(f.name for f in fields(Run) if f.name != "context")
_ITERATION_FIELDS = tuple(f.name for f in fields(Iteration) if f.name != "blocks")
_BLOCK_FIELDS = tuple(f.name for f in fields(CodeBlock))
_CALL_FIELDS = tuple(f.name for f in fields(LLMCall))
_LABEL_FIELDS = tuple(f.name for f in fields(StepLabel))


def _indexed_row(value: Iteration | CodeBlock, names: tuple[str, ...]) -> Row:
    row = {name: getattr(value, name) for name in names}
    row["idx"] = row.pop("index")  # `index` is a SQL keyword: the column is `idx`
    row["metadata"] = dumps(value.metadata)
    return row


def iteration_row(it: Iteration) -> Row:
    return _indexed_row(it, _ITERATION_FIELDS)


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
    return _indexed_row(block, _BLOCK_FIELDS)


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
