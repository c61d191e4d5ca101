"""``rlmine db info``, ``db upgrade`` and ``db prune-minings``."""

from __future__ import annotations

from pathlib import Path

import typer

from rlmine.cli.options import DbOption, JsonOption, open_store
from rlmine.cli.output import console, print_json

db_app = typer.Typer(help="Inspect the trace database.", no_args_is_help=True)


@db_app.command("info")
def info_cmd(db: Path | None = DbOption, as_json: bool = JsonOption) -> None:
    """Show the database path, schema version, row counts and size."""
    info = open_store(db).info()
    if as_json:
        print_json(info)
        return
    out = console()
    out.print(f"database:       {info['path']}")
    out.print(f"schema version: {info['schema_version']} (latest {info['latest_schema_version']})")
    out.print(f"size:           {info['size_bytes'] / 1e6:.1f} MB")
    for table, n in info["counts"].items():
        out.print(f"  {table:<12} {n:>10,}")


@db_app.command("upgrade")
def upgrade_cmd(db: Path | None = DbOption) -> None:
    """Bring an older database to this rlmine's schema (a backup copy <db>.bak-v<N> is kept)."""
    store = open_store(db, write=True)
    console().print(f"{store.path}: schema version {store.schema_version()}")


@db_app.command("prune-minings")
def prune_minings_cmd(
    keep: int = typer.Option(
        ..., "--keep", min=1, help="Minings to keep per scope (a task, or all runs), newest first."
    ),
    task: str | None = typer.Option(None, "--task", help="Prune only this task's minings (name or id)."),
    db: Path | None = DbOption,
    as_json: bool = JsonOption,
) -> None:
    """Delete older minings (their steps, tactics and sequences); cached embeddings stay.

    Every `rlmine mine` keeps its results whole, so re-mining grows the database. The newest
    mining of each scope is never deleted: `mined_steps`, the dashboard and tactic ids are as before.
    DuckDB reuses the freed space for later writes; the file itself seldom shrinks.
    """
    from rlmine.store import prune_minings, task_id_for

    store = open_store(db, write=True)
    before = store.path.stat().st_size
    with store.writer() as con:
        task_id = task_id_for(con, task) if task is not None else None
        deleted = prune_minings(con, keep=keep, task_id=task_id)
    with store.writer() as con:
        con.execute("CHECKPOINT")  # hand the freed blocks back before measuring
    after = store.path.stat().st_size
    if as_json:
        print_json({"deleted": deleted, "size_before": before, "size_after": after})
        return
    console().print(
        f"deleted {len(deleted)} mining(s); {store.path}: {before / 1e6:.1f} MB → {after / 1e6:.1f} MB",
        markup=False,
    )


def register(app: typer.Typer) -> None:
    app.add_typer(db_app, name="db")
