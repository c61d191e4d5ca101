"""Runs: find the runs worth reading — filter, search, sort — and open them.

Filtering, search and sorting happen in SQL (:func:`rlmine.store`'s ``runs_table``):
the search narrows the one table (each run then opens at its first matching
iteration) instead of adding a second one. Filters, search and sort live in the
URL (``runs?status=error&errors=code+errors&q=KeyError``), so a link or a reload
shows the same table. Verdict and status read as coloured badges; imported runs
without a task are told apart by their question and answer previews. Selecting
rows enables "Open in run viewer" and "Compare"; the run column is also a link.
"""

from __future__ import annotations

import pandas as pd
import streamlit as st

from dashboard import components as ui
from dashboard import data
from rlmine.store import CORRECT_CHOICES, ERROR_CHOICES, RUN_SORT_COLUMNS, VERDICT_LABELS, RunFilter

TABLE_COLUMNS = (
    "link",
    "verdict",
    "status_badge",
    "code_errors",
    "question_preview",
    "answer_preview",
    "task",
    "model",
    "engine",
    "iterations",
    "llm_calls",
    "tokens",
    "cost",
    "wall_s",
    "started_at",
    "batch",
)
COLUMN_CONFIG = {
    "link": st.column_config.LinkColumn("run", display_text=r"run=([^&]*)", help="Open in the run viewer"),
    "verdict": st.column_config.TextColumn(
        "verdict", help="correct, wrong, or not judged (no expected answer)"
    ),
    "status_badge": st.column_config.TextColumn("status"),
    "code_errors": st.column_config.NumberColumn("code errors", help="Iterations whose code raised"),
    "question_preview": st.column_config.TextColumn("question", width="medium"),
    "answer_preview": st.column_config.TextColumn("answer"),
    "match": st.column_config.TextColumn("match", help="Where the search text was found"),
    "snippet": st.column_config.TextColumn("snippet", width="large"),
    "llm_calls": st.column_config.NumberColumn("LLM calls"),
    "tokens": st.column_config.NumberColumn("tokens", format="localized"),
    "cost": st.column_config.NumberColumn("cost", format="$%.4f"),
    "wall_s": st.column_config.NumberColumn("time (s)", format="%.1f"),
    "started_at": st.column_config.DatetimeColumn("started", format="YYYY-MM-DD HH:mm:ss"),
}
ROW_PX, MAX_ROWS_SHOWN = 35, 25  # the table grows with its rows up to about a screen, then scrolls
# Badge colours (background, text) of the verdict and status cells.
BADGES = {
    "correct": ("#d3f9d8", "#1b6e2d"),
    "wrong": ("#ffe3e3", "#a61e1e"),
    "not judged": ("#f1f3f5", "#495057"),
    "submitted": ("#d3f9d8", "#1b6e2d"),
    "running": ("#d0ebff", "#1864ab"),
    "error": ("#ffe3e3", "#a61e1e"),
    "budget exhausted": ("#fff3bf", "#8f5b00"),
    "cancelled": ("#e9ecef", "#343a40"),
}


def _badge(value: object) -> str:
    colors = BADGES.get(str(value))
    return f"background-color: {colors[0]}; color: {colors[1]}" if colors else ""


def _errors_style(value: object) -> str:
    return (
        f"color: {BADGES['error'][1]}; font-weight: bold"
        if isinstance(value, int | float) and value > 0
        else ""
    )


# Filter widgets: session-state key → (URL parameter, options field or fixed choices).
MULTI_FILTERS = {
    "f_task": "task",
    "f_model": "model",
    "f_engine": "engine",
    "f_status": "status",
    "f_kind": "kind",
    "f_correct": "correct",
    "f_errors": "errors",
    "f_batch": "batch",
}
FIXED_CHOICES = {"f_correct": CORRECT_CHOICES, "f_errors": ERROR_CHOICES}


def _options(options: pd.DataFrame, key: str) -> list[str]:
    fixed = FIXED_CHOICES.get(key)
    if fixed is not None:
        return list(fixed)
    return [str(v) for v in options.loc[options["field"] == MULTI_FILTERS[key], "value"]]


def load_url_state() -> None:
    """Fill the filter, sort and search widgets from the URL, where this session has not set them."""
    s, params = st.session_state, st.query_params
    for key, name in MULTI_FILTERS.items():
        if key not in s and name in params:
            s[key] = params.get_all(name)
    if "f_sort" not in s and params.get("sort") in RUN_SORT_COLUMNS:
        s["f_sort"] = params["sort"]
    if "f_desc" not in s and "asc" in params:
        s["f_desc"] = False
    if "search" not in s and "q" in params:
        s["search"] = params["q"]


def save_url_state() -> None:
    """Put the widgets' current values in the URL (a reload or a shared link shows the same table)."""
    s = st.session_state
    wanted: dict[str, list[str] | str] = {}
    for key, name in MULTI_FILTERS.items():
        values = [str(v) for v in s.get(key, ())]
        if values:
            wanted[name] = values
    if s.get("f_sort", "started_at") != "started_at":
        wanted["sort"] = str(s["f_sort"])
    if not s.get("f_desc", True):
        wanted["asc"] = "1"
    if str(s.get("search", "")).strip():
        wanted["q"] = str(s["search"]).strip()
    current = {k: st.query_params.get_all(k) for k in st.query_params}
    if current != {k: v if isinstance(v, list) else [v] for k, v in wanted.items()}:
        st.query_params.from_dict(wanted)


def _drop_unknown_values(options: pd.DataFrame) -> bool:
    """Drop filter values (from a URL) that this database does not have; True if any was dropped."""
    s, dropped = st.session_state, False
    for key in MULTI_FILTERS:
        if key in s:
            allowed = set(_options(options, key))
            kept = [v for v in s[key] if v in allowed]
            dropped = dropped or len(kept) != len(s[key])
            s[key] = kept
    return dropped


def _filters(options: pd.DataFrame) -> None:
    """The filter and sort widgets; :func:`_current_filter` reads their values."""
    s = st.session_state
    active = sum(bool(s.get(k)) for k in MULTI_FILTERS)
    label = "Filter and sort" + (f" ({active} active)" if active else "")
    with st.expander(label, expanded=bool(active), icon=":material/filter_list:"):
        c = st.columns(4)
        c[0].multiselect(
            "Verdict",
            _options(options, "f_correct"),
            key="f_correct",
            format_func=lambda v: VERDICT_LABELS.get(v, v),
        )
        c[1].multiselect("Status", _options(options, "f_status"), key="f_status")
        c[2].multiselect(
            "Code errors",
            _options(options, "f_errors"),
            key="f_errors",
            help="Runs in which some iteration's code raised (a reply without code is not a code error)",
        )
        c[3].multiselect(
            "Kind",
            _options(options, "f_kind"),
            key="f_kind",
            help="recorded, simulator (root model sim) or imported",
        )
        c = st.columns(4)
        c[0].multiselect("Task", _options(options, "f_task"), key="f_task")
        c[1].multiselect("Model", _options(options, "f_model"), key="f_model")
        c[2].multiselect("Engine", _options(options, "f_engine"), key="f_engine")
        c[3].multiselect("Batch", _options(options, "f_batch"), key="f_batch")
        c = st.columns(4)
        c[0].selectbox("Sort by", RUN_SORT_COLUMNS, key="f_sort")
        s.setdefault("f_desc", True)  # a default through session state: the URL may have set it
        c[1].toggle("Descending", key="f_desc")


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
    load_url_state()
    search = st.text_input(
        "Search code, reasoning and outputs",
        key="search",
        placeholder="e.g. llm_query_batched, ZeroDivisionError, Counter(",
        help="Narrows the table to runs whose iterations contain the text; each opens at its first match.",
    )
    text = search.strip()
    # Widget values are in session state before the widgets render, so one read serves this run.
    page = data.fetch("runs", _current_filter(), text or None)
    if not ui.show_state(page):
        return
    options = page["options"]
    if _drop_unknown_values(options):
        st.rerun()  # the table was read with them: read it again without
    _filters(options)
    save_url_state()
    if options.empty:
        ui.no_runs()
        return
    runs = page["runs"]
    total = int(runs["total"].iloc[0]) if len(runs) else 0
    ui.freshness(page)
    found = f" containing “{text}”" if text else ""
    st.caption(f"Showing {len(runs):,} of {total:,} runs{found}.")
    if runs.empty:
        st.info(
            f"No iteration's code, reasoning or output contains “{text}” in the runs these filters keep."
            if text
            else "No run matches these filters."
        )
        return
    columns = list(TABLE_COLUMNS)
    if text:
        columns[1:1] = ["match", "snippet"]
    styled = runs.style.map(_badge, subset=["verdict", "status_badge"]).map(
        _errors_style, subset=["code_errors"]
    )
    event = st.dataframe(
        styled,
        hide_index=True,
        column_order=columns,
        column_config=COLUMN_CONFIG,
        on_select="rerun",
        selection_mode="multi-row",
        key="runs_table",
        height=ROW_PX * (min(len(runs), MAX_ROWS_SHOWN) + 1) + 3,
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
        correct=tuple(v for v in s.get("f_correct", ()) if v in CORRECT_CHOICES),
        errors=tuple(v for v in s.get("f_errors", ()) if v in ERROR_CHOICES),
        batches=tuple(s.get("f_batch", ())),
        sort_by=str(s.get("f_sort", "started_at")) if s.get("f_sort") in RUN_SORT_COLUMNS else "started_at",
        descending=bool(s.get("f_desc", True)),
    )


ui.run_page("Runs", render)
