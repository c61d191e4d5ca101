"""``rlmine tasks validate``: check a task file and summarize it.

``tasks_app`` is the ``rlmine tasks`` group; other modules add their own
commands to it (``list``, ``make``). ``validate`` is the one command whose
error spans several lines: one ``FILE:LINE: problem`` line per problem, so a
user can fix a broken task file in one pass. Unreadable files (missing, a
directory, binary) still get the usual one-line error.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from recorder.tasks import TaskSpec, TaskSpecError, load_task
from rlmine.cli.options import JsonOption
from rlmine.cli.output import console, err_console, print_json
from rlmine.errors import UserError

tasks_app = typer.Typer(help="Task specs: validate them, list them, make demo tasks.", no_args_is_help=True)


def summary(task: TaskSpec) -> dict[str, Any]:
    """What ``validate --json`` prints for a valid task."""
    contexts = {"file": 0, "dir": 0, "generator": 0}
    for inst in task.instances:
        contexts[inst.context.kind] += 1
    return {
        "ok": True,
        "name": task.name,
        "description": task.description,
        "family": task.family,
        "source": str(task.source),
        "question": task.question,
        "checker": task.checker if isinstance(task.checker, str) else dict(task.checker),
        "budget": task.budget.to_dict(),
        "instances": len(task.instances),
        "splits": task.split_counts(),
        "contexts": contexts,
    }


def _checker_text(spec: str | dict[str, Any]) -> str:
    if isinstance(spec, str):
        return spec
    params = ", ".join(f"{k}={v!r}" for k, v in spec.items() if k != "name")
    return f"{spec.get('name')} ({params})" if params else str(spec.get("name"))


def _print_summary(info: dict[str, Any]) -> None:
    out = console()
    question = " ".join(str(info["question"]).split())
    budget = ", ".join(f"{k}={v}" for k, v in info["budget"].items() if v is not None)
    splits = ", ".join(f"{name} {n}" for name, n in info["splits"].items())
    contexts = ", ".join(f"{n} {kind}" for kind, n in info["contexts"].items() if n)
    rows = [
        ("task", info["name"]),
        ("description", info["description"]),
        ("family", info["family"]),
        ("source", info["source"]),
        ("question", question[:117] + "..." if len(question) > 120 else question),
        ("checker", _checker_text(info["checker"])),
        ("budget", budget),
        ("instances", f"{info['instances']} ({splits})"),
        ("contexts", contexts),
    ]
    for label, value in rows:
        if value:
            out.print(f"{label + ':':<13}{value}", markup=False)
    out.print("OK: the task file is valid", markup=False)


@tasks_app.command("validate")
def validate_cmd(
    file: Path = typer.Argument(..., help="The task file (.yaml, .yml or .toml).", show_default=False),
    as_json: bool = JsonOption,
) -> None:
    """Check a task file: every problem is listed with its line; a valid task is summarized."""
    try:
        task = load_task(file)
    except TaskSpecError as exc:
        if as_json:
            items = [{"file": exc.file, "line": p.line, "message": p.message} for p in exc.items]
            print_json({"ok": False, "problems": items})
        else:
            err = err_console()
            count = len(exc.problems)
            err.print(f"Error: {count} problem{'s' if count != 1 else ''} in task file {file}", markup=False)
            for line in exc.problems:
                err.print(line, markup=False, soft_wrap=True)
        raise typer.Exit(1) from None
    except UserError as exc:
        if as_json:
            print_json(
                {"ok": False, "problems": [{"file": str(file), "line": None, "message": exc.one_line()}]}
            )
        else:
            err_console().print(f"Error: {exc.one_line()}", markup=False, soft_wrap=True)
        raise typer.Exit(1) from None
    info = summary(task)
    if as_json:
        print_json(info)
    else:
        _print_summary(info)


def register(app: typer.Typer) -> None:
    app.add_typer(tasks_app, name="tasks")
