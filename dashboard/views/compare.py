"""Compare: two or more runs side by side, iterations aligned row by row.

Runs come from ``compare?runs=ID1,ID2`` (ids or unique prefixes) or the picker.
Iterations are aligned by index for now (:func:`dashboard.run_queries.aligned_iterations`
returns an alignment ``step`` so mining can later align by tactic instead).
"""

from __future__ import annotations

import streamlit as st

from dashboard import components as ui
from dashboard import data

MAX_RUNS = 4
PICK_KEY = "compare_pick"


def _requested() -> list[str]:
    raw = st.query_params.get("runs", "")
    ids = [part.strip() for part in raw.split(",") if part.strip()]
    return list(dict.fromkeys(ids))[:MAX_RUNS]


def _picker(page: data.PageData, chosen: list[str]) -> None:
    recent = page["recent"]
    labels = dict(
        zip(recent["id"], recent["id"] + " · " + recent["task"] + " · " + recent["model"], strict=True)
    )
    options = list(dict.fromkeys([*chosen, *labels]))

    def _apply() -> None:
        st.query_params["runs"] = ",".join(st.session_state[PICK_KEY])

    st.session_state[PICK_KEY] = chosen
    st.multiselect(
        f"Runs to compare (up to {MAX_RUNS})",
        options,
        key=PICK_KEY,
        max_selections=MAX_RUNS,
        format_func=lambda r: labels.get(r, r),
        on_change=_apply,
        placeholder="Choose runs…",
    )


def _side_by_side(page: data.PageData) -> None:
    summary = page["summary"]
    st.dataframe(
        summary.drop(columns=["pos"]),
        hide_index=True,
        column_config={"cost": st.column_config.NumberColumn(format="$%.4f")},
    )
    st.caption("Iterations aligned by index (alignment by mined tactic comes with `rlmine mine`).")
    width = len(summary)
    headers = st.columns(width)
    for col, run in zip(headers, summary.to_dict("records"), strict=True):
        col.page_link(
            ui.RUN_VIEWER,
            label=f"{run['id']} · {run['model']}",
            query_params={"run": str(run["id"])},
            icon=":material/slideshow:",
        )
    records = page["aligned"].to_dict("records")
    for start in range(0, len(records), width):
        row = records[start : start + width]
        st.markdown(f"#### Iteration {row[0]['step']}")
        for col, it in zip(st.columns(width), row, strict=True):
            with col:
                if not it["present"]:
                    st.caption("— (no such iteration: the run had ended)")
                    continue
                st.caption(
                    f"{it['n_sub_calls']} sub-LLM call(s) · code {ui.fmt(it['duration_s'], '.2f')} s"
                    + (" · SUBMIT" if it["submitted"] else "")
                )
                st.code(ui.fmt(it["code"], none=""), language="python")
                output = ui.fmt(it["output"], none="")
                if output:
                    st.code(
                        output
                        + ("\n… (clipped: open the run for all of it)" if it["output_clipped"] else ""),
                        language="text",
                        wrap_lines=True,
                    )
                if not ui.missing(it["error"]):
                    st.error(ui.clip(str(it["error"]), 500))


def render() -> None:
    chosen = _requested()
    page = data.fetch("compare", tuple(chosen))
    if not ui.show_state(page):
        return
    if page["recent"].empty and not chosen:
        ui.no_runs()
        return
    if "not_found" in page.frames:
        st.warning("; ".join(page["not_found"]["message"]) + ". Pick runs below, or on the Runs page.")
    found = page.frames.get("summary")
    _picker(page, [] if found is None else [str(r) for r in found["id"]])
    if found is None or len(found) < 2:
        st.info(
            "Choose two or more runs to line them up iteration by iteration "
            "(or select rows on the Runs page and press Compare)."
        )
        return
    ui.freshness(page)
    _side_by_side(page)


ui.run_page("Compare runs", render)
