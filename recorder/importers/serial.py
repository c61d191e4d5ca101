"""The serial import path: files parsed in this process, small ones grouped, big ones streamed.

* **Nothing of a bad file is kept.** A file is parsed before anything of it is
  written, so a bad line anywhere leaves no trace of that file while the other
  files still import.
* **Grouped small files.** Successfully parsed small files share a write
  transaction, up to ``chunk_runs`` runs; if that write fails, each file of the
  group is retried alone so only the culprit is reported.
* **Streamed big files.** A file with more than ``chunk_runs`` runs is written
  chunk by chunk inside its own transaction, which rolls back whole on a bad
  line: memory stays flat.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Sequence
from itertools import islice
from pathlib import Path

import pyarrow as pa

from recorder.importers.base import (
    SHAPE_ERRORS,
    FileResult,
    Finalizer,
    Importer,
    ImportItem,
    ImportOptions,
    ImportReport,
    finalized,
    first_line,
    shape_error,
)
from recorder.importers.sources import SourceError
from rlmine.errors import UserError
from rlmine.store import DatabaseError, Store

log = logging.getLogger(__name__)

# What a failed write raises: the database refused the rows, Arrow could not build them,
# or the store turned the failure into a one-line error.
WRITE_ERRORS = (DatabaseError, pa.ArrowException, UserError)


class Reporter:
    """Records each file's outcome in the report and tells the caller."""

    def __init__(self, report: ImportReport, on_file: Callable[[FileResult], None] | None) -> None:
        self.report, self.on_file = report, on_file

    def done(self, path: Path | str, run_ids: Sequence[str], error: str | None = None) -> None:
        result = FileResult(str(path), 0 if error else len(run_ids), error)
        if error is None:
            self.report.run_ids.extend(run_ids)
        self.report.files.append(result)
        if self.on_file is not None:
            self.on_file(result)


def _run_ids(items: Sequence[ImportItem]) -> list[str]:
    return [rid for i in items if (rid := i.run_id) is not None]


class SerialLoop:
    """Parses in this process: groups small files into shared transactions, streams big ones."""

    def __init__(
        self,
        store: Store,
        importer: Importer,
        opts: ImportOptions,
        finalize: Finalizer | None,
        reporter: Reporter,
    ) -> None:
        self.store, self.importer, self.opts, self.finalize, self.reporter = (
            store,
            importer,
            opts,
            finalize,
            reporter,
        )
        self.pending: list[tuple[Path, list[ImportItem]]] = []
        self.pending_items = 0

    def flush(self) -> None:
        if not self.pending:
            return
        group, self.pending, self.pending_items = self.pending, [], 0
        try:
            with self.store.writer() as con:
                self.importer.save(con, [item for _, items in group for item in items])
        except WRITE_ERRORS as exc:
            if len(group) == 1:
                self.reporter.done(group[0][0], [], f"{group[0][0]}: cannot store it ({first_line(exc)})")
                return
            log.warning("group write failed (%s); retrying file by file", first_line(exc))
            for one in group:
                self.pending, self.pending_items = [one], len(one[1])
                self.flush()
            return
        for path, items in group:
            self.reporter.done(path, _run_ids(items))

    def run_file(self, path: Path) -> None:
        chunk = max(1, self.opts.chunk_runs)
        stream = (finalized(i, self.finalize) for i in self.importer.parse(path, self.opts))
        try:
            head = list(islice(stream, chunk))
            more = list(islice(stream, 1))
        except SourceError as exc:
            self.reporter.done(path, [], exc.one_line())
            return
        except SHAPE_ERRORS as exc:
            self.reporter.done(path, [], shape_error(path, exc))
            return
        if not more:
            self.pending.append((path, head))
            self.pending_items += len(head)
            if self.pending_items >= chunk:
                self.flush()
            return
        self.flush()
        self._stream(path, head + more, stream, chunk)

    def _stream(self, path: Path, first: list[ImportItem], rest: Iterator[ImportItem], chunk: int) -> None:
        saved: list[str] = []  # ids only: a big file's traces are not kept in memory
        error: str | None = None
        try:
            with self.store.writer() as con:
                batch = first
                while batch:
                    self.importer.save(con, batch)
                    saved.extend(_run_ids(batch))
                    batch = list(islice(rest, chunk))
        except SourceError as exc:
            error = exc.one_line()
        except SHAPE_ERRORS as exc:
            error = shape_error(path, exc)
        except WRITE_ERRORS as exc:
            error = f"{path}: cannot store it ({first_line(exc)})"
        self.reporter.done(path, [] if error else saved, error)
