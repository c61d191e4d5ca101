"""Parsing many small source files in worker processes; only this process writes.

Workers parse batches of files, apply the finalizer, and turn the runs of a
batch's good files into one Arrow table per store table, sent back as Arrow IPC
streams through the result pipe (cheaper than pickling the tables; building them
is the workers' job, not the writer's; a shared-memory file instead of the pipe
measured no gain, decision 0016). The main process groups batches into groups
of about ``chunk_runs`` runs and inserts them as they are, with a plain
``INSERT`` (the re-imported runs are deleted first), several groups to one
write transaction held for a bounded time (:class:`rlmine.store.HeldWriter`).
A write that fails aborts that transaction; its files are imported again from
their sources on the serial path, which isolates the culprit. Enough batches
stay submitted to keep the workers busy while this process writes, and no
more, so memory stays flat however many files there are. Workers start from a
fork server (never forked from a process that has opened DuckDB), started early;
until the first one is up, this process parses too.

Only importers whose ``save`` is plain run replacement (``parallel = True``)
come here; big files stay on the serial, streaming path.
"""

from __future__ import annotations

import gc
import logging
import multiprocessing
import os
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ProcessPoolExecutor, ThreadPoolExecutor
from dataclasses import dataclass, field
from itertools import islice
from pathlib import Path
from typing import Any

import pyarrow as pa

from recorder.importers.base import (
    SHAPE_ERRORS,
    Finalizer,
    Importer,
    ImportOptions,
    finalized,
    first_line,
    shape_error,
)
from recorder.importers.serial import WRITE_ERRORS, Reporter, SerialLoop
from recorder.importers.sources import SourceError
from rlmine.store import (
    TABLE_ORDER,
    HeldWriter,
    Store,
    TraceRows,
    limit_threads,
    merge_rows,
    replace_run_tables,
    to_arrow,
)

log = logging.getLogger(__name__)

MIN_FILES = 32  # below this, starting workers costs more than it saves
SMALL_FILE_BYTES = 32 << 20  # bigger files stream on the serial path
BATCH_FILES = 32
HELD_CHUNKS = 4  # groups of chunk_runs runs one write transaction holds at most

Tables = dict[str, pa.Table]


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
    """One file, parsed in a worker: its runs' ids and where its rows are in the batch, or its error."""

    path: str
    error: str | None = None
    run_ids: tuple[str, ...] = ()
    offsets: tuple[tuple[int, int], ...] = ()  # (first row, rows) in each of the batch's tables


@dataclass(frozen=True, slots=True)
class ParsedBatch:
    """A batch of files parsed in a worker: each file's outcome, and the good files' rows."""

    files: list[Parsed]
    tables: Tables = field(default_factory=dict)

    def __reduce__(self) -> tuple[Any, ...]:
        streams = {}
        for name, table in self.tables.items():
            sink = pa.BufferOutputStream()
            with pa.ipc.new_stream(sink, table.schema) as writer:
                writer.write_table(table)
            streams[name] = sink.getvalue()
        return (_from_streams, (self.files, streams))

    def rows_of(self, parsed: Parsed) -> Tables:
        """One file's rows, sliced (zero-copy) out of the batch's tables."""
        return {
            t: self.tables[t].slice(start, n)
            for t, (start, n) in zip(TABLE_ORDER, parsed.offsets, strict=True)
            if t in self.tables
        }


def _from_streams(files: list[Parsed], streams: dict[str, pa.Buffer]) -> ParsedBatch:
    return ParsedBatch(files, {name: pa.ipc.open_stream(buf).read_all() for name, buf in streams.items()})


def parse_batch(
    importer_name: str, paths: list[str], opts: ImportOptions, finalize: Finalizer | None
) -> ParsedBatch:
    """Worker side: parse each file independently; one set of Arrow tables for the good ones."""
    from recorder.importers import get_importer

    importer = get_importer(importer_name)
    # Parsing makes no reference cycles, only many short-lived dicts and lists: the cyclic
    # collector's passes over them are pure cost (3% of a worker's time). Refcounting frees them.
    collecting = gc.isenabled()
    gc.disable()
    try:
        return _parse_batch(importer, paths, opts, finalize)
    finally:
        if collecting:
            gc.enable()


def _parse_batch(
    importer: Importer, paths: list[str], opts: ImportOptions, finalize: Finalizer | None
) -> ParsedBatch:
    files: list[Parsed] = []
    parts: list[TraceRows] = []
    sizes = dict.fromkeys(TABLE_ORDER, 0)
    for name in paths:
        path = Path(name)
        try:
            items = [finalized(i, finalize) for i in importer.parse(path, opts)]
            rows = merge_rows(i.table_rows() for i in items)
        except SourceError as exc:
            files.append(Parsed(name, exc.one_line()))
            continue
        except SHAPE_ERRORS as exc:
            files.append(Parsed(name, shape_error(path, exc)))
            continue
        offsets = []
        for table in TABLE_ORDER:
            n = len(rows[table])
            offsets.append((sizes[table], n))
            sizes[table] += n
        parts.append(rows)
        run_ids = tuple(rid for i in items if (rid := i.run_id) is not None)
        files.append(Parsed(name, run_ids=run_ids, offsets=tuple(offsets)))
    merged = merge_rows(parts)
    return ParsedBatch(files, {t: to_arrow(t, merged[t]) for t in TABLE_ORDER if merged[t]})


class _Groups:
    """Writes parsed batches about ``chunk`` runs per group, several groups per held transaction.

    A write that fails aborts the transaction: its files are imported again from
    their sources by ``retry`` (one transaction per file where it must), so only
    the culprit is reported.
    """

    def __init__(
        self, writer: HeldWriter[Parsed], chunk: int, reporter: Reporter, retry: Callable[[list[str]], None]
    ) -> None:
        self.writer, self.chunk, self.reporter, self.retry = writer, chunk, reporter, retry
        self.pending: list[ParsedBatch] = []
        self.ids: set[str] = set()

    def add(self, batch: ParsedBatch, runs_to_come: float) -> None:
        """Queue a parsed batch; write the group when it is full, or early near the end.

        ``runs_to_come`` estimates the runs still being parsed. Once the group
        holds as many, it is written while they are parsed, so the last write (the
        one nothing overlaps) stays small: halving groups down to ``chunk / 8``.
        """
        good: list[Parsed] = []
        for parsed in batch.files:
            if parsed.error is not None:
                self.reporter.done(parsed.path, [], parsed.error)
            else:
                good.append(parsed)
        ids = [rid for p in good for rid in p.run_ids]
        unique = set(ids)
        if len(unique) < len(ids):  # the same log twice in one batch: file by file, the last one wins
            self.commit()
            for parsed in good:
                self._write_one(batch, parsed)
            return
        if not (self.ids.isdisjoint(unique) and self.writer.ids.isdisjoint(unique)):
            self.commit()  # a run already written or pending: store that one first
        self.pending.append(ParsedBatch(good, batch.tables))
        self.ids |= unique
        pending = len(self.ids)
        if pending >= self.chunk or pending >= max(self.chunk // 8, runs_to_come):
            self.flush()
        if self.writer.due:  # held long enough (readers get their turn) or big enough
            self.commit()

    def flush(self) -> None:
        """Insert the pending group into the held transaction."""
        group, self.pending, self.ids = self.pending, [], set()
        files = [p for b in group for p in b.files]
        if files:
            tables = {
                t: pa.concat_tables(parts)
                for t in TABLE_ORDER
                if (parts := [b.tables[t] for b in group if t in b.tables])
            }
            try:
                self.writer.insert(tables, files, (rid for p in files for rid in p.run_ids))
            except WRITE_ERRORS as exc:
                self._redo("group write", exc)

    def commit(self) -> None:
        """Write what is pending and commit: its files are reported stored."""
        if self.pending:
            self.flush()
        try:
            stored = self.writer.commit()
        except WRITE_ERRORS as exc:
            self._redo("commit", exc)
            return
        for parsed in stored:
            self.reporter.done(parsed.path, parsed.run_ids)

    def _redo(self, what: str, exc: Exception) -> None:
        """Abort the held transaction and import its files again from their sources."""
        log.warning("%s failed (%s); importing its files again one by one", what, first_line(exc))
        self.retry([p.path for p in self.writer.abort(exc)])

    def abort(self, exc: BaseException) -> None:
        """An interrupted import: what is not committed is not stored (nor reported)."""
        self.pending, self.ids = [], set()
        self.writer.abort(exc)

    def _write_one(self, batch: ParsedBatch, parsed: Parsed) -> None:
        try:
            with self.writer.store.writer() as con:
                limit_threads(con, self.writer.db_threads)
                replace_run_tables(con, batch.rows_of(parsed), upsert=True)
        except WRITE_ERRORS as exc:
            self.reporter.done(parsed.path, [], f"{parsed.path}: cannot store it ({first_line(exc)})")
            return
        self.reporter.done(parsed.path, parsed.run_ids)


def _failed(batch: list[str], exc: BaseException) -> ParsedBatch:
    why = f"the parsing worker failed ({type(exc).__name__}: {first_line(exc)})"
    return ParsedBatch([Parsed(p, f"{p}: {why}") for p in batch])


def _parse_here(
    importer_name: str, batch: list[str], opts: ImportOptions, finalize: Finalizer | None
) -> ParsedBatch:
    """A batch parsed in this process, failing like a worker would."""
    try:
        return parse_batch(importer_name, batch, opts, finalize)
    except Exception as exc:
        return _failed(batch, exc)


def start_fork_server() -> multiprocessing.context.BaseContext:
    """The workers' start context, its fork server started (idempotent; it boots in the background).

    Called early, while the files are discovered, the server's imports overlap that.
    """
    context = multiprocessing.get_context("forkserver")
    # pandas too: pyarrow imports it on the first Arrow array built from Python lists, and
    # importing it once in the fork server beats once per worker (0.3 s of CPU each).
    context.set_forkserver_preload(["recorder.importers.parallel", "pandas"])
    from multiprocessing import forkserver

    forkserver.ensure_running()
    return context


def in_flight(workers: int, chunk_runs: int) -> int:
    """Batches kept submitted: enough to keep every worker busy while this process writes a group.

    A write of ``chunk_runs`` runs takes about as long as parsing them on one core, so
    a shallow queue (a few batches a worker) leaves the workers idle through each
    write: a quarter of the import's wall time on 2 cores.
    """
    return 4 * workers + max(1, chunk_runs) // BATCH_FILES


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
    db_threads = max(1, (os.cpu_count() or 1) - workers)

    def retry(paths: list[str]) -> None:
        loop = SerialLoop(store, importer, opts, finalize, reporter)
        for path in paths:
            loop.run_file(Path(path))
        loop.flush()

    chunk = max(1, opts.chunk_runs)
    groups = _Groups(HeldWriter(store, db_threads, max_runs=HELD_CHUNKS * chunk), chunk, reporter, retry)
    context = start_fork_server()
    _run_pool(importer, files, opts, finalize, workers, context, groups)
    groups.commit()


def _run_pool(
    importer: Importer,
    files: Sequence[Path],
    opts: ImportOptions,
    finalize: Finalizer | None,
    workers: int,
    context: multiprocessing.context.BaseContext,
    groups: _Groups,
) -> None:
    batches = [[str(p) for p in files[i : i + BATCH_FILES]] for i in range(0, len(files), BATCH_FILES)]
    with ProcessPoolExecutor(max_workers=workers, mp_context=context) as pool:
        queue: deque[tuple[list[str], Future[ParsedBatch]]] = deque()
        todo = iter(batches)
        done_files = done_runs = 0

        def submit() -> None:
            batch = next(todo, None)
            if batch is not None:
                queue.append((batch, pool.submit(parse_batch, importer.name, batch, opts, finalize)))

        def take(batch: list[str], result: ParsedBatch) -> None:
            nonlocal done_files, done_runs
            done_files += len(batch)
            done_runs += sum(len(p.run_ids) for p in result.files)
            groups.add(result, (len(files) - done_files) * max(1.0, done_runs / done_files))

        try:
            # Submitting starts the workers, and the first start waits for the fork server
            # to import what parsing needs (~0.4 s): a core this process parses on meanwhile.
            initial = list(islice(todo, in_flight(workers, opts.chunk_runs)))
            with ThreadPoolExecutor(1) as starter:
                started = starter.submit(
                    lambda: [pool.submit(parse_batch, importer.name, b, opts, finalize) for b in initial]
                )
                while not started.done() and (early := next(todo, None)) is not None:
                    take(early, _parse_here(importer.name, early, opts, finalize))
                queue.extend(zip(initial, started.result(), strict=True))
            while queue:
                batch, future = queue.popleft()
                try:
                    result = future.result()
                except Exception as exc:  # a crashed worker costs its batch, reported per file
                    result = _failed(batch, exc)
                submit()
                take(batch, result)
        except BaseException as exc:  # Ctrl-C: nothing half-written stays
            groups.abort(exc)
            raise
