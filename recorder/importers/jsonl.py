"""Import rlmine's own interchange format (``rlmine export --format jsonl``).

The format and its validation live in the store (:func:`rlmine.store.trace_from_record`); this
adapter only reads lines and reports problems against the file and line. Run
ids, engines and versions are kept as recorded, so re-importing is idempotent
and a round trip through export and import reproduces the database.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path

from recorder.importers.base import ImportItem, ImportOptions, loads_line
from recorder.importers.sources import LineReader, SourceError
from rlmine.store import (
    Catalog,
    Connection,
    RecordError,
    catalog_from_record,
    check_header,
    save_records,
    trace_from_record,
)

VERSION = "jsonl-import/1"


class JsonlImporter:
    """``rlmine import jsonl``: files written by ``rlmine export --format jsonl``."""

    name: str = "jsonl"
    engine: str = "rlmine"
    version: str = VERSION
    suffixes: tuple[str, ...] = (".jsonl", ".jsonl.gz")
    what: str = "rlmine JSONL"
    parallel: bool = False

    def parse(self, path: Path, opts: ImportOptions) -> Iterator[ImportItem]:
        from recorder.importers.sniff import fitting_importer, found, hint_for

        for number, raw in LineReader(path, opts.max_line_bytes):
            obj = loads_line(path, number, raw)
            try:
                kind = check_header(obj)
                catalog = catalog_from_record(obj)
                trace = trace_from_record(obj) if kind == "run" else None
            except RecordError as exc:
                fit = fitting_importer(obj)
                what = f"{exc}; found {found(obj)}" if fit != "jsonl" else str(exc)
                raise SourceError(
                    path,
                    what,
                    line=number,
                    hint="fixing that field (docs/trace-format.md)"
                    if fit == "jsonl"
                    else hint_for(obj, "jsonl"),
                ) from exc
            yield ImportItem(trace, catalog)

    def save(self, con: Connection, items: Sequence[ImportItem]) -> None:
        save_records(
            con, [(i.trace, i.catalog if isinstance(i.catalog, Catalog) else Catalog()) for i in items]
        )


__all__ = ["VERSION", "JsonlImporter"]
