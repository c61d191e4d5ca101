"""``rlmine record``: run a task many times and store every iteration."""

from __future__ import annotations

import threading
from pathlib import Path

import typer

from rlmine.cli.options import DbOption, JsonOption, RayAddressOption
from rlmine.cli.output import console, err_console, print_json
from rlmine.config import resolve_db_path
from rlmine.errors import RlmineRuntimeError, UserError


def record_cmd(
    task_file: Path = typer.Argument(..., help="Task spec file (YAML or TOML); see `rlmine tasks make`."),
    runs: int = typer.Option(
        1, "-n", "--runs", min=1, help="Repeats of every (instance, model, temperature, seed)."
    ),
    model: list[str] = typer.Option(
        ["sim"], "--model", help="Root model (repeatable). 'sim' is the offline simulator."
    ),
    sub_model: str | None = typer.Option(
        None, "--sub-model", help="Model behind llm_query (default: the root model)."
    ),
    temperature: list[float] = typer.Option([], "--temperature", help="Sampling temperature (repeatable)."),
    seed: list[int] = typer.Option([0], "--seed", help="Base seed (repeatable); repeat r uses seed + r."),
    split: str = typer.Option(
        "train", "--split", help="Instances of this split: train, validation, test, or all."
    ),
    instance: list[str] = typer.Option([], "--instance", help="Only these instance ids (repeatable)."),
    concurrency: int = typer.Option(4, "-c", "--concurrency", min=1, max=256, help="Runs in flight at once."),
    batch: str | None = typer.Option(
        None, "--batch", help="Batch name; the same name resumes it (default: derived from the plan)."
    ),
    resume: bool = typer.Option(
        False,
        "--resume",
        help="Resume the batch: skip finished runs, re-run stale or cancelled ones (also the default when the batch exists).",
    ),
    max_iterations: int | None = typer.Option(
        None, "--max-iterations", min=1, help="Override the task's budget."
    ),
    max_sub_calls: int | None = typer.Option(
        None, "--max-sub-calls", min=0, help="Override the task's budget."
    ),
    cell_timeout: float | None = typer.Option(None, "--cell-timeout", min=0.1, help="Seconds per REPL cell."),
    api_base: str | None = typer.Option(
        None, "--api-base", help="OpenAI-compatible endpoint (vLLM, Ollama, Groq, …)."
    ),
    api_key_env: str = typer.Option(
        "OPENAI_API_KEY", "--api-key-env", help="Environment variable holding the API key."
    ),
    sim_latency: float | None = typer.Option(
        None, "--sim-latency", min=0, help="Simulator only: scale of simulated latency."
    ),
    lm_retries: int | None = typer.Option(
        None,
        "--lm-retries",
        min=0,
        help="Network models: retries per LLM call on 429/5xx/timeouts (default 6).",
    ),
    lm_timeout: float | None = typer.Option(
        None, "--lm-timeout", min=0.1, help="Network models: seconds per LLM request attempt (default 60)."
    ),
    executor: str = typer.Option(
        "local",
        "--executor",
        help="Where runs execute: local (threads of this process) or ray (a Ray cluster; pip install 'rlmine\\[ray]').",
    ),
    ray_address: str | None = RayAddressOption,
    ray_cpus: float | None = typer.Option(
        None, "--ray-cpus-per-run", min=0.01, help="Ray only: CPUs reserved per run (default 1)."
    ),
    ray_env: list[str] = typer.Option(
        [],
        "--ray-env",
        help="Ray only: also send this environment variable to the workers (repeatable), e.g. ANTHROPIC_API_KEY.",
    ),
    db: Path | None = DbOption,
    as_json: bool = JsonOption,
) -> None:
    """Record a batch of RLM runs of a task: every iteration, sub-call, answer and score."""
    from recorder.batch import RecordOptions, record
    from recorder.executors import make_executor
    from recorder.tasks import load_task
    from rlmine.cli.progress import BatchProgress, sigint_cancels, summary_table

    if not task_file.exists():
        raise UserError(
            f"no task file at {task_file}", "`rlmine tasks make celebrities --out DIR` to make one"
        )
    runner = make_executor(executor, address=ray_address, num_cpus=ray_cpus, env=tuple(ray_env))
    spec = load_task(task_file)
    budget = {
        "max_iterations": max_iterations,
        "max_sub_calls": max_sub_calls,
        "cell_timeout_s": cell_timeout,
    }
    lm_options = {
        name: value
        for name, value in (("latency", sim_latency), ("max_retries", lm_retries), ("timeout_s", lm_timeout))
        if value is not None
    }
    opts = RecordOptions(
        runs=runs,
        models=tuple(model),
        sub_model=sub_model,
        temperatures=tuple(temperature) or (None,),
        seeds=tuple(seed),
        split=None if split == "all" else split,
        instance_ids=tuple(instance),
        concurrency=concurrency,
        batch=batch,
        budget={k: v for k, v in budget.items() if v is not None},
        api_base=api_base,
        api_key_env=api_key_env,
        lm_options=lm_options,
    )
    db_path = resolve_db_path(db)  # opened (and created) by record() after its preflight checks
    out = console()
    status_out = err_console() if as_json else out  # keep stdout pure JSON for scripts
    cancel = threading.Event()
    bar = BatchProgress(status_out, f"recording {spec.name}")
    with sigint_cancels(cancel, status_out), bar.progress:
        result = record(spec, db=db_path, options=opts, on_event=bar, cancel=cancel, executor=runner)
    if as_json:
        print_json(
            {
                "batch": result.batch_name,
                "batch_id": result.batch_id,
                "planned": result.planned,
                "skipped": result.skipped,
                "by_status": result.by_status,
                "cancelled": result.cancelled,
                "elsewhere": result.elsewhere,
                "runs": [r.id for r in result.runs],
            }
        )
    else:
        if result.skipped:
            out.print(
                f"Resumed batch {result.batch_name}: {result.skipped} of {result.planned} runs were already done."
            )
        if result.elsewhere:
            out.print(
                f"{result.elsewhere} of {result.planned} runs were claimed by another recorder working on this batch."
            )
        if result.runs:
            out.print(summary_table(result))
        out.print(
            f"Next: `rlmine runs list --batch {result.batch_name}` · `rlmine runs show RUN_ID` · `rlmine dashboard`"
        )
    if result.cancelled:
        raise typer.Exit(130)
    if result.failed:
        first = next(run.error for run in result.runs if run.status == "error")
        raise RlmineRuntimeError(
            f"{result.failed} of {len(result.runs)} runs ended in error (first: {first})",
            f"`rlmine runs list --batch {result.batch_name} --status error` to see each run's error",
        )


def register(app: typer.Typer) -> None:
    app.command("record")(record_cmd)
