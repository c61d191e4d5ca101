"""Reads of one batch: its runs by slot (to resume it), its finished runs, its totals."""

from __future__ import annotations

from dataclasses import dataclass

import duckdb


@dataclass(frozen=True, slots=True)
class SlotRun:
    """A run recorded under a batch slot: what resuming the batch decides from."""

    run_id: str
    slot_key: str | None
    status: str
    owner: str | None


def batch_runs(con: duckdb.DuckDBPyConnection, batch_id: str) -> list[SlotRun]:
    """Every run of the batch with its slot, status and owner (any order)."""
    rows = con.execute(
        "SELECT id, slot_key, status, owner FROM runs WHERE batch_id = ?", [batch_id]
    ).fetchall()
    return [SlotRun(*row) for row in rows]


def finished_batch_runs(con: duckdb.DuckDBPyConnection, batch_id: str) -> list[tuple[str, str | None]]:
    """(run id, instance id) of the batch's runs that are no longer running, oldest first."""
    rows = con.execute(
        "SELECT id, instance_id FROM runs WHERE batch_id = ? AND status <> 'running' ORDER BY id", [batch_id]
    ).fetchall()
    return [(str(rid), inst) for rid, inst in rows]


@dataclass(frozen=True, slots=True)
class BatchSummary:
    """A batch's totals, as the demo reports them."""

    runs: int
    correct: int
    iterations: int
    sub_calls: int
    tokens: int
    step_labels: int  # the simulator's ground-truth labels stored for the batch's runs
    last_run_id: str | None


def batch_summary(con: duckdb.DuckDBPyConnection, batch_id: str) -> BatchSummary:
    row = con.execute(
        """
        SELECT count(*), count(*) FILTER (WHERE correct), sum(n_iterations), sum(n_sub_calls),
               sum(coalesce(tokens_in, 0) + coalesce(tokens_out, 0)),
               (SELECT count(*) FROM step_labels l JOIN runs r2 ON r2.id = l.run_id WHERE r2.batch_id = ?),
               max(id)
        FROM runs WHERE batch_id = ?
        """,
        [batch_id, batch_id],
    ).fetchone() or (0, 0, 0, 0, 0, 0, None)
    n, correct, iters, subs, tokens, labels, last = row
    return BatchSummary(
        int(n or 0),
        int(correct or 0),
        int(iters or 0),
        int(subs or 0),
        int(tokens or 0),
        int(labels or 0),
        last,
    )
