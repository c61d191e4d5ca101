"""Overview: counts (run and iteration errors), success per model and task, per-run
distributions coloured by verdict, tokens and cost over time, budgets, batches.

No chart is drawn empty: the cost chart appears only when some run's cost is known.

Simulator runs carry "(simulator)" in their model label and imported runs are
counted apart, so neither passes for a real recorded run.
"""

from __future__ import annotations

import plotly.express as px
import streamlit as st

from dashboard import components as ui
from dashboard import data

PERCENT = st.column_config.ProgressColumn(format="percent", min_value=0.0, max_value=1.0)


def _headline(counts: ui.Record) -> None:
    row1 = st.columns(6)
    row1[0].metric("Runs", ui.fmt(counts["runs"], ","))
    row1[1].metric("Success rate", ui.fmt(counts["success_rate"], ".0%"), help="Correct among judged runs.")
    row1[2].metric("Running", ui.fmt(counts["running"], ","))
    row1[3].metric("Run errors", ui.fmt(counts["errors"], ","), help="Runs that ended with status error.")
    row1[4].metric(
        "Runs with code errors",
        ui.fmt(counts["runs_with_code_errors"], ","),
        help="Runs in which some iteration's code raised (the run may still have recovered).",
    )
    row1[5].metric(
        "Iteration errors", ui.fmt(counts["iteration_errors"], ","), help="Iterations whose code raised."
    )
    row2 = st.columns(8)
    row2[0].metric("Tasks", ui.fmt(counts["tasks"], ","))
    row2[1].metric("Models", ui.fmt(counts["models"], ","))
    row2[2].metric("Batches", ui.fmt(counts["batches"], ","))
    row2[3].metric("Iterations", ui.fmt(counts["iterations"], ","))
    row2[4].metric("LLM calls", ui.fmt(counts["llm_calls"], ","))
    row2[5].metric("Sub-LLM calls", ui.fmt(counts["sub_calls"], ","))
    row2[6].metric("Tokens", ui.fmt(counts["tokens"], ","))
    row2[7].metric("Cost", ui.fmt(counts["cost"], ",.4f", none="unknown"))
    st.caption(
        f"Of these runs, **{counts['simulator_runs']} are simulator runs** (root model `sim`: synthetic "
        f'traces from the offline simulator, marked "(simulator)") and **{counts["imported_runs"]} are '
        f'imported** (engine other than rlmine, marked "(imported)"). {counts["child_runs"]} nested child '
        "runs of imported trajectories are shown from their parent run."
    )


def _success(page: data.PageData) -> None:
    st.subheader("Success rate per task and model")
    success = page["success"]
    judged = success[success["judged"] > 0]
    if judged.empty:
        st.info("No run has been judged yet: success rates appear once runs have a correct/wrong verdict.")
    else:
        models = page["success_models"]
        st.plotly_chart(
            px.bar(
                models,
                x="success_rate",
                y="model",
                orientation="h",
                text=models["correct"].astype(str) + " / " + models["judged"].astype(str),
                range_x=[0, 1],
                title="Per model (correct / judged runs)",
                labels={"success_rate": "success rate"},
                height=max(220, 40 * len(models) + 120),
            ),
            key="success_model_chart",
        )
        fig = px.bar(
            judged,
            x="task",
            y="success_rate",
            color="model",
            barmode="group",
            hover_data=["runs", "judged", "correct"],
            range_y=[0, 1],
            title="Per task and model",
            labels={"success_rate": "success rate"},
        )
        st.plotly_chart(fig, key="success_chart")
    st.dataframe(
        success.drop(columns=["is_simulator"]),
        hide_index=True,
        column_config={"success_rate": PERCENT, "imported_runs": "imported"},
    )


VERDICT_COLORS = {"correct": "#2ca02c", "wrong": "#d62728", "not judged": "#9e9e9e"}


def _distributions(page: data.PageData) -> None:
    st.subheader("Runs: tokens, time and iterations by verdict")
    dist = page["distribution"]
    charts = [(c, t) for c, t in (("tokens", "Tokens per run"), ("wall_s", "Wall time per run (s)"),
              ("iterations", "Iterations per run")) if dist[c].notna().any()]  # fmt: skip
    if not charts:
        st.info("No run reports tokens, time or iterations yet.")
        return
    for col, (column, title) in zip(st.columns(len(charts)), charts, strict=True):
        col.plotly_chart(
            px.box(
                dist,
                x="model",
                y=column,
                color="verdict",
                points="outliers",
                title=title,
                color_discrete_map=VERDICT_COLORS,
                category_orders={"verdict": list(VERDICT_COLORS)},
                hover_data=["id", "task"],
            ),
            key=f"dist_{column}",
        )
    st.caption("Each box: the runs of one model with one verdict (newest 20,000 runs).")


def _usage(page: data.PageData) -> None:
    usage = page["usage"]
    has_cost = bool(page["counts"]["cost"].notna().any())
    st.subheader("Tokens and cost over time" if has_cost else "Tokens over time")
    if usage.empty:
        st.info("No run has a start time yet.")
        return
    if not has_cost:  # no run reports a cost: a chart of zeros would say something false
        st.plotly_chart(
            px.bar(usage, x="period", y="tokens", color="model", title="Tokens"), key="tokens_chart"
        )
        st.caption("No run reports a cost, so there is no cost chart.")
        return
    left, right = st.columns(2)
    left.plotly_chart(
        px.bar(usage, x="period", y="tokens", color="model", title="Tokens"), key="tokens_chart"
    )
    right.plotly_chart(
        px.bar(usage, x="period", y="cost", color="model", title="Cost (USD)"), key="cost_chart"
    )


def _budget(page: data.PageData) -> None:
    st.subheader("How runs used their budget")
    budget = page["budget"]
    if budget.empty:
        st.info("No run records a budget yet (params.budget.max_iterations / max_sub_calls).")
        return
    budgets = (
        ("iterations_used", "iteration budget", "iterations / max", "iter_budget_chart"),
        ("sub_calls_used", "sub-call budget", "sub-calls / max", "sub_budget_chart"),
    )
    for column, (used, budget_name, axis, key) in zip(st.columns(2), budgets, strict=True):
        figure = px.histogram(
            budget, x=used, color="status", nbins=20, range_x=[0, 1.05], labels={used: axis}
        )
        column.plotly_chart(figure.update_layout(title=f"Share of the {budget_name} used"), key=key)
    st.dataframe(
        page["budget_summary"],
        hide_index=True,
        column_config={"mean_iterations_used": PERCENT, "mean_sub_calls_used": PERCENT},
    )


def _batches(page: data.PageData) -> None:
    st.subheader("Recent batches")
    batches = page["batches"]
    if batches.empty:
        st.info("No batches yet: `rlmine record` groups the runs it starts into a batch.")
        return
    st.dataframe(batches, hide_index=True, column_config={"success_rate": PERCENT})


def render() -> None:
    page = data.fetch("overview")
    if not ui.show_state(page):
        return
    counts = page["counts"].to_dict("records")[0]
    if int(counts["runs"]) == 0:
        ui.no_runs()
        return
    ui.freshness(page)
    _headline(counts)
    _success(page)
    _distributions(page)
    _usage(page)
    _budget(page)
    _batches(page)


ui.run_page("Overview", render)
