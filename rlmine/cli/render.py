"""Rich renderables for runs and traces (pure: build objects, never print)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, cast

import pandas as pd
from rich.console import RenderableType
from rich.panel import Panel
from rich.rule import Rule
from rich.syntax import Syntax
from rich.table import Table
from rich.text import Text

from rlmine.trace import SIMULATED_MODELS, LLMCall, Trace


def _missing(value: object) -> bool:
    try:
        return bool(pd.isna(value))  # type: ignore[call-overload]
    except (TypeError, ValueError):
        return False


def model_label(model: object) -> str:
    name = "-" if _missing(model) else str(model)
    # "sim@HOST:PORT": the simulator served over HTTP by `rlmine sim-server`
    return f"{name} (simulator)" if name.split("@", 1)[0] in SIMULATED_MODELS else name


def _fmt(value: object, spec: str = "") -> str:
    if _missing(value):
        return "-"
    try:
        return format(value, spec)
    except (TypeError, ValueError):
        return str(value)


def runs_table(df: pd.DataFrame) -> Table:
    """Runs as a table; the engine and cost columns appear only when they say something."""
    show_engine = df["engine"].nunique() > 1 or (not df.empty and df["engine"].iloc[0] != "rlmine")
    show_cost = bool(df["cost"].notna().any())
    table = Table(show_lines=False, header_style="bold", pad_edge=False)
    columns = ["run", "task", "model", *(["engine"] if show_engine else []), "status", "ok", "iters",
               "calls", "tokens", *(["cost"] if show_cost else []), "s"]  # fmt: skip
    for col in columns:
        table.add_column(col, no_wrap=col in {"run", "status"}, overflow="ellipsis")
    for row in df.itertuples(index=False):
        tokens = None
        if not _missing(row.tokens_in):
            tin, tout = cast(Any, row.tokens_in), cast(Any, row.tokens_out)
            tokens = int(tin) + (0 if _missing(tout) else int(tout))
        correct = "-" if _missing(row.correct) else ("yes" if row.correct else "no")
        cells = [
            str(row.id),
            _fmt(row.task_id if _missing(row.task) else row.task),
            model_label(row.root_model),
            *([str(row.engine)] if show_engine else []),
            str(row.status),
            correct,
            _fmt(row.n_iterations),
            _fmt(row.n_llm_calls),
            _fmt(tokens, ","),
            *([_fmt(row.cost, ".4f")] if show_cost else []),
            _fmt(row.wall_s, ".1f"),
        ]
        table.add_row(*cells)
    return table


def _clip(text: str, limit: int) -> str:
    if len(text) <= limit:
        return text
    half = limit // 2
    return f"{text[:half]}\n… [{len(text) - limit:,} characters not shown] …\n{text[-half:]}"


def render_trace(
    trace: Trace, *, only_iteration: int | None = None, max_output: int = 2000
) -> Iterator[RenderableType]:
    run = trace.run
    head = Text()
    head.append(f"Run {run.id}", style="bold")
    head.append(f"  [{run.status}]  engine={run.engine}  model={model_label(run.root_model)}")
    if run.sub_model:
        head.append(f"  sub={model_label(run.sub_model)}")
    yield head
    if run.question:
        yield Text(f"Question: {run.question}")
    answer = "-" if run.final_answer is None else run.final_answer
    verdict = "" if run.correct is None else ("  correct" if run.correct else "  wrong")
    yield Text(f"Answer: {_clip(answer, 500)}{verdict}   (expected: {run.expected or '-'})")
    tokens = "-" if run.tokens_in is None else f"{run.tokens_in:,} in / {run.tokens_out or 0:,} out"
    yield Text(
        f"{run.n_iterations} iterations, {run.n_llm_calls} LLM calls ({run.n_sub_calls} sub), tokens {tokens}, "
        f"cost {_fmt(run.cost, '.4f')}, wall {_fmt(run.wall_s, '.1f')} s"
    )
    if run.error:
        yield Text(f"Error: {run.error}", style="red")
    subcalls: dict[int | None, list[LLMCall]] = {}
    for call in trace.calls:
        if call.role == "sub":
            subcalls.setdefault(call.iteration, []).append(call)
    for it in trace.iterations:
        if only_iteration is not None and it.index != only_iteration:
            continue
        flags = " · SUBMIT" if it.submitted else ""
        yield Rule(f"iteration {it.index}{flags}", align="left")
        if it.reasoning:
            yield Panel(
                Text(_clip(it.reasoning, 4000)), title="reasoning", title_align="left", border_style="dim"
            )
        if it.code:
            yield Syntax(it.code, "python", line_numbers=True, word_wrap=True)
        output = (it.stdout or "") + (it.stderr or "")
        if output:
            yield Panel(
                Text(_clip(output, max_output)), title="output", title_align="left", border_style="green"
            )
        if it.error:
            yield Panel(
                Text(_clip(it.error, max_output)),
                title=f"error ({it.error_kind or 'code'})",
                title_align="left",
                border_style="red",
            )
        calls = subcalls.get(it.index, [])
        if calls:
            table = Table(title=f"{len(calls)} sub-LLM call(s)", title_justify="left", show_lines=True)
            for col in ("model", "prompt", "response", "tokens", "latency s"):
                table.add_column(col)
            for call in calls[:20]:
                tokens_cell = "-" if call.tokens_in is None else f"{call.tokens_in}/{call.tokens_out or 0}"
                table.add_row(
                    model_label(call.model),
                    _clip(call.prompt or f"<{call.prompt_chars} chars>", 300),
                    _clip(call.response or call.error or "", 300),
                    tokens_cell,
                    _fmt(call.latency_s, ".2f"),
                )
            if len(calls) > 20:
                table.caption = f"… and {len(calls) - 20} more"
            yield table
