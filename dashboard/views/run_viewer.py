"""Run viewer: one run, iteration by iteration, the way a person reads an RLM trace.

Deep links: ``run_viewer?run=ID&iter=N`` (the id may be a unique prefix). Each
iteration shows the root model's reasoning, then each code block the model wrote
with its own output and error (or that it never ran), the simulator's
ground-truth tactic labels beside the code for simulator runs, each step's mined
tactic from the latest ``rlmine mine`` (a badge per step beside its block), and the sub-LLM
calls the code made, 50 to a page, each headed by its prompt — with links to
nested child runs of imported rlms trajectories. A timeline puts the root model,
the code and the sub-calls on one time axis; iterations that failed are marked
there and in the selector. The conversation (system prompt and messages) is
rebuilt from the stored root turns. Previous / next (and the selector) move
``iter`` in the URL.
"""

from __future__ import annotations

from typing import Literal

import pandas as pd
import plotly.graph_objects as go
import streamlit as st
from streamlit.delta_generator import DeltaGenerator

from dashboard import components as ui
from dashboard import data
from dashboard import tactic_tags as tt

OUTPUT_CHARS = 3000
PROMPT_CHARS = 2000
CALLS_PER_PAGE = 50
PHASE_COLORS = {"root LM": "#636EFA", "code": "#00CC96", "sub-LLM calls": "#EF553B"}
ESTIMATED_NOTE = "≈ estimated: the source logged one usage figure and time for a whole batch of calls"


def _set_iter(value: int) -> None:
    st.query_params["iter"] = str(value)


def _pick_run(recent: pd.DataFrame) -> None:
    if recent.empty:
        ui.no_runs()
        return
    labels = dict(
        zip(
            recent["id"],
            recent["id"] + " · " + recent["task"] + " · " + recent["model"] + " · " + recent["status"],
            strict=True,
        )
    )

    def _open() -> None:
        st.query_params["run"] = str(st.session_state["viewer_pick"])
        st.query_params.pop("iter", None)

    st.selectbox(
        "Open a run",
        list(labels),
        index=None,
        format_func=lambda r: labels[r],
        key="viewer_pick",
        on_change=_open,
        placeholder="Choose one of the latest runs…",
    )
    st.page_link(ui.RUNS, label="…or find one on the Runs page", icon=":material/table_rows:")


def _header(s: ui.Record, children: pd.DataFrame) -> None:
    st.subheader(f"Run `{s['id']}`")
    ui.kind_badges(bool(s["is_simulator"]), bool(s["is_imported"]))
    if not ui.missing(s["parent_run_id"]):
        st.info(
            f"Nested run: called from iteration {ui.fmt(s['parent_iteration'])} of run `{s['parent_run_id']}`."
        )
        st.page_link(
            ui.RUN_VIEWER,
            label="Open the parent run",
            icon=":material/arrow_upward:",
            query_params={
                "run": str(s["parent_run_id"]),
                **({} if ui.missing(s["parent_iteration"]) else {"iter": str(s["parent_iteration"])}),
            },
        )
    st.markdown(
        f"**Task** {s['task']} · **Model** {s['model']} (sub: {ui.fmt(s['sub_model'])}) · **Engine** {s['engine']}"
        f" · **Status** {s['status']} · **Verdict** {ui.verdict(s['correct'])} · **Batch** {ui.fmt(s['batch'])}"
    )
    c = st.columns(5)
    c[0].metric(
        "Iterations",
        f"{ui.fmt(s['iterations'])} / {ui.fmt(s['max_iterations'], none='–')}",
        help="Used / allowed by the run's budget.",
    )
    c[1].metric(
        "LLM calls (sub)",
        f"{ui.fmt(s['llm_calls'])} ({ui.fmt(s['sub_calls'])} / {ui.fmt(s['max_sub_calls'], none='–')})",
        help="All calls (sub-calls used / allowed).",
    )
    approx = "≈" if int(s["estimated_calls"] or 0) and not ui.missing(s["tokens"]) else ""
    c[2].metric(
        "Tokens",
        approx + ui.fmt(s["tokens"], ","),
        help=ESTIMATED_NOTE + " (the total counts that figure once per call)" if approx else None,
    )
    c[3].metric("Cost", ui.fmt(s["cost"], ",.4f", none="unknown"))
    c[4].metric("Time", f"{ui.fmt(s['wall_s'], '.1f')} s")
    if not ui.missing(s["question"]):
        st.markdown(f"**Question:** {s['question']}")
    st.markdown(f"**Answer:** `{ui.fmt(s['final_answer'])}` (expected `{ui.fmt(s['expected'])}`)")
    if not ui.missing(s["error"]):
        st.error(f"The run ended with an error: {s['error']}")
    if not children.empty:
        st.markdown(f"**Nested runs** ({len(children)}):")
        for child in children.itertuples(index=False):
            st.page_link(
                ui.RUN_VIEWER,
                label=f"{child.id} — from iteration {ui.fmt(child.parent_iteration)}, "
                f"{child.iterations} iterations, {child.status}",
                icon=":material/subdirectory_arrow_right:",
                query_params={"run": str(child.id)},
            )


def _stacked_bars(timeline: pd.DataFrame, value: str, title: str) -> go.Figure:
    """Horizontal stacked bars, one per iteration, one colour per phase (graph_objects: ~10x
    faster to build than plotly.express, and this is on the viewer's first render)."""
    fig = go.Figure()
    for phase, color in PHASE_COLORS.items():
        rows = timeline[timeline["phase"] == phase]
        fig.add_bar(
            x=rows[value], y=rows["iteration"].astype(str), name=phase, orientation="h", marker_color=color
        )
    fig.update_layout(
        title=title,
        barmode="stack",
        height=max(260, 26 * timeline["iteration"].nunique() + 140),
        legend={"orientation": "h", "y": 1.0, "yanchor": "bottom", "x": 1.0, "xanchor": "right"},
        margin={"t": 60, "b": 10},
        xaxis_title=value,
        yaxis={"autorange": "reversed", "type": "category", "title": "iteration"},
    )
    return fig


def _iteration_label(iteration: int, failed: bool) -> str:
    return f"{iteration} ⚠" if failed else str(iteration)


def _time_axis_chart(axis: pd.DataFrame) -> go.Figure:
    """One row per iteration on a shared time axis: root model, then code; sub-calls over the code."""
    failed = axis.groupby("iteration")["failed"].any()
    order = [_iteration_label(int(str(i)), bool(f)) for i, f in failed.items()]
    fig = go.Figure()
    for phase, color in PHASE_COLORS.items():
        rows = axis[(axis["phase"] == phase) & (axis["seconds"] > 0)]
        if rows.empty:
            continue
        labels = [_iteration_label(int(i), bool(failed.get(i, False))) for i in rows["iteration"]]
        fig.add_bar(
            x=rows["seconds"],
            base=rows["start_s"],
            y=labels,
            name=phase,
            orientation="h",
            marker_color=color,
            width=0.35 if phase == "sub-LLM calls" else 0.8,
            hovertemplate="%{y}: %{base:.2f}–%{x:.2f} s<extra>" + phase + "</extra>",
        )
    fig.update_layout(
        title="Time (seconds since the run started)",
        barmode="overlay",
        height=max(260, 26 * len(order) + 140),
        legend={"orientation": "h", "y": 1.0, "yanchor": "bottom", "x": 1.0, "xanchor": "right"},
        margin={"t": 60, "b": 10},
        xaxis_title="seconds",
        yaxis={"autorange": "reversed", "type": "category", "title": "iteration", "categoryarray": order},
    )
    return fig


def _timeline(timeline: pd.DataFrame, axis: pd.DataFrame) -> None:
    if timeline.empty:
        return
    with st.expander("Timeline: where time and tokens went", expanded=True, icon=":material/timeline:"):
        left, right = st.columns(2)
        left.plotly_chart(_time_axis_chart(axis), key="timeline_time")
        right.plotly_chart(_stacked_bars(timeline, "tokens", "Tokens per iteration"), key="timeline_tokens")
        unplaced = int(axis["unplaced"].iloc[0]) if len(axis) else 0
        note = (
            f" {unplaced} sub-LLM call(s) have no start time in the source and are not drawn."
            if unplaced
            else ""
        )
        st.caption(
            "Iterations marked ⚠ failed. Sub-LLM calls run inside the code's execution, drawn over it. "
            "For imported rlms runs the root model's time is the turn's time minus its code blocks'." + note
        )


def _code(it: ui.Record, labels: pd.DataFrame, tags: list[tt.Tag]) -> None:
    code = str(it["code"]) if not ui.missing(it["code"]) else ""
    if not code:
        st.caption("No code in this reply.")
        return
    mine = labels[labels["iteration"] == it["iteration"]]
    if mine.empty and not tags:
        st.code(code, language="python", line_numbers=True)
        return
    left, right = st.columns([4, 1])
    left.code(code, language="python", line_numbers=True)
    _tactic_badges(tags, right)
    if not mine.empty:
        _ground_truth(mine, right)


def _tactic_badges(tags: list[tt.Tag], where: DeltaGenerator) -> None:
    """The latest mining's tactic of each step, beside the code (lines counted in that code)."""
    if not tags:
        return
    with where:
        st.caption("Mined tactics")
        for tag in tags:
            st.badge(tag.badge, color="gray" if tag.tactic_id is None else "blue")


def _call_label(n: int, call: ui.Record) -> str:
    mark = "≈" if call["estimated"] else ""
    preview = ui.fmt(call["prompt_preview"], none=f"<{ui.fmt(call['prompt_chars'], ',')} chars, not stored>")
    nested = "" if ui.missing(call["child_run_id"]) else " · nested run"
    return (
        f"#{n} · {preview} · {call['model']} · {mark}{ui.fmt(call['tokens_in'])} in / "
        f"{mark}{ui.fmt(call['tokens_out'])} out · {mark}{ui.fmt(call['latency_s'], '.2f')} s"
        f"{' · error' if not ui.missing(call['error']) else ''}{nested}"
    )


def _calls(calls: pd.DataFrame, iteration: int) -> None:
    if calls.empty:
        return
    st.markdown(f"**{len(calls)} sub-LLM call(s)**")
    if bool(calls["estimated"].any()):
        st.caption(ESTIMATED_NOTE)
    start = 0
    if len(calls) > CALLS_PER_PAGE:
        starts = list(range(0, len(calls), CALLS_PER_PAGE))
        start = st.selectbox(
            "Calls",
            starts,
            key=f"calls_page_{iteration}",
            format_func=lambda a: f"{a + 1}–{min(a + CALLS_PER_PAGE, len(calls))} of {len(calls)}",
        )
    for n, call in enumerate(calls.iloc[start : start + CALLS_PER_PAGE].to_dict("records"), start=start + 1):
        with st.expander(_call_label(n, call)):
            prompt = call["prompt"]
            if ui.missing(prompt):
                st.caption(
                    f"Prompt not stored ({ui.fmt(call['prompt_chars'], ',')} characters; kept as a hash)."
                )
            else:
                ui.long_text(str(prompt), limit=PROMPT_CHARS, label="prompt")
            if not ui.missing(call["response"]):
                st.markdown("Response:")
                ui.long_text(str(call["response"]), limit=PROMPT_CHARS, label="response")
            if not ui.missing(call["error"]):
                st.error(str(call["error"]))
            if not ui.missing(call["child_run_id"]):
                st.page_link(
                    ui.RUN_VIEWER,
                    label=f"Open nested run {call['child_run_id']} "
                    f"({ui.fmt(call['child_iterations'])} iterations, {ui.fmt(call['child_status'])})",
                    icon=":material/subdirectory_arrow_right:",
                    query_params={"run": str(call["child_run_id"])},
                )


def _block(block: ui.Record, total: int, tags: list[tt.Tag]) -> None:
    state = "did not run" if not block["ran"] else ("error" if not ui.missing(block["error"]) else "ok")
    color: Literal["green", "red", "gray"] = {"ok": "green", "error": "red", "did not run": "gray"}[state]  # type: ignore[assignment]
    took = "" if ui.missing(block["duration_s"]) else f" · {block['duration_s']:.2f} s"
    st.badge(f"Block {int(block['block']) + 1} of {total} · {state}{took}", color=color)
    if tags:
        left, right = st.columns([4, 1])
        left.code(str(block["code"]), language="python", line_numbers=True)
        _tactic_badges(tags, right)
    else:
        st.code(str(block["code"]), language="python", line_numbers=True)
    output = ("" if ui.missing(block["stdout"]) else str(block["stdout"])) + (
        "" if ui.missing(block["stderr"]) else str(block["stderr"])
    )
    if output:
        ui.long_text(output, limit=OUTPUT_CHARS)
    elif block["ran"]:
        st.caption("(no output)")
    if not ui.missing(block["error"]):
        st.error(f"{ui.fmt(block['error_kind'], none='code')} error in block {int(block['block']) + 1}")
        st.code(str(block["error"]), language="text", wrap_lines=True)


def _blocks(it: ui.Record, blocks: pd.DataFrame, labels: pd.DataFrame, steps: pd.DataFrame) -> None:
    mine = labels[labels["iteration"] == it["iteration"]]
    body, side = st.columns([4, 1]) if not mine.empty else (st.container(), None)
    rows = blocks.to_dict("records")
    tags = tt.place_steps(steps, [str(b["code"]) for b in rows])
    with body:
        for n, block in enumerate(rows):
            _block(block, len(rows), [t for t in tags if t.block == n])
    if side is not None:
        _ground_truth(mine, side, note="lines of the whole cell")


def _ground_truth(mine: pd.DataFrame, where: DeltaGenerator, note: str = "") -> None:
    with where:
        st.caption("Simulator ground truth" + (f" ({note})" if note else ""))
        for lab in mine.to_dict("records"):
            first, last = int(lab["line_start"]), int(lab["line_end"])
            lines = f"L{first}" + ("" if last == first else f"–{last}")
            st.badge(f"{lines} · {lab['tactic']}", color="violet")


def _iteration(it: ui.Record, page: data.PageData) -> None:
    labels, calls, blocks = page["labels"], page["sub_calls"], page["blocks"]
    tactics = page["tactics"]
    steps = tactics[tactics["iteration"] == it["iteration"]]
    flags = " · SUBMIT" if it["submitted"] else ""
    flags += " · ⚠ error" if not ui.missing(it["error"]) else ""
    st.markdown(f"#### Iteration {it['iteration']}{flags}")
    st.caption(
        f"root LM {ui.fmt(it['root_latency_s'], '.2f')} s, {ui.fmt(it['root_tokens_in'], ',')} tokens in / "
        f"{ui.fmt(it['root_tokens_out'], ',')} out · duration {ui.fmt(it['duration_s'], '.2f')} s · "
        f"{it['n_sub_calls']} sub-LLM call(s)"
    )
    if not ui.missing(it["reasoning"]) and str(it["reasoning"]).strip():
        with st.container(border=True):
            st.markdown(str(it["reasoning"]).replace("$", "\\$"))
    mine = blocks[blocks["iteration"] == it["iteration"]]
    if not mine.empty:
        _blocks(it, mine, labels, steps)
        if it["output_truncated"]:
            st.caption("The engine cut some output to its budget before the model saw it.")
    else:
        _code(it, labels, tt.place_steps(steps, []))
        output = ("" if ui.missing(it["stdout"]) else str(it["stdout"])) + (
            "" if ui.missing(it["stderr"]) else str(it["stderr"])
        )
        if output:
            st.markdown("Output:")
            ui.long_text(output, limit=OUTPUT_CHARS)
            if it["output_truncated"]:
                st.caption("The engine cut this output to its budget before the model saw it.")
    if not ui.missing(it["error"]) and (mine.empty or not mine["error"].notna().any()):
        st.error(f"{ui.fmt(it['error_kind'], none='code')} error")
        st.code(str(it["error"]), language="text", wrap_lines=True)
    _calls(calls[calls["iteration"] == it["iteration"]], int(it["iteration"]))


def _conversation(page: data.PageData, s: ui.Record) -> None:
    """The system prompt and the message sequence, rebuilt from the stored root turns."""
    messages = page["messages"]
    if messages.empty:
        return
    # A toggle, not an expander: an expander's content is built and sent even while folded, and
    # a long conversation would slow every first render of the viewer.
    if not st.toggle("Show the conversation: system prompt and messages", key="viewer_conversation"):
        return
    with st.container(border=True):
        if not ui.missing(s["system_prompt_sha256"]):
            st.caption(f"System prompt: only its hash is stored (sha256 `{s['system_prompt_sha256']}`).")
        else:
            st.caption(
                "System prompt: not stored (rlmine's engine builds it from the run's budget; the params hold it)."
            )
        st.caption(
            "Each turn shows the newest message the root model was sent (earlier ones are the turns above) "
            "and its reply."
        )
        for turn in messages.to_dict("records"):
            sent = ui.fmt(turn["n_messages"], none="?")
            with st.chat_message("user"):
                st.caption(f"Iteration {ui.fmt(turn['iteration'])} · message {sent} of the conversation")
                if ui.missing(turn["prompt"]):
                    st.caption(
                        f"Only a hash is stored ({ui.fmt(turn['prompt_chars'], ',')} characters, "
                        f"sha256 `{ui.fmt(turn['prompt_sha256'])}`)."
                    )
                else:
                    ui.long_text(str(turn["prompt"]), limit=PROMPT_CHARS, label="message")
            with st.chat_message("assistant"):
                if not ui.missing(turn["response"]):
                    ui.long_text(str(turn["response"]), limit=PROMPT_CHARS, label="reply")
                if not ui.missing(turn["error"]):
                    st.error(str(turn["error"]))


def _requested_iteration(count: int) -> int:
    raw = st.query_params.get("iter")
    if raw is None:
        return 0
    try:
        value = int(raw)
    except ValueError:
        value = -1
    if 0 <= value < count:
        return value
    st.warning(f"This run has no iteration {raw!r} (it has {count}): showing iteration 0.")
    return 0


def _navigate(current: int, count: int, *, where: str, failed: frozenset[int] = frozenset()) -> None:
    prev_col, pick_col, next_col = st.columns([1, 2, 1], vertical_alignment="bottom")
    prev_col.button(
        "← Previous",
        disabled=current == 0,
        on_click=_set_iter,
        args=(current - 1,),
        key=f"prev_{where}",
        width="stretch",
    )
    next_col.button(
        "Next →",
        disabled=current >= count - 1,
        on_click=_set_iter,
        args=(current + 1,),
        key=f"next_{where}",
        width="stretch",
    )
    if where == "top":
        st.session_state["viewer_iter"] = current
        pick_col.selectbox(
            "Iteration",
            list(range(count)),
            key="viewer_iter",
            format_func=lambda i: f"Iteration {i} of {count}" + (" · ⚠ error" if i in failed else ""),
            on_change=lambda: _set_iter(int(st.session_state["viewer_iter"])),
        )


def _trace(page: data.PageData) -> None:
    iterations = page["iterations"]
    if iterations.empty:
        st.info("No iterations recorded yet (a running run adds them as it goes: press Refresh).")
        return
    if st.toggle("Show all iterations", key="viewer_all"):
        for it in iterations.to_dict("records"):
            _iteration(it, page)
        return
    count = len(iterations)
    failed = frozenset(int(i) for i in iterations.loc[iterations["error"].notna(), "iteration"])
    current = _requested_iteration(count)
    _navigate(current, count, where="top", failed=failed)
    _iteration(iterations.to_dict("records")[current], page)
    _navigate(current, count, where="bottom")


def render() -> None:
    run_param = st.query_params.get("run")
    page = data.fetch("run_viewer", run_param)
    if not ui.show_state(page):
        return
    if run_param is None:
        _pick_run(page["recent"])
        return
    if "not_found" in page.frames:
        st.warning(f"{page['not_found']['message'].iloc[0]}. Pick another run below, or on the Runs page.")
        _pick_run(page["recent"])
        return
    ui.freshness(page)
    # The header and the charts keep their places above the trace but are filled last:
    # the browser draws elements as they arrive, so the iteration's code shows first.
    header_slot, timeline_slot = st.container(), st.container()
    summary = page["summary"].to_dict("records")[0]
    if page["tactics"].empty and len(page["iterations"]):
        named = not ui.missing(summary["task"]) and summary["task"] != "(no task)"
        task = f" --task {summary['task']}" if named else ""
        st.caption(
            f"Not mined yet: no tactic tags on this run's steps. Run `rlmine mine{task}` to tag each step "
            "with its tactic."
        )
    _trace(page)
    with header_slot:
        _header(summary, page["children"])
        if summary["status"] == "running":
            st.info(
                f"This run is still running: {len(page['iterations'])} iteration(s) so far. "
                "Press Refresh (or turn on Auto-refresh) to follow it."
            )
        _conversation(page, summary)
    with timeline_slot:
        _timeline(page["timeline"], page["time_axis"])


ui.run_page("Run viewer", render)
