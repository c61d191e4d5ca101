"""``rlmine export``."""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path

import typer

from rlmine.cli.options import DbOption, open_store
from rlmine.cli.output import console
from rlmine.store import export_parquet


class ExportFormat(StrEnum):
    parquet = "parquet"
    jsonl = "jsonl"


def export_cmd(
    out: Path = typer.Option(..., "--out", help="Folder to write into (created if missing)."),
    fmt: ExportFormat = typer.Option(
        ExportFormat.parquet,
        "--format",
        help="parquet: one file per table. jsonl: one self-contained JSON object per run (docs/trace-format.md).",
    ),
    db: Path | None = DbOption,
) -> None:
    """Export the database: tables as Parquet, or runs as the JSONL interchange format."""
    store = open_store(db)
    if fmt is ExportFormat.parquet:
        with store.reader() as con:
            counts = export_parquet(con, out)
        console().print(
            f"Wrote {len(counts)} Parquet files to {out}: "
            + ", ".join(f"{t} {n:,}" for t, n in counts.items())
        )
        return
    from rlmine.store import export_jsonl

    with store.reader() as con:
        path, n = export_jsonl(con, out)
    console().print(f"Wrote {n:,} runs to {path}")


def register(app: typer.Typer) -> None:
    app.command("export")(export_cmd)
