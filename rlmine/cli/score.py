"""``rlmine score --task NAME``: re-score a task's runs with its checker."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.table import Table

from rlmine.cli.options import DbOption, JsonOption, open_store
from rlmine.cli.output import console, print_json


def score_cmd(
    task: str = typer.Option(..., "--task", help="The task (name or id) whose runs to score."),
    checker: str | None = typer.Option(
        None,
        "--checker",
        help="Score with this checker instead and save it on the task (a name, python:mod:func, "
        'or JSON like \'{"name": "numeric", "tolerance": 0.01}\').',
    ),
    db: Path | None = DbOption,
    as_json: bool = JsonOption,
) -> None:
    """Re-score every run of a task against its expected answer (the run's, else its instance's)."""
    from rlmine.scoring import rescore_task

    report = rescore_task(open_store(db, write=True), task, checker=checker).as_dict()
    if as_json:
        print_json(report)
        return
    table = Table(title=f"Scores for task {report['task']} (checker {report['checker']})")
    for col in ("runs", "scored", "correct", "no expected answer", "success rate"):
        table.add_column(col, justify="right")
    rate = report["success_rate"]
    table.add_row(
        f"{report['runs']:,}",
        f"{report['scored']:,}",
        f"{report['correct']:,}",
        f"{report['unscored']:,}",
        "-" if rate is None else f"{rate:.1%}",
    )
    console().print(table)


def register(app: typer.Typer) -> None:
    app.command("score")(score_cmd)
