"""``rlmine record --executor ray``: a local Ray (loopback only, 2 CPUs, no dashboard)
started once for the module; runs execute as Ray tasks with real sandboxes, the driver
writes the database.

Covered: the same records as the local executor for a 20-run simulator batch, a worker
killed mid-run (that run ``error`` with the iterations it streamed, the rest complete,
nothing duplicated), resume across executors both ways (with Ctrl-C cancellation through
``ray.cancel``), API keys reaching workers only through the runtime environment, and the
CLI path.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import duckdb
import pytest

ray = pytest.importorskip("ray")

import ray_fakes  # noqa: E402
import recorder_fakes  # noqa: E402
from recorder_fakes import fake_factory, write_task  # noqa: E402
from typer.testing import CliRunner  # noqa: E402

import recorder  # noqa: E402
from recorder.batch import BatchEvent, RecordOptions, record  # noqa: E402
from recorder.executors import LocalExecutor  # noqa: E402
from recorder.executors.ray_executor import RayExecutor  # noqa: E402
from recorder.families import make_task  # noqa: E402
from rlmine.cli import app  # noqa: E402

pytestmark = [pytest.mark.ray, pytest.mark.slow]

RUN_COLUMNS = (
    "slot_key, status, instance_id, root_model, sub_model, final_answer, correct, score, "
    "n_iterations, n_llm_calls, n_sub_calls, tokens_in, tokens_out, error"
)


@pytest.fixture(scope="module", autouse=True)
def local_ray() -> Iterator[None]:
    ray.init(num_cpus=2, include_dashboard=False, _node_ip_address="127.0.0.1", logging_level="ERROR")
    # The tests' fake LMs live outside the package: ship their code to the workers.
    ray.cloudpickle.register_pickle_by_value(recorder_fakes)
    ray.cloudpickle.register_pickle_by_value(ray_fakes)
    yield
    ray.shutdown()


@pytest.fixture(scope="module")
def sim_task(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("sim-task")
    return make_task("incident-logs", out, size_bytes=102_400, instances=5, seed=3)


def executor() -> RayExecutor:
    return RayExecutor(num_cpus=0.5)  # four runs in flight on the two CPUs


def _rows(db: Path, sql: str) -> list[tuple[Any, ...]]:
    con = duckdb.connect(str(db), read_only=True)
    try:
        return con.execute(sql).fetchall()
    finally:
        con.close()


def records(db: Path) -> dict[str, Any]:
    """Everything stored about a batch, keyed by slot, with ids and timings left out (the
    budget line of a prompt says the wall time left: its seconds are a timing too)."""
    slot = "(SELECT slot_key FROM runs r WHERE r.id = t.run_id)"
    prompt = r"regexp_replace(prompt, '\d+ s left', 'N s left', 'g')"
    return {
        "runs": _rows(db, f"SELECT {RUN_COLUMNS} FROM runs ORDER BY slot_key"),
        "iterations": _rows(
            db,
            f"SELECT {slot}, idx, reasoning, code, stdout, stderr, error, error_kind, submitted, "
            "root_tokens_in, root_tokens_out, output_truncated FROM iterations t ORDER BY 1, 2",
        ),
        "blocks": _rows(
            db,
            f"SELECT {slot}, iteration, idx, code, stdout, stderr, error, ran FROM code_blocks t ORDER BY 1, 2, 3",
        ),
        "calls": _rows(
            db,
            f"SELECT {slot}, iteration, role, model, {prompt}, prompt_chars, response, tokens_in, tokens_out, "
            "error FROM llm_calls t ORDER BY 1, 2, 3, 5, 7",
        ),
        "labels": _rows(
            db, f"SELECT {slot}, iteration, line_start, line_end, tactic FROM step_labels t ORDER BY ALL"
        ),
    }


def test_a_20_run_simulator_batch_stores_the_same_records_as_the_local_executor(
    sim_task: Path, tmp_path: Path
) -> None:
    options = RecordOptions(runs=4, split=None, concurrency=4, lm_options={"latency": 0.0})
    events: dict[str, Counter[str]] = {"local": Counter(), "ray": Counter()}
    local = record(
        sim_task,
        db=tmp_path / "local.duckdb",
        options=options,
        on_event=lambda e: events["local"].update([e.kind]),
    )
    remote = record(
        sim_task,
        db=tmp_path / "ray.duckdb",
        options=options,
        executor=executor(),
        on_event=lambda e: events["ray"].update([e.kind]),
    )
    # the progress bar hears the same events
    assert events["ray"] == events["local"] == {"planned": 1, "started": 20, "finished": 20}
    assert local.planned == remote.planned == 20
    assert len(remote.runs) == 20 and remote.by_status == local.by_status
    expected, got = records(tmp_path / "local.duckdb"), records(tmp_path / "ray.duckdb")
    assert len(got["runs"]) == 20 and len(got["iterations"]) > 20 and len(got["calls"]) > 40
    assert got == expected
    # the batch identity is the plan's, whatever the executor
    assert remote.batch_name == local.batch_name


def test_a_worker_killed_mid_run_leaves_that_run_error_and_the_rest_complete(tmp_path: Path) -> None:
    task = write_task(tmp_path, instances=1)
    db = tmp_path / "t.duckdb"
    options = RecordOptions(runs=6, models=("m",), concurrency=4)
    result = record(
        task, db=db, options=options, lm_factory=ray_fakes.dying_factory(kill_seed=3), executor=executor()
    )
    assert result.by_status == {"submitted": 5, "error": 1}
    runs = _rows(db, "SELECT slot_key, status, error, n_iterations FROM runs ORDER BY slot_key")
    assert [r[0] for r in runs] == [f"train-000|m|None|{s}" for s in range(6)]  # one run per slot
    killed = runs[3]
    assert killed[1] == "error" and "Ray worker running this run died" in killed[2]
    # the iteration it streamed before dying is stored, once
    its = _rows(
        db,
        "SELECT i.idx FROM iterations i JOIN runs r ON r.id = i.run_id "
        "WHERE r.slot_key = 'train-000|m|None|3'",
    )
    assert its == [(0,)]
    per_run = _rows(
        db,
        "SELECT r.n_llm_calls, count(c.id), count(DISTINCT c.id) FROM runs r "
        "LEFT JOIN llm_calls c ON c.run_id = r.id WHERE r.status = 'submitted' GROUP BY r.id, r.n_llm_calls",
    )
    assert len(per_run) == 5 and all(n == total == distinct for n, total, distinct in per_run)
    # resume sees an ended batch: nothing re-run, nothing added
    again = record(task, db=db, options=options, lm_factory=fake_factory(steps=3), executor=LocalExecutor())
    assert again.skipped == 6 and again.runs == []
    assert len(_rows(db, "SELECT id FROM runs")) == 6


def _cancel_at_start(nth: int, cancel: threading.Event) -> Any:
    """Ctrl-C as run ``nth`` starts: the first wave has finished, the second is in flight."""
    seen = Counter[str]()

    def on_event(event: BatchEvent) -> None:
        if event.kind == "started":
            seen["n"] += 1
            if seen["n"] >= nth:
                cancel.set()

    return on_event


@pytest.mark.parametrize("first", ["local", "ray"])
def test_a_batch_started_with_one_executor_resumes_with_the_other(tmp_path: Path, first: str) -> None:
    task = write_task(tmp_path, instances=2)
    db = tmp_path / "t.duckdb"
    options = RecordOptions(runs=5, models=("m",), concurrency=4)
    factory = fake_factory(steps=4, delay_s=0.15)
    make = {"local": LocalExecutor, "ray": executor}
    cancel = threading.Event()
    started = record(
        task,
        db=db,
        options=options,
        lm_factory=factory,
        executor=make[first](),
        cancel=cancel,
        on_event=_cancel_at_start(6, cancel),
    )
    assert started.cancelled and started.planned == 10
    done_first = sum(r.status == "submitted" for r in started.runs)
    assert 1 <= done_first <= 5
    assert started.by_status.get("cancelled", 0) >= 1  # runs in flight were stopped, not finished
    cancelled = _rows(db, "SELECT question, root_model FROM runs WHERE status = 'cancelled'")
    assert cancelled and all(row == ("How many lines does the context have?", "m") for row in cancelled)
    second = "ray" if first == "local" else "local"
    resumed = record(task, db=db, options=options, lm_factory=factory, executor=make[second]())
    assert not resumed.cancelled and resumed.skipped == done_first
    assert resumed.by_status == {"submitted": 10 - done_first}
    runs = _rows(db, "SELECT slot_key, status, n_iterations FROM runs")
    assert len(runs) == 10 and len({r[0] for r in runs}) == 10
    assert {r[1] for r in runs} == {"submitted"} and {r[2] for r in runs} == {4}
    counts = _rows(db, "SELECT count(*), count(DISTINCT (run_id, idx)) FROM iterations")
    assert counts == [(40, 40)]


def test_the_api_key_reaches_workers_through_the_runtime_env_and_is_never_stored(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    secrets = {"RLMINE_TEST_RAY_KEY": "sk-test-4f1d9c0e7b", "RLMINE_TEST_RAY_EXTRA": "extra-77a1c2"}
    for name, value in secrets.items():  # set in the driver after Ray's workers were started
        monkeypatch.setenv(name, value)
    task = write_task(tmp_path, instances=1)
    db = tmp_path / "t.duckdb"
    probe = ray_fakes.key_probe_factory(secrets)
    options = RecordOptions(runs=2, models=("m",), api_key_env="RLMINE_TEST_RAY_KEY")
    # without --ray-env the extra variable stays on the driver
    alone = record(
        task, db=db, options=replace(options, batch="alone"), lm_factory=probe, executor=executor()
    )
    assert [r.final_answer for r in alone.runs] == ["missing", "missing"]
    both = RayExecutor(num_cpus=0.5, env=("RLMINE_TEST_RAY_EXTRA",))
    result = record(task, db=db, options=replace(options, batch="both"), lm_factory=probe, executor=both)
    assert [r.final_answer for r in result.runs] == ["seen", "seen"]
    stored = " ".join(str(row) for table in records(db).values() for row in table)
    stored += " ".join(str(r) for r in _rows(db, "SELECT params, metadata FROM runs"))
    for value in secrets.values():
        assert value not in stored and value.encode() not in db.read_bytes()


def test_record_cli_with_executor_ray(sim_task: Path, tmp_path: Path) -> None:
    db = tmp_path / "cli.duckdb"
    args = ["record", str(sim_task), "--split", "test", "-n", "2", "--executor", "ray", "--db", str(db)]
    result = CliRunner().invoke(app, [*args, "--ray-cpus-per-run", "0.5", "--json"])
    assert result.exit_code == 0, result.output
    assert '"planned": 2' in result.stdout and '"cancelled": false' in result.stdout
    assert len(_rows(db, "SELECT id FROM runs WHERE status = 'submitted'")) == 2
    # the Python API takes the executor by name too
    more = recorder.record(sim_task, db=db, options=RecordOptions(runs=2, split="validation"), executor="ray")
    assert more.planned == 2 and more.by_status == {"submitted": 2}
