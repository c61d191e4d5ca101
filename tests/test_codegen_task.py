"""Agents from many simulator runs of a task: build (validated), the CLI, live mode, eval, bad input."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from codegen import BuildError, TaskBuildOptions, build_for_task
from recorder.batch import RecordOptions, record
from recorder.families import make_task
from recorder.lm.registry import make_lm
from recorder.lm.server import SimServer
from recorder.tasks import load_task
from rlmine.cli import app
from rlmine.store import Store, get_agent, list_evals
from rlmine.store._catalog import upsert_task

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def recorded(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("codegen-task")
    task_file = make_task("celebrities", root / "task", size_bytes=102_400, instances=10, seed=3)
    db = root / "t.duckdb"
    store = Store.open(db, create=True)
    record(load_task(task_file), db=store, options=RecordOptions(runs=2, concurrency=2, batch="train-x2"))
    return task_file, db


def _cli(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(app, list(args))
    return result.exit_code, result.output


def _err(*args: str) -> tuple[int, str]:
    """Run ``python -m rlmine`` as a user would: (exit code, stderr)."""
    done = subprocess.run(
        [sys.executable, "-m", "rlmine", *args], capture_output=True, text=True, check=False
    )
    return done.returncode, done.stderr


def test_build_selects_a_validated_agent_and_its_live_mode_answers_test_instances(
    recorded: tuple[Path, Path], tmp_path: Path
) -> None:
    task_file, db = recorded
    task = load_task(task_file)
    store = Store.open(db)
    result = build_for_task(store, task.name, TaskBuildOptions(concurrency=2))
    assert result.agent_id is not None and result.rendered is not None
    statuses = [c.status for c in result.candidates]
    assert statuses.count("selected") == 1
    selected = next(c for c in result.candidates if c.status == "selected")
    assert selected.accuracy is not None and selected.accuracy >= 0.6
    # ranked: no candidate that was not selected beats the winner on accuracy
    assert all((c.accuracy or 0) <= selected.accuracy for c in result.candidates)
    with store.reader() as con:
        stored = get_agent(con, result.agent_id)
    assert len(stored["candidates"]) == len(result.candidates)
    assert stored["validation"]["accuracy"] >= 0.6
    script = tmp_path / "agent.py"
    script.write_text(result.rendered.script)
    assert "temperature=0" in result.rendered.script and task.name in result.rendered.script

    def factory(model: str) -> object:
        return make_lm("sim", role="sub" if model == "sim-sub" else "root")

    with SimServer(factory, models=("sim", "sim-sub")) as server:  # type: ignore[arg-type]
        for inst in task.instances_in("test"):
            done = subprocess.run(
                [sys.executable, str(script), "--context", str(inst.context_path(task)), "--question",
                 inst.question_text(task), "--llm", "live", "--api-base", server.base_url, "--json"],
                capture_output=True, text=True, check=False,
            )  # fmt: skip
            assert done.returncode == 0, done.stderr
            report = json.loads(done.stdout)
            assert task.make_checker().check(report["answer"], inst.expected).correct
            assert report["llm_calls"] >= 1 and report["tokens_in"] > 0


def test_cli_build_list_show_and_eval(recorded: tuple[Path, Path], tmp_path: Path) -> None:
    task_file, db = recorded
    name = load_task(task_file).name
    out = tmp_path / "agent.py"
    code, text = _cli("agent", "build", "--task", name, "-o", str(out), "--db", str(db), "--json", "-c", "2")
    assert code == 0, text
    built = json.loads(text)
    assert out.read_text().startswith('"""Agent for task') and built["path"] == str(out)
    code, text = _cli("agent", "list", "--db", str(db), "--json")
    assert code == 0 and built["agent_id"] in text
    code, text = _cli("agent", "show", built["agent_id"][:12], "--db", str(db))
    assert code == 0 and "source runs" in text and "selected" in text
    code, text = _cli(
        "eval", "--task", name, "--agent", built["agent_id"], "--db", str(db), "--json", "-c", "2"
    )
    assert code == 0, text
    summary = json.loads(text)
    assert summary["agent"]["n"] == summary["rlm"]["n"] == 2
    assert summary["agent"]["accuracy"] >= summary["rlm"]["accuracy"]
    assert summary["agent"]["llm_calls"] < summary["rlm"]["llm_calls"]
    assert (
        0 <= summary["agent"]["ci95"][0] <= summary["agent"]["accuracy"] <= summary["agent"]["ci95"][1] <= 1
    )
    with Store(db).reader() as con:
        assert len(list_evals(con, built["agent_id"])) >= 1


def test_bad_inputs_are_one_line_errors_and_write_nothing(
    recorded: tuple[Path, Path], tmp_path: Path
) -> None:
    task_file, db = recorded
    name = load_task(task_file).name
    out = tmp_path / "agent.py"
    code, text = _err("agent", "build", "--task", "no-such-task", "-o", str(out), "--db", str(db))
    assert (
        code == 1 and text.startswith("Error: no task named") and text.count("\n") == 1 and not out.exists()
    )
    code, text = _err(
        "agent", "build", "--run", "01ZZZ", "--context", str(tmp_path / "x.txt"), "--db", str(db)
    )
    assert code == 1 and text.startswith("Error: ") and not out.exists()
    broken = tmp_path / "edited.py"
    broken.write_text("def solve(:\n")
    code, text = _err("eval", "--task", name, "--agent", str(broken), "--db", str(db))
    assert code == 1 and "no longer parses" in text and text.count("\n") == 1


def test_threshold_not_reached_emits_nothing(recorded: tuple[Path, Path], tmp_path: Path) -> None:
    task_file, db = recorded
    store = Store.open(db)
    with pytest.raises(BuildError, match="no candidate reached"):
        build_for_task(store, load_task(task_file).name, TaskBuildOptions(min_accuracy=1.01, concurrency=2))


def test_a_task_without_successful_runs_is_refused(tmp_path: Path) -> None:
    task_file = make_task("celebrities", tmp_path / "task", size_bytes=102_400, instances=3, seed=9)
    db = tmp_path / "empty.duckdb"
    store = Store.open(db, create=True)
    task = load_task(task_file)
    with store.writer() as con:
        upsert_task(
            con, name=task.name, spec=task.spec_dict(), question=task.question, source_path=str(task_file)
        )
    code, text = _err("agent", "build", "--task", task.name, "--db", str(db), "-o", str(tmp_path / "a.py"))
    assert code == 1 and "no successful runs" in text and not (tmp_path / "a.py").exists()


def test_without_validation_instances_candidates_are_checked_on_held_out_train_instances(
    tmp_path: Path,
) -> None:
    task_file = make_task(
        "celebrities", tmp_path / "task", size_bytes=102_400, instances=8, seed=5, splits=(0.75, 0.0, 0.25)
    )
    task = load_task(task_file)
    train = [i.id for i in task.instances_in("train")]
    assert len(train) == 6 and not task.instances_in("validation")
    store = Store.open(tmp_path / "t.duckdb", create=True)
    record(
        task, db=store, options=RecordOptions(runs=3, concurrency=2, instance_ids=tuple(train[:3]), batch="b")
    )
    result = build_for_task(store, task.name, TaskBuildOptions(concurrency=2))
    validated = [c for c in result.candidates if c.n_instances]
    assert validated and all(c.details["validated_on"].startswith("train") for c in validated)
    assert all(c.n_instances == 3 for c in validated)  # the three train instances no run came from
