"""One write transaction kept open across several groups of parsed files, for a bounded time.

Every commit that closes the connection makes DuckDB checkpoint: it rewrites the
tables' newest, partly filled row groups and their indexes. Committing each
group of ~1,000 runs that way spent more CPU than inserting them (10,000 rlms
runs: 3.1 s of writes, 1.5 s of them in checkpoints); one transaction over
several groups pays it once (1.4 s). The price is that readers in other
processes (the dashboard) wait while the transaction is open, so it is held for
at most ``hold_s`` seconds (see docs/decisions/0005).

A failed insert aborts the whole transaction; the caller learns which files
were in it and imports them again, file by file, from their sources.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from contextlib import ExitStack, suppress
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Generic, TypeVar

import duckdb
import pyarrow as pa

from rlmine.store._replacing import limit_threads, replace_run_tables

if TYPE_CHECKING:
    from rlmine.store import Store

F = TypeVar("F")  # what the caller tracks per written file (handed back on commit or abort)

DEFAULT_HOLD_S = 2.0


@dataclass(slots=True)
class HeldWriter(Generic[F]):
    """Inserts groups into one open transaction; commits when asked, or when held ``hold_s``.

    Each group comes with the caller's records of the files it holds (any type) and
    their run ids; :meth:`commit` and :meth:`abort` hand the records back.
    """

    store: Store
    db_threads: int
    max_runs: int = 4000  # and at most this many runs: the open transaction's data is held in memory
    hold_s: float = field(default_factory=lambda: DEFAULT_HOLD_S)
    files: list[F] = field(default_factory=list)  # written, not yet committed
    ids: set[str] = field(default_factory=set)
    _stack: ExitStack | None = None
    _con: duckdb.DuckDBPyConnection | None = None
    _opened: float = 0.0

    def insert(self, tables: dict[str, pa.Table], files: list[F], run_ids: Iterable[str]) -> None:
        """Insert a group's rows (existing runs with the same ids replaced); raises if it fails."""
        if self._con is None:
            stack = ExitStack()
            con = stack.enter_context(self.store.writer())
            self._stack, self._con, self._opened = stack, con, time.monotonic()
            # The parsing workers keep their cores busy: DuckDB threads fighting them for
            # those cores cost CPU (twice the insert's, with 2 threads on 2 cores) and gain nothing.
            limit_threads(con, self.db_threads)
        self.files.extend(files)
        self.ids.update(run_ids)
        replace_run_tables(self._con, tables, upsert=False)

    @property
    def due(self) -> bool:
        """Held long enough (commit now, so readers get their turn) or big enough."""
        return self._con is not None and (
            time.monotonic() - self._opened >= self.hold_s or len(self.ids) >= self.max_runs
        )

    def commit(self) -> list[F]:
        """Commit and close; the files now stored. Raises if the commit fails (nothing is stored)."""
        stack, files = self._release()
        if stack is not None:
            stack.close()  # the writer's COMMIT, then the connection's close (its checkpoint)
        return files

    def abort(self, exc: BaseException) -> list[F]:
        """Roll back and close; the files that were in the transaction (none of them stored)."""
        stack, files = self._release()
        if stack is not None:
            # The writer's ROLLBACK; a connection too broken for it (the store may re-raise
            # that as its own error) is closed all the same.
            with suppress(Exception):
                stack.__exit__(type(exc), exc, exc.__traceback__)
        return files

    def _release(self) -> tuple[ExitStack | None, list[F]]:
        stack, files = self._stack, self.files
        self._stack, self._con, self.files, self.ids = None, None, [], set()
        return stack, files
