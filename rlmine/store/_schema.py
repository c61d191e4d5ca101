"""The trace tables' columns and types, derived from the trace values (one place).

Each trace table is one value type of :mod:`rlmine.trace`, field for field:
``runs`` ← :class:`Run`, ``iterations`` ← :class:`Iteration`, ``llm_calls`` ←
:class:`LLMCall`, ``code_blocks`` ← :class:`CodeBlock`, ``step_labels`` ←
:class:`StepLabel`. A column's name is its field's, its type follows the field's
annotation (``str`` → VARCHAR, ``int`` → BIGINT, ``float`` → DOUBLE, ``bool`` →
BOOLEAN, ``datetime`` → TIMESTAMP, a mapping → JSON text), with three spellings
the tables have always used: ``index`` is stored as ``idx`` (a SQL keyword),
``Run.context`` as the ``context_*`` columns of its :class:`ContextRef`, and an
iteration's ``blocks`` as rows of their own table. So adding a field to a value
adds the column here, to every writer (:mod:`rlmine.store._rows`, the importers'
rows, the spool) and to every reader; the migration that adds it to the
database is the one other thing to write, and ``tests/test_store.py`` fails
until the migrated tables and :data:`SCHEMAS` agree on names and types.
"""

from __future__ import annotations

import types
import typing
from dataclasses import fields
from datetime import datetime
from typing import Any

import pyarrow as pa

from rlmine.trace import CodeBlock, ContextRef, Iteration, LLMCall, Run, StepLabel

# Field renames shared by every table: the Python name → the column name.
RENAMES = {"index": "idx"}
# Fields stored elsewhere (an iteration's blocks are rows of code_blocks).
NOT_COLUMNS = {"blocks"}
# A nested value stored as prefixed columns of its own fields.
FLATTENED: dict[str, type] = {"context": ContextRef}

TABLE_TYPES: dict[str, type] = {
    "runs": Run,
    "iterations": Iteration,
    "llm_calls": LLMCall,
    "step_labels": StepLabel,
    "code_blocks": CodeBlock,
}

_SCALARS: dict[type, pa.DataType] = {
    str: pa.string(),
    int: pa.int64(),
    float: pa.float64(),
    bool: pa.bool_(),
    datetime: pa.timestamp("us"),
}


def _arrow_type(hint: Any, where: str) -> tuple[pa.DataType, bool]:
    """(Arrow type, holds JSON text?) for a field annotation."""
    args = [a for a in typing.get_args(hint) if a is not type(None)]
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType) and len(args) == 1:
        return _arrow_type(args[0], where)  # X | None
    if origin is typing.Literal:
        return _arrow_type(type(args[0]), where)
    if hint is dict or origin is dict:
        return pa.string(), True
    if isinstance(hint, type) and hint in _SCALARS:
        return _SCALARS[hint], False
    raise TypeError(f"{where}: no column type for {hint!r}")  # a new kind of field: map it above


def _columns(cls: type, prefix: str = "") -> list[tuple[str, pa.DataType, bool]]:
    hints = typing.get_type_hints(cls)
    out: list[tuple[str, pa.DataType, bool]] = []
    for f in fields(cls):
        if f.name in NOT_COLUMNS:
            continue
        if f.name in FLATTENED:
            out.extend(_columns(FLATTENED[f.name], prefix=f"{f.name}_"))
            continue
        arrow, is_json = _arrow_type(hints[f.name], f"{cls.__name__}.{f.name}")
        out.append((prefix + RENAMES.get(f.name, f.name), arrow, is_json))
    return out


_COLUMNS = {table: _columns(cls) for table, cls in TABLE_TYPES.items()}

# Column names and Arrow types of every trace table.
SCHEMAS: dict[str, pa.Schema] = {
    table: pa.schema([(name, arrow) for name, arrow, _json in cols]) for table, cols in _COLUMNS.items()
}
# Columns that hold JSON text.
JSON_COLUMNS: frozenset[str] = frozenset(
    name for cols in _COLUMNS.values() for name, _arrow, is_json in cols if is_json
)
