"""``rlmine record`` end to end: a real process, a real database, models over loopback HTTP."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from loopback import running_server
from recorder_fakes import counting_root, write_task

from recorder.lm.base import LM, Message
from recorder.lm.scripted import FunctionLM
from recorder.lm.server import SimServer
from rlmine.store import Store

# These tests talk to a loopback OpenAI-compatible server (see tests/conftest.py).
pytestmark = pytest.mark.loopback_models

ROOT = Path(__file__).resolve().parents[1]


def rlmine(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "rlmine", *args], capture_output=True, text=True, cwd=ROOT, timeout=timeout
    )


def slow_forever(messages: list[Message], **_: Any) -> str:
    time.sleep(0.3)
    return "Keep looking.\n```python\nprint(len(context))\n```"  # never submits


def model(name: str) -> LM:
    if name == "slowfake":
        return FunctionLM(slow_forever, model=name)
    return counting_root(steps=2, model=name)


@pytest.fixture
def server() -> Iterator[SimServer]:
    with running_server(model) as srv:
        yield srv


def statuses(db: Path) -> Counter[str]:
    with Store.open(db).reader() as con:
        return Counter(row[0] for row in con.execute("SELECT status FROM runs").fetchall())


def test_a_missing_task_file_is_a_one_line_error(tmp_path: Path) -> None:
    result = rlmine("record", str(tmp_path / "nope.yaml"), "--db", str(tmp_path / "x.duckdb"))
    assert result.returncode == 1 and result.stdout == ""
    assert result.stderr.startswith(f"Error: no task file at {tmp_path / 'nope.yaml'} — try ")
    assert result.stderr.count("\n") == 1


def test_an_invalid_task_file_is_a_one_line_error_listing_its_problems(tmp_path: Path) -> None:
    broken = ROOT / "tests" / "fixtures" / "tasks" / "broken.yaml"
    result = rlmine("record", str(broken), "--db", str(tmp_path / "x.duckdb"))
    assert result.returncode == 1 and result.stderr.count("\n") == 1
    assert result.stderr.startswith("Error: ") and "unknown split 'dev'" in result.stderr
    assert "max_sub_cals" in result.stderr  # every problem, not just the first


def test_json_output_then_resume_on_the_second_run(tmp_path: Path, server: SimServer) -> None:
    task = write_task(tmp_path, instances=2)
    db = tmp_path / "runs.duckdb"
    args = [
        "record",
        str(task),
        "--db",
        str(db),
        "-n",
        "2",
        "--model",
        "counter",
        "--api-base",
        server.base_url,
    ]
    first = rlmine(*args, "--json")
    assert first.returncode == 0, first.stderr
    data = json.loads(first.stdout)  # stdout is JSON only: the progress bar went to stderr
    assert (data["planned"], data["skipped"], data["by_status"], data["cancelled"]) == (
        4,
        0,
        {"submitted": 4},
        False,
    )
    assert len(data["runs"]) == 4 and data["batch"].startswith("tiny-count-")
    assert statuses(db) == {"submitted": 4}

    again = rlmine(*args)
    assert again.returncode == 0, again.stderr
    assert f"Resumed batch {data['batch']}: 4 of 4 runs were already done." in again.stdout
    assert statuses(db) == {"submitted": 4}


def test_ctrl_c_marks_in_flight_runs_cancelled_and_exits_130(tmp_path: Path, server: SimServer) -> None:
    task = write_task(tmp_path, instances=1)
    db = tmp_path / "runs.duckdb"
    common = ["record", str(task), "--db", str(db), "-n", "6", "-c", "3", "--batch", "ctrl-c"]
    common += ["--model", "slowfake", "--api-base", server.base_url]
    argv = [sys.executable, "-m", "rlmine", *common, "--max-iterations", "50"]
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT)
    deadline = time.monotonic() + 30
    while server.request_count < 6:  # three runs in flight, each past its first step
        assert proc.poll() is None and time.monotonic() < deadline, "the batch did not start"
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 130, err
    assert "Stopping" in out
    assert statuses(db) == {"cancelled": 3}  # the three not started were never stored

    # Resuming the batch re-runs the cancelled slots and runs the others (a 1-step budget
    # makes the never-submitting model end quickly, as budget_exhausted).
    resumed = rlmine(*common, "--max-iterations", "1", "--json")
    assert resumed.returncode == 0, resumed.stderr
    assert json.loads(resumed.stdout)["skipped"] == 0
    assert statuses(db) == {"budget_exhausted": 6}
