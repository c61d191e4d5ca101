"""Options shared by every command, and resolving them at the edge."""

from __future__ import annotations

from pathlib import Path

import typer

from rlmine.config import resolve_db_path
from rlmine.store import Store

DbOption = typer.Option(
    None, "--db", help="Database file (default: $RLMINE_DB, else traces/rlmine.duckdb).", show_default=False
)
JsonOption = typer.Option(False, "--json", help="Print JSON instead of a table.")
RayAddressOption = typer.Option(
    None,
    "--ray-address",
    help="Ray only: cluster address (auto, or HEAD:6379); default $RAY_ADDRESS, else a local Ray.",
)


def open_store(db: Path | None, *, create: bool = False, write: bool = False) -> Store:
    """The command's store. Commands that only read (neither ``create`` nor ``write``) open it
    read-only: they never migrate, recover spools, or create a file."""
    read_only = not (create or write)
    return Store.open(resolve_db_path(db), create=create, read_only=read_only, recover=not read_only)
