"""Tactic edits: a user's merges and names, kept as inputs of every later mining of a scope.

A scope is what one mining covers: a task (``task_id``), or all runs (``task_id`` None). The
miner reads a scope's edits through :func:`tactic_edits` and applies them in the order they
were made; the CLI writes them with :func:`add_tactic_edit`, takes one back with
:func:`delete_tactic_edit`, and :func:`rename_tactic` relabels the latest mining at once.
Table: ``tactic_edits`` (migration 6).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import duckdb
import pandas as pd

from rlmine.errors import NotFoundError
from rlmine.ids import new_id

__all__ = ["EDIT_KINDS", "add_tactic_edit", "delete_tactic_edit", "rename_tactic", "tactic_edits"]

EDIT_KINDS = ("merge", "rename")


def add_tactic_edit(
    con: duckdb.DuckDBPyConnection,
    *,
    task_id: str | None,
    kind: str,
    tactic_ids: Sequence[str],
    medoid_hashes: Sequence[str] = (),
    name: str | None = None,
) -> str:
    """Record one edit of the scope ``task_id``; return its id (time-sortable: edits apply in order).

    ``merge``: ``tactic_ids`` is the tactic kept first, then those joined into it, and
    ``medoid_hashes`` their medoid steps in the same order. ``rename``: one tactic and ``name``.
    """
    if kind not in EDIT_KINDS:
        raise ValueError(f"unknown edit kind {kind!r}")
    if kind == "merge" and (len(tactic_ids) < 2 or len(medoid_hashes) != len(tactic_ids)):
        raise ValueError("a merge needs two or more tactics, each with its medoid hash")
    if kind == "rename" and (len(tactic_ids) != 1 or not name):
        raise ValueError("a rename needs one tactic and a name")
    edit_id = "E" + new_id()
    con.execute(
        "INSERT INTO tactic_edits VALUES (?, ?, ?, ?, ?, ?, now()::TIMESTAMP)",
        [edit_id, task_id, kind, list(tactic_ids), list(medoid_hashes) or None, name],
    )
    return edit_id


def tactic_edits(
    con: duckdb.DuckDBPyConnection, task_id: str | None, *, every_scope: bool = False
) -> pd.DataFrame:
    """The edits of one scope (all scopes with ``every_scope``), oldest first, with task names."""
    where, params = (
        ("", [])
        if every_scope
        else (("WHERE e.task_id = ?", [task_id]) if task_id is not None else ("WHERE e.task_id IS NULL", []))
    )
    return con.execute(
        f"""
        SELECT e.id, e.task_id, t.name AS task, e.kind, e.tactic_ids, e.medoid_hashes, e.name,
               e.created_at
        FROM tactic_edits e LEFT JOIN tasks t ON t.id = e.task_id
        {where} ORDER BY e.id
        """,
        params,
    ).df()


def delete_tactic_edit(con: duckdb.DuckDBPyConnection, edit_id: str) -> dict[str, Any]:
    """Delete one edit and return it as it was; NotFoundError when there is none."""
    cur = con.execute("SELECT * FROM tactic_edits WHERE upper(id) = upper(?)", [edit_id])
    row = cur.fetchone()
    if row is None:
        raise NotFoundError(f"no tactic edit {edit_id!r}", "`rlmine tactics edits` to see the edit ids")
    names = [d[0] for d in cur.description or []]
    edit = dict(zip(names, row, strict=True))
    con.execute("DELETE FROM tactic_edits WHERE id = ?", [edit["id"]])
    return edit


def rename_tactic(con: duckdb.DuckDBPyConnection, mining_id: str, tactic_id: str, name: str) -> None:
    """Set one tactic's name in a stored mining (the edit itself keeps it for later minings)."""
    con.execute("UPDATE tactics SET label = ? WHERE mining_id = ? AND id = ?", [name, mining_id, tactic_id])
