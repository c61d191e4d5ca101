"""Mining results: what the miner reads (code cells) and writes (steps, tactics, sequences).

The miner never touches SQL itself: it reads iterations through :func:`code_cells`, asks
for cached vectors with :func:`cached_embeddings`, and hands a whole mining to
:func:`save_mining`, which writes it in the caller's one transaction (so a failed or
interrupted mining leaves nothing half-written). Everything else here is a read used by
the CLI and the dashboard. Tables and the ``mined_steps`` view are in migration 2.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from contextlib import suppress
from typing import Any

import duckdb
import numpy as np
import pandas as pd
import pyarrow as pa

from rlmine.errors import NotFoundError

__all__ = [
    "MINING_TABLES",
    "cached_embeddings",
    "code_cells",
    "directly_follows",
    "get_tactic",
    "latest_mining",
    "list_minings",
    "list_tactics",
    "next_tactic_number",
    "previous_tactics",
    "prune_minings",
    "run_sequences",
    "run_steps",
    "save_embeddings",
    "save_mining",
    "step_vectors",
    "tactic_members",
    "task_id_for",
    "top_patterns",
]

MINING_TABLES = ("mining_runs", "steps", "tactics", "run_tactics", "patterns")


def task_id_for(con: duckdb.DuckDBPyConnection, task: str) -> str:
    """The id of the task named (or identified by) ``task``; NotFoundError listing the choices."""
    row = con.execute("SELECT id FROM tasks WHERE name = ? OR id = ? LIMIT 1", [task, task]).fetchone()
    if row:
        return str(row[0])
    # Imported runs may carry a task id with no catalogue row.
    row = con.execute("SELECT task_id FROM runs WHERE task_id = ? LIMIT 1", [task]).fetchone()
    if row:
        return str(row[0])
    names = [r[0] for r in con.execute("SELECT name FROM tasks ORDER BY name LIMIT 8").fetchall()]
    hint = f"--task one of: {', '.join(names)}" if names else "`rlmine tasks list` to see the tasks"
    raise NotFoundError(f"no task named {task!r}", hint)


def code_cells(con: duckdb.DuckDBPyConnection, *, task_id: str | None = None) -> pd.DataFrame:
    """Every iteration with code of the top-level runs (of one task), with each run's outcome.

    Columns: run_id, iteration, code, reasoning, output, error, task_id, status, correct,
    n_iterations, n_llm_calls, tokens. Ordered by run, then iteration.
    """
    where = "r.parent_run_id IS NULL AND i.code IS NOT NULL AND trim(i.code) <> ''"
    params: list[Any] = []
    if task_id is not None:
        where += " AND r.task_id = ?"
        params.append(task_id)
    return con.execute(
        f"""
        SELECT i.run_id, i.idx AS iteration, i.code, i.reasoning, i.stdout AS output, i.error,
               r.task_id, r.status, r.correct, r.n_iterations, r.n_llm_calls,
               coalesce(r.tokens_in, 0) + coalesce(r.tokens_out, 0) AS tokens
        FROM iterations i JOIN runs r ON r.id = i.run_id
        WHERE {where}
        ORDER BY i.run_id, i.idx
        """,
        params,
    ).df()


# -- embeddings cache ------------------------------------------------------------------------


def cached_embeddings(
    con: duckdb.DuckDBPyConnection, hashes: Sequence[str], model: str
) -> dict[str, np.ndarray]:
    """The cached vectors of those ``hashes`` made by ``model`` (missing ones are absent)."""
    if not hashes:
        return {}
    wanted = pa.table({"hash": pa.array(list(hashes), pa.string())})
    con.register("_rlmine_wanted", wanted)
    try:
        got = con.sql(
            "SELECT e.hash, e.vector FROM embeddings e JOIN _rlmine_wanted w ON w.hash = e.hash "
            "WHERE e.model = $model",
            params={"model": model},
        ).to_arrow_table()
    finally:
        with suppress(duckdb.Error):
            con.unregister("_rlmine_wanted")
    if got.num_rows == 0:
        return {}
    vectors = got.column("vector").combine_chunks()
    flat = np.asarray(vectors.flatten().to_numpy(zero_copy_only=False), dtype=np.float32)
    dim = len(flat) // got.num_rows
    matrix = flat.reshape(got.num_rows, dim)
    return dict(zip(got.column("hash").to_pylist(), matrix, strict=True))


def save_embeddings(
    con: duckdb.DuckDBPyConnection, model: str, hashes: Sequence[str], vectors: np.ndarray
) -> int:
    """Cache vectors (one row per hash); already cached ones are kept as they are."""
    if len(hashes) == 0:
        return 0
    matrix = np.ascontiguousarray(vectors, dtype=np.float32)
    fixed = pa.FixedSizeListArray.from_arrays(pa.array(matrix.reshape(-1)), matrix.shape[1])
    table = pa.table(
        {
            "hash": pa.array(list(hashes), pa.string()),
            "model": pa.array([model] * len(hashes), pa.string()),
            "vector": fixed.cast(pa.list_(pa.float32())),
        }
    )
    con.register("_rlmine_vectors", table)
    try:
        con.execute("INSERT OR IGNORE INTO embeddings SELECT hash, model, vector FROM _rlmine_vectors")
    finally:
        with suppress(duckdb.Error):
            con.unregister("_rlmine_vectors")
    return len(hashes)


# -- writing a mining ------------------------------------------------------------------------


def save_mining(con: duckdb.DuckDBPyConnection, tables: Mapping[str, pd.DataFrame]) -> dict[str, int]:
    """Insert one mining's rows (DataFrames keyed by table, columns named as the table's).

    The caller holds the transaction (:meth:`Store.writer`): all or nothing.
    """
    counts: dict[str, int] = {}
    for table in MINING_TABLES:
        df = tables.get(table)
        if df is None or df.empty:
            counts[table] = 0
            continue
        name = f"_rlmine_mining_{table}"
        cols = ", ".join(df.columns)
        con.register(name, df)
        try:
            con.execute(f"INSERT INTO {table} ({cols}) SELECT {cols} FROM {name}")
        finally:
            with suppress(duckdb.Error):
                con.unregister(name)
        counts[table] = len(df)
    return counts


def prune_minings(con: duckdb.DuckDBPyConnection, *, keep: int, task_id: str | None = None) -> list[str]:
    """Delete all but the ``keep`` newest minings of each scope; return the deleted ids, oldest first.

    A scope is one task, or all runs (minings made without ``--task``); with ``task_id`` only
    that task's scope is pruned. The newest mining of every scope always stays, so
    ``mined_steps`` and tactic-id matching read what they read before. Cached embeddings stay:
    they are shared by minings and make the next one cheap. The caller holds the transaction.
    """
    if keep < 1:
        raise ValueError("keep must be at least 1")
    where, params = ("WHERE task_id = ?", [task_id]) if task_id is not None else ("", [])
    ids = [
        str(r[0])
        for r in con.execute(
            f"""
            SELECT id FROM (
                SELECT id, row_number() OVER (PARTITION BY task_id ORDER BY id DESC) AS newer
                FROM mining_runs {where}
            ) WHERE newer > ? ORDER BY id
            """,
            [*params, keep],
        ).fetchall()
    ]
    if ids:
        for table in MINING_TABLES:
            column = "id" if table == "mining_runs" else "mining_id"
            con.execute(f"DELETE FROM {table} WHERE list_contains(?, {column})", [ids])
    return ids


def previous_tactics(con: duckdb.DuckDBPyConnection, task_id: str | None) -> pd.DataFrame:
    """Tactics (id, medoid_hash, size) of the latest earlier mining of the same task scope."""
    mining = latest_mining(con, task_id=task_id, exact_scope=True)
    if mining is None:
        return pd.DataFrame({"id": [], "medoid_hash": [], "size": []})
    return con.execute(
        "SELECT id, medoid_hash, size FROM tactics WHERE mining_id = ? ORDER BY id", [mining["id"]]
    ).df()


def next_tactic_number(con: duckdb.DuckDBPyConnection) -> int:
    """One more than the highest ``T<n>`` tactic id ever stored (ids are unique database-wide)."""
    row = con.execute(
        "SELECT max(TRY_CAST(substr(id, 2) AS INTEGER)) FROM tactics WHERE id LIKE 'T%'"
    ).fetchone()
    return int(row[0]) + 1 if row and row[0] is not None else 1


# -- reading ---------------------------------------------------------------------------------


def list_minings(con: duckdb.DuckDBPyConnection) -> pd.DataFrame:
    """Every mining run, newest first, with its task name."""
    return con.execute(
        """
        SELECT m.id, m.task_id, t.name AS task, m.model, m.n_runs, m.n_steps, m.n_distinct,
               m.n_tactics, m.n_outliers, m.n_unparsed, m.base_rate, m.consensus, m.timings,
               m.params, m.created_at
        FROM mining_runs m LEFT JOIN tasks t ON t.id = m.task_id
        ORDER BY m.id DESC
        """
    ).df()


def latest_mining(
    con: duckdb.DuckDBPyConnection, *, task_id: str | None = None, exact_scope: bool = False
) -> dict[str, Any] | None:
    """The newest mining of ``task_id`` (any scope when None and not ``exact_scope``)."""
    if task_id is not None:
        sql, params = "WHERE task_id = ?", [task_id]
    elif exact_scope:
        sql, params = "WHERE task_id IS NULL", []
    else:
        sql, params = "", []
    cur = con.execute(f"SELECT * FROM mining_runs {sql} ORDER BY id DESC LIMIT 1", params)
    row = cur.fetchone()
    if row is None:
        return None
    names = [d[0] for d in cur.description or []]
    return dict(zip(names, row, strict=True))


def list_tactics(con: duckdb.DuckDBPyConnection, mining_id: str) -> pd.DataFrame:
    """The tactics of one mining, largest first."""
    return con.execute(
        """
        SELECT id, label, keywords, size, n_runs, success_rate, lift, median_iterations,
               median_llm_calls, median_tokens, example, members, medoid_hash
        FROM tactics WHERE mining_id = ? ORDER BY size DESC, id
        """,
        [mining_id],
    ).df()


def get_tactic(con: duckdb.DuckDBPyConnection, tactic_id: str) -> dict[str, Any]:
    """The newest stored version of one tactic, with its mining's id and task."""
    cur = con.execute(
        """
        SELECT t.*, m.task_id, k.name AS task
        FROM tactics t JOIN mining_runs m ON m.id = t.mining_id LEFT JOIN tasks k ON k.id = m.task_id
        WHERE upper(t.id) = upper(?) ORDER BY t.mining_id DESC LIMIT 1
        """,
        [tactic_id],
    )
    row = cur.fetchone()
    if row is None:
        raise NotFoundError(f"no tactic {tactic_id!r}", "`rlmine tactics list` to see the tactic ids")
    names = [d[0] for d in cur.description or []]
    return dict(zip(names, row, strict=True))


def tactic_members(
    con: duckdb.DuckDBPyConnection, mining_id: str, tactic_id: str, *, limit: int = 50
) -> pd.DataFrame:
    """Steps of one tactic across runs (one per distinct normalized form first), with run outcome."""
    return con.execute(
        """
        SELECT s.run_id, s.iteration, s.line_start, s.line_end, s.code, s.normalized, r.correct
        FROM steps s JOIN runs r ON r.id = s.run_id
        WHERE s.mining_id = ? AND s.tactic_id = ?
        QUALIFY row_number() OVER (PARTITION BY s.hash ORDER BY s.run_id, s.iteration, s.ordinal) = 1
        ORDER BY s.run_id, s.iteration, s.ordinal
        LIMIT ?
        """,
        [mining_id, tactic_id, limit],
    ).df()


def run_sequences(con: duckdb.DuckDBPyConnection, mining_id: str) -> pd.DataFrame:
    """Each run's tactic sequence (repeats collapsed) with its outcome and cost."""
    return con.execute(
        """
        SELECT q.run_id, list(q.tactic_id ORDER BY q.position) AS tactics, any_value(r.correct) AS correct,
               any_value(r.n_iterations) AS n_iterations, any_value(r.n_llm_calls) AS n_llm_calls,
               any_value(coalesce(r.tokens_in, 0) + coalesce(r.tokens_out, 0)) AS tokens
        FROM run_tactics q JOIN runs r ON r.id = q.run_id
        WHERE q.mining_id = ?
        GROUP BY q.run_id ORDER BY q.run_id
        """,
        [mining_id],
    ).df()


def directly_follows(con: duckdb.DuckDBPyConnection, mining_id: str) -> pd.DataFrame:
    """Directly-follows edges between tactics (``START``/``END`` included): count and success rate."""
    return con.execute(
        """
        WITH seq AS (
            SELECT q.run_id, q.position, q.tactic_id, r.correct
            FROM run_tactics q JOIN runs r ON r.id = q.run_id WHERE q.mining_id = ?
        ), bounded AS (
            SELECT run_id, position, tactic_id, correct FROM seq
            UNION ALL SELECT run_id, -1, 'START', any_value(correct) FROM seq GROUP BY run_id
            UNION ALL SELECT run_id, 1000000, 'END', any_value(correct) FROM seq GROUP BY run_id
        ), pairs AS (
            SELECT run_id, correct, tactic_id AS source,
                   lead(tactic_id) OVER (PARTITION BY run_id ORDER BY position) AS target
            FROM bounded
        )
        SELECT source, target, count(*) AS count, count(DISTINCT run_id) AS runs,
               avg(CASE WHEN correct THEN 1.0 WHEN NOT correct THEN 0.0 END) AS success_rate
        FROM pairs WHERE target IS NOT NULL
        GROUP BY source, target ORDER BY count DESC, source, target
        """,
        [mining_id],
    ).df()


def top_patterns(con: duckdb.DuckDBPyConnection, mining_id: str, *, limit: int = 20) -> pd.DataFrame:
    """Frequent contiguous tactic sequences of one mining, most supported (then longest) first."""
    return con.execute(
        """
        SELECT tactics, length, support, success_rate, lift, median_iterations, median_llm_calls,
               median_tokens
        FROM patterns WHERE mining_id = ?
        ORDER BY support DESC, length DESC, tactics LIMIT ?
        """,
        [mining_id, limit],
    ).df()


def run_steps(con: duckdb.DuckDBPyConnection, run_id: str) -> pd.DataFrame:
    """The latest mining's steps of one run with their tactic (NULL: rare), in code order.

    What the run viewer needs to tag each step and Compare needs to align two runs.
    """
    return con.execute(
        """
        SELECT iteration, ordinal, line_start, line_end, tactic_id, tactic_label
        FROM mined_steps WHERE run_id = ? ORDER BY iteration, ordinal
        """,
        [run_id],
    ).df()


def step_vectors(
    con: duckdb.DuckDBPyConnection, mining_id: str, *, limit: int = 5000
) -> tuple[pd.DataFrame, np.ndarray]:
    """Distinct steps of a mining (hash, tactic, count, one example) and their vectors, for a map."""
    model_row = con.execute("SELECT model FROM mining_runs WHERE id = ?", [mining_id]).fetchone()
    if model_row is None:
        raise NotFoundError(f"no mining {mining_id!r}", "`rlmine mine` to make one")
    df = con.execute(
        """
        SELECT hash, any_value(tactic_id) AS tactic_id, count(*) AS n, any_value(normalized) AS normalized
        FROM steps WHERE mining_id = ? GROUP BY hash ORDER BY n DESC, hash LIMIT ?
        """,
        [mining_id, limit],
    ).df()
    vectors = cached_embeddings(con, df["hash"].tolist(), str(model_row[0]))
    keep = df[df["hash"].isin(vectors)].reset_index(drop=True)
    if keep.empty:
        return keep, np.zeros((0, 0), dtype=np.float32)
    return keep, np.stack([vectors[h] for h in keep["hash"]])
