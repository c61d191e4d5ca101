"""``rlmine tactics merge/rename/edits/unedit``: a user's corrections to the mined tactics.

Each edit is kept for its mining scope and applies to every later ``rlmine mine`` of it
(decision 0022); ``merge`` and ``unedit`` mine the scope again at once (embeddings cached).
Importing this module hangs the commands on ``rlmine tactics`` (made by rlmine.cli.mine).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from rlmine.cli.mine import tactics_app
from rlmine.cli.options import DbOption, JsonOption, open_store
from rlmine.cli.output import console, df_records, print_json

if TYPE_CHECKING:
    from miner.result import MiningResult


def _summary(result: MiningResult, tactic_id: str | None) -> dict[str, Any]:
    kept = next((t for t in result.tactics if t.id == tactic_id), None)
    return {
        "mining_id": result.mining_id,
        "n_tactics": len(result.tactics),
        "tactic": None
        if kept is None
        else {"id": kept.id, "label": kept.label, "size": kept.size, "n_runs": kept.n_runs},
        "consensus": result.consensus,
        "notes": result.notes,
    }


def _print_mining(result: MiningResult, tactic_id: str | None) -> None:
    out = console()
    out.print(f"mined again: mining {result.mining_id}, {len(result.tactics)} tactics")
    kept = next((t for t in result.tactics if t.id == tactic_id), None)
    if kept is not None:
        out.print(f"{kept.id} {kept.label}: {kept.size:,} steps in {kept.n_runs} runs")
    for note in result.notes:
        out.print(f"[yellow]note:[/] {note}")


@tactics_app.command("merge")
def merge_cmd(
    tactic_ids: list[str] = typer.Argument(
        ..., help="Tactic ids of one mining, the one to keep first (e.g. T3 T7: T7 joins T3)."
    ),
    db: Path | None = DbOption,
    as_json: bool = JsonOption,
) -> None:
    """Join tactics the miner split (one intent, several code shapes), now and in later minings."""
    from miner.curate import merge_tactics

    edit_id, result = merge_tactics(open_store(db), tactic_ids)
    kept, *joined = dict.fromkeys(t.strip().upper() for t in tactic_ids if t.strip())
    if as_json:
        print_json({"edit_id": edit_id, **_summary(result, kept)})
        return
    others = ", ".join(joined)
    console().print(
        f"merged {others} into {kept} (edit {edit_id}; `rlmine tactics unedit {edit_id}` undoes it)"
    )
    _print_mining(result, kept)


@tactics_app.command("rename")
def rename_cmd(
    tactic_id: str = typer.Argument(..., help="Tactic id, e.g. T3 (see `rlmine tactics list`)."),
    name: str = typer.Argument(..., help='The new name, e.g. "peek at the data".'),
    db: Path | None = DbOption,
    as_json: bool = JsonOption,
) -> None:
    """Name a tactic, now and in later minings (instead of the keyword name)."""
    from miner.curate import rename_tactic

    edit_id = rename_tactic(open_store(db), tactic_id, name)
    if as_json:
        print_json(
            {"edit_id": edit_id, "tactic_id": tactic_id.strip().upper(), "name": " ".join(name.split())}
        )
        return
    console().print(f"{tactic_id.strip().upper()} is now {' '.join(name.split())!r} (edit {edit_id})")


@tactics_app.command("edits")
def edits_cmd(
    task: str | None = typer.Option(None, "--task", help="Only the edits of this task's minings."),
    db: Path | None = DbOption,
    as_json: bool = JsonOption,
) -> None:
    """List the tactic edits (merges and names) that every mining of their scope applies."""
    from rich.table import Table

    from rlmine.store import tactic_edits, task_id_for

    store = open_store(db)
    with store.reader() as con:
        task_id = task_id_for(con, task) if task else None
        df = tactic_edits(con, task_id, every_scope=task is None)
    if as_json:
        print_json({"edits": df_records(df)})
        return
    if df.empty:
        console().print("no tactic edits: `rlmine tactics merge` or `rlmine tactics rename` make them")
        return
    table = Table(title="Tactic edits (applied in this order)", title_justify="left")
    for col in ("id", "scope", "edit", "made"):
        table.add_column(col)
    for row in df_records(df):
        ids = list(row["tactic_ids"])
        what = (
            f"merge {' + '.join(ids[1:])} into {ids[0]}"
            if row["kind"] == "merge"
            else f"rename {ids[0]} to {row['name']!r}"
        )
        scope = row["task"] or row["task_id"] or "all runs"
        table.add_row(str(row["id"]), str(scope), what, str(row["created_at"])[:19])
    console().print(table)


@tactics_app.command("unedit")
def unedit_cmd(
    edit_id: str = typer.Argument(..., help="Edit id (see `rlmine tactics edits`)."),
    db: Path | None = DbOption,
    as_json: bool = JsonOption,
) -> None:
    """Take a tactic edit back and mine its scope again (merged tactics get their ids back)."""
    from miner.curate import undo_edit

    edit, result = undo_edit(open_store(db), edit_id)
    first = str(edit["tactic_ids"][0])
    if as_json:
        print_json(
            {
                "edit_id": edit["id"],
                "kind": edit["kind"],
                "mining": None if result is None else _summary(result, first),
            }
        )
        return
    console().print(f"took back edit {edit['id']} ({edit['kind']} of {', '.join(edit['tactic_ids'])})")
    if result is not None:
        _print_mining(result, first)


def _merges(n: int) -> str:
    return f"{n} merge" if n == 1 else f"{n} merges"


@tactics_app.command("suggest")
def suggest_cmd(
    model: str = typer.Option(
        ..., "--model", help="The model that reads the tactics (any --model of `rlmine record`, e.g. gpt-4o)."
    ),
    api_base: str | None = typer.Option(None, "--api-base", help="OpenAI-compatible endpoint for --model."),
    task: str | None = typer.Option(
        None, "--task", help="The task's latest mining (default: the all-runs one)."
    ),
    apply: bool = typer.Option(False, "--apply", help="Store the proposed merges as edits and mine again."),
    db: Path | None = DbOption,
    as_json: bool = JsonOption,
) -> None:
    """Ask a model which tactics serve one purpose; review its merges, then --apply them."""
    from miner.curate import merge_groups, suggest_merges
    from rlmine.cli.mine import lm_asker
    from rlmine.store import get_tactic, list_tactics

    store = open_store(db)
    groups = suggest_merges(store, lm_asker(model, api_base, max_tokens=2000), task=task)
    label: dict[str, str] = {}
    if groups:  # every proposed id is a tactic of one mining: read its names once
        with store.reader() as con:
            shown = list_tactics(con, str(get_tactic(con, groups[0][0])["mining_id"]))
        label = dict(zip(shown["id"], shown["label"].astype(str), strict=True))
    edit_ids: list[str] = []
    result = None
    if apply and groups:
        edit_ids, result = merge_groups(store, groups)
    if as_json:
        print_json(
            {
                "groups": [
                    {"keep": ids[0], "join": ids[1:], "labels": [label[t] for t in ids]} for ids in groups
                ],
                "applied": bool(edit_ids),
                "edit_ids": edit_ids,
                "mining": None if result is None else _summary(result, None),
            }
        )
        return
    out = console()
    if not groups:
        out.print(f"{model} proposed no merges: it found no tactics that serve one purpose")
        return
    from rich.markup import escape

    lines = [(ids, escape(" + ".join(repr(label[t]) for t in ids))) for ids in groups]
    if result is None:
        out.print(f"{model} proposes {_merges(len(groups))}; review them, then run them or add --apply:")
        for ids, names in lines:
            out.print(f"  rlmine tactics merge {' '.join(ids)}  [dim]# {names}[/]", highlight=False)
        return
    out.print(
        f"stored {len(edit_ids)} merges as edits {', '.join(edit_ids)} (`rlmine tactics unedit` undoes one):"
    )
    for (ids, names), edit_id in zip(lines, edit_ids, strict=True):
        out.print(f"  {edit_id}: {' + '.join(ids[1:])} into {ids[0]}  [dim]# {names}[/]", highlight=False)
    _print_mining(result, None)
