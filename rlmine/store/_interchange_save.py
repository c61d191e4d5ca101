"""Saving interchange records into the store: catalogue first (matched by name), then runs.

Split from :mod:`rlmine.store._interchange`, which holds the format itself.
"""

from collections.abc import Sequence
from dataclasses import replace
from datetime import datetime
from typing import Any

import duckdb

from rlmine.store import _catalog as catalog_api
from rlmine.store._interchange import Catalog
from rlmine.store._rows import (
    dumps,
)
from rlmine.store._writes import delete_runs, existing_run_ids, save_traces
from rlmine.trace import Trace


def _ts(value: Any) -> datetime | None:
    return datetime.fromisoformat(value) if isinstance(value, str) else None


def _ensure_task(con: duckdb.DuckDBPyConnection, task: dict[str, Any]) -> str:
    """The id of the task named like ``task`` in this database (created with the record's id if free)."""
    name = str(task["name"])
    spec = task.get("spec")
    existing = con.execute("SELECT id FROM tasks WHERE name = ?", [name]).fetchone()
    tid = task.get("id")
    if (
        existing is None
        and isinstance(tid, str)
        and tid
        and con.execute("SELECT 1 FROM tasks WHERE id = ?", [tid]).fetchone() is None
    ):
        con.execute(
            "INSERT INTO tasks (id, name, spec, question, checker, source_path, created_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
            [
                tid,
                name,
                dumps(spec),
                task.get("question"),
                task.get("checker"),
                task.get("source_path"),
                _ts(task.get("created_at")),
            ],
        )
        return tid
    return catalog_api.upsert_task(
        con,
        name=name,
        spec=spec if isinstance(spec, dict) else None,
        question=task.get("question"),
        checker=task.get("checker"),
        source_path=task.get("source_path"),
    )


def _put_instance(con: duckdb.DuckDBPyConnection, task_id: str, inst: dict[str, Any]) -> None:
    ctx = inst.get("context") or {}
    con.execute(
        "INSERT OR REPLACE INTO instances (task_id, id, split, question, expected, context_path, context_generator, "
        "context_sha256, context_bytes, metadata) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        [
            task_id,
            inst["id"],
            inst.get("split"),
            inst.get("question"),
            dumps(inst.get("expected")),
            ctx.get("path"),
            dumps(ctx.get("generator")),
            ctx.get("sha256"),
            ctx.get("bytes"),
            dumps(inst.get("metadata")),
        ],
    )


def _ensure_batch(con: duckdb.DuckDBPyConnection, batch: dict[str, Any], task_id: str | None) -> str:
    name = str(batch["name"])
    existing = con.execute("SELECT id FROM batches WHERE name = ?", [name]).fetchone()
    if existing is not None:
        return str(existing[0])
    bid = batch.get("id")
    if (
        isinstance(bid, str)
        and bid
        and con.execute("SELECT 1 FROM batches WHERE id = ?", [bid]).fetchone() is None
    ):
        con.execute(
            "INSERT INTO batches (id, name, task_id, params, created_at) VALUES (?, ?, ?, ?, ?)",
            [bid, name, task_id, dumps(batch.get("params")), _ts(batch.get("created_at"))],
        )
        return bid
    params = batch.get("params")
    return catalog_api.upsert_batch(
        con, name=name, task_id=task_id, params=params if isinstance(params, dict) else {}
    )


def _remap(trace: Trace, tasks: dict[str, str], batches: dict[str, str]) -> Trace:
    run = trace.run
    new_run = replace(
        run,
        task_id=tasks.get(run.task_id, run.task_id) if run.task_id else None,
        batch_id=batches.get(run.batch_id, run.batch_id) if run.batch_id else None,
    )
    kids = tuple(_remap(c, tasks, batches) for c in trace.children)
    return replace(trace, run=new_run, children=kids)


def save_records(con: duckdb.DuckDBPyConnection, items: Sequence[tuple[Trace | None, Catalog]]) -> int:
    """Store records: catalogue rows first (matched by name), then the runs (replaced whole).

    The caller owns the transaction. Returns the number of top-level runs.
    """
    task_ids: dict[str, str] = {}
    batch_ids: dict[str, str] = {}
    traces: list[Trace] = []

    def task_id_for(task: dict[str, Any]) -> str:
        key = str(task.get("id") or task["name"])
        if key not in task_ids:
            task_ids[key] = _ensure_task(con, task)
        return task_ids[key]

    for trace, cat in items:
        tid = task_id_for(cat.task) if cat.task else None
        for inst in cat.instances:
            if tid is not None:
                _put_instance(con, tid, inst)
        if cat.batch is not None:
            key = str(cat.batch.get("id") or cat.batch["name"])
            if key not in batch_ids:
                owner = cat.batch.get("task_id")
                batch_ids[key] = _ensure_batch(con, cat.batch, task_ids.get(owner, owner) if owner else None)
        if trace is None:
            continue
        trace = _remap(trace, task_ids, batch_ids)
        if cat.instance is not None and trace.run.task_id:
            _put_instance(con, trace.run.task_id, cat.instance)
        traces.append(trace)
    existing = existing_run_ids(con, [t.run.id for trace in traces for t in trace.walk()])
    if existing:
        delete_runs(con, existing)
    save_traces(con, traces)
    return len(traces)
