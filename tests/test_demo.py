"""The offline default end to end: simulator runs through the real engine, sandbox, HTTP and CLI."""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from loopback import running_server

from recorder.batch import RecordOptions, record
from recorder.families import make_task
from recorder.lm.openai_backend import OpenAICompatLM
from recorder.lm.server import FaultConfig
from rlmine.cli.simserver import sim_lm_factory
from rlmine.store import Store

# These tests talk to a loopback OpenAI-compatible server (see tests/conftest.py).
pytestmark = pytest.mark.loopback_models

ROOT = Path(__file__).resolve().parents[1]


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(ROOT), "COLUMNS": "120"}


def _rows(db: Path, sql: str) -> list[tuple[Any, ...]]:
    with Store(db).reader() as con:
        return con.execute(sql).fetchall()


@pytest.fixture(scope="module")
def logs_task(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("logs")
    return make_task("incident-logs", out, size_bytes=150_000, instances=5, seed=3)


def test_recording_the_simulator_over_faulty_http_completes_every_run(
    logs_task: Path, tmp_path: Path
) -> None:
    faults = FaultConfig(
        rate_limit_every=5, retry_after_s=0.05, error_500_every=13, slow_every=17, slow_s=1.5
    )
    with running_server(sim_lm_factory(), faults=faults) as server:

        def factory(spec: str, *, role: str, **_kw: Any) -> OpenAICompatLM:
            model = "sim" if role == "root" else "sim-sub"
            return OpenAICompatLM(model, api_base=server.base_url, timeout_s=1.0, backoff_base_s=0.01,
                                  backoff_max_s=0.1, max_retries=8)  # fmt: skip

        db = tmp_path / "faulty.duckdb"
        result = record(logs_task, db=db, options=RecordOptions(runs=2, concurrency=4), lm_factory=factory)
        statuses = {entry[1] for entry in server.log}
    assert {429, 500} <= statuses  # the faults really happened
    assert result.by_status == {"submitted": 6}
    runs = _rows(db, "SELECT status, n_llm_calls, tokens_in, tokens_out FROM runs")
    assert len(runs) == 6 and all(r[0] == "submitted" and r[2] > 0 and r[3] > 0 for r in runs)
    calls = _rows(db, "SELECT role, tokens_in, tokens_out, error, metadata FROM llm_calls")
    assert calls and all(c[1] is not None and c[2] is not None and c[3] is None for c in calls)
    retried = [json.loads(c[4]) for c in calls if json.loads(c[4]).get("retries")]
    assert retried, "no call recorded its retries"
    # Each run's counters equal its stored calls.
    mismatched = _rows(
        db,
        "SELECT r.id FROM runs r JOIN (SELECT run_id, count(*) n FROM llm_calls GROUP BY run_id) c "
        "ON c.run_id = r.id WHERE c.n <> r.n_llm_calls",
    )
    assert mismatched == []


def test_every_statement_of_a_simulator_run_has_a_ground_truth_label(logs_task: Path, tmp_path: Path) -> None:
    db = tmp_path / "labels.duckdb"
    record(logs_task, db=db, options=RecordOptions(runs=2, concurrency=2))
    iterations = _rows(db, "SELECT run_id, idx, code FROM iterations WHERE code IS NOT NULL")
    labels = _rows(db, "SELECT run_id, iteration, line_start, line_end, tactic FROM step_labels")
    assert iterations and labels
    by_cell: dict[tuple[str, int], list[tuple[int, int]]] = {}
    for run_id, it, start, end, _tactic in labels:
        by_cell.setdefault((run_id, it), []).append((start, end))
    for run_id, idx, code in iterations:
        spans = by_cell.get((run_id, idx), [])
        for node in ast.parse(code).body:
            line = node.lineno
            assert any(s <= line <= e for s, e in spans), f"{run_id}/{idx} line {line} unlabelled"


def test_demo_command_records_then_reuses(tmp_path: Path) -> None:
    db = tmp_path / "demo.duckdb"
    args = [sys.executable, "-m", "rlmine", "demo", "--size", "120KB", "--instances", "5", "--runs", "6",
            "--out", str(tmp_path / "demo"), "--db", str(db)]  # fmt: skip
    first = subprocess.run(args, capture_output=True, text=True, env=_env(), timeout=300)
    assert first.returncode == 0, first.stderr
    assert "simulator" in first.stdout and "rlmine runs show" in first.stdout
    demo_batch = "(SELECT id FROM batches WHERE name LIKE 'demo-%')"
    assert "consensus plan:" in first.stdout and "tactics" in first.stdout
    (runs, iters, subs, scored, labels) = _rows(
        db,
        "SELECT count(*), sum(n_iterations), sum(n_sub_calls), count(score), "
        f"(SELECT count(*) FROM step_labels) FROM runs WHERE batch_id = {demo_batch}",
    )[0]
    assert runs == 6 and iters >= 12 and subs > 0 and scored == 6 and labels > 0
    # step 4 builds an agent (or says why none) and, with one, evals it against the RLM
    assert "4. agent: " in first.stdout
    if "4. agent: none" not in first.stdout:
        assert "agent / RLM on the test instances" in first.stdout
    total = _rows(db, "SELECT count(*) FROM runs")[0][0]
    second = subprocess.run(args, capture_output=True, text=True, env=_env(), timeout=300)
    assert second.returncode == 0, second.stderr
    assert "reusing" in second.stdout and "reused 6 of 6 runs" in second.stdout
    assert _rows(db, "SELECT count(*) FROM runs")[0][0] == total  # eval runs are reused too
    assert _rows(db, "SELECT count(*) FROM mining_runs")[0][0] == 2  # each demo mines again


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--family", "nope"], "unknown task family 'nope'"),
        (["--size", "-5MB"], "size"),
        (["--size", "5TB"], "size"),
    ],
)
def test_demo_bad_input_is_one_line(args: list[str], message: str, tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "rlmine", "demo", *args, "--out", str(tmp_path), "--db", str(tmp_path / "x.duckdb")],
        capture_output=True, text=True, env=_env(), timeout=60,
    )  # fmt: skip
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert proc.returncode != 0 and len(lines) == 1 and lines[0].startswith("Error:"), proc.stderr
    assert message in lines[0]
