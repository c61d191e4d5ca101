"""Pieces every page shares: the page guard, empty states, refresh controls, small widgets.

No page ever shows a Python traceback: :func:`run_page` turns rlmine's domain
errors into their one-line message and anything unexpected into a friendly
line, with the traceback in an expander only when ``RLMINE_DEBUG`` is set (it
always goes to the server log).
"""

from __future__ import annotations

import logging
import os
import time
import traceback
from collections.abc import Callable, Hashable, Mapping
from typing import Any, Literal

import pandas as pd
import streamlit as st

from dashboard import data
from rlmine.errors import DatabaseBusyError, RlmineError

log = logging.getLogger(__name__)

Record = Mapping[Hashable, Any]  # one DataFrame row, as DataFrame.to_dict("records") gives it

# Page sources, relative to app.py (st.page_link / st.switch_page take these).
OVERVIEW = "views/overview.py"
RUNS = "views/runs.py"
RUN_VIEWER = "views/run_viewer.py"
COMPARE = "views/compare.py"
TACTICS = "views/tactics.py"
FLOWS = "views/flows.py"
AGENTS = "views/agents.py"

AUTO_REFRESH_KEY = "rlmine_auto_refresh"
INTERVAL_KEY = "rlmine_auto_refresh_s"
LAST_FULL_RUN_KEY = "rlmine_last_full_run"
AUTO_REFRESH_CHOICES = (5, 10, 30, 60)

GET_DATA_HINT = (
    "Record runs with `rlmine demo` (offline, simulator) or `rlmine record`, or bring existing traces "
    "with `rlmine import ...`, then press **Refresh**."
)


def debug_enabled() -> bool:
    return bool(os.environ.get("RLMINE_DEBUG"))


def run_page(title: str, body: Callable[[], None]) -> None:
    """Render a page titled ``title``; failures become one friendly line, never a traceback."""
    st.title(title)
    try:
        body()
    except DatabaseBusyError as exc:
        st.warning(f"The database is busy: {exc.one_line()}. Press Refresh in a moment.")
    except RlmineError as exc:
        st.error(exc.one_line())
    except Exception as exc:  # the page guard: anything else is our bug, said in one line
        log.exception("dashboard page %r failed", title)
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        st.error(
            f"This page could not be shown ({type(exc).__name__}: {first}). Press Refresh to try again; "
            "start the dashboard with RLMINE_DEBUG=1 to see details."
        )
        if debug_enabled():
            with st.expander("Details (RLMINE_DEBUG)"):
                st.code(traceback.format_exc(), language="text")


def show_state(page: data.PageData) -> bool:
    """Say why there is nothing to show (and how to get data); True when the page can render."""
    path = data.db_path()
    if page.state == data.MISSING:
        st.info(
            f"No database at `{path}` yet. {GET_DATA_HINT} "
            "To look at another file, start the dashboard with `rlmine dashboard --db PATH`."
        )
        return False
    if page.state == data.UNINITIALIZED:
        st.info(f"`{path}` has no rlmine tables yet. {GET_DATA_HINT}")
        return False
    if page.state == data.TOO_NEW:
        st.error(f"`{path}` was written by a newer rlmine ({page.note}): upgrade rlmine to read it.")
        return False
    if page.note:
        st.caption(f"Note: {page.note}.")
    return True


def no_runs() -> None:
    st.info(f"No runs in `{data.db_path()}` yet. {GET_DATA_HINT}")


def freshness(page: data.PageData) -> None:
    st.caption(f"Read at {page.loaded_at:%H:%M:%S} (results are reused for up to {data.CACHE_TTL_S:g} s).")


def sidebar() -> None:
    """The database in use, Refresh, and the auto-refresh toggle (shared by every page)."""
    with st.sidebar:
        st.caption(f"Database: `{data.db_path()}`")
        st.button(
            "Refresh", on_click=data.refresh, help="Read the database again now.", icon=":material/refresh:"
        )
        auto = st.toggle("Auto-refresh", key=AUTO_REFRESH_KEY, help="Re-read the database every few seconds.")
        if auto:
            interval = st.selectbox(
                "Every", AUTO_REFRESH_CHOICES, key=INTERVAL_KEY, format_func=lambda s: f"{s} seconds"
            )
            _auto_refresh(float(interval))


def _auto_refresh(interval_s: float) -> None:
    """Rerun the whole app every ``interval_s`` seconds with fresh data.

    A fragment with ``run_every`` ticks on its own; when a tick finds the last
    full run older than the interval it forces a fresh read and a full rerun.
    """
    st.session_state[LAST_FULL_RUN_KEY] = time.monotonic()

    @st.fragment(run_every=interval_s)
    def _tick() -> None:
        if time.monotonic() - float(st.session_state.get(LAST_FULL_RUN_KEY, 0.0)) >= 0.9 * interval_s:
            data.refresh()
            st.rerun()

    _tick()


def kind_badges(is_simulator: bool, is_imported: bool) -> None:
    """Mark simulator and imported runs wherever a run is shown on its own."""
    if is_simulator:
        st.badge("simulator run (synthetic, offline)", icon=":material/smart_toy:", color="violet")
    if is_imported:
        st.badge("imported run", icon=":material/input:", color="orange")


def missing(value: object) -> bool:
    try:
        return bool(pd.isna(value))  # type: ignore[call-overload]
    except (TypeError, ValueError):
        return False


def fmt(value: object, spec: str = "", none: str = "–") -> str:
    if missing(value):
        return none
    try:
        return format(value, spec)
    except (TypeError, ValueError):
        return str(value)


def verdict(correct: object) -> str:
    if missing(correct):
        return "not judged"
    return "correct" if bool(correct) else "wrong"


def clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[:limit] + f"\n… [{len(text) - limit:,} more characters]"


def long_text(text: str, *, limit: int, language: str = "text", label: str = "output") -> None:
    """Show ``text`` in a code block, cut at ``limit`` characters with the rest in an expander.

    Blocks of more than :data:`SCROLL_LINES` lines scroll inside a fixed height.
    """
    shown = text if len(text) <= limit else clip(text, limit)
    st.code(shown, language=language, wrap_lines=True, height=_height(shown))
    if shown is not text:
        with st.expander(f"Show the whole {label} ({len(text):,} characters)"):
            st.code(text, language=language, wrap_lines=True, height=_height(text))


SCROLL_LINES = 25


def _height(text: str) -> int | Literal["content"]:
    return 480 if text.count("\n") > SCROLL_LINES else "content"
