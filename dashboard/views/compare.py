"""Compare: two or more runs side by side, iterations aligned row by row.

Runs come from ``compare?runs=ID1,ID2`` (ids or unique prefixes) or the picker.
Each run's answer and the expected answer come first, then the first run's tactic
sequence aligned with each other run's (from the latest mining, see
:mod:`dashboard.tactic_tags`): common tactics side by side, gaps marked, or a note
saying how to mine. Below, iterations are lined up by index; a step whose code
differs between the runs is marked, with the line-by-line difference of the first
two. Tracebacks keep their line breaks; long code and output fold.
"""

from __future__ import annotations

import difflib
from collections.abc import Sequence

import pandas as pd
import streamlit as st

from dashboard import components as ui
from dashboard import data
from dashboard import tactic_tags as tt

MAX_RUNS = 4
PICK_KEY = "compare_pick"
FOLD_LINES = 12  # code longer than this shows its head, the rest in an expander


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


def _answers(summary: Sequence[ui.Record]) -> None:
    """Each run's answer against the expected one, first: it is what a comparison is usually for."""
    for col, run in zip(st.columns(len(summary)), summary, strict=True):
        with col:
            verdict = ui.verdict(run["correct"])
            color = {"correct": "green", "wrong": "red"}.get(verdict, "gray")
            st.markdown(f":{color}-background[**{verdict}**] · {run['status']}")
            st.code(ui.fmt(run["answer"], none="(no answer)"), language="text", wrap_lines=True)
            st.caption(f"expected: {ui.fmt(run['expected'], none='(none)')}")


def _code_differs(codes: Sequence[str | None]) -> bool:
    present = [c for c in codes if c is not None]
    return len(present) > 1 and len(set(present)) > 1


def _diff(a: str, b: str, names: tuple[str, str]) -> str:
    return "\n".join(
        difflib.unified_diff(a.splitlines(), b.splitlines(), fromfile=names[0], tofile=names[1], lineterm="")
    )


def _code(code: str) -> None:
    lines = code.splitlines()
    if len(lines) <= FOLD_LINES:
        st.code(code, language="python")
        return
    st.code("\n".join(lines[:FOLD_LINES]), language="python")
    with st.expander(f"… {len(lines) - FOLD_LINES} more lines"):
        st.code(code, language="python", line_numbers=True)


def _tactic_alignment(summary: Sequence[ui.Record], tactics: pd.DataFrame) -> None:
    """The first run's tactic sequence aligned with each other run's: matches side by side, gaps marked."""
    st.subheader("Tactic alignment")
    ids = [str(run["id"]) for run in summary]
    mined = set(tactics["run_id"])
    unmined = [rid for rid in ids if rid not in mined]
    if unmined:
        tasks = sorted({str(r["task"]) for r in summary if r["id"] in unmined and r["task"] != "(no task)"})
        hint = " ".join(f"`rlmine mine --task {t}`" for t in tasks) or "`rlmine mine`"
        st.info(f"Not mined yet: {', '.join(unmined)}. Run {hint} to align these runs by tactic.")
        if len(mined) < 2 or ids[0] in unmined:
            return
    names = tt.labels_of(tactics)
    first = tt.tactic_sequence(tactics[tactics["run_id"] == ids[0]])
    for other in ids[1:]:
        if other in unmined:
            continue
        table = tt.align(first, tt.tactic_sequence(tactics[tactics["run_id"] == other]))
        common = int(table["match"].sum())
        st.markdown(
            f"`{ids[0]}` vs `{other}`: **{common}** tactic(s) in common, **{len(table) - common}** gap(s)"
        )
        shown = pd.DataFrame(
            {
                ids[0]: [_tactic_cell(t, names) for t in table["tactic_a"]],
                "": ["=" if m else "≠" for m in table["match"]],
                other: [_tactic_cell(t, names) for t in table["tactic_b"]],
            }
        )
        st.dataframe(shown, hide_index=True, key=f"tactic_align_{other}")
    st.caption(
        "Each run's tactics in order (rare steps left out, repeats collapsed), aligned with difflib; "
        f"{tt.GAP} marks a gap: a tactic the other run does not have there."
    )


def _tactic_cell(tactic: object, names: dict[str, str]) -> str:
    if tactic is None or ui.missing(tactic):
        return tt.GAP
    label = names.get(str(tactic))
    return f"{tactic} · {label}" if label else str(tactic)


def _side_by_side(page: data.PageData) -> None:
    summary = page["summary"]
    _answers(summary.to_dict("records"))
    st.dataframe(
        summary.drop(columns=["pos"]),
        hide_index=True,
        column_config={"cost": st.column_config.NumberColumn(format="$%.4f")},
    )
    _tactic_alignment(summary.to_dict("records"), page["tactics"])
    st.subheader("Iterations")
    st.caption("Iterations lined up by index.")
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
    ids = [str(r) for r in summary["id"]]
    for start in range(0, len(records), width):
        row = records[start : start + width]
        codes = [None if not it["present"] or ui.missing(it["code"]) else str(it["code"]) for it in row]
        differs = _code_differs(codes)
        st.markdown(f"#### Iteration {row[0]['step']}" + (" · :orange[code differs]" if differs else ""))
        if differs and codes[0] is not None and codes[1] is not None:
            with st.expander(f"What changed between {ids[0]} and {ids[1]}", icon=":material/difference:"):
                st.code(_diff(codes[0], codes[1], (ids[0], ids[1])), language="diff")
        for col, it in zip(st.columns(width), row, strict=True):
            with col:
                if not it["present"]:
                    st.caption("— (no such iteration: the run had ended)")
                    continue
                st.caption(
                    f"{it['n_sub_calls']} sub-LLM call(s) · code {ui.fmt(it['duration_s'], '.2f')} s"
                    + (" · SUBMIT" if it["submitted"] else "")
                )
                _code(ui.fmt(it["code"], none=""))
                output = ui.fmt(it["output"], none="")
                if output:
                    ui.long_text(
                        output
                        + ("\n… (clipped: open the run for all of it)" if it["output_clipped"] else ""),
                        limit=600,
                    )
                if not ui.missing(it["error"]):
                    st.error("error", icon=":material/error:")
                    ui.long_text(str(it["error"]), limit=1500, label="traceback")  # line breaks kept


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
