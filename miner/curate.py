"""Tactic edits from Python and the CLI: merge tactics, name one, take an edit back (decision 0022).

An edit is stored for its mining scope (a task, or all runs) and applies to every later mining
of that scope (``miner.edits``). A merge, or taking an edit back, mines the scope again at once
with the options and embedder of its latest mining (the embeddings are cached: seconds), so
the sequences, success lift and consensus plan follow the edit. A rename changes the latest
mining's name in place. A model can propose the merges (``suggest_merges``, decision 0023);
they are applied only when passed to ``merge_groups``. Python API::

    import miner.curate as curate
    edit_id, result = curate.merge_tactics("traces/rlmine.duckdb", ["T3", "T7"])  # T7 joins T3
    curate.rename_tactic("traces/rlmine.duckdb", "T3", "peek at the data")
    curate.undo_edit("traces/rlmine.duckdb", edit_id)                          # T7 comes back
    groups = curate.suggest_merges("traces/rlmine.duckdb", ask, task="celebrities")  # ask: str -> str
    edit_ids, result = curate.merge_groups("traces/rlmine.duckdb", groups)
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from miner.embed import embedder_for_model
from miner.pipeline import MineOptions, Progress, mine
from miner.result import MiningResult
from miner.suggest import MAX_TACTICS, merge_prompt, parse_groups
from rlmine.errors import NotFoundError, UserError
from rlmine.store import (
    Connection,
    Store,
    add_tactic_edit,
    delete_tactic_edit,
    get_tactic,
    latest_mining,
    list_tactics,
    task_id_for,
)
from rlmine.store import (
    rename_tactic as store_rename,
)

__all__ = ["merge_groups", "merge_tactics", "remine", "rename_tactic", "suggest_merges", "undo_edit"]

MAX_NAME = 80


def _open(db: Store | str | Path) -> Store:
    return db if isinstance(db, Store) else Store.open(db)


def _current(con: Connection, tactic_ids: Sequence[str]) -> list[dict[str, Any]]:
    """The tactics named, all from the latest mining of one scope (else a one-line error)."""
    rows = [get_tactic(con, t) for t in tactic_ids]
    for row in rows:
        latest = latest_mining(con, task_id=row["task_id"], exact_scope=True)
        if latest is None or latest["id"] != row["mining_id"]:
            scope = f" --task {row['task']}" if row["task"] else ""
            raise UserError(
                f"{row['id']} is not a tactic of the latest mining of its scope (merged or mined away)",
                f"the current ids from `rlmine tactics list{scope}`",
            )
    for row in rows[1:]:
        if row["mining_id"] != rows[0]["mining_id"]:
            raise UserError(
                f"{rows[0]['id']} and {row['id']} are tactics of different minings",
                "ids from one `rlmine tactics list` (one task, or all runs)",
            )
    return rows


def remine(
    db: Store | str | Path,
    task_id: str | None,
    *,
    id_hints: Sequence[tuple[str, str]] = (),
    progress: Progress | None = None,
) -> MiningResult:
    """Mine one scope again with the options and embedder of its latest mining."""
    store = _open(db)
    with store.reader() as con:
        latest = latest_mining(con, task_id=task_id, exact_scope=True)
    if latest is None:
        raise NotFoundError("this scope has no mining yet", "`rlmine mine` first")
    options = MineOptions.from_params(json.loads(latest["params"] or "{}"))
    embedder = embedder_for_model(str(latest["model"]))
    return mine(store, task=task_id, embedder=embedder, options=options, progress=progress, id_hints=id_hints)


def merge_tactics(
    db: Store | str | Path, tactic_ids: Sequence[str], *, progress: Progress | None = None
) -> tuple[str, MiningResult]:
    """Join tactics into the first one, for this and every later mining; return (edit id, new mining)."""
    (edit_id,), result = merge_groups(db, [tactic_ids], progress=progress)
    return edit_id, result


def merge_groups(
    db: Store | str | Path, groups: Sequence[Sequence[str]], *, progress: Progress | None = None
) -> tuple[list[str], MiningResult]:
    """One merge edit per group (each joins the first id), then one mining; return (edit ids, mining).

    All groups must hold tactics of the latest mining of one scope. Nothing is kept when the
    mining fails.
    """
    wanted = [list(dict.fromkeys(t.strip().upper() for t in ids if t.strip())) for ids in groups]
    if not wanted or any(len(ids) < 2 for ids in wanted):
        raise UserError("a merge needs two or more different tactic ids", "`rlmine tactics merge T3 T7`")
    store = _open(db)
    with store.reader() as con:
        rows = _current(con, [t for ids in wanted for t in ids])
        latest = latest_mining(con, task_id=rows[0]["task_id"], exact_scope=True)
    assert latest is not None  # _current checked it
    embedder_for_model(str(latest["model"]))  # fails before anything is written
    scope = rows[0]["task_id"]
    row_of = {str(r["id"]): r for r in rows}
    with store.writer() as con:
        edit_ids = [
            add_tactic_edit(
                con,
                task_id=scope,
                kind="merge",
                tactic_ids=ids,
                medoid_hashes=[str(row_of[t]["medoid_hash"]) for t in ids],
            )
            for ids in wanted
        ]
    try:
        result = remine(store, scope, progress=progress)
    except BaseException:
        with store.writer() as con:  # edits no mining applied are taken back (nothing half-done)
            for edit_id in edit_ids:
                delete_tactic_edit(con, edit_id)
        raise
    return edit_ids, result


def suggest_merges(
    db: Store | str | Path, ask: Callable[[str], str], *, task: str | None = None
) -> list[list[str]]:
    """Groups of tactics that ``ask`` (a prompt -> reply model) says serve one purpose.

    Reads the latest mining of the scope (``task`` by name, or all runs); writes nothing.
    Each group lists the largest tactic first: ``merge_groups`` joins the others into it.
    """
    store = _open(db)
    with store.reader() as con:
        task_id = task_id_for(con, task) if task else None
        latest = latest_mining(con, task_id=task_id, exact_scope=True)
        if latest is None:
            where = f" --task {task}" if task else ""
            raise NotFoundError("this scope has no mining yet", f"`rlmine mine{where}` first")
        shown = list_tactics(con, str(latest["id"])).head(MAX_TACTICS)
    if len(shown) < 2:
        return []
    reply = ask(merge_prompt([{str(k): v for k, v in row.items()} for row in shown.to_dict("records")]))
    try:
        return parse_groups(reply, dict(zip(shown["id"], shown["size"].astype(int), strict=True)))
    except ValueError:
        head = " ".join(reply.split())[:60]
        raise UserError(
            f"the model's reply is not a JSON list of tactic-id groups (it began {head!r})",
            "a model that follows instructions, or `rlmine tactics merge` by hand",
        ) from None


def rename_tactic(db: Store | str | Path, tactic_id: str, name: str) -> str:
    """Name one tactic, now and in every later mining of its scope; return the edit id."""
    clean = " ".join(name.split())
    if not clean or len(clean) > MAX_NAME:
        raise UserError(
            f"a tactic name is 1 to {MAX_NAME} characters on one line (got {len(clean)})",
            '`rlmine tactics rename T3 "peek at the data"`',
        )
    store = _open(db)
    with store.reader() as con:
        (row,) = _current(con, [tactic_id.strip().upper()])
    with store.writer() as con:
        edit_id = add_tactic_edit(
            con, task_id=row["task_id"], kind="rename", tactic_ids=[row["id"]], name=clean
        )
        store_rename(con, str(row["mining_id"]), str(row["id"]), clean)
    return edit_id


def undo_edit(
    db: Store | str | Path, edit_id: str, *, progress: Progress | None = None
) -> tuple[dict[str, Any], MiningResult | None]:
    """Take one edit back and mine its scope again (tactics a merge joined get their ids back).

    Returns the edit as it was and the new mining (None when the scope has no mining).
    """
    store = _open(db)
    with store.writer() as con:
        edit = delete_tactic_edit(con, edit_id)
        latest = latest_mining(con, task_id=edit["task_id"], exact_scope=True)
        if latest is not None:
            embedder_for_model(str(latest["model"]))  # raising here keeps the edit (rollback)
    if latest is None:
        return edit, None
    hints: list[tuple[str, str]] = []
    if edit["kind"] == "merge":
        hints = list(zip(edit["tactic_ids"], edit["medoid_hashes"] or [], strict=False))
    return edit, remine(store, edit["task_id"], id_hints=hints, progress=progress)
