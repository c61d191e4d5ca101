"""The terminal view: ``runs list`` at 80 columns and ``runs show`` block by block."""

from __future__ import annotations

import json
import socket
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from typer.testing import CliRunner

from rlmine.cli import app
from rlmine.store import Store
from rlmine.trace import CodeBlock, Iteration, LLMCall, Run, Trace

MULTI = Path(__file__).resolve().parent / "fixtures" / "rlms" / "rlm_2025-01-14_12-00-00_b10cb10c.jsonl"
T0 = datetime(2026, 1, 1, 9, 0, 0)
DEAD_OWNER = f"{socket.gethostname()}:4194999:1"  # above pid_max: never a live process


def invoke(*args: str, width: int = 80) -> str:
    result = CliRunner().invoke(app, list(args), terminal_width=width, env={"COLUMNS": str(width)})
    assert result.exit_code == 0, result.output
    return result.output


def _run(n: int, **kw: object) -> Run:
    base = {
        "id": f"01KRUN{n:020d}",
        "engine": "rlmine",
        "status": "submitted",
        "task_id": "a-long-task-name-for-the-table",
        "root_model": "openrouter/some-vendor/a-rather-long-model-name",
        "correct": n % 2 == 0,
        "n_iterations": 3,
        "n_llm_calls": 12,
        "tokens_in": 12_345,
        "tokens_out": 678,
        "cost": 0.0123,
        "wall_s": 12.5,
        "started_at": T0 + timedelta(seconds=n),
    }
    base.update(kw)
    return Run(**base)  # type: ignore[arg-type]


@pytest.fixture
def many(tmp_path: Path) -> Path:
    db = tmp_path / "many.duckdb"
    runs = [Trace(run=_run(n)) for n in range(121)]
    runs.append(Trace(run=_run(121, status="running", owner=DEAD_OWNER, correct=None)))
    Store.open(db, create=True).save_traces(runs)
    return db


def test_runs_list_fits_80_columns_with_whole_ids(many: Path) -> None:
    out = invoke("runs", "list", "--db", str(many))
    table = [line for line in out.splitlines() if line.startswith("01KRUN")]
    assert len(table) == 50
    assert all(len(line) <= 80 for line in out.splitlines())
    assert "…" not in out  # no cell is cut
    assert all(
        line.split()[0] == f"01KRUN{n:020d}" for line, n in zip(table, range(121, 71, -1), strict=False)
    )
    header = out.splitlines()[0]
    assert "status" in header and "ok" in header and "cost" not in header  # a column gave way
    wide = invoke("runs", "list", "--db", str(many), width=200)
    assert "cost" in wide.splitlines()[0] and "a-long-task-name-for-the-table" in wide


def test_runs_list_says_how_many_it_shows_and_how_to_see_more(many: Path) -> None:
    out = invoke("runs", "list", "--db", str(many))
    assert "Showing the newest 50 of 122 runs: `--limit 122` to see them all" in " ".join(out.split())
    every = invoke("runs", "list", "--limit", "122", "--db", str(many), width=200)
    assert sum(line.startswith("01KRUN") for line in every.splitlines()) == 122
    assert "Showing" not in every


def test_stale_runs_read_stale(many: Path) -> None:
    out = invoke("runs", "list", "--db", str(many))
    newest = next(line for line in out.splitlines() if line.startswith("01KRUN"))
    assert newest.split()[0] == f"01KRUN{121:020d}" and "stale" in newest and "running" not in newest
    data = json.loads(invoke("runs", "list", "--json", "--limit", "2", "--db", str(many)))
    assert [r["stale"] for r in data] == [True, False]


def _many_calls_trace() -> Trace:
    rid = "01KSUBCALLS000000000000000"
    its = tuple(
        Iteration(run_id=rid, index=i, reasoning=f"step {i}", code="x = llm_query_batched(ps)", stdout="ok\n")
        for i in range(3)
    )
    calls = tuple(
        LLMCall(
            id=f"{rid}.s{n:03d}",
            run_id=rid,
            iteration=n // 50,
            role="sub",
            model="mini",
            prompt=f"prompt number {n}",
            response=f"answer {n}",
            tokens_in=10,
            tokens_out=2,
        )
        for n in range(150)
    )
    return Trace(
        run=Run(id=rid, engine="rlmine", status="submitted"), iterations=its, calls=calls
    ).with_totals()


def test_runs_show_collapses_sub_calls_unless_asked(tmp_path: Path) -> None:
    db = tmp_path / "c.duckdb"
    Store.open(db, create=True).save_traces([_many_calls_trace()])
    short = invoke("runs", "show", "01KSUBCALLS", "--db", str(db))
    assert short.count("50 sub-LLM call(s)") == 3 and "--calls to expand" in short
    assert "prompt number 0'" in short and "prompt number 149" not in short
    assert len(short.splitlines()) < 60
    full = invoke("runs", "show", "01KSUBCALLS", "--calls", "--db", str(db), width=120)
    assert "prompt number 149" in full and "answer 149" in full
    assert len(full.splitlines()) > 300


def test_runs_show_prints_each_block_with_its_own_output_and_error(tmp_path: Path) -> None:
    db = tmp_path / "m.duckdb"
    invoke("import", "rlms", str(MULTI), "--db", str(db))
    run_id = json.loads(invoke("runs", "list", "--json", "--db", str(db)))[0]["id"]
    out = invoke("runs", "show", run_id, "--db", str(db), width=120)
    order = [
        "block 1/3 · ok",
        "print(len(lines))",
        "6",
        "block 2/3 · error",
        "print(lines[0].split()[9])",
        "IndexError: list index out of range",
        "block 3/3 · ok",
        "llm_query_batched",
        "['api', 'db']",
    ]
    at = 0
    for piece in order:  # each in turn, after the one before
        found = out.find(piece, at)
        assert found >= 0, (piece, out[at:])
        at = found + len(piece)
    assert out.count("block 1/3") == 1
    # the batched sub-calls' figures are estimates, and marked as such
    assert "≈" in out and "estimated" in out


def test_engine_blocks_that_did_not_run_say_so(tmp_path: Path) -> None:
    rid = "01KNOTRUN00000000000000000"
    blocks = (
        CodeBlock(run_id=rid, iteration=0, index=0, code="print(1/0)", stdout="", error="ZeroDivisionError"),
        CodeBlock(run_id=rid, iteration=0, index=1, code="print('later')", ran=False),
    )
    it = Iteration(run_id=rid, index=0, reasoning=None, code="...", error="ZeroDivisionError", blocks=blocks)
    db = tmp_path / "n.duckdb"
    Store.open(db, create=True).save_traces(
        [Trace(run=Run(id=rid, engine="rlmine", status="error"), iterations=(it,))]
    )
    out = invoke("runs", "show", rid, "--db", str(db))
    assert "block 1/2 · error" in out and "block 2/2 · did not run" in out
