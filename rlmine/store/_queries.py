"""Read functions over an open connection: SQL in DuckDB, results as DataFrames or traces.

Every function takes a connection (from :meth:`Store.reader`) so a caller can
run several queries under one short-held connection.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import duckdb
import pandas as pd

from rlmine.errors import NotFoundError
from rlmine.store._owners import owner_alive
from rlmine.store._rows import (
    block_from_row,
    call_from_row,
    iteration_from_row,
    label_from_row,
    run_from_row,
)
from rlmine.trace import RUN_STATUSES, CodeBlock, Trace

TRACE_TABLES = (
    "tasks",
    "instances",
    "batches",
    "runs",
    "iterations",
    "code_blocks",
    "llm_calls",
    "step_labels",
)
STATUS_FILTERS = (*RUN_STATUSES, "stale")

RUN_LIST_COLUMNS = (
    "id",
    "task_id",
    "instance_id",
    "engine",
    "root_model",
    "sub_model",
    "status",
    "correct",
    "score",
    "n_iterations",
    "n_llm_calls",
    "tokens_in",
    "tokens_out",
    "cost",
    "wall_s",
    "started_at",
    "batch_id",
    "owner",
)


def table_counts(con: duckdb.DuckDBPyConnection) -> dict[str, int]:
    present = {r[0] for r in con.execute("SELECT table_name FROM information_schema.tables").fetchall()}
    out: dict[str, int] = {}
    for table in TRACE_TABLES:
        if table in present:
            row = con.execute(f"SELECT count(*) FROM {table}").fetchone()
            out[table] = int(row[0]) if row else 0
    return out


def _records(con: duckdb.DuckDBPyConnection, sql: str, params: Sequence[Any] = ()) -> list[dict[str, Any]]:
    cur = con.execute(sql, list(params))
    names = [d[0] for d in cur.description or []]
    return [dict(zip(names, row, strict=True)) for row in cur.fetchall()]


def list_runs(
    con: duckdb.DuckDBPyConnection,
    *,
    task: str | None = None,
    status: str | None = None,
    engine: str | None = None,
    batch: str | None = None,
    limit: int | None = 200,
) -> pd.DataFrame:
    """Runs, newest first. ``status="stale"`` means running with a dead owner."""
    where, params = _run_filters(con, task=task, status=status, engine=engine, batch=batch)
    cols = ", ".join(f"r.{c}" for c in RUN_LIST_COLUMNS)
    # Newest-first and LIMIT inside, the task-name join outside: DuckDB then takes
    # the top N from the runs table alone (2.5x faster on 100,000 runs).
    top = f" LIMIT {int(limit)}" if limit is not None and status != "stale" else ""
    sql = (
        f"SELECT {cols}, t.name AS task FROM "
        f"(SELECT * FROM runs r WHERE {' AND '.join(where)} ORDER BY r.id DESC{top}) r "
        "LEFT JOIN tasks t ON t.id = r.task_id ORDER BY r.id DESC"
    )
    df = con.execute(sql, params).df()
    if status == "stale":
        owners = [o if isinstance(o, str) else None for o in df["owner"]]  # NULL arrives as NaN
        dead = _dead_owners(owners)
        # An explicit boolean Series: a plain empty list would select zero *columns*.
        df = df[pd.Series([o in dead for o in owners], index=df.index, dtype=bool)]
        if limit is not None:
            df = df.head(limit)
    return df.reset_index(drop=True)


def _run_filters(
    con: duckdb.DuckDBPyConnection,
    *,
    task: str | None,
    status: str | None,
    engine: str | None,
    batch: str | None,
) -> tuple[list[str], list[Any]]:
    where: list[str] = ["r.parent_run_id IS NULL"]
    params: list[Any] = []
    # Names are resolved to ids first (tiny tables): the filter on runs is then a
    # plain equality, twice as fast as matching names through a join.
    if task:
        where.append("r.task_id = ?")
        params.append(_id_for_name(con, "tasks", task))
    if status and status != "stale":
        where.append("r.status = ?")
        params.append(status)
    elif status == "stale":
        where.append("r.status = 'running'")
    if engine:
        where.append("r.engine = ?")
        params.append(engine)
    if batch:
        where.append("r.batch_id = ?")
        params.append(_id_for_name(con, "batches", batch))
    return where, params


def count_runs(
    con: duckdb.DuckDBPyConnection,
    *,
    task: str | None = None,
    status: str | None = None,
    engine: str | None = None,
    batch: str | None = None,
) -> int:
    """How many top-level runs :func:`list_runs` would list without a limit."""
    if status == "stale":
        return len(list_runs(con, task=task, status=status, engine=engine, batch=batch, limit=None))
    where, params = _run_filters(con, task=task, status=status, engine=engine, batch=batch)
    row = con.execute(f"SELECT count(*) FROM runs r WHERE {' AND '.join(where)}", params).fetchone()
    return int(row[0]) if row else 0


def stale_flags(owners: Sequence[object], statuses: Sequence[object]) -> list[bool]:
    """For each run, whether it is stale: ``running`` while its recorder is gone."""
    running = [
        o if isinstance(o, str) else None for o, s in zip(owners, statuses, strict=True) if s == "running"
    ]
    dead = _dead_owners(running)
    return [
        s == "running" and (o if isinstance(o, str) else None) in dead
        for o, s in zip(owners, statuses, strict=True)
    ]


def _id_for_name(con: duckdb.DuckDBPyConnection, table: str, name_or_id: str) -> str:
    """The id of the task or batch called ``name_or_id``, else the value itself (an id)."""
    row = con.execute(f"SELECT id FROM {table} WHERE name = ? LIMIT 1", [name_or_id]).fetchone()
    return str(row[0]) if row else name_or_id


def _dead_owners(owners: Iterable[str | None]) -> set[str | None]:
    """The dead ones among ``owners``, each distinct owner checked once.

    A batch's runs share one owner: a handful of /proc lookups, not one per run.
    """
    return {o for o in set(owners) if not owner_alive(o)}


def stale_run_ids(con: duckdb.DuckDBPyConnection, batch_id: str | None = None) -> list[str]:
    sql = "SELECT id, owner FROM runs WHERE status = 'running'"
    params: list[Any] = []
    if batch_id:
        sql += " AND batch_id = ?"
        params.append(batch_id)
    rows = con.execute(sql, params).fetchall()
    dead = _dead_owners(owner for _, owner in rows)
    return [rid for rid, owner in rows if owner in dead]


def resolve_run_id(con: duckdb.DuckDBPyConnection, run_id: str) -> str:
    """Accept a full id or a unique prefix (like git)."""
    rows = con.execute(
        "SELECT id FROM runs WHERE id = ? OR starts_with(id, ?) ORDER BY id LIMIT 3", [run_id, run_id]
    ).fetchall()
    exact = [r[0] for r in rows if r[0] == run_id]
    if exact:
        return str(exact[0])
    if len(rows) == 1:
        return str(rows[0][0])
    if not rows:
        raise NotFoundError(f"no run with id {run_id!r}", "`rlmine runs list` to see run ids")
    raise NotFoundError(f"run id prefix {run_id!r} is ambiguous", "a longer prefix")


def get_trace(con: duckdb.DuckDBPyConnection, run_id: str, *, children: bool = True) -> Trace:
    """One run with its iterations, calls, labels (and nested child runs)."""
    rid = resolve_run_id(con, run_id)
    run_rows = _records(con, "SELECT * FROM runs WHERE id = ?", [rid])
    run = run_from_row(run_rows[0])
    its = _records(con, "SELECT * FROM iterations WHERE run_id = ? ORDER BY idx", [rid])
    calls = _records(
        con, "SELECT * FROM llm_calls WHERE run_id = ? ORDER BY iteration NULLS FIRST, started_at, id", [rid]
    )
    labels = _records(con, "SELECT * FROM step_labels WHERE run_id = ? ORDER BY iteration, line_start", [rid])
    blocks: dict[int, list[CodeBlock]] = {}
    for row in _records(con, "SELECT * FROM code_blocks WHERE run_id = ? ORDER BY iteration, idx", [rid]):
        blocks.setdefault(int(row["iteration"]), []).append(block_from_row(row))
    kids: tuple[Trace, ...] = ()
    if children:
        child_ids = [
            r[0]
            for r in con.execute("SELECT id FROM runs WHERE parent_run_id = ? ORDER BY id", [rid]).fetchall()
        ]
        kids = tuple(get_trace(con, cid) for cid in child_ids)
    return Trace(
        run=run,
        iterations=tuple(iteration_from_row(r, tuple(blocks.get(int(r["idx"]), ()))) for r in its),
        calls=tuple(call_from_row(r) for r in calls),
        labels=tuple(label_from_row(r) for r in labels),
        children=kids,
    )


def iter_run_ids(con: duckdb.DuckDBPyConnection, *, top_level_only: bool = True) -> list[str]:
    sql = "SELECT id FROM runs" + (" WHERE parent_run_id IS NULL" if top_level_only else "") + " ORDER BY id"
    return [r[0] for r in con.execute(sql).fetchall()]


def success_by_task(con: duckdb.DuckDBPyConnection) -> pd.DataFrame:
    """Per task and root model: runs, finished runs, correct runs, success rate."""
    return con.execute(
        """
        SELECT coalesce(t.name, r.task_id, '(no task)') AS task, r.root_model,
               count(*) AS runs,
               count(*) FILTER (WHERE r.status IN ('submitted', 'budget_exhausted')) AS finished,
               count(*) FILTER (WHERE r.correct) AS correct,
               avg(CASE WHEN r.correct IS NULL THEN NULL WHEN r.correct THEN 1.0 ELSE 0.0 END) AS success_rate
        FROM runs r LEFT JOIN tasks t ON t.id = r.task_id
        WHERE r.parent_run_id IS NULL
        GROUP BY ALL ORDER BY task, r.root_model
        """
    ).df()
