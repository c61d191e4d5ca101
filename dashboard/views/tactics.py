"""Tactics: what the miner found — size, success lift, cost, an example and members, a 2-D map."""

from __future__ import annotations

import json

import plotly.express as px
import streamlit as st

from dashboard import components as ui
from dashboard import data
from dashboard.mining_widgets import PERCENT, mining_page


def _table(page: data.PageData) -> None:
    tactics = page["tactics"].copy()
    tactics["keywords"] = tactics["keywords"].map(lambda k: ", ".join(json.loads(k or "[]")[:5]))
    tactics["example"] = tactics["example"].map(lambda c: ui.clip(str(c).strip().splitlines()[0], 70))
    st.dataframe(
        tactics[
            [
                "id",
                "label",
                "size",
                "n_runs",
                "success_rate",
                "lift",
                "median_iterations",
                "median_llm_calls",
                "median_tokens",
                "keywords",
                "example",
            ]
        ],
        hide_index=True,
        column_config={
            "label": "name",
            "size": "steps",
            "n_runs": "runs",
            "success_rate": PERCENT,
            "lift": st.column_config.NumberColumn("success lift", format="%.2f"),
            "median_iterations": "median iterations",
            "median_llm_calls": "median LLM calls",
            "median_tokens": "median tokens",
        },
    )


def _edits(page: data.PageData) -> None:
    edits = page.frames.get("edits")
    if edits is None or edits.empty:
        return
    said = [
        f"merge {' + '.join(list(e['tactic_ids'])[1:])} into {e['tactic_ids'][0]}"
        if e["kind"] == "merge"
        else f"rename {e['tactic_ids'][0]} to “{e['name']}”"
        for e in edits.to_dict("records")
    ]
    st.caption(
        "Your tactic edits, applied by this mining: " + "; ".join(said) + " "
        "(`rlmine tactics edits` lists them, `rlmine tactics unedit` takes one back)."
    )


def _detail(page: data.PageData) -> None:
    if "selected" not in page.frames or page["selected"].empty:
        return
    tactic = page["selected"].to_dict("records")[0]
    st.subheader(f"{tactic['id']} · {tactic['label']}")
    cols = st.columns(4)
    cols[0].metric("Steps", ui.fmt(tactic["size"], ","))
    cols[1].metric("Runs", ui.fmt(tactic["n_runs"], ","))
    cols[2].metric("Success rate", ui.fmt(tactic["success_rate"], ".0%"))
    cols[3].metric(
        "Success lift", ui.fmt(tactic["lift"], ".2f"), help="Success rate of runs using it / the base rate."
    )
    st.caption("Example (the medoid step):")
    st.code(str(tactic["example"]), language="python")
    members = page["members"]
    st.caption(f"Members across runs ({len(members)} distinct forms shown):")
    for row in members.to_dict("records"):
        link = f"{ui.RUN_VIEWER}"
        with st.expander(
            f"run {row['run_id']} · iteration {row['iteration']} · lines {row['line_start']}–{row['line_end']}"
            f" · {ui.verdict(row['correct'])}"
        ):
            st.code(str(row["code"]), language="python")
            st.page_link(link, label="Open in the run viewer", query_params={"run": str(row["run_id"])})


def _map(page: data.PageData) -> None:
    points = page["map"]
    st.subheader("Map of steps")
    if points.empty:
        st.info("Too few distinct steps to draw a map.")
        return
    fig = px.scatter(
        points,
        x="x",
        y="y",
        color="tactic_id",
        size="n",
        hover_data={"normalized": True, "n": True},
        labels={"x": "PC 1", "y": "PC 2", "tactic_id": "tactic", "n": "steps"},
        title="Distinct steps, 2-D projection (PCA) of their embeddings; size = how often they occur",
    )
    st.plotly_chart(fig, key="tactic_map")


def _per_task(page: data.PageData) -> None:
    per_task = page["per_task"]
    if per_task.empty:
        return
    st.subheader("Frequency per task")
    fig = px.bar(
        per_task,
        x="task",
        y="size",
        color="tactic_id",
        hover_data=["label"],
        labels={"size": "steps", "tactic_id": "tactic"},
        title="Latest mining of each task",
    )
    st.plotly_chart(fig, key="per_task_chart")


def render() -> None:
    tactic = st.query_params.get("tactic")
    shown = mining_page("tactics", tactic)
    if shown is None:
        return
    page, chosen = shown
    tactics = page["tactics"]
    if tactics.empty:
        st.info("This mining found no tactic (every step was rare).")
        return
    _table(page)
    _edits(page)
    ids = [str(t) for t in tactics["id"]]
    labels = dict(zip(ids, tactics["label"], strict=True))
    picked = st.selectbox(
        "Tactic",
        ids,
        index=ids.index(tactic) if tactic in ids else 0,
        format_func=lambda t: f"{t} · {labels[t]}",
        key="tactic_pick",
    )
    if picked != tactic:
        st.query_params["tactic"] = picked
        page = data.fetch("tactics", chosen, picked)
    _detail(page)
    _map(page)
    _per_task(page)


ui.run_page("Tactics", render)
