"""Tasks, instances and batches: the catalogue that runs hang off.

Small tables written rarely (once per ``record`` or ``import``), with
``executemany`` is fine here. Identity is by name: recording the same task
file twice reuses its id.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import duckdb

from rlmine.ids import new_id
from rlmine.store._rows import dumps
from rlmine.trace import ContextRef, utcnow


@dataclass(frozen=True, slots=True)
class InstanceRow:
    id: str
    split: str | None
    question: str | None
    expected: Any
    context: ContextRef = field(default_factory=ContextRef)
    metadata: dict[str, Any] = field(default_factory=dict)


def upsert_task(
    con: duckdb.DuckDBPyConnection,
    *,
    name: str,
    spec: dict[str, Any] | None = None,
    question: str | None = None,
    checker: str | None = None,
    source_path: str | None = None,
) -> str:
    """Create or update the task called ``name``; returns its id."""
    row = con.execute("SELECT id FROM tasks WHERE name = ?", [name]).fetchone()
    if row:
        con.execute(
            "UPDATE tasks SET spec = coalesce(?, spec), question = coalesce(?, question), "
            "checker = coalesce(?, checker), source_path = coalesce(?, source_path) WHERE id = ?",
            [dumps(spec), question, checker, source_path, row[0]],
        )
        return str(row[0])
    task_id = new_id()
    con.execute(
        "INSERT INTO tasks VALUES (?, ?, ?, ?, ?, ?, ?)",
        [task_id, name, dumps(spec), question, checker, source_path, utcnow()],
    )
    return task_id


def upsert_instances(con: duckdb.DuckDBPyConnection, task_id: str, instances: Sequence[InstanceRow]) -> int:
    con.executemany(
        "INSERT OR REPLACE INTO instances VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        [
            [
                task_id,
                inst.id,
                inst.split,
                inst.question,
                dumps(inst.expected),
                inst.context.path,
                dumps(inst.context.generator),
                inst.context.sha256,
                inst.context.bytes,
                dumps(inst.metadata),
            ]
            for inst in instances
        ],
    )
    return len(instances)


def find_task_id(con: duckdb.DuckDBPyConnection, name_or_id: str) -> str | None:
    row = con.execute("SELECT id FROM tasks WHERE name = ? OR id = ?", [name_or_id, name_or_id]).fetchone()
    return str(row[0]) if row else None


def upsert_batch(
    con: duckdb.DuckDBPyConnection, *, name: str, task_id: str | None, params: dict[str, Any]
) -> str:
    """The batch called ``name`` (created if new); returns its id."""
    row = con.execute("SELECT id FROM batches WHERE name = ?", [name]).fetchone()
    if row:
        return str(row[0])
    batch_id = new_id()
    con.execute(
        "INSERT INTO batches VALUES (?, ?, ?, ?, ?)", [batch_id, name, task_id, dumps(params), utcnow()]
    )
    return batch_id
