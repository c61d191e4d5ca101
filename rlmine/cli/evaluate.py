"""``rlmine eval``: an agent against the RLM on held-out instances, as a table (or JSON)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer
from rich.table import Table

from rlmine.cli.options import DbOption, JsonOption, open_store
from rlmine.cli.output import console, print_json


def _fmt(value: Any, kind: str = "") -> str:
    if value is None:
        return "-"
    if kind == "pct":
        return f"{value:.0%}"
    if kind == "s":
        return f"{value:.2f} s"
    if kind == "x":
        return f"{value:.3g}×"
    if isinstance(value, float):
        return f"{value:.4g}"
    return f"{value:,}"


def eval_table(summary: dict[str, Any]) -> Table:
    """Agent and RLM side by side, with the agent/RLM ratio of each measure."""
    rlm, agent, ratios = summary["rlm"], summary["agent"], summary["ratios"]
    table = Table(
        title=f"eval on {summary['task']} ({summary['split']}, {summary['runs_per_instance']} run(s) per instance)",
        title_justify="left",
    )
    for col in ("measure", "RLM", "agent", "agent / RLM"):
        table.add_column(col, justify="right" if col != "measure" else "left")

    def ci(s: dict[str, Any]) -> str:
        return f"{s['accuracy']:.0%} [{s['ci95'][0]:.0%}, {s['ci95'][1]:.0%}] ({s['correct']}/{s['n']})"

    table.add_row("accuracy [95% CI]", ci(rlm), ci(agent), _fmt(ratios["accuracy"], "x"))
    table.add_row(
        "LLM calls", _fmt(rlm["llm_calls"]), _fmt(agent["llm_calls"]), _fmt(ratios["llm_calls"], "x")
    )
    table.add_row("tokens in", _fmt(rlm["tokens_in"]), _fmt(agent["tokens_in"]), "")
    table.add_row(
        "tokens out", _fmt(rlm["tokens_out"]), _fmt(agent["tokens_out"]), _fmt(ratios["tokens"], "x")
    )
    table.add_row("cost ($)", _fmt(rlm["cost"]), _fmt(agent["cost"]), _fmt(ratios["cost"], "x"))
    table.add_row(
        "wall median",
        _fmt(rlm["wall_median_s"], "s"),
        _fmt(agent["wall_median_s"], "s"),
        _fmt(ratios["wall_median"], "x"),
    )
    table.add_row(
        "wall p95",
        _fmt(rlm["wall_p95_s"], "s"),
        _fmt(agent["wall_p95_s"], "s"),
        _fmt(ratios["wall_p95"], "x"),
    )
    table.add_row("errors", _fmt(rlm["errors"]), _fmt(agent["errors"]), "")
    return table


def eval_cmd(
    task: str = typer.Option(..., "--task", help="The task (name) whose instances to evaluate on."),
    agent: str | None = typer.Option(
        None, "--agent", help="Agent id or agent.py file (default: the task's latest)."
    ),
    split: str = typer.Option("test", "--split", help="Instances to evaluate on (never used for selection)."),
    runs_per_instance: int = typer.Option(
        1, "-k", "--runs-per-instance", min=1, max=100, help="Runs of each system per instance."
    ),
    model: str = typer.Option(
        "sim", "--model", help="Root model of the RLM runs (the simulator by default)."
    ),
    sub_model: str | None = typer.Option(
        None, "--sub-model", help="Sub-LM of both systems (default: --model)."
    ),
    api_base: str | None = typer.Option(None, "--api-base", help="OpenAI-compatible endpoint (real models)."),
    sim_latency: float | None = typer.Option(
        None, "--sim-latency", min=0, help="Simulated LM latency scale."
    ),
    concurrency: int = typer.Option(
        4, "-c", "--concurrency", min=1, max=64, help="RLM runs in flight at once."
    ),
    db: Path | None = DbOption,
    as_json: bool = JsonOption,
) -> None:
    """Compare an agent with the RLM on a task's test instances: accuracy, calls, tokens, cost, time."""
    from codegen import EvalOptions, run_eval

    store = open_store(db)
    opts = EvalOptions(
        split=split, runs_per_instance=runs_per_instance, root_model=model, sub_model=sub_model,
        sim_latency=sim_latency, api_base=api_base, concurrency=concurrency,
    )  # fmt: skip
    report = run_eval(store, task, agent, opts)
    if as_json:
        print_json({"eval_id": report.eval_id, **report.summary})
        return
    term = console()
    term.print(eval_table(report.summary))
    term.print(f"stored as eval {report.eval_id}; see it in `rlmine dashboard` (Agents)")


def register(app: typer.Typer) -> None:
    app.command("eval")(eval_cmd)
