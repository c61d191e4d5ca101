"""``rlmine record`` under hostile conditions: two recorders on one batch, failing endpoints,
bad options (nothing may be written), Ctrl-C's wording.

Real processes, a real database, models over loopback HTTP (as in test_record_cli.py).
"""

from __future__ import annotations

import json
import signal
import socket
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
from recorder.lm.registry import make_lm
from recorder.lm.scripted import FunctionLM
from recorder.lm.server import FaultConfig, SimServer
from rlmine.cli.render import model_label
from rlmine.store import Store
from rlmine.store._dashboard_queries import RUNS_CTE, fetch_df

# These tests talk to a loopback OpenAI-compatible server (see tests/conftest.py).
pytestmark = pytest.mark.loopback_models

ROOT = Path(__file__).resolve().parents[1]


def never_submits(messages: list[Message], **_: Any) -> str:
    time.sleep(0.3)
    return "Keep looking.\n```python\nprint(len(context))\n```"


def model(name: str) -> LM:
    if name == "forever":
        return FunctionLM(never_submits, model=name)
    return counting_root(steps=2, delay_s=0.1 if name == "slowcount" else 0.0, model=name)


@pytest.fixture
def server() -> Iterator[SimServer]:
    with running_server(model) as srv:
        yield srv


def rlmine(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "rlmine", *args], capture_output=True, text=True, cwd=ROOT, timeout=timeout
    )


def runs(db: Path) -> list[tuple[Any, ...]]:
    with Store.open(db).reader() as con:
        return con.execute("SELECT slot_key, status, owner FROM runs ORDER BY slot_key").fetchall()


def test_two_identical_recorders_never_run_a_slot_twice(tmp_path: Path, server: SimServer) -> None:
    task = write_task(tmp_path, instances=2)
    db = tmp_path / "runs.duckdb"
    args = ["record", str(task), "--db", str(db), "-n", "8", "-c", "3", "--json"]
    args += ["--model", "slowcount", "--api-base", server.base_url]
    argv = [sys.executable, "-m", "rlmine", *args]
    procs = [
        subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT)
        for _ in range(2)
    ]
    outs = [proc.communicate(timeout=120) for proc in procs]
    for proc, (_out, err) in zip(procs, outs, strict=True):
        assert proc.returncode == 0, err
    reports = [json.loads(out) for out, _err in outs]
    rows = runs(db)
    keys = Counter(key for key, _status, _owner in rows)
    assert len(rows) == 16 and set(keys.values()) == {1}  # 16 slots, one run each
    assert {status for _key, status, _owner in rows} == {"submitted"}
    ran = [len(r["runs"]) for r in reports]
    assert sum(ran) == 16  # between them they ran every slot once
    # whoever started second left the first one's slots alone (and said so), or found them done
    assert all(r["skipped"] + r["elsewhere"] + len(r["runs"]) == 16 for r in reports)


def test_runs_that_all_end_in_error_make_record_fail_and_keep_each_calls_attempts(tmp_path: Path) -> None:
    task = write_task(tmp_path, instances=2)
    db = tmp_path / "runs.duckdb"
    with running_server(model, faults=FaultConfig(error_500_every=1)) as srv:  # every request: 500
        result = rlmine(
            "record",
            str(task),
            "--db",
            str(db),
            "--model",
            "counter",
            "--api-base",
            srv.base_url,
            "--lm-retries",
            "1",
            "--batch",
            "down",
        )
    assert result.returncode == 1, result.stdout
    error = result.stderr.strip().splitlines()[-1]
    assert error.startswith("Error: 2 of 2 runs ended in error (first: root LM failed:")
    assert "`rlmine runs list --batch down --status error`" in error
    with Store.open(db).reader() as con:
        calls = con.execute("SELECT error, metadata FROM llm_calls").fetchall()
    assert len(calls) == 2
    for error_text, metadata in calls:
        attempts = json.loads(metadata)
        assert attempts["attempts"] == 2 and attempts["http_status_history"] == [500, 500]
        assert "HTTP 500" in attempts["last_error"] and "--lm-retries" in error_text


def test_no_server_listening_is_an_error_exit_too(tmp_path: Path) -> None:
    task = write_task(tmp_path, instances=1)
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    result = rlmine(
        "record",
        str(task),
        "--db",
        str(tmp_path / "r.duckdb"),
        "--model",
        "counter",
        "--api-base",
        f"http://127.0.0.1:{port}/v1",
        "--lm-retries",
        "0",
    )
    assert result.returncode == 1 and "1 of 1 runs ended in error" in result.stderr


@pytest.mark.parametrize(
    ("extra", "env", "message"),
    [
        (["--model", "counter", "--api-base", "127.0.0.1:8000"], {}, "is not an http(s) URL"),
        (["--model", "counter", "--api-base", "http://127.0.0.1:99999/v1"], {}, "is not an http(s) URL"),
        (["--model", "gpt-4o-mini"], {"OPENAI_API_KEY": ""}, "OPENAI_API_KEY is not set"),
        (["--split", "test"], {}, "has no test instances"),
        (["--split", "dev"], {}, "unknown split 'dev'"),
        (["--instance", "train-099"], {}, "has no instance 'train-099'"),
        (["--model", "sim", "--api-base", "http://127.0.0.1:9/v1", "--sim-latency", "1"], {}, "in-process"),
    ],
    ids=[
        "no-scheme",
        "bad-port",
        "no-key",
        "empty-split",
        "unknown-split",
        "unknown-instance",
        "sim-option-over-http",
    ],
)
def test_bad_values_are_refused_before_anything_is_written(
    tmp_path: Path, extra: list[str], env: dict[str, str], message: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name, value in env.items():
        monkeypatch.setenv(name, value) if value else monkeypatch.delenv(name, raising=False)
    task = write_task(tmp_path / "task", instances=1)
    db = tmp_path / "db" / "runs.duckdb"
    db.parent.mkdir()
    result = rlmine("record", str(task), "--db", str(db), *extra)
    assert result.returncode == 1 and result.stderr.count("\n") == 1, result.stderr
    assert result.stderr.startswith("Error: ") and message in result.stderr
    assert list(db.parent.iterdir()) == []  # no database, no task, no empty batch


def test_sim_with_api_base_uses_the_served_simulator_and_says_so(tmp_path: Path) -> None:
    sim = make_lm("sim", role="root")
    oracle = make_lm("sim", role="sub")
    task_dir = tmp_path / "task"
    made = rlmine(
        "tasks", "make", "incident-logs", "--out", str(task_dir), "--instances", "3", "--size", "100KB"
    )
    assert made.returncode == 0, made.stderr
    db = tmp_path / "runs.duckdb"
    with running_server(lambda name: oracle if name == "sim-sub" else sim) as srv:
        result = rlmine(
            "record",
            str(task_dir / "task.yaml"),
            "--db",
            str(db),
            "--model",
            "sim",
            "--api-base",
            srv.base_url,
            "--json",
        )
        assert result.returncode in (0, 1), result.stderr
        assert srv.request_count > 0  # the URL was used, not ignored
        netloc = srv.base_url.split("//", 1)[1].split("/", 1)[0]
    with Store.open(db).reader() as con:
        models = con.execute("SELECT DISTINCT root_model, sub_model FROM runs").fetchall()
    assert models == [(f"sim@{netloc}", f"sim@{netloc}")]
    assert model_label(f"sim@{netloc}") == f"sim@{netloc} (simulator)"  # still named a simulator
    with Store.open(db).reader() as con:
        kinds = set(fetch_df(con, f"WITH {RUNS_CTE} SELECT kind FROM base")["kind"])
    assert kinds == {"simulator"}  # and so in the dashboard


def test_ctrl_c_progress_says_cancelled_not_failed(tmp_path: Path, server: SimServer) -> None:
    task = write_task(tmp_path, instances=1)
    argv = [
        sys.executable,
        "-m",
        "rlmine",
        "record",
        str(task),
        "--db",
        str(tmp_path / "r.duckdb"),
        "-n",
        "4",
    ]
    argv += ["-c", "2", "--model", "forever", "--api-base", server.base_url, "--max-iterations", "50"]
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT)
    deadline = time.monotonic() + 30
    while server.request_count < 4:  # both runs past their first step
        assert proc.poll() is None and time.monotonic() < deadline, "the batch did not start"
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 130, err
    assert "failed 0" in out and "cancelled 2" in out, out
