"""Widgets shared by the Tactics and Flows pages (a page script must not import another:
importing it would run that page)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pandas as pd
import streamlit as st

from dashboard import components as ui
from dashboard import data

PERCENT = st.column_config.ProgressColumn(format="percent", min_value=0.0, max_value=1.0)
MINE_HINT = (
    "Mine the recorded runs with `rlmine mine` (or `rlmine mine --task NAME`), then press **Refresh**."
)


def _mining_label(row: Mapping[Any, Any]) -> str:
    task = row.get("task") or ("all runs" if ui.missing(row.get("task_id")) else row.get("task_id"))
    return f"{task} · {row['n_tactics']} tactics · {row['n_runs']} runs · {row['id']}"


def pick_mining(minings: pd.DataFrame, key: str) -> str:
    """A select box of minings (newest first); its choice is kept in the URL (``?mining=``)."""
    rows = minings.to_dict("records")
    ids = [str(r["id"]) for r in rows]
    wanted = st.query_params.get("mining")
    index = ids.index(wanted) if wanted in ids else 0
    labels = {str(r["id"]): _mining_label(r) for r in rows}
    chosen = st.selectbox("Mining", ids, index=index, format_func=labels.__getitem__, key=key)
    st.query_params["mining"] = chosen
    return str(chosen)


def mining_page(name: str, *args: str | None) -> tuple[data.PageData, str] | None:
    """The page's data for the mining chosen in its select box (the newest by default), or
    None once the page said why there is nothing to show (loading, no database, no mining)."""
    mining = st.query_params.get("mining")
    page = data.fetch(name, mining, *args)
    if not ui.show_state(page):
        return None
    if page["minings"].empty:
        st.info(f"No mining in `{data.db_path()}` yet. {MINE_HINT}")
        return None
    chosen = pick_mining(page["minings"], f"{name}_mining")
    if chosen != page["minings"]["id"].iloc[0] and chosen != mining:
        page = data.fetch(name, chosen, *args)
    ui.freshness(page)
    return page, chosen
