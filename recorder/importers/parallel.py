"""Parsing many small source files in worker processes; only this process writes.

Workers parse batches of files, apply the finalizer, and turn each file's
traces into table rows (plain dicts pickle several times faster than trace
objects). The main process groups the rows of successfully parsed files into
transactions of about ``chunk_runs`` runs. At most ``2 × workers`` batches are
in flight, so memory stays flat however many files there are. Workers start
from a fork server (never forked from a process that has opened DuckDB).

Only importers whose ``save`` is plain run replacement (``parallel = True``)
come here; big files stay on the serial, streaming path.
"""

from __future__ import annotations

import logging
import multiprocessing
from collections import deque
from collections.abc import Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import duckdb
import pyarrow as pa

from recorder.importers.base import (
    SHAPE_ERRORS,
    Finalizer,
    Importer,
    ImportOptions,
    first_line,
    replace_rows,
    shape_error,
)
from recorder.importers.runner import Reporter
from recorder.importers.sources import SourceError
from rlmine.errors import UserError
from rlmine.store import Store
from rlmine.store.rows import Row, trace_rows
from rlmine.store.writes import merge_rows

log = logging.getLogger(__name__)

MIN_FILES = 32  # below this, starting workers costs more than it saves
SMALL_FILE_BYTES = 32 << 20  # bigger files stream on the serial path
BATCH_FILES = 16


def split(files: Sequence[Path]) -> tuple[list[Path], list[Path]]:
    """(files for the pool, files for the serial path)."""
    small: list[Path] = []
    big: list[Path] = []
    for path in files:
        try:
            (small if path.stat().st_size <= SMALL_FILE_BYTES else big).append(path)
        except OSError:
            big.append(path)  # the serial path reports it
    if len(small) < MIN_FILES:
        return [], list(files)
    return small, big


@dataclass(frozen=True, slots=True)
class Parsed:
    """One file, parsed in a worker: its rows, or why it could not be parsed."""

    path: str
    error: str | None = None
    rows: dict[str, list[Row]] = field(default_factory=dict)
    run_ids: tuple[str, ...] = ()


def parse_batch(
    importer_name: str, paths: list[str], opts: ImportOptions, finalize: Finalizer | None
) -> list[Parsed]:
    """Worker side: parse each file independently."""
    from recorder.importers import get_importer

    importer = get_importer(importer_name)
    out = []
    for name in paths:
        path = Path(name)
        try:
            traces = [i.trace for i in importer.parse(path, opts) if i.trace is not None]
            if finalize is not None:
                traces = [finalize(t) for t in traces]
        except SourceError as exc:
            out.append(Parsed(name, exc.one_line()))
            continue
        except SHAPE_ERRORS as exc:
            out.append(Parsed(name, shape_error(path, exc)))
            continue
        rows = merge_rows(trace_rows(t) for t in traces)
        out.append(Parsed(name, rows=rows, run_ids=tuple(t.run.id for t in traces)))
    return out


class _Groups:
    """Writes parsed files about ``chunk`` runs per transaction; isolates a failing write per file."""

    def __init__(self, store: Store, chunk: int, reporter: Reporter) -> None:
        self.store, self.chunk, self.reporter = store, chunk, reporter
        self.pending: list[Parsed] = []
        self.runs = 0

    def add(self, parsed: Parsed) -> None:
        if parsed.error is not None:
            self.reporter.done(parsed.path, [], parsed.error)
            return
        self.pending.append(parsed)
        self.runs += len(parsed.run_ids)
        if self.runs >= self.chunk:
            self.flush()

    def flush(self) -> None:
        group, self.pending, self.runs = self.pending, [], 0
        if group and not self._write(group):
            for one in group:
                if not self._write([one]):
                    self.reporter.done(one.path, [], f"{one.path}: cannot store it")

    def _write(self, group: list[Parsed]) -> bool:
        try:
            with self.store.writer() as con:
                replace_rows(con, merge_rows(p.rows for p in group))
        except (duckdb.Error, pa.ArrowException, UserError) as exc:
            log.warning("write of %d files failed: %s", len(group), first_line(exc))
            return False
        for parsed in group:
            self.reporter.done(parsed.path, parsed.run_ids)
        return True


def run(
    store: Store,
    importer: Importer,
    files: Sequence[Path],
    opts: ImportOptions,
    finalize: Finalizer | None,
    reporter: Reporter,
    workers: int,
) -> None:
    """Parse ``files`` in ``workers`` processes and store them from this one."""
    groups = _Groups(store, max(1, opts.chunk_runs), reporter)
    batches = [[str(p) for p in files[i : i + BATCH_FILES]] for i in range(0, len(files), BATCH_FILES)]
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(["recorder.importers"])
    with ProcessPoolExecutor(max_workers=workers, mp_context=context) as pool:
        queue: deque[tuple[list[str], Future[list[Parsed]]]] = deque()
        todo = iter(batches)

        def submit() -> None:
            batch = next(todo, None)
            if batch is not None:
                queue.append((batch, pool.submit(parse_batch, importer.name, batch, opts, finalize)))

        for _ in range(2 * workers):
            submit()
        while queue:
            batch, future = queue.popleft()
            try:
                results = future.result()
            except Exception as exc:  # a crashed worker costs its batch, reported per file
                results = [
                    Parsed(p, f"{p}: the parsing worker failed ({type(exc).__name__}: {first_line(exc)})")
                    for p in batch
                ]
            submit()
            for parsed in results:
                groups.add(parsed)
    groups.flush()
