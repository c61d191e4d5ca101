"""Replacing imported runs: storing a source's runs again changes nothing but what the source changed.

Importers derive run ids from the source's content, so a re-imported run has the
id it had. Storing it deletes the existing run whole (a newer importer may yield
fewer rows), keeps aside what an earlier import added that the source does not
carry (the task, the expected answer, the score), inserts the new rows with a
plain ``INSERT`` (every key is new by then: the fast path of
:mod:`rlmine.store._writes`) and gives the kept scoring back.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import duckdb
import pyarrow as pa

from rlmine.store._rows import Row
from rlmine.store._writes import delete_runs, existing_run_ids, insert_tables, upsert_rows

_KEPT = "_rlmine_kept_scoring"


def _delete_existing(con: duckdb.DuckDBPyConnection, run_ids: list[str]) -> bool:
    """Delete the runs among ``run_ids`` that exist, keeping their scoring aside; any deleted?

    Deleting first matters when a re-import yields fewer rows (a newer importer); only
    runs that exist are deleted, so a first import pays no table scans.
    """
    existing = existing_run_ids(con, run_ids)
    if not existing:
        return False
    con.execute(
        f"CREATE OR REPLACE TEMP TABLE {_KEPT} AS "
        "SELECT id, task_id, instance_id, expected, score, correct, final_answer FROM runs "
        "WHERE id IN (SELECT unnest(?::VARCHAR[])) AND (task_id IS NOT NULL OR expected IS NOT NULL "
        "OR score IS NOT NULL OR correct IS NOT NULL)",
        [existing],
    )
    delete_runs(con, existing)
    return True


def _restore_scoring(con: duckdb.DuckDBPyConnection) -> None:
    """Give re-imported runs back what an earlier import added and the file does not carry.

    A log knows nothing of ``--task``, the expected answer or the score: re-importing it
    without ``--task`` must not throw them away. Only what the new rows leave empty is
    filled, and a score only while the answer it judged is unchanged.
    """
    same = "runs.score IS NULL AND runs.correct IS NULL AND runs.final_answer IS NOT DISTINCT FROM k.final_answer"
    con.execute(
        f"UPDATE runs SET task_id = coalesce(runs.task_id, k.task_id), "
        "instance_id = coalesce(runs.instance_id, k.instance_id), "
        "expected = coalesce(runs.expected, k.expected), "
        f"score = CASE WHEN {same} THEN k.score ELSE runs.score END, "
        f"correct = CASE WHEN {same} THEN k.correct ELSE runs.correct END "
        f"FROM {_KEPT} k WHERE runs.id = k.id"
    )
    con.execute(f"DROP TABLE {_KEPT}")


def replace_runs(con: duckdb.DuckDBPyConnection, rows: Mapping[str, Sequence[Row]]) -> None:
    """Store runs' rows, replacing whole any run a previous import stored under the same id.

    Once the old runs are gone every key is new (call ids and iteration keys
    derive from run ids), so a plain insert does, unless the same run comes
    twice (one log imported twice in one go): then the last copy wins. The
    scoring an earlier import gave a run survives.
    """
    ids = [r["id"] for r in rows.get("runs", ())]
    replaced = _delete_existing(con, ids)
    upsert_rows(con, rows, replace=len(set(ids)) != len(ids))
    if replaced:
        _restore_scoring(con)


def replace_run_tables(
    con: duckdb.DuckDBPyConnection, tables: Mapping[str, pa.Table], *, upsert: bool
) -> None:
    """Like :func:`replace_runs` for rows already in Arrow tables (from parsing workers); each run once.

    ``upsert``: replace conflicting rows instead of failing on them (the slower,
    forgiving retry of a write that failed).
    """
    runs = tables.get("runs")
    replaced = runs is not None and _delete_existing(con, runs.column("id").to_pylist())
    insert_tables(con, tables, replace=upsert)
    if replaced:
        _restore_scoring(con)


def limit_threads(con: duckdb.DuckDBPyConnection, threads: int) -> None:
    """Cap the threads DuckDB uses on this connection (parsing processes need the other cores)."""
    con.execute(f"SET threads = {max(1, int(threads))}")
