"""A Rich progress display for batch recording (CLI only)."""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table

from recorder.batch import BatchEvent, BatchResult
from rlmine.cli.render import model_label


class BatchProgress:
    """Turns batch events into a progress bar with runs done / failed, tokens and cost."""

    def __init__(self, console: Console, title: str) -> None:
        self.progress = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[stats]}"),
            TimeElapsedColumn(),
            TextColumn("ETA"),
            TimeRemainingColumn(),
            console=console,
            transient=False,
        )
        self.task = self.progress.add_task(title, total=None, stats="")
        self.lock = threading.Lock()
        self.done = self.failed = self.cancelled = self.elsewhere = self.tokens = 0
        self.cost = 0.0

    def __call__(self, event: BatchEvent) -> None:
        with self.lock:
            if event.kind == "planned":
                self.progress.update(self.task, total=event.total, completed=event.skipped)
                return
            if event.kind == "skipped":
                self.elsewhere += 1
            elif event.kind == "finished" and event.run is not None:
                run = event.run
                self.done += 1
                self.failed += run.status == "error"
                self.cancelled += run.status == "cancelled"
                self.tokens += (run.tokens_in or 0) + (run.tokens_out or 0)
                self.cost += run.cost or 0.0
            else:
                return
            self.progress.update(self.task, advance=1, stats=self.stats())

    def stats(self) -> str:
        parts = [f"failed {self.failed}"]
        if self.cancelled:
            parts.append(f"cancelled {self.cancelled}")
        if self.elsewhere:
            parts.append(f"run by another recorder {self.elsewhere}")
        return "  ".join([*parts, f"tokens {self.tokens:,}", f"cost ${self.cost:.4f}"])


def summary_table(result: BatchResult) -> Table:
    table = Table(title=f"batch {result.batch_name}", title_justify="left")
    for col in (
        "model",
        "runs",
        "submitted",
        "exhausted",
        "error",
        "cancelled",
        "correct",
        "tokens",
        "avg s",
    ):
        table.add_column(col, justify="right" if col != "model" else "left")
    models = sorted({r.root_model or "-" for r in result.runs})
    for model in models:
        runs = [r for r in result.runs if (r.root_model or "-") == model]
        count = {
            s: sum(r.status == s for r in runs)
            for s in ("submitted", "budget_exhausted", "error", "cancelled")
        }
        correct = sum(bool(r.correct) for r in runs)
        tokens = sum((r.tokens_in or 0) + (r.tokens_out or 0) for r in runs)
        avg = sum(r.wall_s or 0 for r in runs) / len(runs)
        table.add_row(
            model_label(model),
            str(len(runs)),
            str(count["submitted"]),
            str(count["budget_exhausted"]),
            str(count["error"]),
            str(count["cancelled"]),
            f"{correct}/{len(runs)}",
            f"{tokens:,}",
            f"{avg:.1f}",
        )
    return table


@contextmanager
def sigint_cancels(cancel: threading.Event, console: Console) -> Iterator[None]:
    """First Ctrl-C: stop cleanly (in-flight runs end as cancelled). Second: abort."""
    previous = signal.getsignal(signal.SIGINT)
    first: list[float] = []

    def handler(_sig: int, _frame: FrameType | None) -> None:
        if first:
            raise KeyboardInterrupt
        first.append(time.monotonic())
        cancel.set()
        console.print(
            "[yellow]Stopping: finishing in-flight steps and marking their runs cancelled "
            "(Ctrl-C again to abort)…[/]"
        )

    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGINT, handler)
    try:
        yield
    finally:
        if threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGINT, previous)
