"""Databases for the dashboard's tests and benchmark, built only through the store API.

:func:`build_fixture_db` writes a small, fully known database: three tasks,
models including the simulator (``sim``), native and imported (``rlms``) runs —
one imported run with a nested child run linked from its parent's sub-LLM call —
errors, sub-calls, budgets, batches and the simulator's step labels.
:func:`synthetic_traces` makes any number of plausible runs for the benchmark.

:func:`running_dashboard` starts ``rlmine dashboard`` on a free loopback port.
Run as a script, ``write-loop`` plays a recorder's spool flusher: it opens a
writer briefly, saves a few traces, closes, sleeps, and repeats, so a test can
check that the dashboard keeps working (and sees new runs) while a writer is busy.
"""

from __future__ import annotations

import argparse
import os
import random
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

from rlmine.store import Store
from rlmine.store._catalog import upsert_batch, upsert_task
from rlmine.store._writes import save_traces
from rlmine.trace import Iteration, LLMCall, Run, StepLabel, Trace

ROOT = Path(__file__).resolve().parents[1]

# Headless Chromium for the browser tests and the dashboard bench: no network side traffic.
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]

T0 = datetime(2025, 3, 1, 9, 0, 0)

KNOWN_RUN = "r-logs-sim-01"  # 4 iterations; iteration 2 holds KNOWN_CODE_MARKER
KNOWN_CODE_MARKER = "count_errors_by_service"
WRONG_RUN = "r-logs-sim-02"  # iteration 1 raises ZeroDivisionError
EXHAUSTED_RUN = "r-logs-sim-03"  # used its whole iteration budget
GPT_RUN = "r-celebs-gpt-01"
ERROR_RUN = "r-celebs-gpt-02"
IMPORTED_RUN = "r-oolong-rlms"
CHILD_RUN = "r-oolong-rlms-child"
RUNNING_RUN = "r-oolong-running"
TOP_LEVEL_RUNS = (KNOWN_RUN, WRONG_RUN, EXHAUSTED_RUN, GPT_RUN, ERROR_RUN, IMPORTED_RUN, RUNNING_RUN)
TASKS = ("log-incidents", "celebrity-prompts", "oolong-records")
LIVE_TASK = "live-writer"


@dataclass(frozen=True)
class Cell:
    """One iteration of a hand-written run: code, output, and its sub-LLM calls."""

    code: str
    stdout: str = ""
    reasoning: str = ""
    error: str | None = None
    subs: tuple[tuple[str, str], ...] = ()  # (prompt, response)
    labels: tuple[tuple[int, int, str], ...] = ()  # (line_start, line_end, tactic)
    child: Trace | None = None  # a nested run behind this cell's first sub-call


@dataclass(frozen=True)
class Spec:
    run_id: str
    task_id: str | None
    model: str
    cells: tuple[Cell, ...]
    started_at: datetime
    engine: str = "rlmine"
    status: str = "submitted"
    correct: bool | None = True
    answer: str | None = "42"
    batch_id: str | None = None
    error: str | None = None
    budget: dict[str, int] = field(default_factory=lambda: {"max_iterations": 10, "max_sub_calls": 20})
    parent: tuple[str, str] | None = None  # (parent_run_id, parent_call_id)
    priced: bool = False


def make_trace(spec: Spec) -> Trace:
    """A complete trace for ``spec`` (iterations, root and sub calls, labels), totals computed."""
    iterations: list[Iteration] = []
    calls: list[LLMCall] = []
    labels: list[StepLabel] = []
    children: list[Trace] = []
    clock = spec.started_at
    last = len(spec.cells) - 1
    for idx, cell in enumerate(spec.cells):
        submitted = idx == last and spec.status == "submitted"
        calls.append(
            LLMCall(
                id=f"{spec.run_id}-root-{idx}",
                run_id=spec.run_id,
                iteration=idx,
                role="root",
                model=spec.model,
                prompt=f"turn {idx} of {spec.run_id}",
                response=cell.code,
                tokens_in=800 + 100 * idx,
                tokens_out=120,
                cost=0.002 if spec.priced else None,
                latency_s=1.5,
                started_at=clock,
            )
        )
        sub_time = 0.0
        for n, (prompt, response) in enumerate(cell.subs):
            call_id = f"{spec.run_id}-sub-{idx}-{n}"
            child = cell.child if n == 0 else None
            calls.append(
                LLMCall(
                    id=call_id,
                    run_id=spec.run_id,
                    iteration=idx,
                    role="sub",
                    model=spec.model,
                    prompt=prompt,
                    response=response,
                    tokens_in=300,
                    tokens_out=40,
                    cost=0.001 if spec.priced else None,
                    latency_s=0.4,
                    started_at=clock + timedelta(seconds=2 + n),
                    child_run_id=child.run.id if child else None,
                )
            )
            sub_time += 0.4
            if child is not None:
                children.append(child)
        iterations.append(
            Iteration(
                run_id=spec.run_id,
                index=idx,
                reasoning=cell.reasoning or f"Step {idx}: look further.",
                code=cell.code,
                stdout=cell.stdout,
                error=cell.error,
                error_kind="code" if cell.error else None,
                duration_s=0.3 + sub_time,
                root_tokens_in=800 + 100 * idx,
                root_tokens_out=120,
                root_latency_s=1.5,
                submitted=submitted,
                started_at=clock,
            )
        )
        labels.extend(StepLabel(spec.run_id, idx, a, b, tactic) for a, b, tactic in cell.labels)
        clock += timedelta(seconds=3 + sub_time)
    run = Run(
        id=spec.run_id,
        engine=spec.engine,
        status=spec.status,
        question="How many incidents per service?",
        task_id=spec.task_id,
        root_model=spec.model,
        sub_model=spec.model,
        params={"budget": spec.budget, "temperature": 0.7},
        final_answer=spec.answer if spec.status != "error" else None,
        expected="42",
        correct=spec.correct,
        wall_s=(clock - spec.started_at).total_seconds(),
        started_at=spec.started_at,
        finished_at=None if spec.status == "running" else clock,
        batch_id=spec.batch_id,
        error=spec.error,
        parent_run_id=spec.parent[0] if spec.parent else None,
        parent_call_id=spec.parent[1] if spec.parent else None,
    )
    return Trace(
        run=run,
        iterations=tuple(iterations),
        calls=tuple(calls),
        labels=tuple(labels),
        children=tuple(children),
    ).with_totals()


def _known_cells() -> tuple[Cell, ...]:
    return (
        Cell(
            "print(len(context))\nprint(context[:200])",
            "1048576\n2025-03-01 ERROR db: timeout",
            "First look at the size and the start of the log.",
            labels=((1, 2, "peek context"),),
        ),
        Cell(
            "lines = context.splitlines()\nerrors = [l for l in lines if ' ERROR ' in l]\nprint(len(errors))",
            "1311",
            subs=(("Classify: db timeout", "database"), ("Classify: disk full", "storage")),
            labels=((1, 2, "filter lines"), (3, 3, "count")),
        ),
        Cell(
            f"def {KNOWN_CODE_MARKER}(errors):\n    counts = {{}}\n    for e in errors:\n"
            "        svc = e.split()[2]\n        counts[svc] = counts.get(svc, 0) + 1\n    return counts\n"
            f"print({KNOWN_CODE_MARKER}(errors))",
            "{'db:': 42, 'api:': 17}" + "".join(f"\nrow {k}" for k in range(600)),
            labels=((1, 6, "aggregate"), (7, 7, "print result")),
        ),
        Cell("SUBMIT(42)", "", "The db service has 42 incidents.", labels=((1, 1, "submit"),)),
    )


def fixture_specs(task_ids: dict[str, str], batch_ids: dict[str, str]) -> list[Spec]:
    logs, celebs, oolong = (task_ids[name] for name in TASKS)
    day = timedelta(hours=20)
    child = make_trace(
        Spec(
            CHILD_RUN,
            oolong,
            "gpt-4o",
            (Cell("print(context['records'][:3])", "[...]"), Cell("SUBMIT('7')")),
            T0 + 2 * day + timedelta(seconds=5),
            engine="rlms",
            answer="7",
            parent=(IMPORTED_RUN, f"{IMPORTED_RUN}-sub-1-0"),
        )
    )
    return [
        Spec(KNOWN_RUN, logs, "sim", _known_cells(), T0, batch_id=batch_ids["logs-sim"]),
        Spec(
            WRONG_RUN,
            logs,
            "sim",
            (
                Cell(
                    "n = len(context) // 0",
                    error="ZeroDivisionError: integer division or modulo by zero",
                    labels=((1, 1, "peek context"),),
                ),
                Cell("n = len(context)\nprint(n)", "1048576", labels=((1, 2, "peek context"),)),
                Cell("SUBMIT(40)", labels=((1, 1, "submit"),)),
            ),
            T0 + timedelta(minutes=30),
            correct=False,
            answer="40",
            batch_id=batch_ids["logs-sim"],
        ),
        Spec(
            EXHAUSTED_RUN,
            logs,
            "sim",
            tuple(Cell(f"print(context[{i}:{i + 100}])", "...") for i in range(5)),
            T0 + timedelta(hours=1),
            status="budget_exhausted",
            correct=False,
            answer="17",
            budget={"max_iterations": 5, "max_sub_calls": 20},
            batch_id=batch_ids["logs-sim"],
        ),
        Spec(
            GPT_RUN,
            celebs,
            "gpt-4o-mini",
            (
                Cell(
                    "chunks = [context[i:i+50000] for i in range(0, len(context), 50000)]\nprint(len(chunks))",
                    "21",
                ),
                Cell(
                    "names = llm_query_batched([f'Celebrities in: {c}' for c in chunks])",
                    subs=(
                        ("Celebrities in: chunk 0", "Ada Lovelace"),
                        ("Celebrities in: chunk 1", "Alan Turing"),
                    ),
                ),
                Cell("SUBMIT('Ada Lovelace')"),
            ),
            T0 + day,
            batch_id=batch_ids["celebs-gpt"],
            priced=True,
            budget={"max_iterations": 8, "max_sub_calls": 30},
        ),
        Spec(
            ERROR_RUN,
            celebs,
            "gpt-4o-mini",
            (Cell("print(context[:100])", "prompts..."), Cell("x = 1")),
            T0 + day + timedelta(hours=2),
            status="error",
            correct=None,
            batch_id=batch_ids["celebs-gpt"],
            error="provider timeout after 3 retries",
            priced=True,
        ),
        Spec(
            IMPORTED_RUN,
            oolong,
            "gpt-4o",
            (
                Cell("print(type(context), len(context['records']))", "<class 'dict'> 5000"),
                Cell(
                    "answer = llm_query('Count records labelled positive')\nprint(answer)",
                    "7",
                    subs=(("Count records labelled positive", "7"),),
                    child=child,
                ),
                Cell("SUBMIT(answer)"),
            ),
            T0 + 2 * day,
            engine="rlms",
            answer="7",
            budget={},
        ),
        Spec(
            RUNNING_RUN,
            oolong,
            "sim",
            (Cell("print(len(context['records']))", "5000"),),
            T0 + 2 * day + timedelta(hours=1),
            status="running",
            correct=None,
            answer=None,
        ),
    ]


def build_fixture_db(path: Path) -> Path:
    """Create the small fixture database at ``path`` (which must not exist yet)."""
    store = Store.open(path, create=True)
    with store.writer() as con:
        task_ids = {name: upsert_task(con, name=name, question=f"question of {name}") for name in TASKS}
        batch_ids = {
            "logs-sim": upsert_batch(
                con, name="logs-sim", task_id=task_ids["log-incidents"], params={"n": 3}
            ),
            "celebs-gpt": upsert_batch(
                con, name="celebs-gpt", task_id=task_ids["celebrity-prompts"], params={}
            ),
        }
        save_traces(con, [make_trace(s) for s in fixture_specs(task_ids, batch_ids)])
    return path


def build_empty_db(path: Path) -> Path:
    Store.open(path, create=True)
    return path


def synthetic_traces(
    n_runs: int, iterations: int, task_ids: list[str], batch_ids: list[str], seed: int = 0
) -> Iterator[Trace]:
    """``n_runs`` plausible runs of ``iterations`` iterations each (for the benchmark)."""
    rng = random.Random(seed)
    models = ("sim", "gpt-4o-mini", "llama-3.1-70b")
    statuses = ("submitted",) * 8 + ("budget_exhausted", "error")
    for n in range(n_runs):
        cells = tuple(
            Cell(
                f"# step {i} of run {n}\nchunk_{i} = context[{i * 1000}:{(i + 1) * 1000}]\n"
                f"hits_{i} = [l for l in chunk_{i}.splitlines() if 'ERROR' in l]\n"
                + f"print(len(hits_{i}), hits_{i}[:3])\n"
                * rng.randint(1, 4),
                f"{rng.randint(0, 999)} ['2025-03-01 ERROR svc{rng.randint(0, 20)}: timeout']\n"
                * rng.randint(1, 6),
                f"Iteration {i}: narrow down the errors in chunk {i} and count them per service.",
                subs=tuple((f"Classify error {i}-{k}", "database") for k in range(rng.randint(0, 2))),
            )
            for i in range(iterations)
        )
        status = rng.choice(statuses)
        yield make_trace(
            Spec(
                f"bench-{n:06d}",
                rng.choice(task_ids),
                rng.choice(models),
                cells,
                T0 + timedelta(minutes=7 * n),
                engine="rlmine" if n % 10 else "rlms",
                status=status,
                correct=None if status == "error" else rng.random() < 0.6,
                batch_id=rng.choice(batch_ids),
                priced=n % 3 == 0,
            )
        )


def write_loop(
    path: Path, count: int, interval_s: float, prefix: str = "r-live", release: Path | None = None
) -> None:
    """Save ``count`` runs one by one, each in its own short write transaction.

    With ``release``, the last run waits until that file exists, so a test can
    look at the database while the writer is known to be unfinished.
    """
    store = Store.open(path)
    for n in range(count):
        if release is not None and n == count - 1:
            deadline = time.monotonic() + 120
            while not release.exists() and time.monotonic() < deadline:
                time.sleep(0.05)
        with store.writer() as con:
            task_id = upsert_task(con, name=LIVE_TASK)
            cell = Cell(f"live_marker_{n} = {n}\nprint(live_marker_{n})", str(n))
            spec = Spec(f"{prefix}-{n:02d}", task_id, "sim", (cell,), T0 + timedelta(days=5, minutes=n))
            save_traces(con, [make_trace(spec)])
        time.sleep(interval_s)


# -- a running dashboard (for the browser test and the benchmark) -----------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def child_env() -> dict[str, str]:
    """The environment for subprocesses: this checkout importable, no debug output."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH", "")) if p)
    env.pop("RLMINE_DEBUG", None)
    return env


def stop(proc: subprocess.Popen[bytes]) -> None:
    """Stop a process started with ``start_new_session=True`` and everything it started."""
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


@contextmanager
def running_dashboard(db: Path, log: Path, startup_s: float = 60.0) -> Iterator[str]:
    """``rlmine dashboard`` started as a user would; yields its base URL once it answers."""
    port = free_port()
    command = [
        sys.executable,
        "-m",
        "rlmine",
        "dashboard",
        "--db",
        str(db),
        "--port",
        str(port),
        "--host",
        "127.0.0.1",
    ]
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            command, env=child_env(), cwd=ROOT, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + startup_s
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"rlmine dashboard exited with {proc.returncode}:\n{log.read_text()}")
            try:
                with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as answer:
                    if answer.read() == b"ok":
                        break
            except OSError:
                if time.monotonic() > deadline:
                    raise RuntimeError(
                        f"rlmine dashboard did not answer in {startup_s:.0f} s:\n{log.read_text()}"
                    ) from None
                time.sleep(0.2)  # polling a socket until the server listens
        yield url
    finally:
        stop(proc)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    loop = sub.add_parser("write-loop", help="save runs into DB one at a time, like a recorder")
    loop.add_argument("db", type=Path)
    loop.add_argument("--count", type=int, default=5)
    loop.add_argument("--interval", type=float, default=0.5)
    loop.add_argument("--release", type=Path, default=None, help="write the last run once this file exists")
    build = sub.add_parser("build", help="write the fixture database to DB")
    build.add_argument("db", type=Path)
    args = parser.parse_args(argv)
    if args.command == "write-loop":
        write_loop(args.db, args.count, args.interval, release=args.release)
    else:
        build_fixture_db(args.db)


if __name__ == "__main__":
    main()
