"""Miner speed: a cold mining of ``--steps`` steps split by phase, a warm re-run, peak memory,
embedding throughput and dedup, and token-batched vs plain ``SentenceTransformer.encode``.

The database holds ``--recorded`` simulator runs (real code from the recorder) plus
synthetic runs up to ``--steps`` steps: statements drawn from templates and from random
chains of string/list methods, with random names and literals, so that the distinct
normalized forms are many (as in a large real corpus) but far fewer than the steps.

1. cold: ``miner.mine`` on a database without cached vectors; phases from the result
   (read, parse+normalize, embed, cluster, sequences, write). Peak RSS of the process.
2. warm: mining again (every vector cached). Goal: <= 60 s for 100,000 steps on 2 cores.
3. encode: the same ``--compare`` distinct normalized steps embedded by the miner's encoder
   (token-count batches, on ONNX Runtime when installed), by plain ``encode`` (batch 32) and by
   token batches on torch, side by side, three times each, alternating (the medians count);
   throughput ratio (goal >= 2x; the CPU-time ratio is shown too) and the
   smallest cosine between the two vectors of a step (goal >= 1 - 1e-3).

    python bench/miner_bench.py                   # 100,000 steps
    python bench/miner_bench.py --quick           # 10,000 steps, 500 compared
    python bench/miner_bench.py --steps 30000

Prints a table and writes ``bench/results/miner_bench.json``.
"""

from __future__ import annotations

import argparse
import json
import platform
import random
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402

import miner  # noqa: E402
from miner.embed import SentenceEmbedder  # noqa: E402
from recorder import RecordOptions, record  # noqa: E402
from recorder.families import make_task  # noqa: E402
from rlmine.store import Store  # noqa: E402
from rlmine.store._catalog import upsert_task  # noqa: E402
from rlmine.trace import Iteration, Run, Trace  # noqa: E402

WARM_GOAL_S = 60.0
SPEEDUP_GOAL = 2.0
COSINE_GOAL = 1 - 1e-3
NAMES = (
    "rows",
    "lines",
    "data",
    "chunks",
    "parts",
    "items",
    "hits",
    "counts",
    "result",
    "acc",
    "buf",
    "seen",
)
METHODS = (
    "strip", "lower", "upper", "split", "splitlines", "title", "casefold", "lstrip", "rstrip", "swapcase",
    "expandtabs", "capitalize", "encode", "isdigit", "isalpha", "isupper", "islower", "startswith", "endswith",
    "count", "find", "rfind", "index", "partition", "rpartition", "replace", "join", "zfill", "center", "ljust",
)  # fmt: skip
TEMPLATES = (
    "print({a}[:{n}])",
    "print(len({a}))",
    "{a} = context.splitlines()",
    "{a} = [x for x in {b} if {s!r} in x]",
    '{a} = re.findall(r"{s}\\w+", context)',
    "{a} = Counter(x.split()[{k}] for x in {b})",
    "{a} = sorted({b}.items(), key=lambda kv: -kv[1])[:{n}]",
    "{a} = [context[i:i + {n}] for i in range(0, len(context), {n})]",
    '{a} = llm_query_batched(["{s}" + c for c in {b}])',
    '{a} = llm_query("{s}" + {b}[:{n}])',
    "for x in {b}:\n    {a}[x] = {a}.get(x, 0) + 1",
    "{a} = json.loads({b})",
    "SUBMIT({a})",
)


def _statement(rng: random.Random) -> str:
    a, b = rng.sample(NAMES, 2)
    if rng.random() < 0.45:  # a random method chain: many distinct normalized forms
        chain = ".".join(f"{m}()" for m in rng.sample(METHODS, rng.randint(1, 3)))
        return f"{a} = [x.{chain} for x in {b}][:{rng.randint(0, 10)}]"
    tpl = rng.choice(TEMPLATES)
    return tpl.format(
        a=a, b=b, n=rng.randint(10, 5000), k=rng.randint(0, 5), s=rng.choice(("ERROR", "name", "id"))
    )


def synthetic_traces(task_id: str, steps: int, seed: int) -> list[Trace]:
    rng = random.Random(seed)
    traces: list[Trace] = []
    made = 0
    n = 0
    while made < steps:
        run_id = f"SYN{seed:03d}{n:07d}"
        iterations = []
        for idx in range(rng.randint(3, 7)):
            k = min(rng.randint(2, 6), steps - made)
            if k <= 0:
                break
            code = "\n".join(_statement(rng) for _ in range(k))
            iterations.append(Iteration(run_id=run_id, index=idx, reasoning="synthetic", code=code))
            made += k
        run = Run(id=run_id, engine="rlmine", status="submitted", task_id=task_id, correct=rng.random() < 0.6)
        traces.append(Trace(run=run, iterations=tuple(iterations)).with_totals())
        n += 1
    return traces


def build_db(path: Path, args: argparse.Namespace, work: Path) -> tuple[Store, str, int]:
    task_dir = work / "task"
    make_task("incident-logs", task_dir, size_bytes=150_000, instances=5, seed=77)
    options = RecordOptions(runs=max(1, args.recorded // 3), seeds=(5150,), concurrency=2)
    rec = record(task_dir / "task.yaml", db=path, options=options)
    store = Store.open(path)
    with store.reader() as con:
        task_id = str(
            con.execute("SELECT task_id FROM runs WHERE batch_id = ? LIMIT 1", [rec.batch_id]).fetchone()[0]
        )  # type: ignore[index]
        recorded_steps = con.execute(
            "SELECT count(*) FROM iterations i JOIN runs r ON r.id = i.run_id WHERE r.task_id = ?", [task_id]
        ).fetchone()
    # About 3 steps per recorded iteration; the synthetic runs make up the rest.
    remaining = max(0, args.steps - 3 * int(recorded_steps[0] if recorded_steps else 0))
    traces = synthetic_traces(task_id, remaining, seed=1)
    for lo in range(0, len(traces), 2000):
        store.save_traces(traces[lo : lo + 2000])
    with store.writer() as con:
        name = upsert_task(con, name="miner-bench", question="synthetic")
        del name
    with store.reader() as con:
        task_name = str(con.execute("SELECT name FROM tasks WHERE id = ?", [task_id]).fetchone()[0])  # type: ignore[index]
    return store, task_name, len(traces)


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def compare_encoders(texts: list[str]) -> dict[str, Any]:
    """Plain ``encode`` against the miner's encoder on ``texts``; token batches on torch alongside."""
    ours = SentenceEmbedder()  # what `rlmine mine` uses: token batches, ONNX Runtime when installed
    ours.encode(texts[:8])  # load the model (and export it for ONNX Runtime) outside the timings
    plain = SentenceEmbedder(token_batching=False)
    on_torch = SentenceEmbedder(backend="torch")
    plain._model = on_torch._model = ours._model  # same weights for all
    ways = {"plain": plain, "torch_batched": on_torch, "batched": ours}
    # Wall time swings with other work on a shared machine: each way runs three times,
    # alternating, and the medians count; CPU time (all threads) is reported too.
    tries: dict[str, list[tuple[float, float]]] = {name: [] for name in ways}
    out: dict[str, np.ndarray] = {}
    for _ in range(3):
        for name, model in ways.items():
            t, c = time.perf_counter(), time.process_time()
            out[name] = model.encode(texts)
            tries[name].append((time.perf_counter() - t, time.process_time() - c))
    wall = {k: statistics.median(w for w, _ in v) for k, v in tries.items()}
    cpu = {k: statistics.median(c for _, c in v) for k, v in tries.items()}
    cos = np.sum(out["plain"] * out["batched"], axis=1)
    return {
        "texts": len(texts),
        "token_budget": ours.token_budget,
        "runtime": ours.runtime,
        "plain_s": wall["plain"],
        "batched_s": wall["batched"],
        "torch_batched_s": wall["torch_batched"],
        "plain_cpu_s": cpu["plain"],
        "batched_cpu_s": cpu["batched"],
        "plain_per_s": len(texts) / wall["plain"],
        "batched_per_s": len(texts) / wall["batched"],
        "torch_batched_per_s": len(texts) / wall["torch_batched"],
        "tries_s": {k: [round(w, 2) for w, _ in v] for k, v in tries.items()},
        "speedup": wall["plain"] / wall["batched"],
        "speedup_cpu": cpu["plain"] / cpu["batched"],
        "speedup_token_batches_alone": wall["plain"] / wall["torch_batched"],
        "min_cosine": float(cos.min()),
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--steps", type=int, default=100_000)
    parser.add_argument("--recorded", type=int, default=60, help="simulator runs recorded first")
    parser.add_argument("--compare", type=int, default=2000, help="distinct steps encoded both ways")
    parser.add_argument("--quick", action="store_true", help="10,000 steps, 500 compared")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "miner_bench.json")
    args = parser.parse_args()
    if args.quick:
        args.steps, args.compare, args.recorded = 10_000, 500, 30
    with tempfile.TemporaryDirectory(prefix="rlmine-miner-bench-") as tmp:
        work = Path(tmp)
        t = time.perf_counter()
        store, task, n_synthetic = build_db(work / "bench.duckdb", args, work)
        build_s = time.perf_counter() - t
        rss_before = _peak_rss_mb()
        t = time.perf_counter()
        cold = miner.mine(store, task=task)
        cold_s = time.perf_counter() - t
        rss_cold = _peak_rss_mb()
        t = time.perf_counter()
        warm = miner.mine(store, task=task)
        warm_s = time.perf_counter() - t
        with store.reader() as con:
            rows = con.execute(
                "SELECT DISTINCT normalized FROM steps WHERE mining_id = ? ORDER BY hash LIMIT ?",
                [cold.mining_id, args.compare],
            ).fetchall()
        encode = compare_encoders([r[0] for r in rows])
    result = {
        "params": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
        "machine": {"python": platform.python_version(), "cpus": __import__("os").cpu_count()},
        "build_db_s": build_s,
        "synthetic_runs": n_synthetic,
        "runs": cold.n_runs,
        "steps": cold.n_steps,
        "distinct": cold.n_distinct,
        "dedup_ratio": cold.n_steps / max(cold.n_distinct, 1),
        "tactics": len(cold.tactics),
        "outlier_share": cold.n_outliers / max(cold.n_steps, 1),
        "cold_s": cold_s,
        "cold_phases_s": cold.timings,
        "embed_per_s": cold.n_embedded / max(cold.timings.get("embed", 1e-9), 1e-9),
        "warm_s": warm_s,
        "warm_phases_s": warm.timings,
        "warm_embedded": warm.n_embedded,
        "peak_rss_mb_before": rss_before,
        "peak_rss_mb_after_cold": rss_cold,
        "encode": encode,
        "goals": {
            "warm_at_most_s": WARM_GOAL_S,
            "speedup_at_least": SPEEDUP_GOAL,
            "cosine_at_least": COSINE_GOAL,
            "met": warm_s <= WARM_GOAL_S
            and encode["speedup"] >= SPEEDUP_GOAL
            and encode["min_cosine"] >= COSINE_GOAL,
        },
    }
    print(f"{'measure':<34} {'value':>14}")
    print("-" * 49)
    lines = [
        ("steps (runs)", f"{cold.n_steps:,} ({cold.n_runs:,})"),
        ("distinct steps (dedup ratio)", f"{cold.n_distinct:,} ({result['dedup_ratio']:.1f}x)"),
        ("tactics (rare share)", f"{len(cold.tactics)} ({result['outlier_share']:.1%})"),
        ("cold mining, s", f"{cold_s:.1f}"),
        *((f"  {k}, s", f"{v:.2f}") for k, v in cold.timings.items()),
        ("cold embedding, steps/s", f"{result['embed_per_s']:.0f}"),
        ("warm mining, s (goal <= 60)", f"{warm_s:.1f}"),
        *((f"  {k}, s", f"{v:.2f}") for k, v in warm.timings.items()),
        ("peak RSS after cold mining, MB", f"{rss_cold:.0f}"),
        ("plain encode, steps/s", f"{encode['plain_per_s']:.0f}"),
        ("token batches on torch, steps/s", f"{encode['torch_batched_per_s']:.0f}"),
        (f"miner's encode ({encode['runtime']}), steps/s", f"{encode['batched_per_s']:.0f}"),
        ("speedup, throughput (goal >= 2)", f"{encode['speedup']:.2f}x"),
        ("speedup, CPU time", f"{encode['speedup_cpu']:.2f}x"),
        ("  of which token batches alone", f"{encode['speedup_token_batches_alone']:.2f}x"),
        ("min cosine miner's vs plain", f"{encode['min_cosine']:.6f}"),
    ]
    for name, value in lines:
        print(f"{name:<34} {value:>14}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2, default=float) + "\n")
    print(f"\ngoals met: {result['goals']['met']}  → {args.out}")


if __name__ == "__main__":
    main()
