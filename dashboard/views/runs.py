"""Runs: a filterable, sortable table of runs, full-text search, and the way into a run.

Filtering and sorting happen in SQL (:func:`dashboard.queries.runs_table`);
selecting rows enables "Open in run viewer" and "Compare"; the run column is
also a plain link to ``run_viewer?run=ID``.
"""

from __future__ import annotations

import pandas as pd
import streamlit as st

from dashboard import components as ui
from dashboard import data
from dashboard.queries import CORRECT_CHOICES, RUN_SORT_COLUMNS, RunFilter

TABLE_COLUMNS = (
    "link",
    "task",
    "model",
    "engine",
    "status",
    "correct",
    "iterations",
    "llm_calls",
    "tokens",
    "cost",
    "wall_s",
    "started_at",
    "batch",
)
COLUMN_CONFIG = {
    "link": st.column_config.LinkColumn("run", display_text=r"run=(.*)$", help="Open in the run viewer"),
    "llm_calls": st.column_config.NumberColumn("LLM calls"),
    "tokens": st.column_config.NumberColumn("tokens", format="localized"),
    "cost": st.column_config.NumberColumn("cost", format="$%.4f"),
    "wall_s": st.column_config.NumberColumn("time (s)", format="%.1f"),
    "started_at": st.column_config.DatetimeColumn("started", format="YYYY-MM-DD HH:mm:ss"),
}


def _options(options: pd.DataFrame, name: str) -> list[str]:
    return [str(v) for v in options.loc[options["field"] == name, "value"]]


def _filters(options: pd.DataFrame) -> None:
    """The filter and sort widgets; :func:`_current_filter` reads their values."""
    with st.expander("Filter and sort", expanded=False, icon=":material/filter_list:"):
        c = st.columns(4)
        c[0].multiselect("Task", _options(options, "task"), key="f_task")
        c[1].multiselect("Model", _options(options, "model"), key="f_model")
        c[2].multiselect("Engine", _options(options, "engine"), key="f_engine")
        c[3].multiselect("Status", _options(options, "status"), key="f_status")
        c = st.columns(4)
        c[0].multiselect(
            "Kind",
            _options(options, "kind"),
            key="f_kind",
            help="recorded, simulator (root model sim) or imported",
        )
        c[1].multiselect("Correct", list(CORRECT_CHOICES), key="f_correct")
        c[2].multiselect("Batch", _options(options, "batch"), key="f_batch")
        c[3].selectbox("Sort by", RUN_SORT_COLUMNS, key="f_sort")
        c[3].toggle("Descending", value=True, key="f_desc")


def _search_results(results: pd.DataFrame, text: str) -> None:
    if results.empty:
        st.info(f"No iteration's code, reasoning or output contains “{text}”.")
        return
    st.caption(f"{len(results)} run(s) contain “{text}” (first matching iteration shown).")
    st.dataframe(
        results[["link", "iteration", "field", "matches", "snippet", "task", "model", "status"]],
        hide_index=True,
        column_config={
            "link": st.column_config.LinkColumn("run", display_text=r"run=([^&]*)", help="Open at the match"),
            "matches": st.column_config.NumberColumn("matching iterations"),
            "snippet": st.column_config.TextColumn("snippet", width="large"),
        },
        key="search_table",
    )


def _actions(runs: pd.DataFrame, selected: list[int]) -> None:
    chosen = [str(runs.iloc[i]["id"]) for i in selected if 0 <= i < len(runs)]
    left, right, _ = st.columns([1, 1, 3])
    if left.button("Open in run viewer", disabled=not chosen, type="primary", icon=":material/slideshow:"):
        st.switch_page(ui.RUN_VIEWER, query_params={"run": chosen[0]})
    if right.button(f"Compare selected ({len(chosen)})", disabled=len(chosen) < 2, icon=":material/compare:"):
        st.switch_page(ui.COMPARE, query_params={"runs": ",".join(chosen[:4])})
    if not chosen:
        st.caption("Select rows (the box at the left of a row) to open or compare runs, or click a run id.")


def render() -> None:
    search = st.text_input(
        "Search code, reasoning and outputs",
        key="search",
        placeholder="e.g. llm_query_batched, ZeroDivisionError, Counter(",
    )
    # Widget values are in session state before the widgets render, so one read serves this run.
    page = data.fetch("runs", _current_filter(), search.strip() or None)
    if not ui.show_state(page):
        return
    options = page["options"]
    _filters(options)
    if options.empty:
        ui.no_runs()
        return
    if "search" in page.frames:
        _search_results(page["search"], search.strip())
    runs = page["runs"]
    total = int(runs["total"].iloc[0]) if len(runs) else 0
    ui.freshness(page)
    st.caption(f"Showing {len(runs):,} of {total:,} runs.")
    if runs.empty:
        st.info("No run matches these filters.")
        return
    event = st.dataframe(
        runs,
        hide_index=True,
        column_order=TABLE_COLUMNS,
        column_config=COLUMN_CONFIG,
        on_select="rerun",
        selection_mode="multi-row",
        key="runs_table",
    )
    _actions(runs, list(event.selection.rows))


def _current_filter() -> RunFilter:
    """The filter the widgets hold (from session state, so it is known before they render)."""
    s = st.session_state
    return RunFilter(
        tasks=tuple(s.get("f_task", ())),
        models=tuple(s.get("f_model", ())),
        engines=tuple(s.get("f_engine", ())),
        statuses=tuple(s.get("f_status", ())),
        kinds=tuple(s.get("f_kind", ())),
        correct=tuple(s.get("f_correct", ())),
        batches=tuple(s.get("f_batch", ())),
        sort_by=str(s.get("f_sort", "started_at")),
        descending=bool(s.get("f_desc", True)),
    )


ui.run_page("Runs", render)
