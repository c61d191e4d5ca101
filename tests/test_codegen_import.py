"""Agents from single imported rlms runs (both answer styles, several code blocks per reply)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from fixtures.make_fixtures import CODEGEN_LOG, codegen_top_service
from typer.testing import CliRunner

from recorder.importers import import_files
from rlmine.cli import app
from rlmine.store import Store

FIXTURES = Path(__file__).parent / "fixtures" / "rlms_codegen"
FINAL_VAR_LOG = FIXTURES / "rlm_2025-02-01_09-00-00_c0de0001.jsonl"
ANSWER_LOG = FIXTURES / "rlm_2025-02-02_10-00-00_c0de0002.jsonl"
CONTEXT = FIXTURES / "context.log"


@pytest.fixture
def db(tmp_path: Path) -> Path:
    path = tmp_path / "imp.duckdb"
    store = Store.open(path, create=True)
    report = import_files(store, "rlms", [FINAL_VAR_LOG, ANSWER_LOG])
    assert report.failed == [] and report.runs == 2
    return path


def _run_of(db: Path, style_marker: str) -> tuple[str, str]:
    with Store(db).reader() as con:
        row = con.execute(
            "SELECT r.id, r.final_answer FROM runs r JOIN iterations i ON i.run_id = r.id "
            "WHERE i.code LIKE ? LIMIT 1",
            [f"%{style_marker}%"],
        ).fetchone()
    assert row is not None
    return str(row[0]), str(row[1])


def _build(db: Path, run_id: str, out: Path) -> dict[str, object]:
    result = CliRunner().invoke(
        app,
        [
            "agent",
            "build",
            "--run",
            run_id,
            "--context",
            str(CONTEXT),
            "-o",
            str(out),
            "--db",
            str(db),
            "--json",
        ],
    )
    assert result.exit_code == 0, result.output
    return dict(json.loads(result.output))


def _agent(script: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """Run the script with no site-packages (-S): it may use the standard library only."""
    cmd = [sys.executable, "-I", "-S", str(script), *args]
    return subprocess.run(cmd, capture_output=True, text=True, check=False)


def test_final_var_run_with_batched_sub_calls_replays_its_answer(db: Path, tmp_path: Path) -> None:
    run_id, recorded = _run_of(db, "llm_query_batched")
    out = tmp_path / "agent.py"
    built = _build(db, run_id, out)
    assert built["agent_id"] and out.exists()
    done = _agent(out, "--context", str(CONTEXT), "--llm", "replay")
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == recorded == "2 of 5"
    # the agent needs the LLM: off mode refuses, in one line
    off = _agent(out, "--context", str(CONTEXT), "--llm", "off")
    assert off.returncode == 3 and off.stderr.count("\n") == 1


def test_answer_style_run_without_llm_calls_answers_a_new_context_in_off_mode(
    db: Path, tmp_path: Path
) -> None:
    run_id, recorded = _run_of(db, "'ready': True")
    out = tmp_path / "agent.py"
    _build(db, run_id, out)
    same = _agent(out, "--context", str(CONTEXT), "--llm", "replay")
    assert same.returncode == 0 and same.stdout.strip() == recorded
    # a new log of the same shape, where another service leads
    new_log = CODEGEN_LOG + "".join(
        f"\n2025-03-01 12:{i:02d}:00 ERROR cache: miss storm {i}" for i in range(6)
    )
    new_context = tmp_path / "new.log"
    new_context.write_text(new_log)
    expected = codegen_top_service(new_log)
    assert expected.startswith("cache")
    done = _agent(
        out, "--context", str(new_context), "--llm", "off", "--json", "--question", "anything at all"
    )
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["answer"] == expected and report["llm_calls"] == 0


def test_an_abbreviated_import_does_not_replay_and_writes_nothing(tmp_path: Path) -> None:
    # The importer fixtures of tests/fixtures/rlms abbreviate their code ("labels = ..."): no agent.
    path = tmp_path / "abbr.duckdb"
    store = Store.open(path, create=True)
    import_files(
        store,
        "rlms",
        [Path(__file__).parent / "fixtures" / "rlms" / "rlm_2025-01-11_10-00-00_e5f6a7b8.jsonl"],
    )
    with store.reader() as con:
        run_id = con.execute("SELECT id FROM runs WHERE parent_run_id IS NULL").fetchone()[0]  # type: ignore[index]
    out = tmp_path / "agent.py"
    done = subprocess.run(
        [sys.executable, "-m", "rlmine", "agent", "build", "--run", run_id, "--context", str(CONTEXT),
         "-o", str(out), "--db", str(path)],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert done.returncode == 1 and done.stderr.startswith("Error: no agent built")
    assert done.stderr.count("\n") == 1 and not out.exists()
