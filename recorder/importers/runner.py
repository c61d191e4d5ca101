"""The import loop: one transaction per file, bad files reported, the rest imported.

* **Nothing of a bad file is kept.** A file is parsed before anything of it is
  written, so a bad line anywhere leaves no trace of that file while the other
  files still import.
* **Grouped small files.** One rlms log is one run, and a DuckDB transaction per
  tiny file would cap throughput, so successfully parsed files share a
  transaction, up to ``chunk_runs`` runs; if that write fails, each file of the
  group is retried alone so only the culprit is reported.
* **Streamed big files.** A file with more than ``chunk_runs`` runs (a JSONL of
  many DSPy results, an rlmine export) is written chunk by chunk inside its own
  transaction, which rolls back whole on a bad line: memory stays flat.
* **Parallel parsing.** Many small files are parsed in worker processes
  (:mod:`recorder.importers.parallel`); this process only writes.

The serial path is :mod:`recorder.importers.serial`; the parallel one falls back
to it. Neither imports this module, so the modules form no circle.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path

from recorder.importers import parallel
from recorder.importers.base import FileResult, Finalizer, Importer, ImportOptions, ImportReport
from recorder.importers.serial import Reporter, SerialLoop
from recorder.importers.sources import SourceError, discover
from rlmine.store import Store

MAX_AUTO_WORKERS = 4


def auto_workers(requested: int) -> int:
    if requested > 0:
        return requested
    return max(1, min(os.cpu_count() or 1, MAX_AUTO_WORKERS))


def import_paths(
    store: Store,
    importer: Importer,
    paths: Sequence[Path],
    opts: ImportOptions,
    *,
    finalize: Finalizer | None = None,
    on_file: Callable[[FileResult], None] | None = None,
) -> ImportReport:
    """Import every file under ``paths``; bad files are reported, never fatal to the others.

    ``finalize`` rewrites each top-level run before it is stored (see
    :mod:`recorder.importers.finishing`); when many small files are parsed in
    worker processes it must be picklable. ``on_file`` is told of each file as
    it finishes (for progress and errors).
    """
    report = ImportReport(importer=importer.name)
    reporter = Reporter(report, on_file)
    workers = auto_workers(opts.workers)
    if (
        importer.parallel
        and workers > 1
        and (len(paths) >= parallel.MIN_FILES or any(p.is_dir() for p in paths))
    ):
        parallel.start_fork_server()  # likely needed: let it boot while the files are found
    files: list[Path] = []
    for entry in discover(paths, importer.suffixes, importer.what):
        if isinstance(entry, SourceError):
            reporter.done(entry.path, [], entry.one_line())
        else:
            files.append(entry)
    serial_files = files
    if importer.parallel and workers > 1:
        pooled, serial_files = parallel.split(files)
        if pooled:
            parallel.run(store, importer, pooled, opts, finalize, reporter, workers)
    loop = SerialLoop(store, importer, opts, finalize, reporter)
    for path in serial_files:
        loop.run_file(path)
    loop.flush()
    return report
