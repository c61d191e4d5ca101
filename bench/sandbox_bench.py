"""Sandbox overheads: worker start, per-cell round trip, LLM round trip, large-context load.

    PYTHONPATH=. .venv/bin/python bench/sandbox_bench.py [--context-mb 1024] [--cells 1000]

Goals: start (no context) <= 80 ms, trivial cell median <= 2 ms, and for a large text
context: ready time <= 2x the time to read the file, worker peak RSS <= 1.6x its size.
Prints a table and writes bench/results/sandbox_bench.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from recorder.sandbox import SandboxConfig, SubprocessSandbox

RESULTS = Path(__file__).resolve().parent / "results" / "sandbox_bench.json"


def _ms(samples: list[float]) -> float:
    return round(statistics.median(samples) * 1000, 3)


def bench_start(runs: int) -> dict[str, float]:
    starts, stops = [], []
    for _ in range(runs):
        box = SubprocessSandbox(SandboxConfig())
        began = time.perf_counter()
        box.start()
        starts.append(time.perf_counter() - began)
        began = time.perf_counter()
        box.shutdown()
        stops.append(time.perf_counter() - began)
    return {"start_ms": _ms(starts), "shutdown_ms": _ms(stops)}


def bench_cells(cells: int) -> dict[str, float]:
    with SubprocessSandbox(SandboxConfig(), lambda prompts, _model: prompts) as box:
        timings: dict[str, list[float]] = {"trivial_cell_ms": [], "print_cell_ms": [], "llm_cell_ms": []}
        codes = {
            "trivial_cell_ms": "x = 1",
            "print_cell_ms": "print(x)",
            "llm_cell_ms": "y = llm_query('ping')",
        }
        for name, code in codes.items():
            for _ in range(cells):
                began = time.perf_counter()
                box.execute(code)
                timings[name].append(time.perf_counter() - began)
    return {name: _ms(samples) for name, samples in timings.items()}


def _write_context(path: str, size_mb: int, non_ascii: bool) -> None:
    line = b"2024-05-01T12:00:00Z host-17 sshd[4242]: Accepted publickey for deploy from 10.0.0.7\n"
    block = line * ((1 << 20) // len(line) + 1)
    with open(path, "wb") as handle:
        for _ in range(size_mb):
            handle.write(block[: 1 << 20])
        if non_ascii:
            handle.write("café\n".encode())


def bench_context(size_mb: int, non_ascii: bool, directory: str) -> dict[str, Any]:
    path = os.path.join(directory, f"context-{'utf8' if non_ascii else 'ascii'}.log")
    _write_context(path, size_mb, non_ascii)
    file_mb = os.path.getsize(path) / (1 << 20)
    with open(path, "rb") as handle:  # warm the page cache, then time a plain read
        handle.read()
    began = time.perf_counter()
    with open(path, "rb") as handle:
        data = handle.read()
    read_s = time.perf_counter() - began
    del data
    box = SubprocessSandbox(SandboxConfig(context_path=path))
    began = time.perf_counter()
    box.start()
    ready_s = time.perf_counter() - began
    info = box.worker_info
    check = box.execute("print(len(context))")
    box.shutdown()
    os.remove(path)
    peak = float(info["peak_rss_mb"] or 0)
    return {
        "file_mb": round(file_mb, 1),
        "read_file_s": round(read_s, 3),
        "ready_s": round(ready_s, 3),
        "ready_over_read": round(ready_s / read_s, 2),
        "worker_peak_rss_mb": round(peak, 1),
        "rss_over_file": round(peak / file_mb, 2),
        "context_len_ok": check.stdout.strip() == str(info["context_len"]),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--context-mb", type=int, default=1024)
    parser.add_argument("--cells", type=int, default=1000)
    parser.add_argument("--starts", type=int, default=20)
    args = parser.parse_args()
    console = Console()
    results: dict[str, Any] = {
        "machine": {
            "python": platform.python_version(),
            "cpus": os.cpu_count(),
            "platform": platform.platform(),
        },
        **bench_start(args.starts),
        **bench_cells(args.cells),
    }
    with SubprocessSandbox(SandboxConfig()) as box:
        results["isolation"] = box.isolation
    if args.context_mb:
        with tempfile.TemporaryDirectory(prefix="rlmine-bench-") as directory:
            results["context_ascii"] = bench_context(args.context_mb, False, directory)
            results["context_utf8"] = bench_context(args.context_mb, True, directory)
    table = Table(title="sandbox overheads")
    table.add_column("measure")
    table.add_column("value", justify="right")
    for key, value in results.items():
        if isinstance(value, dict):
            for sub_key, sub_value in value.items():
                table.add_row(f"{key}.{sub_key}", str(sub_value))
        else:
            table.add_row(key, str(value))
    console.print(table)
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
