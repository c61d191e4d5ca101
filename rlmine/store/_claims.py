"""Claiming batch slots, so that two recorders on one database never run a slot twice.

A recorder writes iterations through its spool (seconds late, by design), so the rows of a
run another recorder has just started are not in the database yet: checking them is not
enough. Before it starts a slot, a recorder therefore *claims* it: in one write transaction
it reads which of the candidate slots already have a run — finished, or ``running`` under
a live owner — and inserts a ``running`` row (its own owner, the run id it will use) for
each of the others. DuckDB lets one process write the file at a time, so two claims never
interleave: the second sees the first's rows. The run later replaces its claim row by id,
through the spool, as any run row does. Claims a recorder made but never started (it was
cancelled) are deleted by :func:`release_claims`; a recorder that died leaves ``running``
rows of a dead owner, which resume re-runs like any stale run.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import duckdb

from rlmine.store._owners import owner_alive
from rlmine.store._writes import delete_runs, save_runs
from rlmine.trace import TERMINAL_STATUSES, Run


def taken_slots(con: duckdb.DuckDBPyConnection, batch_id: str, slot_keys: Sequence[str]) -> set[str]:
    """The slot keys among ``slot_keys`` that have a finished run or a live claim."""
    if not slot_keys:
        return set()
    rows = con.execute(
        "SELECT slot_key, status, owner FROM runs WHERE batch_id = ? "
        "AND slot_key IN (SELECT unnest(?::VARCHAR[]))",
        [batch_id, list(slot_keys)],
    ).fetchall()
    return {
        key
        for key, status, owner in rows
        if status in TERMINAL_STATUSES or (status == "running" and owner_alive(owner))
    }


def claim_slots(con: duckdb.DuckDBPyConnection, batch_id: str, candidates: Mapping[str, Run]) -> list[str]:
    """Claim the free slots among ``candidates`` (slot key → the run to record there, status
    ``running``); returns the keys claimed. Call inside the caller's write transaction."""
    taken = taken_slots(con, batch_id, list(candidates))
    free = [key for key in candidates if key not in taken]
    stale = (
        [
            run_id
            for (run_id,) in con.execute(
                "SELECT id FROM runs WHERE batch_id = ? AND slot_key IN (SELECT unnest(?::VARCHAR[]))",
                [batch_id, free],
            ).fetchall()
        ]
        if free
        else []
    )
    delete_runs(con, stale)  # a dead owner's or a cancelled run of a slot being claimed again
    if free:
        save_runs(con, [candidates[key] for key in free])
    return free


def release_claims(con: duckdb.DuckDBPyConnection, run_ids: Sequence[str]) -> int:
    """Delete claim rows of runs that never started (only while still ``running``)."""
    if not run_ids:
        return 0
    ids = [
        run_id
        for (run_id,) in con.execute(
            "SELECT id FROM runs WHERE status = 'running' AND id IN (SELECT unnest(?::VARCHAR[]))",
            [list(run_ids)],
        ).fetchall()
    ]
    return delete_runs(con, ids)
