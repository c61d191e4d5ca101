"""``rlmine db info``."""

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


def register(app: typer.Typer) -> None:
    app.add_typer(db_app, name="db")
