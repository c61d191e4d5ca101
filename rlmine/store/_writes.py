"""Bulk, idempotent writes of trace rows (the only place that inserts traces).

Rows go in as Arrow tables: DuckDB ingests Arrow at ~10^6 rows/s versus
~1,700 rows/s for ``executemany``. Writes are upserts keyed by each table's
primary key, so replaying a spool after a crash, or importing a file twice,
changes nothing. Within one call the last row for a key wins.

A caller that knows its keys are new and unique (an importer that has just
deleted the runs it re-imports) passes ``replace=False``: a plain ``INSERT``
costs about half of ``INSERT OR REPLACE``, and the Python dedupe is skipped.
Such a caller may also hand over Arrow tables built elsewhere
(:func:`insert_tables`, e.g. by parsing worker processes).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from contextlib import suppress
from typing import Any

import duckdb
import pyarrow as pa

from rlmine.store._prompt_texts import delete_calls, insert_calls
from rlmine.store._rows import Row, run_row, to_arrow, trace_rows
from rlmine.store._schema import SCHEMAS
from rlmine.trace import Run, Trace

KEYS: dict[str, tuple[str, ...]] = {
    "runs": ("id",),
    "iterations": ("run_id", "idx"),
    "llm_calls": ("id",),
    "step_labels": ("run_id", "iteration", "line_start"),
    "code_blocks": ("run_id", "iteration", "idx"),
}
# Parents before children so a reader never sees an iteration without its run.
TABLE_ORDER = ("runs", "iterations", "code_blocks", "llm_calls", "step_labels")


def _dedupe(table: str, rows: Sequence[Row]) -> list[Row]:
    key = KEYS[table]
    latest: dict[tuple[Any, ...], Row] = {}
    for row in rows:
        latest[tuple(row[k] for k in key)] = row
    return list(latest.values())


def _insert(con: duckdb.DuckDBPyConnection, table: str, arrow: pa.Table, replace: bool) -> None:
    name = f"_rlmine_in_{table}"
    cols = ", ".join(SCHEMAS[table].names)
    verb = "INSERT OR REPLACE" if replace else "INSERT"
    con.register(name, arrow)
    try:
        if table == "llm_calls":  # a view: the rows go to its base table, long prompts once
            insert_calls(con, name, replace=replace)
        else:
            con.execute(f"{verb} INTO {table} ({cols}) SELECT {cols} FROM {name}")
    except duckdb.Error:
        # The transaction is aborted: unregistering would fail too and hide the real error
        # (the view goes with the connection).
        with suppress(duckdb.Error):
            con.unregister(name)
        raise
    con.unregister(name)


def upsert_rows(
    con: duckdb.DuckDBPyConnection, rows: Mapping[str, Sequence[Row]], *, replace: bool = True
) -> dict[str, int]:
    """Upsert rows of several tables. The caller owns the transaction.

    ``replace=False``: every key is new and appears once (else DuckDB raises a
    constraint error and the caller's transaction rolls back).
    """
    counts: dict[str, int] = {}
    for table in TABLE_ORDER:
        batch = rows.get(table)
        if not batch:
            continue
        unique = _dedupe(table, batch) if replace else list(batch)
        _insert(con, table, to_arrow(table, unique), replace)
        counts[table] = len(unique)
    return counts


def insert_tables(
    con: duckdb.DuckDBPyConnection, tables: Mapping[str, pa.Table], *, replace: bool = False
) -> dict[str, int]:
    """Insert Arrow tables (columns as in :data:`~rlmine.store._rows.SCHEMAS`), one row per key.

    Unlike :func:`upsert_rows` nothing is deduplicated: with ``replace=True``
    existing rows with the same key are replaced, but a key twice in ``tables``
    is still an error.
    """
    counts: dict[str, int] = {}
    for table in TABLE_ORDER:
        arrow = tables.get(table)
        if arrow is None or arrow.num_rows == 0:
            continue
        _insert(con, table, arrow, replace)
        counts[table] = arrow.num_rows
    return counts


def merge_rows(parts: Iterable[Mapping[str, Sequence[Row]]]) -> dict[str, list[Row]]:
    out: dict[str, list[Row]] = {t: [] for t in TABLE_ORDER}
    for part in parts:
        for table, rows in part.items():
            out[table].extend(rows)
    return out


def save_traces(con: duckdb.DuckDBPyConnection, traces: Iterable[Trace]) -> dict[str, int]:
    """Persist whole traces (with nested children) in one bulk upsert."""
    return upsert_rows(con, merge_rows(trace_rows(t) for t in traces))


def save_runs(con: duckdb.DuckDBPyConnection, runs: Iterable[Run]) -> int:
    """Upsert runs' own rows (their iterations and calls untouched): e.g. a new score."""
    return upsert_rows(con, {"runs": [run_row(r) for r in runs]}).get("runs", 0)


def existing_run_ids(con: duckdb.DuckDBPyConnection, ids: Sequence[str]) -> list[str]:
    """Which of ``ids`` name runs already in the database (one indexed join, no scan of the step tables)."""
    if not ids:
        return []
    return [
        r[0]
        for r in con.execute(
            "SELECT r.id FROM runs r JOIN (SELECT unnest(?::VARCHAR[]) AS id) q ON q.id = r.id", [list(ids)]
        ).fetchall()
    ]


def delete_runs(con: duckdb.DuckDBPyConnection, run_ids: Sequence[str]) -> int:
    """Delete runs and everything that hangs off them (used to retry stale runs)."""
    if not run_ids:
        return 0
    ids = list(run_ids)
    delete_calls(con, ids)
    for table in ("step_labels", "code_blocks", "iterations"):
        con.execute(f"DELETE FROM {table} WHERE run_id IN (SELECT unnest(?::VARCHAR[]))", [ids])
    con.execute("DELETE FROM runs WHERE id IN (SELECT unnest(?::VARCHAR[]))", [ids])
    return len(ids)
