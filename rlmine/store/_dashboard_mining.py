"""Loaders of the Tactics and Flows pages: the store's mining reads, one connection per page.

A database without the mining tables (older schema) or without any mining yet gives an
empty ``minings`` frame: the pages then say how to mine.
"""

from __future__ import annotations

import json

import duckdb
import pandas as pd

from rlmine.store._mining import (
    directly_follows,
    list_minings,
    list_tactics,
    run_sequences,
    run_steps,
    step_vectors,
    tactic_members,
    top_patterns,
)

Frames = dict[str, pd.DataFrame]
MAP_POINTS = 3000  # distinct steps drawn on the 2-D map


def _minings(con: duckdb.DuckDBPyConnection) -> pd.DataFrame:
    try:
        return list_minings(con)
    except duckdb.CatalogException:  # a database from before the miner's migration
        return pd.DataFrame()


def tactic_steps(con: duckdb.DuckDBPyConnection, run_ids: list[str]) -> pd.DataFrame:
    """The latest mining's steps of each run (``run_steps`` plus ``run_id``); empty when none is mined."""
    frames = []
    for rid in run_ids:
        try:
            steps = run_steps(con, rid)
        except duckdb.CatalogException:  # a database from before the miner's migration
            steps = pd.DataFrame()
        if len(steps):
            frames.append(steps.assign(run_id=rid))
    if not frames:
        columns = ["iteration", "ordinal", "line_start", "line_end", "tactic_id", "tactic_label", "run_id"]
        return pd.DataFrame(columns=columns)
    return pd.concat(frames, ignore_index=True)


def _pick(minings: pd.DataFrame, mining_id: str | None) -> str | None:
    if minings.empty:
        return None
    if mining_id and mining_id in set(minings["id"]):
        return mining_id
    return str(minings["id"].iloc[0])


def _map(con: duckdb.DuckDBPyConnection, mining_id: str) -> pd.DataFrame:
    """Distinct steps projected to 2-D (PCA of their embeddings), with tactic and count."""
    points, vectors = step_vectors(con, mining_id, limit=MAP_POINTS)
    if len(points) < 3:
        return pd.DataFrame()
    from sklearn.decomposition import PCA

    xy = PCA(n_components=2, random_state=0).fit_transform(vectors)
    out = points.drop(columns=["hash"]).copy()
    out["x"], out["y"] = xy[:, 0], xy[:, 1]
    out["tactic_id"] = out["tactic_id"].fillna("rare")
    return out


def _applied_edits(con: duckdb.DuckDBPyConnection, minings: pd.DataFrame, mining_id: str) -> pd.DataFrame:
    """The tactic edits (merges, names) a mining applied, oldest first; empty before migration 6."""
    params = minings.loc[minings["id"] == mining_id, "params"]
    ids = json.loads(params.iloc[0] or "{}").get("edits", []) if len(params) else []
    if not ids:
        return pd.DataFrame()
    return con.execute(
        "SELECT id, kind, tactic_ids, name FROM tactic_edits WHERE list_contains(?, id) ORDER BY id", [ids]
    ).df()


def tactics_frames(con: duckdb.DuckDBPyConnection, mining_id: str | None, tactic_id: str | None) -> Frames:
    minings = _minings(con)
    chosen = _pick(minings, mining_id)
    if chosen is None:
        return {"minings": minings}
    tactics = list_tactics(con, chosen)
    frames = {
        "minings": minings,
        "tactics": tactics,
        "map": _map(con, chosen),
        "edits": _applied_edits(con, minings, chosen),
    }
    # Frequency per task: the size of each tactic id in the latest mining of every task.
    frames["per_task"] = con.execute(
        """
        WITH latest AS (SELECT task_id, max(id) AS id FROM mining_runs GROUP BY task_id)
        SELECT coalesce(k.name, 'all runs') AS task, t.id AS tactic_id, t.label, t.size
        FROM latest l JOIN tactics t ON t.mining_id = l.id LEFT JOIN tasks k ON k.id = l.task_id
        ORDER BY task, t.size DESC
        """
    ).df()
    pick = (
        tactic_id
        if tactic_id in set(tactics["id"])
        else (str(tactics["id"].iloc[0]) if len(tactics) else None)
    )
    if pick is not None:
        frames["members"] = tactic_members(con, chosen, pick, limit=20)
        frames["selected"] = tactics[tactics["id"] == pick].reset_index(drop=True)
    return frames


def flows_frames(con: duckdb.DuckDBPyConnection, mining_id: str | None) -> Frames:
    minings = _minings(con)
    chosen = _pick(minings, mining_id)
    if chosen is None:
        return {"minings": minings}
    return {
        "minings": minings,
        "tactics": list_tactics(con, chosen),
        "edges": directly_follows(con, chosen),
        "patterns": top_patterns(con, chosen, limit=30),
        "sequences": run_sequences(con, chosen),
    }
