"""The dashboard's pages as data: each page's frames read under one short read-only connection.

DuckDB lets no other process open a file while a writer holds it, and a writer
cannot open it while we hold it. So the dashboard never keeps a connection: each
page names a loader in :data:`LOADERS`; :func:`load_page` opens
``store.reader()`` (which retries while the recorder holds the lock), runs all
the loader's query functions, and closes the connection at once. Caching and the
Refresh button live in the dashboard (:mod:`dashboard.data`); this module never
writes, migrates or recovers spools: it builds a plain :class:`Store` handle
instead of :meth:`Store.open`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import duckdb
import pandas as pd

from rlmine.errors import NotFoundError
from rlmine.store import _dashboard_agents as aq
from rlmine.store import _dashboard_mining as mining_data
from rlmine.store import _dashboard_queries as q
from rlmine.store import _dashboard_runs as rq
from rlmine.store._migrations import LATEST_VERSION, current_version
from rlmine.store._queries import resolve_run_id

if TYPE_CHECKING:
    pass

# A recorder's flusher holds the file for milliseconds; waiting longer means something is wrong.
BUSY_TIMEOUT_S = 10.0
RECENT_RUNS = 300  # runs offered in pickers (run viewer, compare)
# The dashboard reads the core trace tables of migration 1; later migrations only add.
REQUIRED_VERSION = 1

Frames = dict[str, pd.DataFrame]
Loader = Callable[..., Frames]


class PageState:
    """Database states a page can be asked to show (the values of :attr:`PageData.state`)."""

    MISSING = "missing"
    UNINITIALIZED = "uninitialized"
    TOO_NEW = "too_new"
    READY = "ready"


@dataclass(frozen=True)
class PageData:
    """What a loader returned, or why there is nothing to show."""

    state: str
    frames: Frames = field(default_factory=dict)
    note: str | None = None  # a remark on the database (why it is unreadable, or that it is old)
    loaded_at: datetime = field(default_factory=datetime.now)

    def __getitem__(self, name: str) -> pd.DataFrame:
        return self.frames[name]


def overview_frames(con: duckdb.DuckDBPyConnection) -> Frames:
    return {
        "counts": q.overview_counts(con),
        "success": q.success_by_task_model(con),
        "success_models": q.success_by_model(con),
        "distribution": q.run_distribution(con),
        "usage": q.usage_over_time(con),
        "budget": q.budget_usage(con),
        "budget_summary": q.budget_summary(con),
        "batches": q.recent_batches(con),
    }


def runs_frames(con: duckdb.DuckDBPyConnection, flt: q.RunFilter, search: str | None = None) -> Frames:
    """The runs matching the filter and the search text, in one table.

    With a search, each run's link opens it at its first matching iteration, and
    the run carries where the text was found (``match``) and a ``snippet``.
    """
    return {
        "runs": q.runs_table(con, replace(flt, search=(search or "").strip())),
        "options": q.filter_options(con),
    }


def viewer_frames(con: duckdb.DuckDBPyConnection, run_id: str | None) -> Frames:
    """The run's trace; or, when no (known) run is asked for, the latest runs to pick from."""
    if run_id is None:
        return {"recent": q.runs_table(con, limit=RECENT_RUNS)}
    try:
        rid = resolve_run_id(con, run_id)
    except NotFoundError as exc:  # an unknown id or an ambiguous prefix in the URL
        return {
            "recent": q.runs_table(con, limit=RECENT_RUNS),
            "not_found": pd.DataFrame({"message": [exc.message]}),
        }
    return dict(
        summary=rq.run_summary(con, rid),
        iterations=rq.run_iterations(con, rid),
        sub_calls=rq.sub_calls(con, rid),
        timeline=rq.run_timeline(con, rid),
        time_axis=rq.run_time_axis(con, rid),
        blocks=rq.code_blocks(con, rid),
        messages=rq.root_messages(con, rid),
        children=rq.child_runs(con, rid),
        labels=rq.step_labels(con, rid),
        tactics=mining_data.tactic_steps(con, [rid]),
    )


def compare_frames(con: duckdb.DuckDBPyConnection, run_ids: Sequence[str]) -> Frames:
    """Runs to line up (ids or unique prefixes); unknown ones are listed under ``not_found``."""
    frames = {"recent": q.runs_table(con, limit=RECENT_RUNS)}
    known: list[str] = []
    problems: list[str] = []
    for rid in run_ids:
        try:
            known.append(resolve_run_id(con, rid))
        except NotFoundError as exc:
            problems.append(exc.message)
    if problems:
        frames["not_found"] = pd.DataFrame({"message": problems})
    known = list(dict.fromkeys(known))
    if known:
        frames["summary"] = rq.compare_summary(con, known)
        frames["aligned"] = rq.aligned_iterations(con, known)
        frames["tactics"] = mining_data.tactic_steps(con, known)
    return frames


def agents_frames(con: duckdb.DuckDBPyConnection, agent_id: str | None) -> Frames:
    """Agents; for the chosen one (default: the newest) its script, candidates and latest eval."""
    return aq.agent_page(con, agent_id)


LOADERS: dict[str, Loader] = {
    "overview": overview_frames,
    "runs": runs_frames,
    "run_viewer": viewer_frames,
    "compare": compare_frames,
    "tactics": mining_data.tactics_frames,
    "flows": mining_data.flows_frames,
    "agents": agents_frames,
}


def _schema_version(con: duckdb.DuckDBPyConnection) -> int:
    """Like :func:`current_version`, minus its information_schema scan (~15 ms per page load)."""
    try:
        row = con.execute("SELECT coalesce(max(version), 0) FROM schema_migrations").fetchone()
    except duckdb.CatalogException:
        return current_version(con)  # no bookkeeping table: let the store decide (0)
    return int(row[0]) if row else 0


def load_page(db: Path, page: str, args: tuple[Any, ...] = ()) -> PageData:
    """Run ``page``'s loader (a key of :data:`LOADERS`) under one read-only connection (uncached)."""
    from rlmine.store import Store  # the face's own class: a top-level import would be circular

    loader = LOADERS[page]
    if not db.is_file():
        return PageData(PageState.MISSING)
    with Store(db, busy_timeout_s=BUSY_TIMEOUT_S).reader() as con:
        version = _schema_version(con)
        if version < REQUIRED_VERSION:
            return PageData(PageState.UNINITIALIZED)
        if version > LATEST_VERSION:
            return PageData(
                PageState.TOO_NEW,
                note=f"schema version {version}, this dashboard reads up to {LATEST_VERSION}",
            )
        frames = loader(con, *args)
    note = None
    if version < LATEST_VERSION:  # readable as is; the dashboard never migrates (it never writes)
        note = f"schema version {version} (current: {LATEST_VERSION}): `rlmine db info --db {db}` upgrades it"
    return PageData(PageState.READY, frames, note=note)
