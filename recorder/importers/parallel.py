"""Parsing many small source files in worker processes; only this process writes.

Workers parse batches of files, apply the finalizer, and turn the runs of a
batch's good files into one Arrow table per store table, sent as Arrow IPC
streams (four times cheaper than pickling the tables; building them is the
workers' job, not the writer's). The main process groups batches into
transactions of about ``chunk_runs`` runs and inserts them as they are, with a
plain ``INSERT`` (the re-imported runs are deleted first). A group whose write
fails is retried file by file, each file sliced out of its batch's tables. At
most ``2 × workers`` batches are in flight, so memory stays flat however many
files there are. Workers start from a fork server (never forked from a process
that has opened DuckDB).

Only importers whose ``save`` is plain run replacement (``parallel = True``)
come here; big files stay on the serial, streaming path.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
from collections import deque
from collections.abc import Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa

from recorder.importers.base import (
    SHAPE_ERRORS,
    Finalizer,
    Importer,
    ImportOptions,
    finalized,
    first_line,
    replace_tables,
    shape_error,
)
from recorder.importers.runner import Reporter
from recorder.importers.sources import SourceError
from rlmine.errors import UserError
from rlmine.store import Store
from rlmine.store.rows import TraceRows, to_arrow
from rlmine.store.writes import TABLE_ORDER, merge_rows

log = logging.getLogger(__name__)

MIN_FILES = 32  # below this, starting workers costs more than it saves
SMALL_FILE_BYTES = 32 << 20  # bigger files stream on the serial path
BATCH_FILES = 16

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
    """Writes parsed batches about ``chunk`` runs per transaction; isolates a failing write per file."""

    def __init__(self, store: Store, chunk: int, reporter: Reporter, db_threads: int) -> None:
        self.store, self.chunk, self.reporter, self.db_threads = store, chunk, reporter, db_threads
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
            self.flush()
            for parsed in good:
                self._write_one(batch, parsed)
            return
        if not self.ids.isdisjoint(unique):  # a run already pending: store that one first
            self.flush()
        self.pending.append(ParsedBatch(good, batch.tables))
        self.ids |= unique
        pending = len(self.ids)
        if pending >= self.chunk or pending >= max(self.chunk // 8, runs_to_come):
            self.flush()

    def flush(self) -> None:
        group, self.pending, self.ids = self.pending, [], set()
        files = [p for b in group for p in b.files]
        if not files:
            return
        tables = {
            t: pa.concat_tables(parts)
            for t in TABLE_ORDER
            if (parts := [b.tables[t] for b in group if t in b.tables])
        }
        if self._write(tables, upsert=False):
            for parsed in files:
                self.reporter.done(parsed.path, parsed.run_ids)
            return
        for batch in group:
            for parsed in batch.files:
                self._write_one(batch, parsed)

    def _write_one(self, batch: ParsedBatch, parsed: Parsed) -> None:
        if self._write(batch.rows_of(parsed), upsert=True):
            self.reporter.done(parsed.path, parsed.run_ids)
        else:
            self.reporter.done(parsed.path, [], f"{parsed.path}: cannot store it")

    def _write(self, tables: Tables, *, upsert: bool) -> bool:
        try:
            with self.store.writer() as con:
                # The parsing workers keep their cores busy: DuckDB threads fighting them for
                # those cores cost CPU (twice the insert's, with 2 threads on 2 cores) and gain nothing.
                con.execute(f"SET threads = {self.db_threads}")
                replace_tables(con, tables, upsert=upsert)
        except (duckdb.Error, pa.ArrowException, UserError) as exc:
            log.warning("write failed: %s", first_line(exc))
            return False
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
    db_threads = max(1, (os.cpu_count() or 1) - workers)
    groups = _Groups(store, max(1, opts.chunk_runs), reporter, db_threads)
    batches = [[str(p) for p in files[i : i + BATCH_FILES]] for i in range(0, len(files), BATCH_FILES)]
    context = multiprocessing.get_context("forkserver")
    # pandas too: pyarrow imports it on the first Arrow array built from Python lists, and
    # importing it once in the fork server beats once per worker (0.3 s of CPU each).
    context.set_forkserver_preload(["recorder.importers", "pandas"])
    with ProcessPoolExecutor(max_workers=workers, mp_context=context) as pool:
        queue: deque[tuple[list[str], Future[ParsedBatch]]] = deque()
        todo = iter(batches)
        done_files = done_runs = 0

        def submit() -> None:
            batch = next(todo, None)
            if batch is not None:
                queue.append((batch, pool.submit(parse_batch, importer.name, batch, opts, finalize)))

        for _ in range(4 * workers):
            submit()
        while queue:
            batch, future = queue.popleft()
            try:
                result = future.result()
            except Exception as exc:  # a crashed worker costs its batch, reported per file
                why = f"the parsing worker failed ({type(exc).__name__}: {first_line(exc)})"
                result = ParsedBatch([Parsed(p, f"{p}: {why}") for p in batch])
            submit()
            done_files += len(batch)
            done_runs += sum(len(p.run_ids) for p in result.files)
            groups.add(result, (len(files) - done_files) * max(1.0, done_runs / done_files))
    groups.flush()
