"""Rich renderables for runs and traces (pure: build objects, never print)."""

from __future__ import annotations

import io
from collections.abc import Iterator, Sequence
from typing import Any, cast

import pandas as pd
from rich import box
from rich.console import Console, Group, RenderableType
from rich.measure import Measurement
from rich.panel import Panel
from rich.rule import Rule
from rich.syntax import Syntax
from rich.table import Table
from rich.text import Text

from rlmine.trace import SIMULATED_MODELS, CodeBlock, Iteration, LLMCall, Trace


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


# Columns of ``runs list`` in display order, and the order the optional ones are added in while
# they fit the terminal: the most telling first. run, status and ok always show (ids are never
# cut: they are what `runs show` takes).
_RUN_COLUMNS = ("run", "task", "model", "engine", "status", "ok", "iters", "calls", "tokens", "cost", "s")
_ALWAYS = ("run", "status", "ok")
_ADD_ORDER = ("task", "model", "iters", "s", "tokens", "engine", "calls", "cost")


def _run_cells(row: Any, stale: bool) -> dict[str, str]:
    tokens = None
    if not _missing(row.tokens_in):
        tin, tout = cast(Any, row.tokens_in), cast(Any, row.tokens_out)
        tokens = int(tin) + (0 if _missing(tout) else int(tout))
    return {
        "run": str(row.id),
        "task": _fmt(row.task_id if _missing(row.task) else row.task),
        "model": model_label(row.root_model),
        "engine": str(row.engine),
        "status": "stale" if stale else str(row.status),
        "ok": "-" if _missing(row.correct) else ("yes" if row.correct else "no"),
        "iters": _fmt(row.n_iterations),
        "calls": _fmt(row.n_llm_calls),
        "tokens": _fmt(tokens, ","),
        "cost": _fmt(row.cost, ".4f"),
        "s": _fmt(row.wall_s, ".1f"),
    }


def _table(columns: list[str], rows: list[dict[str, str]]) -> Table:
    table = Table(header_style="bold", pad_edge=False, show_edge=False, box=box.SIMPLE_HEAD)
    for col in columns:
        table.add_column(
            col, no_wrap=True, justify="right" if col in {"iters", "calls", "tokens", "cost", "s"} else "left"
        )
    for cells in rows:
        table.add_row(*(cells[c] for c in columns))
    return table


def runs_table(df: pd.DataFrame, *, width: int = 80, stale: list[bool] | None = None) -> Table:
    """Runs as a table that fits ``width`` columns: whole columns give way, cells are never cut.

    The engine and cost columns appear only when they say something; ``stale``
    marks runs whose recorder is gone (shown as ``stale``, not ``running``).
    """
    flags = stale if stale is not None else [False] * len(df)
    rows = [_run_cells(row, flag) for row, flag in zip(df.itertuples(index=False), flags, strict=True)]
    wanted = set(_ADD_ORDER)
    if not (df["engine"].nunique() > 1 or (not df.empty and df["engine"].iloc[0] != "rlmine")):
        wanted.discard("engine")
    if not bool(df["cost"].notna().any()):
        wanted.discard("cost")
    measure = Console(width=10_000, file=io.StringIO())
    chosen = set(_ALWAYS)
    for col in (c for c in _ADD_ORDER if c in wanted):
        trial = [c for c in _RUN_COLUMNS if c in chosen or c == col]
        if Measurement.get(measure, measure.options, _table(trial, rows)).maximum <= width:
            chosen.add(col)
    return _table([c for c in _RUN_COLUMNS if c in chosen], rows)


def _clip(text: str, limit: int) -> str:
    if len(text) <= limit:
        return text
    half = limit // 2
    return f"{text[:half]}\n… [{len(text) - limit:,} characters not shown] …\n{text[-half:]}"


def estimated(call: LLMCall) -> bool:
    """Whether the call's tokens, cost and latency are estimates (an imported batched call)."""
    return bool(call.metadata.get("estimated"))


ESTIMATED_NOTE = "≈ estimated: the source logged one usage figure for a whole batch of calls"


def _block_view(block: CodeBlock, total: int, max_output: int) -> Iterator[RenderableType]:
    state = "did not run" if not block.ran else ("error" if block.error else "ok")
    took = "" if block.duration_s is None else f" · {block.duration_s:.2f} s"
    style = "dim" if not block.ran else ("red" if block.error else "cyan")
    yield Text(f"block {block.index + 1}/{total} · {state}{took}", style=style)
    yield Syntax(block.code, "python", line_numbers=True, word_wrap=True)
    output = (block.stdout or "") + (block.stderr or "")
    if output:
        yield Panel(Text(_clip(output, max_output)), title="output", title_align="left", border_style="green")
    if block.error:
        yield Panel(
            Text(_clip(block.error, max_output)),
            title=f"error ({block.error_kind or 'code'})",
            title_align="left",
            border_style="red",
        )


def _cell_view(it: Iteration, max_output: int) -> Iterator[RenderableType]:
    """The iteration's code and what it did: block by block when the blocks are stored."""
    if it.blocks:
        for block in it.blocks:
            yield from _block_view(block, len(it.blocks), max_output)
        if it.error and not any(b.error for b in it.blocks):
            yield Panel(Text(_clip(it.error, max_output)), title=f"error ({it.error_kind or 'code'})",
                        title_align="left", border_style="red")  # fmt: skip
        return
    if it.code:
        yield Syntax(it.code, "python", line_numbers=True, word_wrap=True)
    output = (it.stdout or "") + (it.stderr or "")
    if output:
        yield Panel(Text(_clip(output, max_output)), title="output", title_align="left", border_style="green")
    if it.error:
        yield Panel(
            Text(_clip(it.error, max_output)),
            title=f"error ({it.error_kind or 'code'})",
            title_align="left",
            border_style="red",
        )


def _calls_view(calls: Sequence[LLMCall], expand: bool) -> RenderableType:
    approx = any(estimated(c) for c in calls)
    tin = [c.tokens_in for c in calls if c.tokens_in is not None]
    tout = [c.tokens_out for c in calls if c.tokens_out is not None]
    mark = "≈" if approx else ""
    tokens = f", {mark}{sum(tin):,} in / {mark}{sum(tout):,} out tokens" if tin else ""
    if not expand:
        first = (calls[0].prompt or f"<{calls[0].prompt_chars} chars>").replace("\n", " ")
        line = f"▸ {len(calls)} sub-LLM call(s){tokens} · first: {first[:60]!r} · --calls to expand"
        return Text(line, style="dim")
    table = Table(title=f"{len(calls)} sub-LLM call(s){tokens}", title_justify="left", show_lines=True)
    for col in ("#", "model", "prompt", "response", "tokens", "latency s"):
        table.add_column(col)
    for n, call in enumerate(calls):
        m = "≈" if estimated(call) else ""
        tokens_cell = "-" if call.tokens_in is None else f"{m}{call.tokens_in}/{call.tokens_out or 0}"
        table.add_row(
            str(n),
            model_label(call.model),
            _clip(call.prompt or f"<{call.prompt_chars} chars>", 300),
            _clip(call.response or call.error or "", 300),
            tokens_cell,
            "-" if call.latency_s is None else f"{m}{call.latency_s:.2f}",
        )
    if approx:
        table.caption = ESTIMATED_NOTE
    return table


def render_trace(
    trace: Trace, *, only_iteration: int | None = None, max_output: int = 2000, expand_calls: bool = False
) -> Iterator[RenderableType]:
    """A run iteration by iteration; each code block with its own output and error, in the order
    the model wrote them. Sub-calls are one line per iteration unless ``expand_calls``."""
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
    approx = any(estimated(c) for c in trace.calls)
    mark = "≈" if approx else ""
    tokens = (
        "-" if run.tokens_in is None else f"{mark}{run.tokens_in:,} in / {mark}{run.tokens_out or 0:,} out"
    )
    yield Text(
        f"{run.n_iterations} iterations, {run.n_llm_calls} LLM calls ({run.n_sub_calls} sub), tokens {tokens}, "
        f"cost {mark}{_fmt(run.cost, '.4f')}, wall {_fmt(run.wall_s, '.1f')} s"
    )
    if approx:
        yield Text(ESTIMATED_NOTE, style="yellow")
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
        flags += " · error" if it.error else ""
        yield Rule(f"iteration {it.index}{flags}", align="left")
        if it.reasoning:
            yield Panel(
                Text(_clip(it.reasoning, 4000)), title="reasoning", title_align="left", border_style="dim"
            )
        yield Group(*_cell_view(it, max_output))
        calls = subcalls.get(it.index, [])
        if calls:
            yield _calls_view(calls, expand_calls)
