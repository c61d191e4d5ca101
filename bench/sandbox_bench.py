"""Sandbox overheads: worker start, per-cell round trip, LLM round trip, large-context load.

    PYTHONPATH=. .venv/bin/python bench/sandbox_bench.py [--quick] [--context-mb 1024] [--cells 1000]

Worker start is measured for both start methods ("forkserver": forked from the per-host
template; "spawn": a new interpreter): median wall time of one start, CPU per start +
shutdown (the host's own CPU plus the workers' — reaped by the host when spawned, by the
template when forked, read from its /proc stat), and the wall time of 32 starts at once
from 32 threads (median of 3). The load average is recorded: other work on the machine
inflates every number.

Context sharing: ``--share-count`` sandboxes started at once on one ``--share-mb`` file,
each worker loading it vs all forked from one context template; wall time and the memory
really used (proportional set size of workers and template).

The hardening's cost (decision 0011): forkserver starts with the private filesystem view vs
on the host's filesystem, alternated in one run; and what bubblewrap would cost instead (it
must exec a new interpreter per worker). Goals: the view adds <= 20% to a worker start.

Goals: start (no context) <= 80 ms wall, forkserver start <= 10 ms CPU, trivial cell median
<= 2 ms, and for a large text context: ready time <= 2x the time to read the file, worker
peak RSS <= 1.6x its size (measured without sharing: the worker loads it). Prints a table
and writes bench/results/sandbox_bench.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from recorder.sandbox import SandboxConfig, SubprocessSandbox
from recorder.sandbox.base import StartMethod
from recorder.sandbox.host import context_share, forkserver

RESULTS = Path(__file__).resolve().parent / "results" / "sandbox_bench.json"


def _ms(samples: list[float]) -> float:
    return round(statistics.median(samples) * 1000, 3)


class CpuMeter:
    """CPU time of this process and everything it starts, workers and template included.

    As root with cgroup v1 ``cpuacct``, the bench moves itself into its own cpuacct cgroup
    (children inherit it, and their CPU stays counted after they exit). Elsewhere it adds
    this process's rusage, its reaped children's and the template's (/proc stat, which
    counts the workers it reaped); that misses a PID namespace's inner process when a
    kill takes both it and its relay at once.
    """

    ROOT = Path("/sys/fs/cgroup/cpuacct")

    def __init__(self) -> None:
        self.group: Path | None = self.ROOT / f"rlmine-bench-{os.getpid()}"
        try:
            self.group.mkdir()
            (self.group / "cgroup.procs").write_text(str(os.getpid()))
        except OSError:
            self.group = None
        self.source = "cpuacct cgroup" if self.group else "rusage + template /proc stat"

    def seconds(self) -> float:
        if self.group is not None:
            return int((self.group / "cpuacct.usage").read_text()) / 1e9
        own = resource.getrusage(resource.RUSAGE_SELF)
        reaped = resource.getrusage(resource.RUSAGE_CHILDREN)
        return own.ru_utime + own.ru_stime + reaped.ru_utime + reaped.ru_stime + _template_cpu_s()

    def close(self) -> None:
        if self.group is not None:
            (self.ROOT / "cgroup.procs").write_text(str(os.getpid()))
            forkserver.stop_shared_server()  # the template is in the group too
            for _ in range(100):
                try:
                    self.group.rmdir()
                    break
                except OSError:
                    time.sleep(0.01)


def _template_cpu_s() -> float:
    """CPU of the fork-server template and of the workers it has reaped (0 if none runs)."""
    server = forkserver.running_server()
    if server is None:
        return 0.0
    text = Path(f"/proc/{server.pid}/stat").read_text()
    fields = text[text.rindex(")") + 2 :].split()
    return sum(int(value) for value in fields[11:15]) / os.sysconf("SC_CLK_TCK")  # utime..cstime


def bench_start(runs: int, method: StartMethod, meter: CpuMeter, view: bool = True) -> dict[str, Any]:
    config = SandboxConfig(start_method=method, view=view)
    began = time.perf_counter()
    with SubprocessSandbox(config) as first:  # starts the template: not part of the per-start cost
        launch_s = time.perf_counter() - began
        started_as = first.isolation["start"]
    starts, stops = [], []
    cpu_before = meter.seconds()
    for _ in range(runs):
        box = SubprocessSandbox(config)
        began = time.perf_counter()
        box.start()
        starts.append(time.perf_counter() - began)
        began = time.perf_counter()
        box.shutdown()
        stops.append(time.perf_counter() - began)
    time.sleep(0.05)  # let the template reap the last worker
    cpu_s = meter.seconds() - cpu_before
    return {
        "started_as": started_as,
        "first_start_ms": round(launch_s * 1000, 1),
        "start_ms": _ms(starts),
        "shutdown_ms": _ms(stops),
        "cpu_ms_per_start_and_shutdown": round(cpu_s / runs * 1000, 2),
    }


def bench_parallel_starts(
    count: int, method: StartMethod, repeats: int = 3, view: bool = True
) -> dict[str, float]:
    walls = []
    for _ in range(repeats):
        boxes = [SubprocessSandbox(SandboxConfig(start_method=method, view=view)) for _ in range(count)]
        began = time.perf_counter()
        with ThreadPoolExecutor(count) as pool:
            list(pool.map(lambda box: box.start(), boxes))
        walls.append(time.perf_counter() - began)
        for box in boxes:
            box.shutdown()
    return {f"{count}_at_once_s": round(statistics.median(walls), 3)}


def bench_interleaved_starts(runs: int) -> dict[str, float]:
    """Forkserver starts with and without the private filesystem view, alternated so that
    load from other work on the machine hits both alike: the hardening's start cost."""
    samples: dict[bool, list[float]] = {True: [], False: []}
    cells: dict[bool, list[float]] = {True: [], False: []}
    for index in range(2 * runs):
        view = index % 2 == 0
        box = SubprocessSandbox(SandboxConfig(view=view))
        began = time.perf_counter()
        box.start()
        samples[view].append(time.perf_counter() - began)
        began = time.perf_counter()
        box.execute("x = 1")
        cells[view].append(time.perf_counter() - began)
        box.shutdown()
    return {
        "start_ms_host_fs": _ms(samples[False]),
        "start_ms_private_view": _ms(samples[True]),
        "start_ratio": round(statistics.median(samples[True]) / statistics.median(samples[False]), 3),
        "first_cell_ms_host_fs": _ms(cells[False]),
        "first_cell_ms_private_view": _ms(cells[True]),
    }


def bench_bwrap(runs: int) -> dict[str, Any]:
    """What a bubblewrap-built view costs per worker: bwrap must exec a new interpreter, so it
    cannot keep the fork server. Measured as ``python -s -c pass`` with and without bwrap
    (an equivalent view: read-only system and Python, own /tmp, /dev/shm, /proc, namespaces)."""
    bwrap = shutil.which("bwrap")
    if bwrap is None:
        return {"skipped": "bwrap not installed (apt-get install bubblewrap)"}
    python = [sys.executable, "-s", "-c", "pass"]
    view = [bwrap, "--ro-bind", "/usr", "/usr", "--dev", "/dev", "--proc", "/proc"]
    for link in ("bin", "lib", "lib64", "sbin"):
        if os.path.islink(f"/{link}"):
            view += ["--symlink", os.readlink(f"/{link}"), f"/{link}"]
    for path in sorted({sys.base_prefix, sys.prefix}):
        view += ["--ro-bind", path, path]
    view += ["--tmpfs", "/tmp", "--tmpfs", "/dev/shm", "--unshare-all", "--die-with-parent"]
    timings: dict[str, list[float]] = {"plain": [], "bwrap": []}
    for _ in range(runs):
        for name, argv in (("plain", python), ("bwrap", view + python)):
            began = time.perf_counter()
            subprocess.run(argv, check=True)
            timings[name].append(time.perf_counter() - began)
    return {
        "version": subprocess.run([bwrap, "--version"], capture_output=True, text=True).stdout.strip(),
        "python_start_ms": _ms(timings["plain"]),
        "bwrap_python_start_ms": _ms(timings["bwrap"]),
    }


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
    box = SubprocessSandbox(SandboxConfig(context_path=path, share_context=False))  # the worker loads it
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


def _pss_mb(pid: int) -> float:
    """Proportional set size of ``pid`` and its children (a worker and its PID-namespace child)."""
    total = 0.0
    pids = [pid, *(int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split())]
    for each in pids:
        for line in Path(f"/proc/{each}/smaps_rollup").read_text().splitlines():
            if line.startswith("Pss:"):
                total += int(line.split()[1]) / 1024
    return total


def bench_shared_context(size_mb: int, count: int, share: bool, directory: str) -> dict[str, Any]:
    """``count`` sandboxes started at once on one ``size_mb`` text file: wall time and memory.

    Memory is the proportional set size of every worker plus (when shared) the context
    template that holds the context: what the machine really spends on them.
    """
    path = os.path.join(directory, "shared-context.log")
    if not os.path.exists(path):
        _write_context(path, size_mb, False)
    context_share.REGISTRY.stop_all()
    config = SandboxConfig(context_path=path, share_context=share)
    boxes = [SubprocessSandbox(config) for _ in range(count)]
    began = time.perf_counter()
    with ThreadPoolExecutor(count) as pool:
        list(pool.map(lambda box: box.start(), boxes))
    wall = time.perf_counter() - began
    lengths = {box.execute("print(len(context))").stdout for box in boxes}
    pids = {int(box.worker_info["pid"]) for box in boxes}
    templates = {int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1]) for pid in pids}
    main = forkserver.running_server()
    extra = [t for t in templates if main is None or t != main.pid]  # context templates, if any
    memory = sum(_pss_mb(pid) for pid in pids) + sum(_pss_mb(pid) for pid in extra)
    shared = all(box.worker_info["context_shared"] for box in boxes)
    for box in boxes:
        box.shutdown()
    context_share.REGISTRY.stop_all()
    return {
        "sandboxes": count,
        "context_mb": size_mb,
        "all_shared": shared,
        "start_all_s": round(wall, 3),
        "total_pss_mb": round(memory, 1),
        "pss_over_context": round(memory / size_mb, 2),
        "contexts_ok": len(lengths) == 1,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--context-mb", type=int, default=1024)
    parser.add_argument("--cells", type=int, default=1000)
    parser.add_argument("--starts", type=int, default=50)
    parser.add_argument(
        "--methods", nargs="+", default=["spawn", "forkserver"], choices=["spawn", "forkserver"]
    )
    parser.add_argument(
        "--share-mb", type=int, default=256, help="context size for the sharing test (0: skip)"
    )
    parser.add_argument("--share-count", type=int, default=16)
    parser.add_argument(
        "--quick", action="store_true", help="few samples, no context or sharing tests (a smoke run)"
    )
    args = parser.parse_args()
    if args.quick:
        args.starts, args.cells, args.share_mb, args.context_mb = 20, 200, 0, 0
    console = Console()
    results: dict[str, Any] = {
        "machine": {
            "python": platform.python_version(),
            "cpus": os.cpu_count(),
            "platform": platform.platform(),
        },
        "load_average_before": [round(x, 2) for x in os.getloadavg()],
    }
    meter = CpuMeter()
    results["cpu_measured_by"] = meter.source
    try:
        for method in args.methods:
            results[f"start_{method}"] = {
                **bench_start(args.starts, method, meter),
                **bench_parallel_starts(32, method),
            }
        # Cells right after the start benchmarks, where the bench of 7121426 measured them: the
        # kernel is still cleaning up the namespaces of the sandboxes that just ended, and a
        # comparison needs the same backlog on both sides.
        results.update(bench_cells(args.cells))
        if "forkserver" in args.methods:  # the same, on the host's filesystem (before the view)
            results["start_forkserver_host_fs"] = {
                **bench_start(args.starts, "forkserver", meter, view=False),
                **bench_parallel_starts(32, "forkserver", view=False),
            }
    finally:
        meter.close()
    results["view_vs_host_fs"] = bench_interleaved_starts(args.starts)
    results["bubblewrap"] = bench_bwrap(max(5, args.starts // 5))
    with SubprocessSandbox(SandboxConfig()) as box:
        results["isolation"] = box.isolation
    if args.share_mb:
        with tempfile.TemporaryDirectory(prefix="rlmine-bench-") as directory:
            for share in (False, True):
                results[f"context_{'shared' if share else 'per_worker'}"] = bench_shared_context(
                    args.share_mb, args.share_count, share, directory
                )
    if args.context_mb:
        with tempfile.TemporaryDirectory(prefix="rlmine-bench-") as directory:
            results["context_ascii"] = bench_context(args.context_mb, False, directory)
            results["context_utf8"] = bench_context(args.context_mb, True, directory)
    results["load_average_after"] = [round(x, 2) for x in os.getloadavg()]
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
