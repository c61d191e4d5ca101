"""Trace-store speed: bulk ingest of iterations, then the dashboard's queries.

1. Ingest: ``--iterations`` synthetic iterations (about 200 characters of
   reasoning, 300 of code, 1 KB of output, cut from a shuffled word pool so the
   text does not compress unrealistically well) spread over ``--runs`` runs of 20
   tasks, written through :func:`rlmine.store._writes.upsert_rows` in batches of
   ``--batch`` iterations, one ``Store.writer()`` transaction per batch. Row
   building (dataclasses -> row dicts) and the insert are timed apart, in wall
   and CPU seconds (the machine may be shared: CPU time is the steadier number).
   Goal: insert >= 50,000 iterations/s.
2. Queries: each repetition opens a read-only connection as the dashboard does
   (timed apart), runs one query, closes. p50/p95 over ``--reps``
   repetitions. Goal: p95 <= 200 ms per query.
3. Size of a simulator batch: ``--sim-runs`` runs of the celebrities family at
   ``--sim-size`` per context, recorded by the simulator as ``rlmine record`` does,
   into a fresh file: bytes per run (file and used blocks) against the prompt text
   the runs sent. Sub-call prompts quote chunks of the context, repeated across runs.
4. LLM-call ingest: ``--calls`` sub-calls whose 8 KB prompts are chunks of a shared
   text (a third of them repeat an earlier prompt), through ``upsert_rows`` in
   batches of 1,000: calls/s (wall and CPU) and bytes per call.

    python bench/store_bench.py                      # 1,000,000 iterations / 100,000 runs
    python bench/store_bench.py --quick              # 100,000 / 10,000, 24 sim runs at 4MB: a smoke run
    python bench/store_bench.py --db big.duckdb      # keep the database (reused if it exists)

Prints a table and writes ``bench/results/store_bench.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import socket
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import duckdb  # noqa: E402

from rlmine.ids import new_id  # noqa: E402
from rlmine.store import Store  # noqa: E402
from rlmine.store._catalog import upsert_batch, upsert_task  # noqa: E402
from rlmine.store._queries import get_trace, list_runs, success_by_task, table_counts  # noqa: E402
from rlmine.store._rows import Row, call_row, iteration_row, run_row  # noqa: E402
from rlmine.store._writes import upsert_rows  # noqa: E402
from rlmine.trace import Iteration, LLMCall, Run  # noqa: E402

INGEST_GOAL = 50_000  # iterations per second, insert only
QUERY_GOAL_MS = 200.0  # p95 per query
N_TASKS, N_BATCHES = 20, 50
DEAD_OWNER = f"{socket.gethostname()}:999999:1"
T0 = datetime(2025, 1, 1)


@dataclass(frozen=True, slots=True)
class Config:
    iterations: int
    runs: int
    batch: int
    reps: int
    seed: int


# -- synthetic data -----------------------------------------------------------------


class Synth:
    """Deterministic runs and iterations with realistic sizes and mixes."""

    def __init__(self, cfg: Config, task_ids: list[str], batch_ids: list[str]) -> None:
        self.rng = random.Random(cfg.seed)
        letters = "abcdefghijklmnopqrstuvwxyz_()=.:,0123456789"
        words = ["".join(self.rng.choices(letters, k=self.rng.randint(2, 10))) for _ in range(20_000)]
        self.pool = " ".join(self.rng.choices(words, k=600_000))
        self.task_ids, self.batch_ids = task_ids, batch_ids
        self.cfg = cfg

    def text(self, n: int) -> str:
        start = self.rng.randrange(len(self.pool) - n)
        return self.pool[start : start + n]

    def run(self, i: int, n_iterations: int) -> Run:
        rng = self.rng
        status = rng.choices(["submitted", "budget_exhausted", "error", "running"], [70, 15, 10, 5])[0]
        finished = status in ("submitted", "budget_exhausted")
        return Run(
            id=new_id(),
            engine=rng.choices(["rlmine", "rlms", "dspy"], [80, 15, 5])[0],
            status=status,
            question=self.text(150),
            task_id=rng.choice(self.task_ids),
            instance_id=f"i{rng.randrange(500)}",
            root_model=rng.choice(["gpt-4.1", "gpt-4.1-mini", "qwen3-32b", "sim"]),
            sub_model="gpt-4.1-mini",
            params={"max_iterations": 20},
            final_answer=self.text(40) if finished else None,
            expected=self.text(40),
            correct=rng.random() < 0.6 if finished else None,
            n_iterations=n_iterations,
            tokens_in=rng.randrange(10_000, 200_000),
            tokens_out=rng.randrange(2_000),
            cost=rng.random(),
            wall_s=rng.random() * 100,
            started_at=T0 + timedelta(seconds=i),
            batch_id=rng.choice(self.batch_ids),
            owner=(DEAD_OWNER if rng.random() < 0.5 else None) if status == "running" else None,
        )

    def iteration(self, run_id: str, index: int, last: bool) -> Iteration:
        rng = self.rng
        failed = rng.random() < 0.15
        return Iteration(
            run_id=run_id,
            index=index,
            reasoning=self.text(rng.randint(150, 250)),
            code=self.text(300),
            stdout=self.text(1000),
            stderr=self.text(100) if failed else None,
            error="Traceback ... ValueError" if failed else None,
            error_kind="code" if failed else None,
            duration_s=rng.random(),
            root_tokens_in=rng.randrange(50_000),
            root_tokens_out=rng.randrange(1_000),
            root_latency_s=rng.random() * 5,
            submitted=last,
            started_at=T0,
        )

    def per_run(self) -> list[int]:
        """Iterations per run (1-19 around the mean), summing exactly to ``cfg.iterations``."""
        base, extra = divmod(self.cfg.iterations, self.cfg.runs)
        counts = [base + (1 if i < extra else 0) for i in range(self.cfg.runs)]
        for i in range(0, len(counts) - 1, 2):  # spread pairwise: the total stays exact
            shift = self.rng.randint(0, max(min(counts[i], counts[i + 1]) - 1, 0))
            counts[i], counts[i + 1] = counts[i] - shift, counts[i + 1] + shift
        return counts

    def batches(self) -> Iterator[tuple[list[Row], list[Row]]]:
        """(run rows, iteration rows) about ``cfg.batch`` iterations at a time; a run never splits."""
        runs: list[Row] = []
        its: list[Row] = []
        for i, n in enumerate(self.per_run()):
            run = self.run(i, n)
            runs.append(run_row(run))
            its.extend(iteration_row(self.iteration(run.id, j, j == n - 1)) for j in range(n))
            if len(its) >= self.cfg.batch:
                yield runs, its
                runs, its = [], []
        if runs:
            yield runs, its


# -- measuring ----------------------------------------------------------------------


def ingest(store: Store, cfg: Config) -> dict[str, Any]:
    with store.writer() as con:
        tasks = [upsert_task(con, name=f"task-{i:02d}", question="q") for i in range(N_TASKS)]
        batches = [
            upsert_batch(con, name=f"batch-{i:02d}", task_id=tasks[i % N_TASKS], params={})
            for i in range(N_BATCHES)
        ]
    synth = Synth(cfg, tasks, batches)
    build_wall = build_cpu = insert_wall = insert_cpu = 0.0
    rows = 0
    gen = synth.batches()
    while True:
        w0, c0 = time.perf_counter(), time.process_time()
        item = next(gen, None)  # building rows happens inside the generator
        w1, c1 = time.perf_counter(), time.process_time()
        if item is None:
            break
        with store.writer() as con:
            upsert_rows(con, {"runs": item[0], "iterations": item[1]})
        w2, c2 = time.perf_counter(), time.process_time()
        build_wall, build_cpu = build_wall + w1 - w0, build_cpu + c1 - c0
        insert_wall, insert_cpu = insert_wall + w2 - w1, insert_cpu + c2 - c1
        rows += len(item[1])
        if sys.stderr.isatty():
            print(
                f"\r  ingested {rows:,} / {cfg.iterations:,} iterations", end="", file=sys.stderr, flush=True
            )
    if sys.stderr.isatty():
        print(file=sys.stderr)
    return {
        "iterations": rows,
        "build_wall_s": build_wall,
        "build_cpu_s": build_cpu,
        "insert_wall_s": insert_wall,
        "insert_cpu_s": insert_cpu,
        "insert_per_s": rows / insert_wall,
        "insert_per_cpu_s": rows / insert_cpu,
        "total_per_s": rows / (build_wall + insert_wall),
        "db_bytes": store.path.stat().st_size,
    }


def _used_bytes(con: duckdb.DuckDBPyConnection) -> int:
    row = con.execute("SELECT used_blocks * block_size FROM pragma_database_size()").fetchone()
    return int(row[0]) if row else 0


def sim_batch(runs: int, size: str, tmp: Path) -> dict[str, Any]:
    """Record ``runs`` simulator runs into a fresh file; its size per run."""
    from recorder.batch import RecordOptions, record
    from recorder.families import make_task, parse_size
    from recorder.tasks import load_task

    task_dir = tmp / "sim-task"
    make_task("celebrities", task_dir, size_bytes=parse_size(size), instances=10, seed=1)
    spec = load_task(task_dir / "task.yaml")
    train = spec.instances_in("train")
    path = tmp / "sim.duckdb"
    store = Store.open(path, create=True)
    w0, c0 = time.perf_counter(), time.process_time()
    result = record(spec, db=store, options=RecordOptions(runs=-(-runs // len(train)), concurrency=2))
    wall, cpu = time.perf_counter() - w0, time.process_time() - c0
    with store.reader() as con:
        n_runs, prompt_chars, n_calls = con.execute(
            "SELECT (SELECT count(*) FROM runs), sum(prompt_chars), count(*) FROM llm_calls"
        ).fetchone() or (0, 0, 0)
        used = _used_bytes(con)
    file_bytes = path.stat().st_size
    return {
        "runs": n_runs,
        "recorded": len(result.runs),
        "size": size,
        "llm_calls": n_calls,
        "prompt_chars_sent": int(prompt_chars or 0),
        "file_bytes": file_bytes,
        "used_bytes": used,
        "file_bytes_per_run": file_bytes / max(n_runs, 1),
        "used_bytes_per_run": used / max(n_runs, 1),
        "record_wall_s": wall,
        "record_cpu_s": cpu,
        "schema_version": store.schema_version(),
    }


def calls_ingest(n_calls: int, seed: int, tmp: Path) -> dict[str, Any]:
    """Upsert ``n_calls`` sub-calls with 8 KB prompts cut from a shared text, a third repeated."""
    rng = random.Random(seed)
    words = ["".join(rng.choices("abcdefghijklmnopqrstuvwxyz", k=rng.randint(2, 9))) for _ in range(5_000)]
    shared = " ".join(rng.choices(words, k=400_000))
    path = tmp / "calls.duckdb"
    store = Store.open(path, create=True)
    sent: list[str] = []
    insert_wall = insert_cpu = 0.0
    for start in range(0, n_calls, 1_000):
        rid = new_id()
        rows = [run_row(Run(id=rid, engine="rlmine", status="submitted"))]
        calls: list[Row] = []
        for k in range(start, min(start + 1_000, n_calls)):
            if sent and rng.random() < 1 / 3:
                prompt = rng.choice(sent)
            else:
                at = rng.randrange(len(shared) - 8_000)
                prompt = "Summarise this chunk:\n" + shared[at : at + 8_000]
                sent.append(prompt)
            call = LLMCall(
                id=f"{rid}-{k}", run_id=rid, iteration=0, role="sub", model="m", prompt=prompt, response="ok"
            )
            calls.append(call_row(call))
        w0, c0 = time.perf_counter(), time.process_time()
        with store.writer() as con:
            upsert_rows(con, {"runs": rows, "llm_calls": calls})
        insert_wall += time.perf_counter() - w0
        insert_cpu += time.process_time() - c0
    with store.reader() as con:
        used = _used_bytes(con)
    return {
        "calls": n_calls,
        "distinct_prompts": len(sent),
        "insert_wall_s": insert_wall,
        "insert_cpu_s": insert_cpu,
        "calls_per_s": n_calls / insert_wall,
        "calls_per_cpu_s": n_calls / insert_cpu,
        "file_bytes": path.stat().st_size,
        "used_bytes_per_call": used / n_calls,
        "schema_version": store.schema_version(),
    }


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def _summary(name: str, ms: list[float], cpu_ms: list[float], goal: float | None) -> dict[str, Any]:
    p95 = _pct(ms, 0.95)
    return {
        "name": name,
        "p50_ms": statistics.median(ms),
        "p95_ms": p95,
        "max_ms": max(ms),
        "n": len(ms),
        "cpu_p50_ms": statistics.median(cpu_ms),
        "cpu_p95_ms": _pct(cpu_ms, 0.95),
        "goal_ms": goal,
        "ok": None if goal is None else p95 <= goal,
    }


def _clocks() -> tuple[float, float]:
    """Wall and CPU seconds (CPU of this process: every DuckDB thread included)."""
    return time.perf_counter(), time.process_time()


def queries(path: Path, cfg: Config) -> list[dict[str, Any]]:
    rng = random.Random(cfg.seed + 1)
    store = Store.open(path)
    with store.reader() as con:
        run_ids = [r[0] for r in con.execute("SELECT id FROM runs USING SAMPLE 1000 ROWS").fetchall()]
    cases: dict[str, Callable[[duckdb.DuckDBPyConnection], object]] = {
        "runs list (newest 200)": lambda con: list_runs(con, limit=200),
        "runs list --task": lambda con: list_runs(con, task=f"task-{rng.randrange(N_TASKS):02d}", limit=200),
        "runs list --status error": lambda con: list_runs(con, status="error", limit=200),
        "runs list --task --status --engine": lambda con: list_runs(
            con, task=f"task-{rng.randrange(N_TASKS):02d}", status="submitted", engine="rlms", limit=200
        ),
        "runs list --batch": lambda con: list_runs(
            con, batch=f"batch-{rng.randrange(N_BATCHES):02d}", limit=200
        ),
        "runs list --status stale": lambda con: list_runs(con, status="stale", limit=200),
        "one run's trace (get_trace)": lambda con: get_trace(con, rng.choice(run_ids)),
        "one run's iterations (SQL)": lambda con: con.execute(
            "SELECT * FROM iterations WHERE run_id = ? ORDER BY idx", [rng.choice(run_ids)]
        ).fetchall(),
        "per-task success rates": success_by_task,
    }
    wall: dict[str, list[float]] = {name: [] for name in ("store", "reader", *cases)}
    cpu: dict[str, list[float]] = {name: [] for name in wall}

    def record(name: str, start: tuple[float, float], end: tuple[float, float]) -> None:
        wall[name].append((end[0] - start[0]) * 1000)
        cpu[name].append((end[1] - start[1]) * 1000)

    for _ in range(cfg.reps):
        t0 = _clocks()
        Store.open(path)
        record("store", t0, _clocks())
    for _ in range(cfg.reps):
        for name, fn in cases.items():
            t0 = _clocks()
            with store.reader() as con:
                t1 = _clocks()
                fn(con)
                t2 = _clocks()
            record("reader", t0, t1)
            record(name, t1, t2)
    results = [
        _summary("open: Store.open (checks, migrations, spools)", wall["store"], cpu["store"], None),
        _summary("open: reader connection", wall["reader"], cpu["reader"], None),
    ]
    results += [_summary(name, wall[name], cpu[name], QUERY_GOAL_MS) for name in cases]
    return results


# -- main ---------------------------------------------------------------------------


def _size_lines(sim: dict[str, Any] | None, calls: dict[str, Any] | None) -> list[str]:
    lines = []
    if sim:
        lines += [
            f"simulator batch  {sim['runs']:,} runs at {sim['size']}, {sim['llm_calls']:,} LLM calls, "
            f"{sim['prompt_chars_sent'] / 1e6:,.1f} M prompt chars sent (schema v{sim['schema_version']})",
            f"  bytes per run  file {sim['file_bytes_per_run'] / 1e6:,.2f} MB   used blocks "
            f"{sim['used_bytes_per_run'] / 1e6:,.2f} MB   (file {sim['file_bytes'] / 1e6:,.1f} MB; "
            f"recording {sim['record_wall_s']:.1f} s wall, {sim['record_cpu_s']:.1f} CPU-s)",
            "",
        ]
    if calls:
        lines += [
            f"call ingest  {calls['calls']:,} sub-calls of 8 KB prompts ({calls['distinct_prompts']:,} distinct)",
            f"  insert {calls['calls_per_s']:>9,.0f} calls/s wall  {calls['calls_per_cpu_s']:>9,.0f} calls/cpu-s   "
            f"{calls['used_bytes_per_call']:,.0f} bytes/call used (schema v{calls['schema_version']})",
            "",
        ]
    return lines


def _table(ingested: dict[str, Any] | None, rows: list[dict[str, Any]]) -> str:
    lines = []
    if ingested:
        lines += [
            f"ingest  {ingested['iterations']:>10,} iterations   db {ingested['db_bytes'] / 1e6:,.0f} MB",
            f"  insert only  {ingested['insert_per_s']:>9,.0f} it/s wall  {ingested['insert_per_cpu_s']:>9,.0f} "
            f"it/cpu-s   goal >= {INGEST_GOAL:,} {'ok' if ingested['insert_per_s'] >= INGEST_GOAL else 'MISSED'}",
            f"  build+insert {ingested['total_per_s']:>9,.0f} it/s wall  (building rows {ingested['build_wall_s']:.1f} s,"
            f" inserting {ingested['insert_wall_s']:.1f} s)",
            "",
        ]
    lines.append(
        f"{'query':<48} {'p50 ms':>8} {'p95 ms':>8} {'max ms':>8} {'cpu p50':>8} {'cpu p95':>8}  goal (p95)"
    )
    for r in rows:
        goal = "" if r["goal_ms"] is None else f"<= {r['goal_ms']:.0f} {'ok' if r['ok'] else 'MISSED'}"
        lines.append(
            f"{r['name']:<48} {r['p50_ms']:>8.1f} {r['p95_ms']:>8.1f} {r['max_ms']:>8.1f} "
            f"{r['cpu_p50_ms']:>8.1f} {r['cpu_p95_ms']:>8.1f}  {goal}"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--iterations", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=100_000)
    parser.add_argument("--batch", type=int, default=100_000, help="Iterations per insert transaction.")
    parser.add_argument("--reps", type=int, default=30, help="Repetitions of each query.")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--quick", action="store_true", help="100,000 iterations / 10,000 runs.")
    parser.add_argument("--db", type=Path, help="Keep the database here; reused (no ingest) if it exists.")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "store_bench.json")
    parser.add_argument(
        "--sim-runs", type=int, default=96, help="Simulator runs whose size is measured (0: skip)."
    )
    parser.add_argument("--sim-size", default="16MB", help="Context size of the simulator task's instances.")
    parser.add_argument(
        "--calls", type=int, default=20_000, help="Sub-calls in the call-ingest test (0: skip)."
    )
    parser.add_argument("--only-sizes", action="store_true", help="Only the simulator batch and call ingest.")
    args = parser.parse_args(argv)
    if args.quick:
        args.iterations, args.runs, args.sim_runs, args.sim_size = 100_000, 10_000, 24, "4MB"
        args.calls = min(args.calls, 5_000)
    cfg = Config(args.iterations, args.runs, min(args.batch, args.iterations), args.reps, args.seed)

    with tempfile.TemporaryDirectory(prefix="store-bench-") as tmp:
        sim = sim_batch(args.sim_runs, args.sim_size, Path(tmp)) if args.sim_runs > 0 else None
        calls = calls_ingest(args.calls, args.seed, Path(tmp)) if args.calls > 0 else None
        path = args.db or Path(tmp) / "bench.duckdb"
        ingested, rows, counts = None, [], {}
        if not args.only_sizes:
            if not path.exists():
                ingested = ingest(Store.open(path, create=True), cfg)
            rows = queries(path, cfg)
            with Store.open(path).reader() as con:
                counts = table_counts(con)
    print("\n".join(_size_lines(sim, calls)))
    if not args.only_sizes:
        print(_table(ingested, rows))
    load = os.getloadavg()
    result = {
        "config": asdict(cfg),
        "counts": counts,
        "ingest": ingested,
        "queries": rows,
        "sim_batch": sim,
        "call_ingest": calls,
        "machine": {
            "cpus": os.cpu_count(),
            "loadavg_at_end": load,
            "platform": platform.platform(),
            "python": platform.python_version(),
            "duckdb": duckdb.__version__,
        },
        "when": datetime.now().isoformat(timespec="seconds"),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    print(f"\nwrote {args.out} (load average {load[0]:.1f} on {os.cpu_count()} CPUs)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
