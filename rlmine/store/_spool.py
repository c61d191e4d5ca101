"""A durable per-process spool in front of the database.

Why: a long-lived read-write connection would lock every reader (the dashboard,
``rlmine runs list``) out of the file for the whole batch. Instead the recorder
appends every finished iteration to its own spool file (one JSON line per row,
flushed to the kernel at once, so SIGKILL loses nothing written) and a flusher
thread moves what accumulated into DuckDB every ``flush_interval_s`` in one
short bulk transaction, then starts a fresh spool file.

Recovery: a spool file is locked (``flock``) by its live writer. Any writer
that opens the store ingests files nobody holds — the leftovers of a killed
process — and deletes them. Writes are upserts, so a file ingested twice (a
crash between commit and delete) changes nothing.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import threading
from collections.abc import Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

import pyarrow as pa

from rlmine.ids import new_id
from rlmine.store._rows import Row
from rlmine.store._schema import SCHEMAS
from rlmine.store._writes import upsert_rows

if TYPE_CHECKING:
    from rlmine.store import Store

log = logging.getLogger(__name__)

_TIMESTAMP_COLUMNS = {
    table: {f.name for f in schema if pa.types.is_timestamp(f.type)} for table, schema in SCHEMAS.items()
}


def spool_dir(db_path: Path) -> Path:
    return db_path.with_name(db_path.name + ".spool")


def _encode(value: Any) -> Any:
    return value.isoformat() if isinstance(value, datetime) else value


def _decode_row(table: str, row: Row) -> Row:
    for column in _TIMESTAMP_COLUMNS[table]:
        value = row.get(column)
        if isinstance(value, str):
            row[column] = datetime.fromisoformat(value)
    return row


def read_spool_file(path: Path) -> dict[str, list[Row]]:
    """Rows of a spool file; a torn last line (killed mid-write) is skipped."""
    out: dict[str, list[Row]] = {t: [] for t in SCHEMAS}
    with open(path, encoding="utf-8") as handle:
        for line in handle:
            if not line.endswith("\n"):
                break  # torn write at the very end
            record = json.loads(line)
            out[record["t"]].append(_decode_row(record["t"], record["r"]))
    return out


def recover_spools(store: Store) -> int:
    """Ingest spool files left by dead writers. Returns how many were ingested."""
    directory = spool_dir(store.path)
    if not directory.is_dir():
        return 0
    done = 0
    for path in sorted(directory.glob("*.jsonl")):
        try:
            handle = open(path, "a+", encoding="utf-8")  # noqa: SIM115 — held while locked
        except OSError:
            continue
        try:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                continue  # a live writer owns it
            rows = read_spool_file(path)
            with store.writer() as con:
                upsert_rows(con, rows)
            path.unlink(missing_ok=True)
            done += 1
            log.info("recovered spool %s", path.name)
        finally:
            handle.close()
    return done


class SpoolWriter:
    """Append rows durably now; move them into the database in bulk soon.

    Thread-safe: many engine threads call :meth:`write`; one background
    thread flushes. :meth:`close` flushes what is left and removes the file.
    """

    def __init__(self, store: Store, *, flush_interval_s: float = 0.5) -> None:
        self._store = store
        self._dir = spool_dir(store.path)
        self._dir.mkdir(exist_ok=True)
        self._lock = threading.Lock()
        self._flush_lock = threading.Lock()
        self._pending: dict[str, list[Row]] = {t: [] for t in SCHEMAS}
        self._handle: IO[str] | None = None
        self._path: Path | None = None
        self._interval = flush_interval_s
        self._stop = threading.Event()
        self._error: BaseException | None = None
        self._open_file()
        self._thread = threading.Thread(target=self._loop, name="rlmine-spool-flusher", daemon=True)
        self._thread.start()

    def _open_file(self) -> None:
        self._path = self._dir / f"{os.getpid()}-{new_id()}.jsonl"
        handle = open(self._path, "a", encoding="utf-8")  # noqa: SIM115 — lives until rotated
        fcntl.flock(handle, fcntl.LOCK_EX)
        self._handle = handle

    def write(self, rows: Mapping[str, Sequence[Row]]) -> None:
        lines = []
        for table, batch in rows.items():
            for row in batch:
                lines.append(json.dumps({"t": table, "r": {k: _encode(v) for k, v in row.items()}}))
        if not lines:
            return
        with self._lock:
            assert self._handle is not None
            self._handle.write("\n".join(lines) + "\n")
            self._handle.flush()
            for table, batch in rows.items():
                self._pending[table].extend(batch)

    def flush(self) -> int:
        """Move pending rows into the database; returns the number of rows moved."""
        with self._flush_lock:
            with self._lock:
                pending = self._pending
                if not any(pending.values()):
                    return 0
                self._pending = {t: [] for t in SCHEMAS}
                old_handle, old_path = self._handle, self._path
                self._open_file()  # new rows go to a fresh file from now on
            try:
                with self._store.writer() as con:
                    upsert_rows(con, pending)
            except BaseException:
                # Keep the rows: put them back and keep the old file for recovery.
                with self._lock:
                    for table, batch in pending.items():
                        self._pending[table][:0] = batch
                if old_handle is not None:
                    old_handle.close()  # releases the lock: recovery may ingest it
                raise
            if old_handle is not None:
                old_handle.close()
            if old_path is not None:
                old_path.unlink(missing_ok=True)
            return sum(len(b) for b in pending.values())

    def _loop(self) -> None:
        while not self._stop.wait(self._interval):
            try:
                self.flush()
            except Exception as exc:  # keep recording; the rows stay spooled
                self._error = exc
                log.warning("spool flush failed, will retry: %s", exc)

    def close(self) -> None:
        self._stop.set()
        self._thread.join()
        self.flush()
        with self._lock:
            if self._handle is not None:
                self._handle.close()
                self._handle = None
            if self._path is not None:
                self._path.unlink(missing_ok=True)
