"""``rlmine agent build|list|show``: generate agent scripts from recorded runs and look at them."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

import typer
from rich.syntax import Syntax
from rich.table import Table

from rlmine.cli.options import DbOption, JsonOption, open_store
from rlmine.cli.output import console, df_records, print_json
from rlmine.errors import UserError

agent_app = typer.Typer(
    help="Build standalone agent scripts from successful runs; list and show them.", no_args_is_help=True
)


def write_atomically(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` through a temporary file: a reader never sees half a script."""
    parent = path.parent if str(path.parent) else Path(".")
    if not parent.is_dir():
        raise UserError(f"directory {parent} does not exist", f"`mkdir -p {parent}` or another -o path")
    fd, tmp = tempfile.mkstemp(dir=parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


@agent_app.command("build")
def build_cmd(
    task: str | None = typer.Option(
        None, "--task", help="Build from the successful runs of this task (name)."
    ),
    run: str | None = typer.Option(
        None, "--run", help="Build from this one run (id or prefix), e.g. an import."
    ),
    context: Path | None = typer.Option(None, "--context", help="With --run: the context the run was given."),
    out: Path = typer.Option(Path("agent.py"), "-o", "--out", help="Where to write the agent script."),
    min_accuracy: float = typer.Option(
        0.6,
        "--min-accuracy",
        min=0.0,
        max=1.0,
        help="With --task: a candidate must reach this on validation.",
    ),
    max_candidates: int = typer.Option(
        6, "--max-candidates", min=1, help="With --task: candidates per shape."
    ),
    concurrency: int = typer.Option(4, "-c", "--concurrency", min=1, max=64, help="Sandboxes at once."),
    sub_model: str | None = typer.Option(
        None, "--sub-model", help="With --task: the sub-LM for validation (default: the runs' own)."
    ),
    api_base: str | None = typer.Option(
        None, "--api-base", help="OpenAI-compatible endpoint of --sub-model."
    ),
    cascade: bool = typer.Option(
        True,
        "--cascade/--no-cascade",
        help="With --task: distil per-item models from the recorded sub-LLM answers (scikit-learn) so "
        "the agent asks the LLM only about items they are unsure of.",
    ),
    db: Path | None = DbOption,
    as_json: bool = JsonOption,
) -> None:
    """Build an agent: from many runs of a task (validated), or from one run (verified by replay)."""
    from codegen import TaskBuildOptions, build_for_task, build_from_run

    if (task is None) == (run is None):
        raise UserError("give either --task NAME or --run RUN_ID", "rlmine agent build --task my-task")
    if run is not None and context is None:
        raise UserError("--run needs the run's context", "--context PATH")
    store = open_store(db)
    if run is not None:
        assert context is not None
        result = build_from_run(store, run, context, filename=out.name)
    else:
        assert task is not None
        opts = TaskBuildOptions(
            min_accuracy=min_accuracy, max_candidates=max_candidates, concurrency=concurrency,
            sub_model=sub_model, api_base=api_base, cascade=cascade,
        )  # fmt: skip
        result = build_for_task(store, task, opts, filename=out.name)
    assert result.rendered is not None
    if result.rendered.sidecar_name and result.rendered.sidecar is not None:
        write_atomically(out.parent / result.rendered.sidecar_name, result.rendered.sidecar)
    write_atomically(out, result.rendered.script)
    summary: dict[str, Any] = {
        "agent_id": result.agent_id,
        "build_id": result.build_id,
        "path": str(out),
        "message": result.message,
        "candidates": [
            {
                "idx": c.idx,
                "status": c.status,
                "accuracy": c.accuracy,
                "failure": c.failure,
                "runs": len(c.source_runs),
            }
            for c in result.candidates
        ],
    }
    if as_json:
        print_json(summary)
        return
    term = console()
    term.print(_candidates_table(summary["candidates"]))
    term.print(f"[bold]{result.agent_id}[/] → {out}: {result.message}")
    term.print(f"Run it: python {out} --context PATH --question TEXT   (--llm replay|off|live, --json)")


def _candidates_table(rows: list[dict[str, Any]]) -> Table:
    table = Table(title="candidates", title_justify="left")
    for col in ("#", "status", "accuracy", "runs", "failure"):
        table.add_column(col)
    for c in rows:
        acc = "" if c["accuracy"] is None or c["accuracy"] != c["accuracy"] else f"{c['accuracy']:.0%}"
        table.add_row(str(c["idx"]), c["status"], acc, str(c["runs"]), (c["failure"] or "")[:80])
    return table


@agent_app.command("list")
def list_cmd(db: Path | None = DbOption, as_json: bool = JsonOption) -> None:
    """List generated agents, newest first."""
    from rlmine.store import list_agents

    store = open_store(db)
    with store.reader() as con:
        df = list_agents(con)
    if as_json:
        print_json(df_records(df))
        return
    term = console()
    if df.empty:
        term.print("No agents yet. Build one with `rlmine agent build --task NAME`.")
        return
    table = Table()
    for col in ("id", "task", "source runs", "validation", "shapes", "created"):
        table.add_column(col)
    for r in df_records(df):
        acc = r["validation_accuracy"]
        table.add_row(
            r["id"], str(r["task"] or "-"), str(r["source_runs"]), "-" if acc is None else f"{acc:.0%}",
            str(r["shapes"]), str(r["created_at"])[:19],
        )  # fmt: skip
    term.print(table)


@agent_app.command("show")
def show_cmd(
    agent_id: str = typer.Argument(..., help="Agent id (or a unique prefix)."),
    script: bool = typer.Option(False, "--script", help="Print the script itself."),
    out: Path | None = typer.Option(None, "-o", "--out", help="Write the script to this file."),
    db: Path | None = DbOption,
    as_json: bool = JsonOption,
) -> None:
    """Show an agent: provenance, validation, candidates (and its script)."""
    from rlmine.store import get_agent

    store = open_store(db)
    with store.reader() as con:
        agent = get_agent(con, agent_id)
    if out is not None:
        write_atomically(out, agent["script"])
    if as_json:
        print_json(agent)
        return
    term = console()
    if script:
        term.print(Syntax(agent["script"], "python", line_numbers=False))
        return
    term.print(
        f"[bold]{agent['id']}[/]  task: {agent['task'] or '-'}  created {str(agent['created_at'])[:19]}"
    )
    term.print(f"source runs ({len(agent['source_runs'])}): {', '.join(agent['source_runs'][:8])}")
    term.print("tactic sequence: " + (" → ".join(agent["tactic_sequence"] or []) or "(miner not run)"))
    term.print(f"validation: {agent['validation']}")
    for i, shape in enumerate(agent["shapes"] or []):
        term.print(f"shape {i}: {shape['template'][:120]}")
    rows = [
        {
            "idx": c["idx"],
            "status": c["status"],
            "accuracy": c["accuracy"],
            "failure": c["failure"],
            "runs": c["source_runs"],
        }
        for c in agent["candidates"]
    ]
    term.print(_candidates_table(rows))
    if out is not None:
        term.print(f"script written to {out}")


def register(app: typer.Typer) -> None:
    app.add_typer(agent_app, name="agent")
