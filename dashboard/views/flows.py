"""Flows: the directly-follows graph of tactics, top sequences, successful vs failed runs."""

from __future__ import annotations

import math

import pandas as pd
import plotly.graph_objects as go
import streamlit as st

from dashboard import components as ui
from dashboard import data
from dashboard.mining_widgets import PERCENT, mining_page

TOP_EDGES = 40


def _positions(edges: pd.DataFrame, sequences: pd.DataFrame) -> dict[str, tuple[float, float]]:
    """x = a tactic's median relative position in runs (START left, END right); y spreads ties."""
    where: dict[str, list[float]] = {}
    for seq in sequences["tactics"]:
        items = list(seq)
        for i, tactic in enumerate(items):
            where.setdefault(tactic, []).append((i + 1) / (len(items) + 1))
    x = {t: float(pd.Series(v).median()) for t, v in where.items()}
    x["START"], x["END"] = 0.0, 1.0
    nodes = sorted(set(edges["source"]) | set(edges["target"]), key=lambda t: (x.get(t, 0.5), t))
    pos: dict[str, tuple[float, float]] = {}
    for rank, node in enumerate(nodes):
        pos[node] = (x.get(node, 0.5), math.sin(rank * 1.7) if node not in ("START", "END") else 0.0)
    return pos


def _graph(page: data.PageData) -> None:
    edges = page["edges"].head(TOP_EDGES)
    st.subheader("Directly-follows graph")
    if edges.empty:
        st.info("No tactic sequences in this mining.")
        return
    labels = dict(zip(page["tactics"]["id"], page["tactics"]["label"], strict=True))
    pos = _positions(edges, page["sequences"])
    fig = go.Figure()
    top = max(int(edges["count"].max()), 1)
    for e in edges.to_dict("records"):
        (x0, y0), (x1, y1) = pos[e["source"]], pos[e["target"]]
        rate = e["success_rate"]
        color = "gray" if ui.missing(rate) else f"rgb({int(220 * (1 - rate))},{int(180 * rate)},60)"
        fig.add_trace(
            go.Scatter(
                x=[x0, x1],
                y=[y0, y1],
                mode="lines",
                line={"width": 1 + 9 * e["count"] / top, "color": color},
                hoverinfo="text",
                showlegend=False,
                text=f"{e['source']} → {e['target']}: {e['count']} times in {e['runs']} runs, "
                f"success {ui.fmt(rate, '.0%')}",
            )
        )
    names = list(pos)
    fig.add_trace(
        go.Scatter(
            x=[pos[n][0] for n in names],
            y=[pos[n][1] for n in names],
            mode="markers+text",
            text=names,
            textposition="top center",
            marker={"size": 14, "color": "#4062bb"},
            hovertext=[labels.get(n, n) for n in names],
            hoverinfo="text",
            showlegend=False,
        )
    )
    fig.update_layout(
        xaxis={"visible": False},
        yaxis={"visible": False},
        height=480,
        title="Edge width = how often one tactic directly follows another; colour = success rate (red → green)",
    )
    st.plotly_chart(fig, key="flow_graph")
    st.dataframe(edges, hide_index=True, column_config={"success_rate": PERCENT})


def _patterns(page: data.PageData) -> None:
    st.subheader("Top sequences")
    patterns = page["patterns"].copy()
    if patterns.empty:
        st.info("No sequence is shared by two runs or more.")
        return
    patterns["tactics"] = patterns["tactics"].map(lambda s: " → ".join(s))
    st.dataframe(
        patterns,
        hide_index=True,
        column_config={"success_rate": PERCENT, "lift": st.column_config.NumberColumn("lift", format="%.2f")},
    )


def _outcomes(page: data.PageData) -> None:
    st.subheader("Successful vs failed runs")
    seqs = page["sequences"].copy()
    seqs["sequence"] = seqs["tactics"].map(lambda s: " → ".join(s))
    left, right = st.columns(2)
    for col, flag, title in ((left, True, "Correct runs"), (right, False, "Wrong runs")):
        part = seqs[seqs["correct"] == flag]
        col.caption(f"{title}: {len(part)}")
        counts = (
            part.groupby("sequence").size().rename("runs").reset_index().sort_values("runs", ascending=False)
        )
        col.dataframe(counts.head(15), hide_index=True)


def render() -> None:
    shown = mining_page("flows")
    if shown is None:
        return
    page, chosen = shown
    consensus = page["minings"].set_index("id").loc[chosen, "consensus"]
    if isinstance(consensus, str) and consensus not in ("[]", ""):
        import json

        st.markdown("**Consensus plan:** " + " → ".join(json.loads(consensus)))
    _graph(page)
    _patterns(page)
    _outcomes(page)


ui.run_page("Flows", render)
