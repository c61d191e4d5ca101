"""What every importer shares: options, the importer protocol, ids, and replacing runs.

An importer turns one source file into :class:`ImportItem` values (a
:class:`~rlmine.trace.Trace`, or the same run already as table rows named from
the store's :data:`~rlmine.store.SCHEMAS`, plus catalogue rows for the JSONL
format); it never touches the database. :mod:`recorder.importers.runner` drives
the writing, through the store's face only.

Identity: run ids derive from the source's content hash (:func:`derive_id`,
ULID-shaped so they still sort by the run's start time when the source tells
it), and storing a file's runs *replaces* whatever an earlier import stored
under those ids (:func:`rlmine.store.replace_runs`), so importing the same file
twice changes nothing.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

from ulid import ULID

from recorder.importers.sources import SourceError
from rlmine.store import Connection, TraceRows, merge_rows, replace_runs, run_from_row, run_row, trace_rows
from rlmine.trace import Run, Trace

_fast_loads: Callable[[bytes], Any]
try:  # a core dependency (parses these logs ~2x faster); stdlib json keeps a broken install working
    import orjson

    _fast_loads = orjson.loads
except ImportError:  # pragma: no cover - depends on the environment
    _fast_loads = json.loads

DEFAULT_MAX_LINE_BYTES = 256 << 20  # a real rlms line can carry the whole context (twice) in `locals`
DEFAULT_CHUNK_RUNS = 1000  # runs per transaction: fewer commits (each one a checkpoint) vs memory held

# Errors a parser may hit on malformed-but-valid JSON (a string where a dict was expected...):
# reported against the file instead of aborting the whole import.
SHAPE_ERRORS = (TypeError, KeyError, AttributeError, ValueError, IndexError)


@dataclass(frozen=True, slots=True)
class ImportOptions:
    """What the user asked for, applied to every imported run."""

    task: str | None = None  # group the runs under this task (created if missing)
    question: str | None = None  # overrides the question found in the source
    expected: str | None = None  # the expected answer (JSON text or plain text)
    checker: str | None = None  # stored on the task when given (name or JSON mapping)
    max_line_bytes: int = DEFAULT_MAX_LINE_BYTES  # also caps a whole-file JSON document
    chunk_runs: int = DEFAULT_CHUNK_RUNS  # runs per transaction
    workers: int = 0  # parsing processes for many small files: 0 = one per CPU (at most 4), 1 = none


@dataclass(frozen=True, slots=True)
class ImportItem:
    """One parsed unit: a run (with nested children), and/or catalogue rows (JSONL only).

    The run comes as a ``trace``, or as ``rows`` (table → rows, the top-level
    run's row first) from an importer that maps its source straight to rows.
    """

    trace: Trace | None
    catalog: Any = None
    rows: TraceRows | None = None

    @property
    def run_id(self) -> str | None:
        if self.rows is not None:
            return str(self.rows["runs"][0]["id"])
        return self.trace.run.id if self.trace is not None else None

    def table_rows(self) -> TraceRows:
        """The run's rows for every table (none for a catalogue-only item)."""
        if self.rows is not None:
            return self.rows
        return trace_rows(self.trace) if self.trace is not None else {}


class Finalizer(Protocol):
    """Rewrites each top-level run before it is stored (``--task``, overrides, scoring).

    It must pickle: it travels to the parsing worker processes.
    """

    def finish(self, run: Run) -> Run: ...


def finalized(item: ImportItem, finalize: Finalizer | None) -> ImportItem:
    """``item`` with its top-level run rewritten by ``finalize`` (its children are left alone)."""
    if finalize is None:
        return item
    if item.rows is not None:
        runs = item.rows["runs"]
        top = run_row(finalize.finish(run_from_row(runs[0])))
        return replace(item, rows={**item.rows, "runs": [top, *runs[1:]]})
    if item.trace is not None:
        return replace(item, trace=replace(item.trace, run=finalize.finish(item.trace.run)))
    return item


class Importer(Protocol):
    name: str  # the CLI subcommand and registry key
    engine: str  # the engine recorded on runs ("rlms", "dspy"; "jsonl" keeps each record's own)
    version: str  # stored as the runs' engine_version
    suffixes: tuple[str, ...]  # file names searched for in a directory
    what: str  # human name of the source format, for messages
    parallel: bool  # parse() may run in a worker process and save() is default_save

    def parse(self, path: Path, opts: ImportOptions) -> Iterator[ImportItem]: ...

    def save(self, con: Connection, items: Sequence[ImportItem]) -> None: ...


def loads_line(path: Path, number: int | None, raw: bytes) -> Any:
    """Parse one JSON document, turning decode errors into a one-line :class:`SourceError`.

    Whatever orjson refuses is parsed again by the stdlib: it accepts what orjson does not
    (NaN, integers over 64 bits, UTF-16 text) and its errors make the messages users see.
    """
    try:
        return _fast_loads(raw)
    except ValueError:  # orjson.JSONDecodeError is a ValueError
        pass
    try:
        return json.loads(raw)
    except UnicodeDecodeError as exc:
        raise SourceError(
            path, "not UTF-8 text (binary data?)", line=number, hint="pointing at the JSON log instead"
        ) from exc
    except ValueError as exc:
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise SourceError(
            path,
            f"invalid JSON ({reason})",
            line=number,
            hint="checking the file is complete (a run still writing its log ends mid-line)",
        ) from exc


def derive_id(key: str, when: datetime | None = None) -> str:
    """A ULID-shaped id from a content key: sortable by ``when``, stable across imports.

    A naive ``when`` is read as UTC, never as the machine's zone: the same file
    must get the same ids wherever it is imported.
    """
    digest = hashlib.sha256(key.encode("utf-8", "surrogatepass")).digest()
    ms = 0
    if when is not None:
        aware = when if when.tzinfo is not None else when.replace(tzinfo=UTC)
        try:
            ms = max(0, int(aware.timestamp() * 1000)) & ((1 << 48) - 1)
        except (OverflowError, OSError, ValueError):
            ms = 0
    return str(ULID.from_bytes(ms.to_bytes(6, "big") + digest[:10]))


def default_save(con: Connection, items: Sequence[ImportItem]) -> None:
    """Store the items' runs, replacing whole any run an earlier import stored under the same id."""
    replace_runs(con, merge_rows(i.table_rows() for i in items))


# ---------------------------------------------------------------------------- reporting


@dataclass(frozen=True, slots=True)
class FileResult:
    """One source file's outcome: runs stored, or the one-line error (then nothing of it was stored)."""

    path: str
    runs: int
    error: str | None = None


@dataclass(slots=True)
class ImportReport:
    """Every file's outcome and the ids of the runs stored."""

    importer: str
    task_id: str | None = None
    files: list[FileResult] = field(default_factory=list)
    run_ids: list[str] = field(default_factory=list)

    @property
    def runs(self) -> int:
        return sum(f.runs for f in self.files)

    @property
    def failed(self) -> list[FileResult]:
        return [f for f in self.files if f.error is not None]

    def as_dict(self) -> dict[str, Any]:
        return {
            "importer": self.importer,
            "task_id": self.task_id,
            "runs": self.runs,
            "files": len(self.files),
            "failed": len(self.failed),
            "results": [{"path": f.path, "runs": f.runs, "error": f.error} for f in self.files],
        }


def first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def shape_error(path: Path, exc: BaseException) -> str:
    """The one-line report for a file whose JSON parsed but had an unexpected shape."""
    return f"{path}: unexpected structure ({type(exc).__name__}: {first_line(exc)})"
