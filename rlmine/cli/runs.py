"""``rlmine runs list`` and ``rlmine runs show``."""

from __future__ import annotations

from pathlib import Path

import typer

from rlmine.cli.options import DbOption, JsonOption, open_store
from rlmine.cli.output import console, df_records, print_json
from rlmine.cli.render import render_trace, runs_table
from rlmine.errors import UserError
from rlmine.store import STATUS_FILTERS, count_runs, get_trace, list_runs, stale_flags, trace_rows

runs_app = typer.Typer(
    help="List recorded and imported runs, and read one iteration by iteration.", no_args_is_help=True
)


@runs_app.command("list")
def list_cmd(
    task: str | None = typer.Option(None, "--task", help="Only runs of this task (name or id)."),
    status: str | None = typer.Option(
        None,
        "--status",
        help=f"Only runs with this status: {', '.join(STATUS_FILTERS)} (stale = running, owner dead).",
    ),
    engine: str | None = typer.Option(
        None, "--engine", help="Only runs from this engine (rlmine, rlms, dspy)."
    ),
    batch: str | None = typer.Option(None, "--batch", help="Only runs of this batch (name or id)."),
    limit: int = typer.Option(50, "--limit", min=1, help="At most this many runs, newest first."),
    db: Path | None = DbOption,
    as_json: bool = JsonOption,
) -> None:
    """List runs, newest first."""
    if status is not None and status not in STATUS_FILTERS:
        raise UserError(f"unknown status {status!r}", f"one of: {', '.join(STATUS_FILTERS)}")
    store = open_store(db)
    filters = {"task": task, "status": status, "engine": engine, "batch": batch}
    with store.reader() as con:
        df = list_runs(con, limit=limit, **filters)
        total = count_runs(con, **filters) if len(df) == limit else len(df)
    stale = stale_flags(list(df["owner"]), list(df["status"]))
    if as_json:
        records = df_records(df)
        for record, flag in zip(records, stale, strict=True):
            record["stale"] = flag
        print_json(records)
        return
    out = console()
    if df.empty:
        out.print("No runs match. Record some with `rlmine demo` or `rlmine record`, or `rlmine import`.")
        return
    out.print(runs_table(df, width=out.width, stale=stale))
    if total > len(df):
        out.print(
            f"Showing the newest {len(df):,} of {total:,} runs: `--limit {total}` to see them all, "
            "or narrow with --task, --status, --engine or --batch."
        )


@runs_app.command("show")
def show_cmd(
    run_id: str = typer.Argument(..., help="Run id (or a unique prefix of one)."),
    iteration: int | None = typer.Option(None, "--iter", help="Show only this iteration (0-based)."),
    max_output: int = typer.Option(2000, "--max-output", help="Characters of output shown per block."),
    calls: bool = typer.Option(
        False, "--calls", help="Expand each iteration's sub-LLM calls into a table (default: one line)."
    ),
    db: Path | None = DbOption,
    as_json: bool = JsonOption,
) -> None:
    """Show one run iteration by iteration: reasoning, each code block with its output and error,
    sub-LLM calls (collapsed unless --calls)."""
    store = open_store(db)
    with store.reader() as con:
        trace = get_trace(con, run_id)
    if as_json:
        print_json(trace_rows(trace))
        return
    if iteration is not None and not any(it.index == iteration for it in trace.iterations):
        raise UserError(
            f"run {trace.run.id} has no iteration {iteration}",
            f"--iter between 0 and {max(len(trace.iterations) - 1, 0)}",
        )
    out = console()
    for renderable in render_trace(
        trace, only_iteration=iteration, max_output=max_output, expand_calls=calls
    ):
        out.print(renderable)


def register(app: typer.Typer) -> None:
    app.add_typer(runs_app, name="runs")
