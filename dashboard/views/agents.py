"""Agents: each generated agent's script, provenance, candidates and its eval against the RLM.

``agents?agent=ID`` picks one (default: the newest). The script is shown highlighted
and offered for download; candidates carry their validation scores or failure reason;
the latest ``rlmine eval`` of the agent is drawn as agent-vs-RLM bars per measure.
"""

from __future__ import annotations

import json

import pandas as pd
import plotly.express as px
import streamlit as st

from dashboard import components as ui
from dashboard import data

PICK_KEY = "agents_pick"
PERCENT = st.column_config.ProgressColumn(format="percent", min_value=0.0, max_value=1.0)


def eval_chart_frame(summary: dict[str, object]) -> pd.DataFrame:
    """One row per (measure, system) for the side-by-side bars."""
    rows = []
    for system in ("rlm", "agent"):
        s = summary.get(system)
        if not isinstance(s, dict):
            continue
        label = "RLM" if system == "rlm" else "agent"
        rows += [
            {"measure": "accuracy", "system": label, "value": s["accuracy"]},
            {"measure": "LLM calls", "system": label, "value": s["llm_calls"]},
            {"measure": "tokens", "system": label, "value": s["tokens_in"] + s["tokens_out"]},
            {"measure": "wall median (s)", "system": label, "value": s["wall_median_s"]},
        ]
    return pd.DataFrame(rows)


def _picker(page: data.PageData, current: str) -> None:
    agents = page["agents"]
    labels = dict(
        zip(agents["id"], agents["id"] + " · " + agents["task"].fillna("(single run)"), strict=True)
    )

    def _apply() -> None:
        st.query_params["agent"] = st.session_state[PICK_KEY]

    st.session_state[PICK_KEY] = current
    st.selectbox(
        "Agent", list(labels), key=PICK_KEY, format_func=lambda a: labels.get(a, a), on_change=_apply
    )


def _provenance(agent: ui.Record) -> None:
    runs = json.loads(agent["source_runs"] or "[]")
    tactics = json.loads(agent["tactic_sequence"] or "[]")
    validation = json.loads(agent["validation"] or "{}")
    shapes = json.loads(agent["shapes"] or "[]")
    cols = st.columns(4)
    cols[0].metric("Validation accuracy", ui.fmt(validation.get("accuracy"), ".0%"))
    cols[1].metric("Validation instances", ui.fmt(validation.get("instances"), ","))
    cols[2].metric("Source runs", f"{len(runs):,}")
    cols[3].metric("Question shapes", f"{len(shapes):,}")
    st.markdown("**Tactic sequence:** " + (" → ".join(tactics) if tactics else "_the miner has not run_"))
    st.markdown("**Source runs:** " + ", ".join(f"[{r}](run_viewer?run={r})" for r in runs[:12]))
    for i, shape in enumerate(shapes):
        st.caption(f"Shape {i}: {ui.clip(shape['template'], 200)}")


def _evals(page: data.PageData) -> None:
    st.subheader("Against the RLM")
    evals = page["evals"]
    if evals.empty:
        st.info("No eval of this agent yet: `rlmine eval --task NAME --agent ID` compares it with the RLM.")
        return
    summary = json.loads(evals["summary"].iloc[0])
    ratios = summary.get("ratios", {})
    cols = st.columns(4)
    cols[0].metric(
        "Accuracy (agent / RLM)", f"{summary['agent']['accuracy']:.0%} / {summary['rlm']['accuracy']:.0%}"
    )
    cols[1].metric("Tokens ratio", ui.fmt(ratios.get("tokens"), ".3g"))
    cols[2].metric("LLM calls ratio", ui.fmt(ratios.get("llm_calls"), ".3g"))
    cols[3].metric("Wall time ratio (median)", ui.fmt(ratios.get("wall_median"), ".3g"))
    chart = eval_chart_frame(summary)
    fig = px.bar(
        chart, x="system", y="value", color="system", facet_col="measure", facet_col_wrap=4,
        labels={"value": "", "system": ""},
    )  # fmt: skip
    fig.update_yaxes(matches=None, showticklabels=True)
    st.plotly_chart(fig, key="eval_chart")
    st.caption(
        f"Eval {evals['id'].iloc[0]} on the {summary.get('split')} split, "
        f"{summary.get('runs_per_instance')} run(s) per instance, simulator latency {summary.get('sim_latency')}."
    )
    if "eval_rows" in page.frames:
        st.dataframe(page["eval_rows"].drop(columns=["eval_id"]), hide_index=True, key="eval_rows")


def _body() -> None:
    page = data.fetch("agents", st.query_params.get("agent"))
    if not ui.show_state(page):
        return
    if "no_tables" in page.frames:
        st.info("This database predates agents: `rlmine db info` upgrades it, then `rlmine agent build`.")
        return
    if page["agents"].empty:
        st.info("No agents yet. Build one with `rlmine agent build --task NAME` (or run `rlmine demo`).")
        return
    if "not_found" in page.frames:
        st.warning(page["not_found"]["message"].iloc[0] + "; showing the newest agent.")
    agent = page["agent"].to_dict("records")[0]
    _picker(page, str(agent["id"]))
    st.subheader(f"{agent['id']} · {agent['task'] or 'built from one run'}")
    _provenance(agent)
    st.download_button(
        "Download the script", agent["script"], file_name="agent.py", mime="text/x-python", key="download"
    )
    with st.expander("Script", expanded=False):
        st.code(agent["script"], language="python")
    st.subheader("Candidates")
    candidates = page["candidates"]
    if not candidates.empty:
        st.dataframe(
            candidates.drop(columns=["code", "group_key"]),
            column_config={"accuracy": PERCENT},
            hide_index=True,
            key="candidates",
        )
    _evals(page)
    ui.freshness(page)


ui.run_page("Agents", _body)
