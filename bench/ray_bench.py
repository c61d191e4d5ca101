"""The same batch on the local executor and on Ray (a local Ray instance), side by side.

    PYTHONPATH=. .venv/bin/python bench/ray_bench.py [--quick]

The root model is a scripted LM that sleeps a fixed latency per call and writes trivial
cells, so every number is the executors' own cost: engine, real subprocess sandbox, spool
and DuckDB, plus for Ray the task submission, the worker building its backends and the
streaming of each iteration back to the driver. Both executors record into a fresh
database with the same plan, concurrency and model.

Per executor:
- batch wall time, and its ratio to the critical path (waves x iterations x latency);
- overhead per run: median of (driver sees the run start → driver has its end) minus the
  model's sleeping (iterations x latency);
- overhead per iteration: median gap between consecutive root calls of a run, minus the
  latency (parse, run the cell, feedback; on Ray also the worker-side queue);
- arrival delay: median of (the driver receives an iteration) − (the iteration ended on
  its worker): what "iterations reach the driver as they happen" costs;
- driver CPU per iteration: the driver process's CPU time / iterations — the single
  writer's cost, which bounds how many iterations per second one driver can take in.

Writes bench/results/ray_bench.json (read by docs/scale-out.md's projection).
``--quick``: 16 runs x 4 iterations instead of 48 x 6.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import platform
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb
import yaml
from rich.console import Console
from rich.table import Table

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from recorder.batch import BatchEvent, RecordOptions, record
from recorder.engine import RunObserver
from recorder.executors import Executor, LMPlan, LocalExecutor, RunRequest
from recorder.executors.ray_executor import RayExecutor
from recorder.lm.base import LMResponse, Message
from rlmine.trace import Iteration, LLMCall, Run, StepLabel, Trace, utcnow

RESULTS = Path(__file__).resolve().parent / "results" / "ray_bench.json"


class SleepyLM:
    """``steps - 1`` trivial cells, then SUBMIT; sleeps ``latency_s`` per call. Stateless."""

    def __init__(self, model: str, steps: int, latency_s: float) -> None:
        self.model, self.steps, self.latency_s = model, steps, latency_s

    def complete(self, messages: Sequence[Message], **_: Any) -> LMResponse:
        time.sleep(self.latency_s)
        turn = sum(1 for m in messages if m.role == "assistant")
        code = "SUBMIT(1)" if turn >= self.steps - 1 else f"x{turn % 7} = {turn}"
        return LMResponse(text=f"Step {turn}.\n```python\n{code}\n```", model=self.model)


class SleepyFactory:
    """A picklable ``lm_factory``: the same model on the driver and on every Ray worker."""

    def __init__(self, steps: int, latency_s: float) -> None:
        self.steps, self.latency_s = steps, latency_s

    def __call__(self, spec: str, *, role: str = "root", **_: Any) -> SleepyLM:
        return SleepyLM(spec, self.steps, self.latency_s if role == "root" else 0.0)


class _Arrivals:
    """An observer proxy noting when each iteration reaches the driver."""

    def __init__(self, inner: RunObserver, log: list[tuple[Iteration, datetime]], lock: threading.Lock):
        self.inner, self.log, self.lock = inner, log, lock

    def run_started(self, run: Run) -> None:
        self.inner.run_started(run)

    def iteration_finished(
        self, iteration: Iteration, calls: Sequence[LLMCall], labels: Sequence[StepLabel]
    ) -> None:
        with self.lock:
            self.log.append((iteration, utcnow()))
        self.inner.iteration_finished(iteration, calls, labels)


class Timed:
    """Wraps an executor to time arrivals; everything else passes through."""

    def __init__(self, inner: Executor) -> None:
        self.inner, self.name = inner, inner.name
        self.arrivals: list[tuple[Iteration, datetime]] = []
        self._lock = threading.Lock()

    def open(self, plan: LMPlan) -> None:
        self.inner.open(plan)

    def run(self, request: RunRequest, observer: RunObserver, cancel: threading.Event) -> Trace:
        return self.inner.run(request, _Arrivals(observer, self.arrivals, self._lock), cancel)

    def close(self) -> None:
        self.inner.close()


def _task(directory: Path, instances: int) -> Path:
    (directory / "contexts").mkdir(parents=True)
    entries = []
    for i in range(instances):
        (directory / "contexts" / f"c{i}.txt").write_text("".join(f"line {j}\n" for j in range(1000)))
        entries.append(
            {"id": f"train-{i:03d}", "split": "train", "context": f"contexts/c{i}.txt", "expected": 1}
        )
    spec = {
        "name": "ray-bench",
        "question": "Submit 1.",
        "checker": "exact",
        "budget": {"max_iterations": 20, "cell_timeout_s": 30},
        "instances": entries,
    }
    path = directory / "task.yaml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    return path


def _ms(values: Sequence[float]) -> float:
    return round(statistics.median(values) * 1000, 2) if values else float("nan")


def _p95_ms(values: Sequence[float]) -> float:
    return round(sorted(values)[int(0.95 * (len(values) - 1))] * 1000, 2) if values else float("nan")


# The projection's example workload: a run of 8 root turns at 4 s each and 24 sub-calls sent
# as 3 batches of 8 in parallel at 1.5 s each: 36.5 s of model time, 32 requests.
SCENARIO = {"root_calls": 8, "root_latency_s": 4.0, "sub_calls": 24, "sub_batches": 3, "sub_latency_s": 1.5}


def projection(measured: dict[str, Any], slots: Sequence[int], rpms: Sequence[int]) -> list[dict[str, Any]]:
    """Runs per hour of the SCENARIO workload: the least of what the cluster's run slots,
    the provider's request rate limit and the one driver (the single writer) allow."""
    sc = SCENARIO
    model_s = sc["root_calls"] * sc["root_latency_s"] + sc["sub_batches"] * sc["sub_latency_s"]
    run_s = (
        model_s
        + measured["overhead_per_run_median_ms"] / 1000
        + sc["root_calls"] * measured["overhead_per_iteration_median_ms"] / 1000
    )
    requests = sc["root_calls"] + sc["sub_calls"]
    driver = 3600 / (sc["root_calls"] * measured["driver_cpu_per_iteration_ms"] / 1000)
    rows = []
    for n in slots:
        for rpm in rpms:
            cluster, limit = n * 3600 / run_s, rpm * 60 / requests
            best = min(cluster, limit, driver)
            bound = "cluster" if best == cluster else "rate limit" if best == limit else "driver"
            rows.append({"slots": n, "rpm": rpm, "runs_per_hour": round(best), "bound": bound})
    return rows


def one_batch(
    executor: Executor, directory: Path, runs: int, steps: int, latency_s: float, concurrency: int
) -> dict[str, Any]:
    task = _task(directory, instances=runs // 4)
    db = directory / "bench.duckdb"
    timed = Timed(executor)
    spans: dict[str, list[float]] = {}
    lock = threading.Lock()

    def on_event(event: BatchEvent) -> None:
        if event.slot is not None and event.kind in ("started", "finished"):
            with lock:
                spans.setdefault(event.slot.key, []).append(time.perf_counter())

    options = RecordOptions(runs=4, models=("bench",), concurrency=concurrency)
    cpu0, t0 = time.process_time(), time.perf_counter()
    result = record(
        task,
        db=db,
        options=options,
        lm_factory=SleepyFactory(steps, latency_s),
        executor=timed,
        on_event=on_event,
    )
    wall, cpu = time.perf_counter() - t0, time.process_time() - cpu0
    assert result.by_status == {"submitted": runs}, result.by_status
    con = duckdb.connect(str(db), read_only=True)
    starts = con.execute(
        "SELECT run_id, started_at FROM llm_calls WHERE role = 'root' ORDER BY run_id, iteration"
    ).fetchall()
    n_iterations = con.execute("SELECT count(*) FROM iterations").fetchone()[0]  # type: ignore[index]
    con.close()
    gaps = [(b[1] - a[1]).total_seconds() - latency_s for a, b in itertools.pairwise(starts) if a[0] == b[0]]
    delays = [
        (
            arrived - (it.started_at + timedelta(seconds=(it.root_latency_s or 0) + (it.duration_s or 0)))
        ).total_seconds()
        for it, arrived in timed.arrivals
        if it.started_at is not None
    ]
    per_run = [s[1] - s[0] - steps * latency_s for s in spans.values() if len(s) == 2]
    waves = -(-runs // concurrency)
    return {
        "runs": runs,
        "iterations": n_iterations,
        "wall_s": round(wall, 2),
        "critical_path_s": round(waves * steps * latency_s, 2),
        "wall_over_critical_path": round(wall / (waves * steps * latency_s), 2),
        "runs_per_s": round(runs / wall, 2),
        "overhead_per_run_median_ms": _ms(per_run),
        "overhead_per_run_p95_ms": _p95_ms(per_run),
        "overhead_per_iteration_median_ms": _ms(gaps),
        "arrival_delay_median_ms": _ms(delays),
        "arrival_delay_p95_ms": _p95_ms(delays),
        "driver_cpu_per_iteration_ms": round(cpu / max(n_iterations, 1) * 1000, 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="16 runs x 4 iterations")
    parser.add_argument("--latency", type=float, default=0.2, help="seconds per root call")
    args = parser.parse_args()
    runs, steps = (16, 4) if args.quick else (48, 6)
    concurrency = 8
    import ray

    results: dict[str, Any] = {
        "machine": {
            "python": platform.python_version(),
            "cpus": os.cpu_count(),
            "platform": platform.platform(),
        },
        "ray": ray.__version__,
        "quick": args.quick,
        "plan": {
            "runs": runs,
            "iterations_per_run": steps,
            "latency_s": args.latency,
            "concurrency": concurrency,
        },
    }
    with tempfile.TemporaryDirectory(prefix="rlmine-ray-bench-", dir="/tmp") as tmp:
        results["local"] = one_batch(
            LocalExecutor(), Path(tmp) / "local", runs, steps, args.latency, concurrency
        )
        t0 = time.perf_counter()
        ray.init(
            num_cpus=os.cpu_count() or 2,
            include_dashboard=False,
            _node_ip_address="127.0.0.1",
            logging_level="ERROR",
            # Ray keeps only num_cpus idle workers by default; with fractional shares per run
            # the rest would be reaped between the batches and "warm" would start cold again.
            _system_config={"num_workers_soft_limit": concurrency},
        )
        results["ray_init_s"] = round(time.perf_counter() - t0, 2)
        # A run mostly waits on its model: 1/concurrency of a CPU each lets `concurrency` run at once.
        share = (os.cpu_count() or 2) / concurrency
        # Cold: Ray starts its worker processes during this batch; warm: they are reused.
        cold = one_batch(
            RayExecutor(num_cpus=share), Path(tmp) / "ray-cold", runs, steps, args.latency, concurrency
        )
        results["ray_cold"] = cold
        results["ray"] = one_batch(
            RayExecutor(num_cpus=share), Path(tmp) / "ray", runs, steps, args.latency, concurrency
        )
        ray.shutdown()
    local, remote = results["local"], results["ray"]
    results["ray_minus_local"] = {
        "overhead_per_run_ms": round(
            remote["overhead_per_run_median_ms"] - local["overhead_per_run_median_ms"], 2
        ),
        "overhead_per_iteration_ms": round(
            remote["overhead_per_iteration_median_ms"] - local["overhead_per_iteration_median_ms"], 2
        ),
        "wall_ratio": round(remote["wall_s"] / local["wall_s"], 2),
    }
    table = Table(
        title=f"local vs Ray: {runs} runs x {steps} iterations, {args.latency:g} s per root call, concurrency {concurrency}"
    )
    table.add_column("measure")
    for name in ("local", "ray (warm)", "ray (cold)"):
        table.add_column(name, justify="right")
    for key in local:
        table.add_row(key, str(local[key]), str(remote[key]), str(cold[key]))
    table.add_row("ray.init (s)", "—", str(results["ray_init_s"]), "")
    console = Console()
    console.print(table)
    results["projection"] = {
        "scenario": SCENARIO,
        "rows": projection(remote, (16, 64, 256, 1024), (500, 5_000, 30_000)),
    }
    proj = Table(
        title="projected runs/hour (Ray, warm) for the scenario in the JSON: min(cluster, rate limit, driver)"
    )
    proj.add_column("run slots", justify="right")
    for rpm in (500, 5_000, 30_000):
        proj.add_column(f"{rpm:,} req/min", justify="right")
    for n in (16, 64, 256, 1024):
        cells = [r for r in results["projection"]["rows"] if r["slots"] == n]
        proj.add_row(str(n), *(f"{r['runs_per_hour']:,} ({r['bound']})" for r in cells))
    console.print(proj)
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
