"""The batch runner: many runs in parallel into a real DuckDB, resume, crash and cancel.

Runs use the real subprocess sandbox and scripted in-process models (the HTTP path
is covered by test_engine.py); the crash test SIGKILLs a real recording process.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

from recorder_fakes import counting_root, fake_factory, write_task

from recorder.batch import BatchEvent, RecordOptions, default_batch_name, plan_slots, record
from recorder.lm.base import LMResponse, Message
from recorder.lm.scripted import FunctionLM
from recorder.tasks import load_task
from rlmine.store import Store
from rlmine.store._queries import get_trace

SCRIPTS = Path(__file__).resolve().parent / "scripts"

ROOT = Path(__file__).resolve().parents[1]


def runs_table(db: Path) -> list[dict[str, Any]]:
    with Store.open(db).reader() as con:
        rows = con.execute(
            "SELECT r.id, r.slot_key, r.status, r.n_iterations, r.score, r.correct, r.final_answer,"
            " (SELECT count(*) FROM iterations i WHERE i.run_id = r.id) AS stored_iterations"
            " FROM runs r ORDER BY r.slot_key"
        ).fetchall()
    names = ["id", "slot_key", "status", "n_iterations", "score", "correct", "answer", "stored_iterations"]
    return [dict(zip(names, row, strict=True)) for row in rows]


def test_twenty_runs_at_concurrency_eight_are_all_stored(tmp_path: Path) -> None:
    task = write_task(tmp_path, instances=2)
    db = tmp_path / "t.duckdb"
    events: list[BatchEvent] = []
    result = record(
        task,
        db=db,
        options=RecordOptions(runs=10, models=("fake-root",), concurrency=8),
        on_event=events.append,
        lm_factory=fake_factory(steps=3),
    )
    assert result.planned == 20 and result.skipped == 0 and len(result.runs) == 20
    assert result.by_status == {"submitted": 20}
    rows = runs_table(db)
    assert len(rows) == 20 and len({r["slot_key"] for r in rows}) == 20
    for row in rows:
        assert row["status"] == "submitted" and row["correct"] is True and row["score"] == 1.0
        assert row["n_iterations"] == row["stored_iterations"] == 3
    assert {r["answer"] for r in rows} == {"10", "11"}  # the two instances' line counts
    assert Counter(e.kind for e in events) == {"planned": 1, "started": 20, "finished": 20}
    with Store.open(db).reader() as con:
        trace = get_trace(con, rows[0]["id"])
        batch = con.execute("SELECT name FROM batches").fetchall()
    assert [it.code for it in trace.iterations][2] == "SUBMIT(len(lines))"
    assert trace.run.batch_id == result.batch_id and batch == [(result.batch_name,)]


def test_running_the_same_batch_again_skips_finished_runs(tmp_path: Path) -> None:
    task = write_task(tmp_path, instances=1)
    db = tmp_path / "t.duckdb"
    options = RecordOptions(runs=3, models=("fake-root",), concurrency=3)
    first = record(task, db=db, options=options, lm_factory=fake_factory())
    again = record(task, db=db, options=options, lm_factory=fake_factory())
    assert first.batch_name == again.batch_name
    assert (again.planned, again.skipped, again.runs) == (3, 3, [])
    more = record(
        task,
        db=db,
        options=RecordOptions(runs=3, models=("fake-root",), seeds=(0, 10)),
        lm_factory=fake_factory(),
    )
    assert more.batch_name != first.batch_name  # another plan is another batch
    assert len(runs_table(db)) == 3 + 6


def test_a_crashing_run_is_recorded_as_error_and_the_batch_goes_on(tmp_path: Path) -> None:
    task = write_task(tmp_path, instances=1)
    db = tmp_path / "t.duckdb"

    def root(messages: list[Message], *, seed: int | None = None, **_: Any) -> LMResponse:
        if seed == 1:
            raise RuntimeError("backend bug")  # not an LMError: a crash, not a provider failure
        return counting_root().complete(messages)

    result = record(
        task,
        db=db,
        options=RecordOptions(runs=3, models=("m",), concurrency=3),
        lm_factory=lambda spec, *, role, **kw: FunctionLM(root, model=spec),
    )
    by_slot = {r["slot_key"]: r for r in runs_table(db)}
    assert by_slot["train-000|m|None|1"]["status"] == "error"
    assert by_slot["train-000|m|None|0"]["status"] == by_slot["train-000|m|None|2"]["status"] == "submitted"
    crashed = next(r for r in result.runs if r.status == "error")
    assert crashed.error == "RuntimeError: backend bug" and crashed.score == 0.0


def test_cancel_marks_in_flight_runs_cancelled_and_resume_reruns_them(tmp_path: Path) -> None:
    task = write_task(tmp_path, instances=1)
    db = tmp_path / "t.duckdb"
    cancel = threading.Event()
    calls = Counter[str]()
    lock = threading.Lock()

    def root(messages: list[Message], **_: Any) -> str:
        with lock:
            calls["n"] += 1
            if calls["n"] >= 4:
                cancel.set()
        return "keep looking\n```python\nprint(len(context))\n```"  # never submits

    options = RecordOptions(runs=6, models=("m",), concurrency=2, budget={"max_iterations": 50})
    result = record(
        task,
        db=db,
        options=options,
        cancel=cancel,
        lm_factory=lambda spec, **kw: FunctionLM(root, model=spec),
    )
    assert result.cancelled and result.by_status == {"cancelled": 2}
    assert [r["status"] for r in runs_table(db)] == ["cancelled", "cancelled"]
    resumed = record(task, db=db, options=options, lm_factory=fake_factory())
    assert resumed.skipped == 0 and resumed.by_status == {"submitted": 6}
    assert Counter(r["status"] for r in runs_table(db)) == {"submitted": 6}


def test_plan_covers_the_cross_product_and_names_are_stable(tmp_path: Path) -> None:
    spec = load_task(write_task(tmp_path, instances=2))
    opts = RecordOptions(runs=2, models=("a", "b"), temperatures=(0.0, 0.7), seeds=(0, 100))
    slots = plan_slots(spec, opts)
    assert len(slots) == 2 * 2 * 2 * 2 * 2
    assert len({s.key for s in slots}) == len(slots)
    assert "train-001|b|0.7|101" in {s.key for s in slots}
    assert default_batch_name(spec, opts) == default_batch_name(spec, opts)
    assert default_batch_name(spec, opts) != default_batch_name(spec, RecordOptions(runs=3))


def test_an_instance_picked_outside_the_split_is_catalogued(tmp_path: Path) -> None:
    task = write_task(tmp_path, instances=1)
    text = task.read_text().replace("split: train", "split: test")
    task.write_text(text)
    db = tmp_path / "t.duckdb"
    result = record(
        task,
        db=db,
        options=RecordOptions(models=("m",), instance_ids=("train-000",)),
        lm_factory=fake_factory(),
    )
    assert result.by_status == {"submitted": 1}
    with Store.open(db).reader() as con:
        instances = con.execute("SELECT id, split FROM instances").fetchall()
    assert instances == [("train-000", "test")]


def _worker_pids(marker: str) -> list[int]:
    """Live processes whose command line mentions ``marker`` (sandbox workers carry the context path)."""
    pids = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            cmdline = Path(f"/proc/{entry}/cmdline").read_bytes()
            state = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[-1].split()[0]
        except OSError:
            continue
        if marker.encode() in cmdline and b"worker.py" in cmdline and state != "Z":
            pids.append(int(entry))
    return pids


def test_sigkill_mid_batch_then_resume_keeps_every_finished_run(tmp_path: Path) -> None:
    task = write_task(tmp_path, instances=2)
    db = tmp_path / "t.duckdb"
    argv = [
        sys.executable,
        str(SCRIPTS / "record_batch.py"),
        str(task),
        str(db),
        *("--runs", "8", "--concurrency", "3", "--delay", "0.1", "--steps", "4"),
    ]
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, text=True, cwd=ROOT)
    assert proc.stdout is not None
    finished: dict[str, str] = {}  # run id -> slot key, durable before the kill
    deadline = time.monotonic() + 40
    for line in proc.stdout:
        if line.startswith("FINISHED"):
            _, run_id, slot, _status = line.split()
            finished[run_id] = slot
            if len(finished) >= 4:
                break
        assert time.monotonic() < deadline, "the batch did not progress"
    proc.send_signal(signal.SIGKILL)
    proc.wait(10)
    assert len(finished) >= 4

    # Workers notice their host is gone (their pipes close) and exit.
    deadline = time.monotonic() + 15
    while _worker_pids(str(tmp_path)) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert _worker_pids(str(tmp_path)) == []

    before = {r["id"]: r for r in runs_table(db)}
    assert set(finished) <= set(before)
    assert any(r["status"] == "running" for r in before.values())  # killed mid-run

    done = subprocess.run(argv, capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert done.returncode == 0, done.stderr
    planned = next(line for line in done.stdout.splitlines() if line.startswith("PLANNED"))
    assert planned.split()[1] == "16" and int(planned.split()[2]) >= len(finished)

    after = runs_table(db)
    assert Counter(r["slot_key"] for r in after) == Counter({k: 1 for k in {r["slot_key"] for r in after}})
    assert len(after) == 16 and all(r["status"] == "submitted" for r in after)
    by_id = {r["id"]: r for r in after}
    for run_id, slot in finished.items():
        assert by_id[run_id]["slot_key"] == slot  # the same run, not a re-run
    assert all(r["n_iterations"] == r["stored_iterations"] == 4 for r in after)


def test_events_report_skipped_runs_when_resuming(tmp_path: Path) -> None:
    task = write_task(tmp_path, instances=1)
    db = tmp_path / "t.duckdb"
    options = RecordOptions(runs=2, models=("m",))
    record(task, db=db, options=options, lm_factory=fake_factory())
    events: list[BatchEvent] = []
    record(task, db=db, options=options, on_event=events.append, lm_factory=fake_factory())
    assert [(e.kind, e.total, e.skipped) for e in events] == [("planned", 2, 2)]
