"""Opening DuckDB files: short-held connections, lock retries, clear errors.

DuckDB lets one process hold a database file read-write, and while it does no
other process can open the file at all, not even read-only. rlmine therefore
never keeps a connection open longer than one batch of work: writers (the
recorder's flusher, importers, CLI commands) and readers (dashboard, CLI) open,
work for milliseconds, and close. Whoever finds the file locked retries with
jittered backoff for up to ``busy_timeout_s`` before giving up with
:class:`DatabaseBusyError`.
"""

from __future__ import annotations

import random
import threading
import time
from pathlib import Path

import duckdb

from rlmine.errors import DatabaseBusyError, StoreError

DEFAULT_BUSY_TIMEOUT_S = 30.0


def is_lock_error(exc: BaseException) -> bool:
    text = str(exc)
    # The last case is the in-process form of a lock: this process already holds
    # the file with the other access mode (e.g. the spool flusher thread writes
    # while another thread reads); it clears as soon as that connection closes.
    return (
        "Could not set lock" in text
        or "Conflicting lock" in text
        or "different configuration than existing connections" in text
    )


def _classify(path: Path, exc: duckdb.Error) -> StoreError:
    text = str(exc)
    if "not a valid DuckDB database" in text:
        return StoreError(
            f"{path} is not a DuckDB database",
            "a different --db path (rlmine databases end in .duckdb)",
        )
    if ("older" in text and "version" in text) or ("newer" in text and "version" in text):
        return StoreError(f"{path} was written by an incompatible DuckDB version: {text.splitlines()[0]}")
    first = text.strip().splitlines()[0] if text.strip() else type(exc).__name__
    return StoreError(
        f"cannot open {path}: the file is corrupt or unreadable ({first})",
        "restoring a backup (*.bak-v*) or pointing --db at another file",
    )


def corruption_error(path: Path, exc: BaseException) -> StoreError | None:
    """A one-line error for a damaged block met while querying (not at open), else None."""
    text = str(exc).strip()
    if "Corrupt database file" not in text:
        return None
    return StoreError(
        f"{path} is corrupt ({text.splitlines()[0]})",
        "restoring a backup (*.bak-v*) or pointing --db at another file",
    )


def connect(
    path: Path, *, read_only: bool, busy_timeout_s: float = DEFAULT_BUSY_TIMEOUT_S
) -> duckdb.DuckDBPyConnection:
    """Open ``path``, retrying while another process holds the lock."""
    deadline = time.monotonic() + busy_timeout_s
    delay = 0.005
    while True:
        try:
            return duckdb.connect(str(path), read_only=read_only)
        except duckdb.Error as exc:
            if not is_lock_error(exc):
                raise _classify(path, exc) from exc
            if time.monotonic() >= deadline:
                raise DatabaseBusyError(
                    f"{path} stayed locked by another process for {busy_timeout_s:.0f}s",
                    "again when the other rlmine command has finished (or raise busy_timeout_s in Python)",
                ) from exc
        time.sleep(delay * (0.5 + random.random()))
        delay = min(delay * 2, 0.25)


_WRITE_LOCKS: dict[str, threading.RLock] = {}
_WRITE_LOCKS_GUARD = threading.Lock()


def write_lock(path: Path) -> threading.RLock:
    """One lock per database file for this process's writers (the spool flusher, slot claims):
    the Python client fails intermittently when two threads open write connections to one
    file at once (``python_arrow_scan does not exist``), and DuckDB serialises writers anyway."""
    key = str(Path(path).resolve())
    with _WRITE_LOCKS_GUARD:
        return _WRITE_LOCKS.setdefault(key, threading.RLock())
