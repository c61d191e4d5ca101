"""The trace store: the only code that writes SQL against the rlmine database.

This module is the store's one face: every other package imports only the names
in ``__all__`` (``tests/test_store_face.py`` pins them and fails on any import of
``duckdb`` or of a private ``rlmine.store._*`` module outside the store).

Open with :meth:`Store.open`; read with :meth:`Store.reader`, write with
:meth:`Store.writer` (both short-held, and yielding a :data:`Connection` to pass
to the functions here; no caller writes SQL). Recording goes through a
:class:`RunRecorder` (trace values in; each finished iteration durable at once
while the file stays open to readers); importers store rows through
:func:`replace_runs` / :class:`HeldWriter`.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import duckdb

from rlmine import __version__
from rlmine.config import DEFAULT_DB
from rlmine.errors import SchemaTooNewError, StoreError
from rlmine.store._agents import (
    AgentRecord,
    CandidateRecord,
    EvalRow,
    eval_rows,
    get_agent,
    latest_agent_for_task,
    latest_build,
    list_agents,
    list_candidates,
    list_evals,
    resolve_agent_id,
    save_build,
    save_eval,
)
from rlmine.store._batches import BatchSummary, SlotRun, batch_runs, batch_summary, finished_batch_runs
from rlmine.store._catalog import InstanceRow, find_task_id, upsert_batch, upsert_instances, upsert_task
from rlmine.store._cells import (
    ReplCell,
    RunSummary,
    get_run_summary,
    read_cells,
    run_costs,
    runs_on_instances,
    sub_call_responses,
    successful_runs,
    tactic_sequences,
    task_names,
    task_row,
)
from rlmine.store._claims import claim_slots, release_claims
from rlmine.store._connection import DEFAULT_BUSY_TIMEOUT_S, connect, corruption_error, write_lock
from rlmine.store._dashboard_pages import PageData, PageState, load_page
from rlmine.store._dashboard_queries import (
    CORRECT_CHOICES,
    ERROR_CHOICES,
    RUN_SORT_COLUMNS,
    VERDICT_LABELS,
    RunFilter,
)
from rlmine.store._export import export_parquet
from rlmine.store._held_writer import HeldWriter
from rlmine.store._interchange import (
    Catalog,
    RecordError,
    catalog_from_record,
    check_header,
    export_jsonl,
    iter_traces,
    read_instances,
    read_task,
    trace_from_record,
)
from rlmine.store._interchange_save import save_records
from rlmine.store._migrations import LATEST_VERSION, apply_migrations, current_version, foreign_tables
from rlmine.store._mining import (
    cached_embeddings,
    code_cells,
    directly_follows,
    get_tactic,
    latest_mining,
    list_minings,
    list_tactics,
    next_tactic_number,
    previous_tactics,
    prune_minings,
    run_sequences,
    run_steps,
    save_embeddings,
    save_mining,
    step_vectors,
    tactic_members,
    task_id_for,
    top_patterns,
)
from rlmine.store._owners import current_owner, owner_alive
from rlmine.store._queries import (
    STATUS_FILTERS,
    count_runs,
    get_trace,
    list_runs,
    resolve_run_id,
    stale_flags,
    table_counts,
)
from rlmine.store._recording import RunRecorder
from rlmine.store._replacing import limit_threads, replace_run_tables, replace_runs
from rlmine.store._rows import (
    Row,
    TraceRows,
    dumps,
    prompt_columns,
    run_from_row,
    run_row,
    to_arrow,
    trace_rows,
)
from rlmine.store._schema import SCHEMAS
from rlmine.store._tactic_edits import (
    EDIT_KINDS,
    add_tactic_edit,
    delete_tactic_edit,
    rename_tactic,
    tactic_edits,
)
from rlmine.store._writes import TABLE_ORDER, delete_runs, merge_rows, save_runs, save_traces
from rlmine.trace import Trace

Connection = duckdb.DuckDBPyConnection  # what reader()/writer() yield: pass it to the functions here
DatabaseError = duckdb.Error  # what a failed query raises (the face's callers never import duckdb)

__all__ = [
    "CORRECT_CHOICES",
    "EDIT_KINDS",
    "ERROR_CHOICES",
    "LATEST_VERSION",
    "RUN_SORT_COLUMNS",
    "SCHEMAS",
    "STATUS_FILTERS",
    "TABLE_ORDER",
    "VERDICT_LABELS",
    "AgentRecord",
    "BatchSummary",
    "CandidateRecord",
    "Catalog",
    "Connection",
    "DatabaseError",
    "EvalRow",
    "HeldWriter",
    "InstanceRow",
    "PageData",
    "PageState",
    "RecordError",
    "ReplCell",
    "Row",
    "RunFilter",
    "RunRecorder",
    "RunSummary",
    "SlotRun",
    "Store",
    "TraceRows",
    "add_tactic_edit",
    "batch_runs",
    "batch_summary",
    "cached_embeddings",
    "catalog_from_record",
    "check_header",
    "claim_slots",
    "code_cells",
    "count_runs",
    "current_owner",
    "current_version",
    "delete_runs",
    "delete_tactic_edit",
    "directly_follows",
    "dumps",
    "eval_rows",
    "export_jsonl",
    "export_parquet",
    "find_task_id",
    "finished_batch_runs",
    "get_agent",
    "get_run_summary",
    "get_tactic",
    "get_trace",
    "iter_traces",
    "latest_agent_for_task",
    "latest_build",
    "latest_mining",
    "limit_threads",
    "list_agents",
    "list_candidates",
    "list_evals",
    "list_minings",
    "list_runs",
    "list_tactics",
    "load_page",
    "merge_rows",
    "next_tactic_number",
    "owner_alive",
    "previous_tactics",
    "prompt_columns",
    "prune_minings",
    "read_cells",
    "read_instances",
    "read_task",
    "release_claims",
    "rename_tactic",
    "replace_run_tables",
    "replace_runs",
    "resolve_agent_id",
    "resolve_run_id",
    "run_costs",
    "run_from_row",
    "run_row",
    "run_sequences",
    "run_steps",
    "runs_on_instances",
    "save_build",
    "save_embeddings",
    "save_eval",
    "save_mining",
    "save_records",
    "save_runs",
    "save_traces",
    "stale_flags",
    "step_vectors",
    "sub_call_responses",
    "successful_runs",
    "table_counts",
    "tactic_edits",
    "tactic_members",
    "tactic_sequences",
    "task_id_for",
    "task_names",
    "task_row",
    "to_arrow",
    "top_patterns",
    "trace_from_record",
    "trace_rows",
    "upsert_batch",
    "upsert_instances",
    "upsert_task",
]

_DUCKDB_MAGIC = b"DUCK"


def _check_file(path: Path) -> None:
    if path.is_dir():
        raise StoreError(f"{path} is a directory, not a database file", "--db path/to/file.duckdb")
    try:
        with open(path, "rb") as handle:
            header = handle.read(16)
    except OSError as exc:
        raise StoreError(f"cannot read {path}: {exc.strerror}", "checking the file's permissions") from exc
    if len(header) == 0:
        raise StoreError(f"{path} is empty, not a DuckDB database", "deleting it or another --db path")
    if header[8:12] != _DUCKDB_MAGIC:
        raise StoreError(
            f"{path} is not a DuckDB database", "another --db path (rlmine databases end in .duckdb)"
        )


class Store:
    """A handle on one database file. Cheap: holds a path, not a connection."""

    def __init__(self, path: Path, *, busy_timeout_s: float = DEFAULT_BUSY_TIMEOUT_S) -> None:
        self.path = Path(path)
        self.busy_timeout_s = busy_timeout_s

    # -- opening -----------------------------------------------------------------
    @classmethod
    def open(
        cls,
        path: Path | str,
        *,
        create: bool = False,
        recover: bool = True,
        read_only: bool = False,
        busy_timeout_s: float = DEFAULT_BUSY_TIMEOUT_S,
    ) -> Store:
        """Open (and with ``create`` make) a database, migrating an older schema.

        Raises :class:`StoreError` for a missing file (unless ``create``), a
        missing directory, a file that is not DuckDB, a DuckDB file of another
        application (tables but no rlmine migrations: never modified), or a corrupt
        file, and :class:`SchemaTooNewError` for a database from a newer rlmine.
        ``read_only`` writes and creates nothing: no migration (an older schema is
        refused with a hint), no spool recovery, no file.
        """
        store = cls(Path(path), busy_timeout_s=busy_timeout_s)
        p = store.path
        if not p.exists():
            if not create or read_only:
                raise StoreError(
                    f"no database at {p}",
                    "`rlmine demo`, `rlmine record` or `rlmine import` to create one, or --db PATH",
                )
            parent = p.parent
            if not parent.exists():
                if p == DEFAULT_DB:
                    parent.mkdir(parents=True, exist_ok=True)
                else:
                    raise StoreError(
                        f"directory {parent} does not exist", f"`mkdir -p {parent}` or another --db path"
                    )
        else:
            _check_file(p)
        store._ensure_schema(read_only)
        if recover and not read_only:
            from rlmine.store._spool import recover_spools

            recover_spools(store)
        return store

    def _ensure_schema(self, read_only: bool = False) -> None:
        if self.path.exists():
            with self._connect(read_only=True) as con:
                foreign = foreign_tables(con)
                version = 0 if foreign else current_version(con)
            if foreign:
                shown = ", ".join(foreign[:3]) + (f" and {len(foreign) - 3} more" if len(foreign) > 3 else "")
                raise StoreError(
                    f"{self.path} is another application's DuckDB database (tables {shown}, no rlmine schema); "
                    "rlmine leaves it untouched",
                    "another --db path, e.g. traces/rlmine.duckdb",
                )
            if read_only and version < LATEST_VERSION:
                raise StoreError(
                    f"{self.path} has schema version {version}, older than this rlmine's "
                    f"({LATEST_VERSION}), and this command only reads",
                    f"`rlmine db upgrade --db {self.path}` first (it keeps a backup copy)",
                )
            if version > LATEST_VERSION:
                raise SchemaTooNewError(
                    f"{self.path} has schema version {version}, newer than this rlmine understands ({LATEST_VERSION})",
                    "upgrading rlmine (pip install -U rlmine)",
                )
            if version == LATEST_VERSION:
                return
            if version > 0:
                backup = self.path.with_name(f"{self.path.name}.bak-v{version}")
                shutil.copy2(self.path, backup)
        with self._connect(read_only=False) as con:
            try:
                apply_migrations(con, __version__)
            except duckdb.Error as exc:
                first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
                raise StoreError(
                    f"upgrading the schema of {self.path} failed ({first}); the database is unchanged",
                    f"reporting this; the pre-upgrade copy is kept as {self.path.name}.bak-v*",
                ) from exc

    @contextmanager
    def _connect(self, *, read_only: bool) -> Iterator[duckdb.DuckDBPyConnection]:
        con = connect(self.path, read_only=read_only, busy_timeout_s=self.busy_timeout_s)
        try:
            yield con
        except duckdb.Error as exc:
            # Damage past the blocks read at open surfaces only when a query reaches it.
            damaged = corruption_error(self.path, exc)
            if damaged is not None:
                raise damaged from exc
            raise
        finally:
            con.close()

    # -- connections -------------------------------------------------------------
    @contextmanager
    def reader(self) -> Iterator[duckdb.DuckDBPyConnection]:
        """A read-only connection, held only for the ``with`` block."""
        with self._connect(read_only=True) as con:
            yield con

    @contextmanager
    def writer(self) -> Iterator[duckdb.DuckDBPyConnection]:
        """A read-write connection inside one transaction (commit on success)."""
        with write_lock(self.path), self._connect(read_only=False) as con:
            con.execute("BEGIN TRANSACTION")
            try:
                yield con
            except BaseException:
                con.execute("ROLLBACK")
                raise
            con.execute("COMMIT")

    # -- convenience -------------------------------------------------------------
    def save_traces(self, traces: Iterable[Trace]) -> dict[str, int]:
        with self.writer() as con:
            return save_traces(con, traces)

    def schema_version(self) -> int:
        with self.reader() as con:
            return current_version(con)

    def info(self) -> dict[str, Any]:
        """Path, schema version, row counts and size on disk."""
        with self.reader() as con:
            counts = table_counts(con)
            version = current_version(con)
        return {
            "path": str(self.path),
            "schema_version": version,
            "latest_schema_version": LATEST_VERSION,
            "size_bytes": self.path.stat().st_size,
            "counts": counts,
        }
