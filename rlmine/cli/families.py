"""``rlmine tasks list`` and ``rlmine tasks make``: the demo task families on the command line.

Both commands join the ``rlmine tasks`` group defined in :mod:`rlmine.cli.tasks`
(imported here, so importing this module adds them). Sizes, counts and the
output folder are checked by :func:`recorder.families.make_task`, whose
``UserError`` the CLI edge prints as one line.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TextColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)
from rich.table import Table

from recorder.families import FAMILIES, format_size, get_family, make_task, parse_size
from rlmine.cli.options import JsonOption
from rlmine.cli.output import console, print_json
from rlmine.cli.tasks import tasks_app
from rlmine.errors import UserError

__all__ = ["family_rows", "list_cmd", "make_cmd"]


def family_rows() -> list[dict[str, Any]]:
    """One row per family, as ``tasks list --json`` prints it."""
    return [
        {
            "name": f.name,
            "description": f.description,
            "question_kinds": list(f.questions),
            "checker": f.checker if isinstance(f.checker, str) else dict(f.checker),
            "context_format": f.context_suffix.lstrip("."),
        }
        for f in FAMILIES.values()
    ]


@tasks_app.command("list")
def list_cmd(as_json: bool = JsonOption) -> None:
    """List the demo task families that `rlmine tasks make` can generate."""
    rows = family_rows()
    if as_json:
        print_json(rows)
        return
    table = Table(title="Task families (generated, seeded, 100KB..1GB)")
    for column in ("family", "context", "questions", "description"):
        table.add_column(column, overflow="fold")
    for row in rows:
        table.add_row(
            row["name"], row["context_format"], ", ".join(row["question_kinds"]), row["description"]
        )
    console().print(table)


def _splits(text: str) -> tuple[float, float, float]:
    try:
        parts = tuple(float(x) for x in text.split(","))
    except ValueError:
        parts = ()
    if len(parts) != 3:
        raise UserError(f"cannot read --splits {text!r}", "three shares such as 0.6,0.2,0.2")
    return parts[0], parts[1], parts[2]


@tasks_app.command("make")
def make_cmd(
    family: str = typer.Argument(..., help="A family from `rlmine tasks list`.", show_default=False),
    size: str = typer.Option("1MB", "--size", help="Context size per instance, 100KB..1GB (e.g. 50MB)."),
    instances: int = typer.Option(
        10, "--instances", help="Instances to generate (over train/validation/test)."
    ),
    seed: int = typer.Option(1, "--seed", help="Seed: same seed, same task, byte for byte."),
    out: Path | None = typer.Option(
        None, "--out", help="Output folder (default: tasks/<family>-<size>-s<seed>).", show_default=False
    ),
    splits: str = typer.Option("0.6,0.2,0.2", "--splits", help="Train, validation, test shares."),
    name: str | None = typer.Option(
        None, "--name", help="Task name (default: <family>-<size>-s<seed>).", show_default=False
    ),
    covered: bool = typer.Option(
        False,
        "--covered",
        help="Ask validation and test questions only of the kinds and categories (a topic, a sentiment) "
        "that train asks, so an agent built from train runs is measured on questions its runs have seen.",
    ),
) -> None:
    """Generate a task: FAMILY instances with contexts and exact expected answers."""
    fam = get_family(family)
    size_bytes = parse_size(size)
    folder = (
        out if out is not None else Path("tasks") / f"{fam.name}-{format_size(size_bytes).lower()}-s{seed}"
    )
    shares = _splits(splits)
    out_console = console()
    with Progress(
        TextColumn(f"[bold]{fam.name}"),
        BarColumn(),
        DownloadColumn(binary_units=True),
        TransferSpeedColumn(),
        TimeRemainingColumn(),
        console=out_console,
        transient=True,
    ) as progress:
        bar = progress.add_task("generate", total=None)

        def advance(done: int, total: int) -> None:
            progress.update(bar, completed=done, total=total)

        task_file = make_task(
            fam.name,
            folder,
            size_bytes=size_bytes,
            instances=instances,
            seed=seed,
            splits=shares,
            progress=advance,
            name=name,
            covered=covered,
        )
    out_console.print(
        f"Wrote {instances} instances of {format_size(size_bytes)} to {task_file}",
        markup=False,
        soft_wrap=True,
    )
    out_console.print(f"Next: rlmine record {task_file} --model sim", markup=False, soft_wrap=True)
