"""Import throughput and memory: 2,000 and 10,000 synthetic rlms-style runs (10 iterations each).

Generates RLMLogger-shaped logs (one file per run: a metadata line and one
iteration line per turn, with the growing message list, code blocks, batched
sub-calls with usage, and ``locals``), then imports them with
``recorder.importers.import_files`` into a fresh database, each size in its own
subprocess so that peak RSS is measured cleanly, with the options a user of
``rlmine import rlms`` gets (parsing workers and transaction size left to the
importer). Memory must stay flat in the number of runs (the importer streams:
parse, then store in chunks of ``chunk_runs`` runs per transaction); DuckDB's
own memory grows with the database (its key indexes), which the last check
shows: the first 2,000 runs imported into a database that holds the others.

    python bench/import_bench.py                # 2,000 and 10,000 runs, each timed 3 times
    python bench/import_bench.py --runs 500 --repeat 1 --no-heap   # a quick check

Prints a table and writes ``bench/results/import_bench.json``. Goal (the issue's):
>= 2,000 runs/s parse + store on 2 cores for 10,000 runs (the largest size), with memory
flat in the number of runs: the importer's Python heap stays put, and what the process holds
beyond it is the open write transaction (bounded: 2 s or 4,000 runs, decision 0005) and
DuckDB's key indexes, which grow with the database, not with the import.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results" / "import_bench.json"
GOAL_RUNS_PER_S = 2000.0

SYSTEM = (
    "You are tasked with answering a query with associated context. You can access, transform, and analyze "
    "this context interactively in a REPL environment that can recursively query sub-LLMs. "
) * 6


def _run_entries(n: int, iterations: int, rng: random.Random, context_chars: int) -> list[dict[str, Any]]:
    """One synthetic run: metadata + ``iterations`` iteration entries, the last with a final answer."""
    context = "".join(rng.choice("abcdefghij ERROR\n") for _ in range(context_chars))
    question = f"How many ERROR lines are there in shard {n}?"
    messages: list[dict[str, str]] = [
        {"role": "system", "content": SYSTEM},
        {"role": "user", "content": f"Your context is a str with {len(context)} total characters."},
    ]
    entries: list[dict[str, Any]] = [
        {
            "type": "metadata",
            "timestamp": f"2025-03-01T{n % 24:02d}:{n % 60:02d}:00",
            "root_model": "gpt-4o",
            "max_depth": 1,
            "max_iterations": 30,
            "backend": "openai",
            "backend_kwargs": {"model_name": "gpt-4o"},
            "environment_type": "local",
            "environment_kwargs": {},
            "other_backends": None,
        }
    ]
    for i in range(1, iterations + 1):
        chunk = rng.randint(1000, 9000)
        code = (
            f"chunks = [context[j:j+{chunk}] for j in range(0, len(context), {chunk})]\n"
            f"counts_{i} = [c.count('ERROR') for c in chunks]\nprint(sum(counts_{i}), len(chunks))"
        )
        reply = (
            f"Step {i}: split the context into chunks of {chunk} characters and count.\n```repl\n{code}\n```"
        )
        final = str(rng.randint(0, 500)) if i == iterations else None
        if final is not None:
            reply += f"\nFINAL({final})"
        calls = [
            {
                "root_model": "gpt-4o-mini",
                "prompt": f"Classify chunk {k} of step {i}: " + context[k * 50 : (k + 1) * 50],
                "response": rng.choice(["error", "ok", "warning"]),
                "usage_summary": {
                    "model_usage_summaries": {
                        "gpt-4o-mini": {
                            "total_calls": 1,
                            "total_input_tokens": rng.randint(50, 400),
                            "total_output_tokens": rng.randint(1, 9),
                        }
                    }
                },
                "execution_time": round(rng.random(), 3),
            }
            for k in range(3 if i % 3 == 0 else 0)
        ]
        stdout = f"{rng.randint(0, 500)} {rng.randint(1, 50)}\n"
        local_vars = {
            "context": context,
            "context_0": context,
            f"counts_{i}": [rng.randint(0, 9) for _ in range(8)],
            "chunks": [context[:40]] * 4,
            "re": "<module 're'>",
        }
        prompt = [
            *messages,
            {"role": "user", "content": f'Continue to answer the original prompt: "{question}".'},
        ]
        entries.append(
            {
                "type": "iteration",
                "iteration": i,
                "timestamp": f"2025-03-01T{n % 24:02d}:{n % 60:02d}:{i:02d}",
                "prompt": prompt,
                "response": reply,
                "code_blocks": [
                    {
                        "code": code,
                        "result": {
                            "stdout": stdout,
                            "stderr": "",
                            "locals": local_vars,
                            "execution_time": round(rng.random() / 10, 4),
                            "rlm_calls": calls,
                        },
                    }
                ],
                "final_answer": final,
                "iteration_time": round(1 + rng.random() * 4, 3),
            }
        )
        messages += [{"role": "assistant", "content": reply}, {"role": "user", "content": stdout}]
    return entries


def generate(folder: Path, start: int, count: int, iterations: int, context_chars: int) -> int:
    """Write ``count`` log files into ``folder`` (100 per sub-directory); returns total bytes."""
    total = 0
    for n in range(start, start + count):
        sub = folder / f"{n // 100:04d}"
        sub.mkdir(parents=True, exist_ok=True)
        text = "".join(
            json.dumps(e) + "\n" for e in _run_entries(n, iterations, random.Random(n), context_chars)
        )
        path = sub / f"rlm_2025-03-01_00-00-00_{n:08x}.jsonl"
        path.write_text(text)
        total += len(text)
    return total


def _cpu(who: int) -> float:
    usage = resource.getrusage(who)
    return usage.ru_utime + usage.ru_stime


def worker(db: Path, paths: list[Path], chunk_runs: int, workers: int, heap: bool = False) -> dict[str, Any]:
    """Import ``paths`` into ``db``; report wall and CPU time (with parsing workers) and peak RSS.

    ``heap``: instead trace the Python heap's peak (tracemalloc, in-process parsing: slower, so a
    separate run), which isolates the importer's own memory from DuckDB's buffers and indexes.
    """
    sys.path.insert(0, str(ROOT))
    from recorder.importers import ImportOptions, import_files
    from rlmine.store import Store, table_counts

    store = Store.open(db, create=True)
    if heap:
        import tracemalloc

        tracemalloc.start()
        import_files(store, "rlms", paths, ImportOptions(chunk_runs=chunk_runs, workers=1))
        return {"python_heap_peak_mb": tracemalloc.get_traced_memory()[1] / 1e6}
    t0, cpu0 = time.perf_counter(), _cpu(resource.RUSAGE_SELF)
    report = import_files(store, "rlms", paths, ImportOptions(chunk_runs=chunk_runs, workers=workers))
    seconds = time.perf_counter() - t0
    cpu = _cpu(resource.RUSAGE_SELF) - cpu0
    with store.reader() as con:
        counts = {t: n for t, n in table_counts(con).items() if t in ("runs", "iterations", "llm_calls")}
    return {
        "runs": report.runs,
        "failed": len(report.failed),
        "seconds": seconds,
        "main_cpu_seconds": cpu,
        "rows": counts,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "load_avg_1m": os.getloadavg()[0],
    }


def _become_subreaper() -> bool:
    """Adopt orphaned descendants (the parsing workers' fork server) so their CPU time is counted here."""
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        return bool(libc.prctl(36, 1, 0, 0, 0) == 0)  # PR_SET_CHILD_SUBREAPER (Linux)
    except (OSError, AttributeError):
        return False


def _reap(timeout_s: float = 10.0) -> None:
    """Wait for adopted descendants to exit (the fork server leaves when the importer does)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            time.sleep(0.05)


def measure(db: Path, paths: list[Path], chunk_runs: int, workers: int, heap: bool = False) -> dict[str, Any]:
    cmd = [
        sys.executable,
        __file__,
        "--worker",
        "--db",
        str(db),
        "--chunk-runs",
        str(chunk_runs),
        "--workers",
        str(workers),
        *["--path=" + str(p) for p in paths],
        *(["--heap"] if heap else []),
    ]
    before = _cpu(resource.RUSAGE_CHILDREN)
    out = subprocess.run(cmd, check=True, capture_output=True, text=True, cwd=ROOT)
    _reap()
    result: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    # Every process of the import (the importer, its fork server and parsing workers), start-up included.
    result["cpu_seconds"] = _cpu(resource.RUSAGE_CHILDREN) - before
    result["any_process_peak_rss_mb"] = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--runs", type=int, nargs="+", default=[2000, 10000], help="Sizes to measure (ascending)."
    )
    parser.add_argument("--iterations", type=int, default=10)
    parser.add_argument(
        "--context-chars", type=int, default=2000, help="Context size held (twice) in each `locals`."
    )
    parser.add_argument(
        "--chunk-runs", type=int, default=None, help="Runs per transaction (default: the importer's)."
    )
    parser.add_argument(
        "--workers", type=int, default=0, help="Parsing processes (0: one per CPU, at most 4)."
    )
    parser.add_argument(
        "--repeat", type=int, default=3, help="Timed imports per size (the median is reported)."
    )
    parser.add_argument(
        "--no-heap", action="store_true", help="Skip the (slow, serial) Python heap measurement."
    )
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--heap", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--db", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--path", type=Path, action="append", default=[], help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.chunk_runs is None:  # what a user gets: the importer's default
        sys.path.insert(0, str(ROOT))
        from recorder.importers.base import DEFAULT_CHUNK_RUNS

        args.chunk_runs = DEFAULT_CHUNK_RUNS
    if args.worker:
        print(json.dumps(worker(args.db, args.path, args.chunk_runs, args.workers, args.heap)))
        return

    sizes = sorted(args.runs)
    counted = _become_subreaper()
    rows = []
    with tempfile.TemporaryDirectory(prefix="rlmine-import-bench-") as tmp:
        root = Path(tmp)
        parts: list[Path] = []
        made = 0
        total_bytes = 0
        for size in sizes:
            part = root / f"logs-{made}-{size}"
            total_bytes += generate(part, made, size - made, args.iterations, args.context_chars)
            os.sync()  # the generator's writeback is not the import's: flush it before timing
            parts.append(part)
            made = size
            # Each size imported --repeat times into a fresh database; the median run is reported.
            samples = []
            for k in range(args.repeat):
                db = root / f"bench-{size}-{k}.duckdb"
                samples.append(measure(db, list(parts), args.chunk_runs, args.workers))
                db.unlink()
            samples.sort(key=lambda r: r["runs"] / r["seconds"])
            result = samples[len(samples) // 2]
            result.update(
                runs_per_s_samples=[round(r["runs"] / r["seconds"]) for r in samples],
                size=size,
                mb=total_bytes / 1e6,
                runs_per_s=result["runs"] / result["seconds"],
                cpu_ms_per_run=1000 * result["cpu_seconds"] / result["runs"],
                mb_per_s=total_bytes / 1e6 / result["seconds"],
            )
            if not args.no_heap:
                heap = measure(root / f"heap-{size}.duckdb", list(parts), args.chunk_runs, 1, heap=True)
                result["python_heap_peak_mb"] = heap["python_heap_peak_mb"]
            rows.append(result)
        filled: dict[str, Any] | None = None
        if len(parts) > 1:  # the first part again, into a database that already holds the others
            db = root / "filled.duckdb"
            measure(db, parts[1:], args.chunk_runs, args.workers)
            filled = measure(db, parts[:1], args.chunk_runs, args.workers)

    print(
        f"{'runs':>8} {'log MB':>7} {'wall s':>7} {'runs/s':>7} {'MB/s':>5} {'CPU s':>6} {'runs/CPU-s':>10} "
        f"{'RSS MB':>7} {'py heap MB':>10} {'load':>5} {'iterations':>10} {'calls':>8}  runs/s of each try"
    )
    for r in rows:
        print(
            f"{r['runs']:>8,} {r['mb']:>7.0f} {r['seconds']:>7.2f} {r['runs_per_s']:>7,.0f} {r['mb_per_s']:>5.0f} "
            f"{r['cpu_seconds']:>6.1f} {r['runs'] / r['cpu_seconds']:>10,.0f} {r['peak_rss_mb']:>7.0f} "
            f"{r.get('python_heap_peak_mb', float('nan')):>10.1f} {r['load_avg_1m']:>5.1f} {r['rows']['iterations']:>10,} {r['rows']['llm_calls']:>8,}  "
            + ", ".join(f"{v:,}" for v in r["runs_per_s_samples"])
        )
    print(
        "wall s / runs/s: parse + store, the median of the tries; CPU s: all processes of the import, start-up included; "
        "RSS MB: the importing process (parsing workers stay below it; DuckDB's indexes grow with the database); "
        "py heap MB: the importer's own Python objects at their peak (tracemalloc, separate serial run); "
        "load: 1-minute load average at the end"
    )
    # The goal is the issue's: 10,000 runs (the largest size measured). Smaller imports pay the
    # fixed start-up (worker processes) and final commit over fewer runs, and are reported as such.
    ok = rows[-1]["runs_per_s"] >= GOAL_RUNS_PER_S and all(r["failed"] == 0 for r in rows)
    if filled is not None:
        print(
            f"{filled['runs']:,} runs into a database already holding {rows[-1]['runs'] - filled['runs']:,}: "
            f"peak RSS {filled['peak_rss_mb']:.0f} MB (into an empty one: {rows[0]['peak_rss_mb']:.0f} MB): "
            "what grows is DuckDB's, with the database, not with the runs imported"
        )
    flat = rows[-1]["peak_rss_mb"] / rows[0]["peak_rss_mb"] if len(rows) > 1 else 1.0
    heap_flat = (
        rows[-1]["python_heap_peak_mb"] / rows[0]["python_heap_peak_mb"]
        if len(rows) > 1 and not args.no_heap
        else float("nan")
    )
    print(
        f"goal >= {GOAL_RUNS_PER_S:,.0f} runs/s at {rows[-1]['runs']:,} runs: {'met' if ok else 'NOT met'}; "
        f"{rows[-1]['runs']:,} vs {rows[0]['runs']:,} runs: peak RSS x{flat:.2f}, Python heap peak x{heap_flat:.2f}"
    )
    try:
        import orjson  # noqa: F401

        parser_name = "orjson"
    except ImportError:
        parser_name = "json (stdlib)"
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(
        json.dumps(
            {
                "bench": "import_bench",
                "goal_runs_per_s": GOAL_RUNS_PER_S,
                "goal_met": ok,
                "rss_ratio": flat,
                "python_heap_ratio": heap_flat,
                "rss_first_part_into_filled_db_mb": filled["peak_rss_mb"] if filled else None,
                "iterations_per_run": args.iterations,
                "context_chars": args.context_chars,
                "chunk_runs": args.chunk_runs,
                "workers": args.workers,
                "repeat": args.repeat,
                "cpu_includes_workers": counted,
                "json_parser": parser_name,
                "cpus": os.cpu_count(),
                "python": platform.python_version(),
                "machine": platform.machine(),
                "results": rows,
            },
            indent=2,
        )
        + "\n"
    )
    print(f"wrote {RESULTS.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
