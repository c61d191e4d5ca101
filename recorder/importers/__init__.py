"""Importers: traces from other RLM engines (rlms, DSPy) and rlmine's own JSONL, into the store.

:data:`IMPORTERS` is the registry (``rlmine import <name>``); :func:`import_files`
is the entry point: it resolves the importer, applies the user's options
(``--task`` grouping, question and expected overrides, scoring with the task's
checker) and runs :func:`~recorder.importers.runner.import_paths`, which stores
each file in one transaction and reports bad files without stopping.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

from recorder.importers.base import FileResult, Importer, ImportItem, ImportOptions, ImportReport, derive_id
from recorder.importers.dspy import DspyImporter
from recorder.importers.finishing import RunFinalizer, make_finalizer
from recorder.importers.jsonl import JsonlImporter
from recorder.importers.rlms import RlmsImporter
from recorder.importers.runner import import_paths
from recorder.importers.sources import SourceError
from rlmine.errors import UserError
from rlmine.store import Store

IMPORTERS: dict[str, Importer] = {imp.name: imp for imp in (RlmsImporter(), DspyImporter(), JsonlImporter())}


def get_importer(name: str) -> Importer:
    try:
        return IMPORTERS[name]
    except KeyError:
        raise UserError(f"unknown importer {name!r}", f"one of: {', '.join(IMPORTERS)}") from None


def import_files(
    store: Store,
    importer: str,
    paths: Sequence[Path],
    opts: ImportOptions | None = None,
    *,
    on_file: Callable[[FileResult], None] | None = None,
) -> ImportReport:
    """Import ``paths`` (files, ``.gz`` files, directories) with the named importer."""
    imp = get_importer(importer)
    options = opts or ImportOptions()
    finalize = make_finalizer(store, options)
    report = import_paths(store, imp, paths, options, finalize=finalize, on_file=on_file)
    report.task_id = finalize.task_id if finalize is not None else None
    return report


__all__ = [
    "IMPORTERS",
    "FileResult",
    "ImportItem",
    "ImportOptions",
    "ImportReport",
    "Importer",
    "RunFinalizer",
    "SourceError",
    "derive_id",
    "get_importer",
    "import_files",
    "make_finalizer",
]
