"""Recorder overheads: the engine loop, a parallel batch, and a 1 GB context.

    PYTHONPATH=. .venv/bin/python bench/recorder_bench.py [--quick]

Models are in-process scripted LMs that sleep a fixed latency, so every number is the
recorder's own cost (engine, real subprocess sandbox, spool + DuckDB), not a provider's.

(a) overhead per iteration: the gap between one root call returning and the next one
    starting (parse, run a trivial cell in the sandbox, format feedback, spool the
    iteration); goal: median <= 10 ms.
(b) 64 runs x 6 iterations, 200 ms per root call, concurrency 32, through the batch
    runner into a real database; goal: wall <= 1.2 x the critical path (2 waves x 6 x
    0.2 s). Also times 32 sandboxes started at once (the cost (b) has to hide), and
    the same runs without the batch runner with the sandbox started during the first
    root call (the engine's way) or before it (the old way).
(c) a 1 GB text context: worker ready <= 2 x the time to read the file, worker peak
    memory <= 1.6 x the file size, per-iteration overhead as in (a). The file is
    written under /tmp and deleted.

Prints a table and writes bench/results/recorder_bench.json. ``--quick`` shrinks (a)
and (c) (a 256 MB context) for a smoke run; (b) is the same in both modes.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from recorder.batch import RecordingObserver, RecordOptions, record
from recorder.engine import EngineOptions, default_sandbox_factory, run_rlm
from recorder.lm.base import LMResponse, Message
from recorder.sandbox import SandboxConfig, SubprocessSandbox
from recorder.sandbox.base import LLMHandler, Sandbox
from recorder.tasks import Budget
from rlmine.store import RunRecorder, Store

RESULTS = Path(__file__).resolve().parent / "results" / "recorder_bench.json"


class SleepyLM:
    """A scripted root model: ``steps - 1`` trivial cells, then SUBMIT; sleeps per call.

    Stateless apart from the timing log, so one instance can serve concurrent runs.
    """

    def __init__(self, steps: int, latency_s: float, model: str = "bench") -> None:
        self.model, self.steps, self.latency_s = model, steps, latency_s
        self.spans: list[tuple[float, float]] = []  # (call started, call returned)
        self._lock = threading.Lock()

    def complete(self, messages: Sequence[Message], **_: Any) -> LMResponse:
        began = time.perf_counter()
        if self.latency_s:
            time.sleep(self.latency_s)
        turn = sum(1 for m in messages if m.role == "assistant")
        code = "SUBMIT(1)" if turn >= self.steps - 1 else f"x{turn % 7} = {turn}"
        with self._lock:
            self.spans.append((began, time.perf_counter()))
        return LMResponse(text=f"Step {turn}.\n```python\n{code}\n```", model=self.model)


def _ms(values: Sequence[float]) -> float:
    return round(statistics.median(values) * 1000, 3)


def loop_overhead(context: Path, iterations: int, directory: Path) -> dict[str, Any]:
    """(a) and (c): gaps between root calls of one run, with the real sandbox and spool."""
    lm = SleepyLM(iterations, 0.0)
    store = Store.open(directory / f"loop-{context.stat().st_size}.duckdb", create=True)
    recorder = RunRecorder(store)
    try:
        budget = Budget(max_iterations=iterations + 1, cell_timeout_s=60)
        trace = run_rlm(
            "bench",
            context,
            lm=lm,
            options=EngineOptions(budget=budget),
            observer=RecordingObserver(recorder),
        )
    finally:
        recorder.close()
    assert trace.run.status == "submitted", trace.run.error
    gaps = [nxt[0] - cur[1] for cur, nxt in zip(lm.spans, lm.spans[1:], strict=False)][1:]  # skip start-up
    return {
        "iterations": len(trace.iterations),
        "median_ms": _ms(gaps),
        "p90_ms": round(sorted(gaps)[int(len(gaps) * 0.9)] * 1000, 3),
        "cell_median_ms": _ms([it.duration_s or 0.0 for it in trace.iterations]),
    }


def concurrent_starts(context: Path, count: int) -> dict[str, float]:
    """How long ``count`` sandboxes take to start at once (the CPU-bound part of (b))."""
    boxes = [SubprocessSandbox(SandboxConfig(context_path=str(context))) for _ in range(count)]
    began = time.perf_counter()
    with ThreadPoolExecutor(count) as pool:
        list(pool.map(lambda box: box.start(), boxes))
    wall = time.perf_counter() - began
    for box in boxes:
        box.shutdown()
    single = SubprocessSandbox(SandboxConfig(context_path=str(context)))
    began = time.perf_counter()
    single.start()
    one = time.perf_counter() - began
    single.shutdown()
    return {"one_start_s": round(one, 3), f"{count}_at_once_s": round(wall, 3)}


def _sync_start_factory(config: SandboxConfig, handler: LLMHandler) -> Sandbox:
    """The sandbox started before the first root call (no overlap): the engine's old behaviour."""
    box = default_sandbox_factory(config, handler)
    box.start()
    return box


def engine_pool_wall(
    context: Path, runs: int, concurrency: int, steps: int, latency_s: float, sync_start: bool
) -> dict[str, float]:
    """(b) without the batch runner: to compare sandbox start-up overlapped or not."""
    lm = SleepyLM(steps, latency_s)
    options = EngineOptions(
        budget=Budget(max_iterations=10),
        sandbox_factory=_sync_start_factory if sync_start else default_sandbox_factory,
    )
    began = time.perf_counter()
    with ThreadPoolExecutor(concurrency) as pool:
        traces = list(pool.map(lambda _i: run_rlm("bench", context, lm=lm, options=options), range(runs)))
    wall = time.perf_counter() - began
    assert all(t.run.status == "submitted" for t in traces)
    ideal = -(-runs // concurrency) * steps * latency_s
    return {"wall_s": round(wall, 3), "ratio": round(wall / ideal, 3)}


def batch_wall(directory: Path, runs: int, concurrency: int, steps: int, latency_s: float) -> dict[str, Any]:
    """(b): a whole batch through the batch runner into a real database."""
    (directory / "ctx.txt").write_text("".join(f"line {i}\n" for i in range(1000)))
    task = directory / "task.yaml"
    task.write_text(
        "name: bench\nquestion: q\nchecker: exact\n"
        "instances:\n  - {id: i0, split: train, context: ctx.txt, expected: 1}\n"
    )
    lm = SleepyLM(steps, latency_s)
    options = RecordOptions(
        runs=runs, models=("bench",), concurrency=concurrency, budget={"max_iterations": 10}
    )
    began = time.perf_counter()
    result = record(task, db=directory / "batch.duckdb", options=options, lm_factory=lambda *_a, **_k: lm)
    wall = time.perf_counter() - began
    assert result.by_status == {"submitted": runs}, result.by_status
    ideal = -(-runs // concurrency) * steps * latency_s
    walls = [r.wall_s or 0.0 for r in result.runs]
    return {
        "runs": runs,
        "concurrency": concurrency,
        "wall_s": round(wall, 3),
        "ideal_s": round(ideal, 3),
        "ratio": round(wall / ideal, 3),
        "run_wall_median_s": round(statistics.median(walls), 3),
        "run_wall_max_s": round(max(walls), 3),
    }


def write_context(path: Path, size_mb: int) -> None:
    line = b"2024-05-01T12:00:00Z host-17 sshd[4242]: Accepted publickey for deploy from 10.0.0.7\n"
    block = (line * ((1 << 20) // len(line) + 1))[: 1 << 20]
    with open(path, "wb") as handle:
        for _ in range(size_mb):
            handle.write(block)


def big_context(directory: Path, size_mb: int, iterations: int) -> dict[str, Any]:
    """(c): start-up time and memory of a worker holding a large context, and the loop's overhead."""
    path = directory / "context.log"
    try:
        write_context(path, size_mb)
        with open(path, "rb") as handle:  # warm the page cache, then time a plain read
            while handle.read(1 << 26):
                pass
        began = time.perf_counter()
        data = path.read_bytes()
        read_s = time.perf_counter() - began
        del data
        # The sandbox exactly as the engine configures it (EngineOptions defaults).
        box = default_sandbox_factory(
            SandboxConfig(context_path=str(path), memory_limit_mb=4096), lambda p, m: p
        )
        began = time.perf_counter()
        box.start()
        ready_s = time.perf_counter() - began
        info = getattr(box, "worker_info", {})
        box.shutdown()
        file_mb = path.stat().st_size / (1 << 20)
        peak = float(info.get("peak_rss_mb") or 0.0)
        loop = loop_overhead(path, iterations, directory)
    finally:
        path.unlink(missing_ok=True)
    return {
        "file_mb": round(file_mb, 1),
        "read_file_s": round(read_s, 3),
        "ready_s": round(ready_s, 3),
        "ready_over_read": round(ready_s / read_s, 2),
        "worker_peak_rss_mb": round(peak, 1),
        "rss_over_file": round(peak / file_mb, 3),
        "loop_median_ms": loop["median_ms"],
        "loop_p90_ms": loop["p90_ms"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer iterations and a 256 MB context")
    args = parser.parse_args()
    iterations = 60 if args.quick else 300
    results: dict[str, Any] = {
        "machine": {
            "python": platform.python_version(),
            "cpus": os.cpu_count(),
            "platform": platform.platform(),
        },
        "quick": args.quick,
    }
    with tempfile.TemporaryDirectory(prefix="rlmine-recorder-bench-", dir="/tmp") as tmp:
        directory = Path(tmp)
        small = directory / "small.txt"
        small.write_text("".join(f"line {i}\n" for i in range(1000)))
        results["a_loop"] = loop_overhead(small, iterations, directory)
        results["b_starts"] = concurrent_starts(small, 32)
        (directory / "b").mkdir()
        results["b_batch"] = batch_wall(directory / "b", runs=64, concurrency=32, steps=6, latency_s=0.2)
        for name, sync in (("b_engine_overlapped_start", False), ("b_engine_start_before_first_call", True)):
            results[name] = engine_pool_wall(small, 64, 32, 6, 0.2, sync_start=sync)
        results["c_context"] = big_context(directory, 256 if args.quick else 1024, iterations // 3)
    a, b, c = results["a_loop"], results["b_batch"], results["c_context"]
    results["goals"] = {
        "a: loop overhead median <= 10 ms": a["median_ms"] <= 10,
        "b: batch wall <= 1.2 x ideal": b["ratio"] <= 1.2,
        "c: ready <= 2 x read": c["ready_over_read"] <= 2,
        "c: worker memory <= 1.6 x file": c["rss_over_file"] <= 1.6,
        "c: loop overhead median <= 10 ms": c["loop_median_ms"] <= 10,
    }
    console = Console()
    table = Table(title="recorder overheads")
    table.add_column("measure")
    table.add_column("value", justify="right")
    for key, value in results.items():
        if isinstance(value, dict):
            for sub_key, sub_value in value.items():
                shown = (
                    ("[green]met[/]" if sub_value else "[red]MISSED[/]") if key == "goals" else str(sub_value)
                )
                table.add_row(f"{key}.{sub_key}" if key != "goals" else sub_key, shown)
        else:
            table.add_row(key, str(value))
    console.print(table)
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
