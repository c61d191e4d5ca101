"""``rlmine import rlms|dspy|jsonl``: traces from other RLM engines and rlmine's own exports.

Each bad file gets one ``Error: FILE:LINE: problem — try fix`` line on stderr
as soon as it is found; the good files still import (a file is parsed whole
before anything of it is written, so nothing of a bad file is kept). A summary
follows; the exit code is 1 when any file failed.
"""

from __future__ import annotations

from pathlib import Path

import typer
from rich.progress import Progress, SpinnerColumn, TextColumn

from recorder.importers import IMPORTERS, FileResult, ImportOptions, ImportReport, import_files
from recorder.importers.base import DEFAULT_MAX_LINE_BYTES
from rlmine.cli.options import DbOption, JsonOption, open_store
from rlmine.cli.output import console, err_console, print_json
from rlmine.errors import UserError

import_app = typer.Typer(
    help="Import traces from other RLM engines (rlms, DSPy) or from `rlmine export --format jsonl`.",
    no_args_is_help=True,
)

_PATHS_HELP = "Files (also .gz) or directories of them."
TaskOption = typer.Option(
    None, "--task", help="Group the runs under this task (created if missing) so they can be scored."
)
QuestionOption = typer.Option(
    None, "--question", help="The question the runs answered (default: found in the source)."
)
ExpectedOption = typer.Option(
    None, "--expected", help="The expected answer (JSON or plain text); scored with the task's checker."
)
ExpectedFileOption = typer.Option(None, "--expected-file", help="Read the expected answer from this file.")
CheckerOption = typer.Option(
    None,
    "--checker",
    help="Checker stored on the --task: exact, contains, set_f1, topk_overlap, numeric, "
    'python:mod:func, or JSON like \'{"name": "numeric", "tolerance": 0.01}\'.',
)
WorkersOption = typer.Option(
    0,
    "--workers",
    min=0,
    help="Processes that parse many small files in parallel (0: one per CPU, at most 4; 1: none). "
    "In parallel, writes share transactions held up to 2 s: a dashboard read waits that long at most.",
)
MaxLineOption = typer.Option(
    DEFAULT_MAX_LINE_BYTES / (1 << 20),
    "--max-line-mb",
    min=0.001,
    help="Refuse lines (and whole JSON files) larger than this many MB.",
)


def _expected(value: str | None, path: Path | None) -> str | None:
    if value is not None and path is not None:
        raise UserError("--expected and --expected-file were both given", "only one of them")
    if path is None:
        return value
    try:
        return path.read_text(encoding="utf-8").rstrip("\n")
    except (OSError, UnicodeDecodeError) as exc:
        raise UserError(
            f"cannot read the expected answer from {path} ({exc})", "a readable UTF-8 text file"
        ) from exc


def _summary(report: ImportReport, db: Path, task: str | None) -> str:
    ok = len(report.files) - len(report.failed)
    text = f"Imported {report.runs:,} runs from {ok:,} of {len(report.files):,} files into {db}"
    if task:
        text += f" (task {task})"
    if report.failed:
        text += f"; {len(report.failed):,} failed (see the errors above)"
    return text + "."


def _run(
    kind: str,
    paths: list[Path],
    task: str | None,
    question: str | None,
    expected: str | None,
    expected_file: Path | None,
    checker: str | None,
    max_line_mb: float,
    workers: int,
    db: Path | None,
    as_json: bool,
) -> None:
    if checker and not task:
        raise UserError(
            "--checker needs --task (the checker is stored on the task)", "--task NAME --checker ..."
        )
    opts = ImportOptions(
        task=task,
        question=question,
        expected=_expected(expected, expected_file),
        checker=checker,
        max_line_bytes=max(1, int(max_line_mb * (1 << 20))),
        workers=workers,
    )
    store = open_store(db, create=True)
    err = err_console()
    with Progress(SpinnerColumn(), TextColumn("{task.description}"), console=err, transient=True) as progress:
        bar = progress.add_task(f"importing {IMPORTERS[kind].what} files", total=None)
        counts = {"files": 0, "runs": 0}

        def on_file(result: FileResult) -> None:
            counts["files"] += 1
            counts["runs"] += result.runs
            if result.error:
                progress.console.print(
                    f"Error: {result.error}", markup=False, highlight=False, soft_wrap=True
                )
            progress.update(bar, description=f"{counts['files']:,} files, {counts['runs']:,} runs")

        report = import_files(store, kind, paths, opts, on_file=on_file)
    if as_json:
        print_json({**report.as_dict(), "db": str(store.path)})
    else:
        console().print(_summary(report, store.path, task), markup=False, highlight=False)
    if report.failed:
        raise typer.Exit(1)


def _command(kind: str, paths_help: str, doc: str) -> None:
    """One ``rlmine import KIND`` command: the importers differ only in their sources."""

    def command(
        paths: list[Path] = typer.Argument(..., help=f"{_PATHS_HELP} {paths_help}"),
        task: str | None = TaskOption,
        question: str | None = QuestionOption,
        expected: str | None = ExpectedOption,
        expected_file: Path | None = ExpectedFileOption,
        checker: str | None = CheckerOption,
        max_line_mb: float = MaxLineOption,
        workers: int = WorkersOption,
        db: Path | None = DbOption,
        as_json: bool = JsonOption,
    ) -> None:
        _run(kind, paths, task, question, expected, expected_file, checker, max_line_mb, workers, db, as_json)

    command.__doc__ = doc
    import_app.command(kind)(command)


for _kind, _paths_help, _doc in (
    (
        "rlms",
        "rlms RLMLogger logs: rlm_<time>_<id>.jsonl.",
        "Import rlms (alexzhang13/rlm) RLMLogger logs, nested child RLMs included.",
    ),
    (
        "dspy",
        "Saved dspy.RLM results: .json or .jsonl.",
        "Import dspy.RLM results: a trajectory list, a saved Prediction, or JSON lines of them.",
    ),
    (
        "jsonl",
        "Written by `rlmine export --format jsonl`.",
        "Import rlmine's JSONL interchange format (docs/trace-format.md): runs, tasks and batches.",
    ),
):
    _command(_kind, _paths_help, _doc)


def register(app: typer.Typer) -> None:
    app.add_typer(import_app, name="import")
