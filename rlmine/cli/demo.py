"""``rlmine demo``: the whole offline pipeline in one command (what ``make demo`` runs).

1. make a demo task with a seeded generator (reused when it already exists);
2. record a batch of runs with the RLM **simulator** (root and sub-LM), in parallel;
3. mine tactics from the task's runs (``rlmine mine``);
4. build an agent from the successful runs (validated on the validation split) and
   eval it against the RLM on the test split;
5. print a summary, the agent/RLM ratios and the next commands to try.

Re-running reuses the task and the batch: finished runs are not recorded again.
"""

from __future__ import annotations

import math
import threading
from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

from rlmine.cli.options import DbOption, open_store
from rlmine.cli.output import console
from rlmine.store import Store, batch_summary

DEFAULT_DEMO_DIR = Path("traces") / "demo"


def demo_cmd(
    family: str = typer.Option("celebrities", "--family", help="Demo task family (see `rlmine tasks list`)."),
    size: str = typer.Option("16MB", "--size", help="Context size of each instance (100KB to 1GB)."),
    instances: int = typer.Option(
        10, "--instances", min=1, max=1000, help="Instances to generate (60% train)."
    ),
    runs: int = typer.Option(
        24, "--runs", min=1, max=100_000, help="Runs to record, spread over the train instances."
    ),
    concurrency: int = typer.Option(4, "-c", "--concurrency", min=1, max=64, help="Runs in flight at once."),
    seed: int = typer.Option(1, "--seed", help="Seed of the generated task."),
    out: Path = typer.Option(DEFAULT_DEMO_DIR, "--out", help="Where demo tasks are written."),
    sim_latency: float | None = typer.Option(
        None, "--sim-latency", min=0, help="Add simulated LM latency (scale)."
    ),
    embedder: str = typer.Option(
        "minilm",
        "--embedder",
        help="Step embedder for mining: minilm (offline model) or hashing (model-free).",
    ),
    db: Path | None = DbOption,
) -> None:
    """Run the offline demo: make a task, record simulator runs, mine tactics, build + eval an agent."""
    from recorder.batch import RecordOptions, record
    from recorder.families import get_family, make_task, parse_size
    from recorder.tasks import load_task
    from rlmine.cli.progress import BatchProgress, sigint_cancels, summary_table

    get_family(family)
    size_bytes = parse_size(size)
    term = console()
    term.print("[bold]rlmine demo[/] — offline: the LLM is rlmine's [bold]simulator[/], not a real model.")
    task_dir = out / f"{family}-{size.lower()}-n{instances}-s{seed}"
    task_file = task_dir / "task.yaml"
    if task_file.exists():
        term.print(f"1. task: reusing {task_file}")
    else:
        term.print(f"1. task: generating {instances} × {size} of {family} data into {task_dir}")
        # test questions of categories train asked: the agent is measured on what its runs saw
        make_task(family, task_dir, size_bytes=size_bytes, instances=instances, seed=seed, covered=True)
    spec = load_task(task_file)
    train = spec.instances_in("train") or list(spec.instances)
    repeats = max(1, math.ceil(runs / len(train)))
    store = open_store(db, create=True)
    term.print(
        f"2. record: {len(train)} train instances × {repeats} runs, {concurrency} at a time → {store.path}"
    )
    opts = RecordOptions(
        runs=repeats,
        models=("sim",),
        split="train" if spec.instances_in("train") else None,
        concurrency=concurrency,
        batch=f"demo-{spec.name}-x{repeats}",
        lm_options={"latency": sim_latency} if sim_latency is not None else {},
    )
    cancel = threading.Event()
    bar = BatchProgress(term, f"recording {spec.name}")
    with sigint_cancels(cancel, term), bar.progress:
        result = record(spec, db=store, options=opts, on_event=bar, cancel=cancel)
    if result.skipped:
        term.print(f"   reused {result.skipped} of {result.planned} runs recorded earlier")
    if result.runs:
        term.print(summary_table(result))
    ratios = None
    if not result.cancelled:
        _mine(term, store, spec.name, embedder)
        ratios = _build_and_eval(term, store, spec.name, concurrency, sim_latency, out / "agents")
    _summary(term, store, result.batch_id)
    if ratios:
        term.print(ratios)
    if result.cancelled:
        raise typer.Exit(130)


def _build_and_eval(
    term: Console, store: Store, task: str, concurrency: int, sim_latency: float | None, agents_dir: Path
) -> str | None:
    """4. build an agent from the recorded runs and eval it against the RLM on the test split."""
    from codegen import BuildError, EvalOptions, TaskBuildOptions, build_for_task, run_eval
    from rlmine.cli.agents import write_atomically
    from rlmine.cli.evaluate import eval_table

    try:
        built = build_for_task(store, task, TaskBuildOptions(concurrency=concurrency))
    except BuildError as exc:
        term.print(f"4. agent: none — {exc.one_line()}")
        return None
    assert built.rendered is not None
    agents_dir.mkdir(parents=True, exist_ok=True)
    path = agents_dir / f"{task}-agent.py"
    write_atomically(path, built.rendered.script)
    term.print(f"4. agent: {built.agent_id} → {path} ({built.message})")
    report = run_eval(
        store, task, built.agent_id, EvalOptions(concurrency=concurrency, sim_latency=sim_latency)
    )
    term.print(eval_table(report.summary))
    r = report.summary["ratios"]

    def x(value: float | None) -> str:
        return "-" if value is None else f"{value:.2g}×"

    note = (
        ""
        if sim_latency
        else " (no simulated LM latency: wall times compare start-up costs; try --sim-latency 1)"
    )
    return (
        f"agent / RLM on the test instances: tokens {x(r['tokens'])}, LLM calls {x(r['llm_calls'])}, "
        f"wall time (median) {x(r['wall_median'])}{note}; accuracy {report.summary['agent']['accuracy']:.0%} "
        f"vs {report.summary['rlm']['accuracy']:.0%}"
    )


def _mine(term: Console, store: Store, task: str, embedder: str) -> None:
    """Step 3: mine the task's runs and show the tactics and the consensus plan."""
    from miner import mine

    term.print(f"3. mine: tactics of {task} (embedder {embedder})")
    with term.status("mining tactics…"):
        result = mine(store, task=task, embedder=embedder)
    names = {t.id: t.label for t in result.tactics}
    table = Table(title="   tactics (largest first)", title_justify="left")
    for col in ("id", "name", "steps", "runs", "lift"):
        table.add_column(col)
    for t in result.tactics[:8]:
        lift = "—" if t.lift is None else f"{t.lift:.2f}"
        table.add_row(t.id, t.label, str(t.size), str(t.n_runs), lift)
    term.print(table)
    plan = " → ".join(f"{tid} ({names.get(tid, '')})" for tid in result.consensus) or "none (no correct run)"
    term.print(f"   consensus plan: {plan}")


def _summary(term: Console, store: Store, batch_id: str) -> None:
    with store.reader() as con:
        totals = batch_summary(con, batch_id)
    n, correct, iters, subs, tokens, labels, last = (
        totals.runs,
        totals.correct,
        totals.iterations,
        totals.sub_calls,
        totals.tokens,
        totals.step_labels,
        totals.last_run_id,
    )
    table = Table(title="5. in the database", title_justify="left", show_header=False)
    table.add_row("runs", f"{n}  ({correct or 0} correct, {100 * (correct or 0) / max(n, 1):.0f}%)")
    table.add_row("iterations", f"{iters or 0:,}")
    table.add_row("sub-LLM calls", f"{subs or 0:,}")
    table.add_row("tokens (simulated)", f"{tokens or 0:,}")
    table.add_row("ground-truth step labels", f"{labels:,}")
    term.print(table)
    db_flag = "" if str(store.path) == "traces/rlmine.duckdb" else f" --db {store.path}"
    term.print("Next:")
    term.print(f"  rlmine runs list{db_flag}")
    if last:
        term.print(f"  rlmine runs show {last}{db_flag}")
    term.print(f"  rlmine tactics list{db_flag}")
    term.print(f"  rlmine agent list{db_flag}")
    term.print(f"  rlmine dashboard{db_flag}")


def register(app: typer.Typer) -> None:
    app.command("demo")(demo_cmd)
