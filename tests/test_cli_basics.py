"""The CLI skeleton: help on every command, one-line errors, ``runs``, ``db info``, ``--version``.

Output is checked at a fixed width (COLUMNS=120). Error paths run end to end
through ``python -m rlmine`` in a subprocess, because what matters is what a
user sees: exactly one ``Error:`` line on stderr and a non-zero exit code.
"""

from __future__ import annotations

import json
import os
import re
import sqlite3
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import duckdb
import pytest
import typer.main
from test_store import DEAD_OWNER, rich_trace, simple_trace
from typer.testing import CliRunner

from rlmine import __version__
from rlmine.cli import app
from rlmine.store import Store
from rlmine.store._catalog import upsert_task
from rlmine.store._migrations import LATEST_VERSION
from rlmine.store._owners import current_owner
from rlmine.store._queries import TRACE_TABLES
from rlmine.store._writes import save_traces

REPO = Path(__file__).resolve().parents[1]
WIDTH = 120


def _walk(cmd: Any, path: tuple[str, ...] = ()) -> Iterator[tuple[tuple[str, ...], Any]]:
    yield path, cmd
    for name, sub in sorted(getattr(cmd, "commands", {}).items()):  # groups only
        yield from _walk(sub, (*path, name))


# Collected from the live command tree, so commands added later are checked too.
COMMANDS = list(_walk(typer.main.get_command(app)))


def invoke(*args: str) -> Any:
    return CliRunner().invoke(app, list(args), env={"COLUMNS": str(WIDTH)})


def run_cli(*args: str, columns: int = WIDTH) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(REPO), "COLUMNS": str(columns)}
    env.pop("RLMINE_DEBUG", None)
    return subprocess.run(
        [sys.executable, "-m", "rlmine", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.fixture(scope="module")
def db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("cli") / "rlmine.duckdb"
    store = Store.open(path, create=True)
    with store.writer() as con:
        count = upsert_task(con, name="count", question="How many?")
        needle = upsert_task(con, name="needle")
        save_traces(
            con,
            [
                rich_trace("01HRUN0001", task_id=count, owner=None),
                simple_trace("01HRUN0002", task_id=needle, root_model="sim", correct=False),
                simple_trace("01HRUN0003", task_id=count, status="running", owner=DEAD_OWNER),
                simple_trace("01HRUN0004", task_id=needle, status="running", owner=current_owner()),
            ],
        )
    return path


# -- help -----------------------------------------------------------------------------


@pytest.mark.parametrize("path", [p for p, _ in COMMANDS], ids=lambda p: " ".join(p) or "rlmine")
def test_every_command_has_help(path: tuple[str, ...]) -> None:
    cmd = dict(COMMANDS)[path]
    assert (cmd.help or "").strip(), f"`rlmine {' '.join(path)}` has no help text (docstring)"
    for param in cmd.params:
        if param.param_type_name == "option":
            assert (param.help or "").strip(), (
                f"option {param.opts[0]} of `rlmine {' '.join(path)}` has no help"
            )
    result = invoke(*path, "--help")
    assert result.exit_code == 0, result.output
    assert "Usage:" in result.output
    assert cmd.help.strip().split("\n")[0][:40] in " ".join(result.output.split())


def test_the_command_tree_holds_the_foundation_commands() -> None:
    paths = {" ".join(p) for p, _ in COMMANDS}
    assert {"runs", "runs list", "runs show", "db", "db info", "export"} <= paths


def test_version() -> None:
    result = run_cli("--version")
    assert result.returncode == 0
    assert result.stdout == f"rlmine {__version__}\n"


# -- one-line errors ------------------------------------------------------------------


def _populated_copy(db: Path, tmp: Path) -> Path:
    target = tmp / "copy.duckdb"
    target.write_bytes(db.read_bytes())
    return target


def _garbage(path: Path, start: int, length: int) -> Path:
    with open(path, "r+b") as handle:
        handle.seek(start)
        handle.write(bytes((i * 7919 + 13) % 256 for i in range(length)))
    return path


def _sqlite(tmp: Path) -> Path:
    path = tmp / "other.db"
    con = sqlite3.connect(path)
    con.execute("CREATE TABLE t (x)")
    con.commit()
    con.close()
    return path


def _future(db: Path, tmp: Path) -> Path:
    path = _populated_copy(db, tmp)
    con = duckdb.connect(str(path))
    con.execute(
        "INSERT INTO schema_migrations VALUES (?, 'future', now()::TIMESTAMP, '9.9')", [LATEST_VERSION + 1]
    )
    con.close()
    return path


def _big(tmp: Path) -> Path:
    path = tmp / "big.duckdb"
    Store.open(path, create=True).save_traces(
        [simple_trace(f"R{i:05d}", n_iter=5, question="q" * 300) for i in range(300)]
    )
    return path


# name: (build the bad input -> argv, what the one line must say)
BAD_INPUTS: dict[str, Callable[[Path, Path], tuple[list[str], str]]] = {
    "missing db file": lambda db, tmp: (["runs", "list", "--db", str(tmp / "none.duckdb")], "no database at"),
    "missing db directory": lambda db, tmp: (
        ["runs", "list", "--db", str(tmp / "no" / "such" / "x.duckdb")],
        "no database at",
    ),
    "text file": lambda db, tmp: (
        ["runs", "list", "--db", str(_write(tmp / "notes.duckdb", "hello\n" * 500))],
        "not a DuckDB database",
    ),
    "sqlite file": lambda db, tmp: (["db", "info", "--db", str(_sqlite(tmp))], "not a DuckDB database"),
    "empty file": lambda db, tmp: (["runs", "list", "--db", str(_write(tmp / "e.duckdb", ""))], "is empty"),
    "directory": lambda db, tmp: (["runs", "list", "--db", str(tmp)], "is a directory"),
    "garbage after the header": lambda db, tmp: (
        ["runs", "list", "--db", str(_garbage(_populated_copy(db, tmp), 12288, 16384))],
        "the file is corrupt",
    ),
    "garbage in the middle": lambda db, tmp: (
        ["export", "--out", str(tmp / "out"), "--db", str(_garbage_middle(_big(tmp)))],
        "big.duckdb is corrupt (",
    ),
    "schema too new": lambda db, tmp: (
        ["db", "info", "--db", str(_future(db, tmp))],
        "newer than this rlmine",
    ),
    "unknown run id": lambda db, tmp: (["runs", "show", "ZZZZ", "--db", str(db)], "no run with id 'ZZZZ'"),
    "ambiguous run id": lambda db, tmp: (["runs", "show", "01HRUN", "--db", str(db)], "ambiguous"),
    "unknown iteration": lambda db, tmp: (
        ["runs", "show", "01HRUN0002", "--iter", "9", "--db", str(db)],
        "has no iteration 9",
    ),
    "unknown status": lambda db, tmp: (
        ["runs", "list", "--status", "bogus", "--db", str(db)],
        "unknown status",
    ),
}


def _write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def _garbage_middle(path: Path) -> Path:
    """Damage a block holding iterations data: opening works, reading that table fails."""
    con = duckdb.connect(str(path), read_only=True)
    try:
        (block_size,) = con.execute("SELECT block_size FROM pragma_database_size()").fetchone() or (0,)
        (block,) = con.execute(
            "SELECT min(block_id) FROM pragma_storage_info('iterations') WHERE block_id >= 0"
        ).fetchone() or (0,)
    finally:
        con.close()
    headers = 3 * 4096  # the file header and the two database headers come first
    return _garbage(path, headers + block * block_size + 64, 4096)


@pytest.mark.parametrize("case", list(BAD_INPUTS))
def test_bad_input_gives_one_error_line(case: str, db: Path, tmp_path: Path) -> None:
    argv, expected = BAD_INPUTS[case](db, tmp_path)
    bad_file = Path(argv[-1])
    before = bad_file.read_bytes() if bad_file.is_file() else None

    result = run_cli(*argv, columns=60)  # narrow: the line must not wrap

    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert result.returncode != 0
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("Error: "), lines[0]
    assert expected in lines[0]
    assert "unexpected" not in lines[0]  # every case here is a known, explained failure
    assert result.stdout == ""
    if before is not None:
        assert bad_file.read_bytes() == before, "a bad input file must be left as it was"


def test_usage_errors_exit_2_with_clicks_message(db: Path) -> None:
    result = run_cli("runs", "list", "--limit", "0", "--db", str(db))
    assert result.returncode == 2
    assert "Invalid value for '--limit'" in result.stderr
    assert "unexpected" not in result.stderr


# -- runs list ------------------------------------------------------------------------


def _cells(line: str) -> list[str]:
    # Columns are set apart by at least two spaces; a cell holds at most one in a row.
    return re.split(r"\s{2,}", line.strip())


def test_runs_list_table(db: Path) -> None:
    result = invoke("runs", "list", "--db", str(db))
    assert result.exit_code == 0, result.exception
    lines = result.output.splitlines()
    assert max(len(line) for line in lines) <= WIDTH
    header = _cells(next(line for line in lines if "status" in line))
    for column in ("run", "task", "model", "status", "iters", "calls", "tokens"):
        assert column in header
    rows = [dict(zip(header, _cells(line), strict=True)) for line in lines if "01HRUN" in line]
    assert [r["run"] for r in rows] == ["01HRUN0004", "01HRUN0003", "01HRUN0002", "01HRUN0001"]
    # 01HRUN0003's recorder is dead: it reads stale, not running
    assert [r["status"] for r in rows] == ["running", "stale", "submitted", "submitted"]
    assert [r["task"] for r in rows] == ["needle", "count", "needle", "count"]
    assert rows[2]["model"] == "sim (simulator)"
    assert (rows[3]["model"], rows[3]["iters"], rows[3]["calls"], rows[3]["tokens"]) == (
        "gpt-x",
        "2",
        "2",
        "195",
    )


def test_runs_list_json_and_filters(db: Path) -> None:
    def ids(*args: str) -> list[str]:
        result = invoke("runs", "list", "--json", "--db", str(db), *args)
        assert result.exit_code == 0, result.exception
        return [r["id"] for r in json.loads(result.output)]

    records = json.loads(invoke("runs", "list", "--json", "--db", str(db)).output)
    first = records[-1]
    assert first["id"] == "01HRUN0001"
    assert (first["task"], first["root_model"], first["correct"], first["tokens_in"]) == (
        "count",
        "gpt-x",
        True,
        160,
    )
    assert ids("--task", "count") == ["01HRUN0003", "01HRUN0001"]
    assert ids("--status", "running") == ["01HRUN0004", "01HRUN0003"]
    assert ids("--task", "needle", "--status", "submitted") == ["01HRUN0002"]
    assert ids("--limit", "1") == ["01HRUN0004"]
    assert ids("--task", "no-such-task") == []


def test_runs_list_stale_from_another_process(db: Path) -> None:
    # 01HRUN0003's owner is dead; 01HRUN0004's owner is this (live) test process.
    result = run_cli("runs", "list", "--status", "stale", "--json", "--db", str(db))
    assert result.returncode == 0, result.stderr
    assert [r["id"] for r in json.loads(result.stdout)] == ["01HRUN0003"]


def test_runs_list_says_when_nothing_matches(db: Path) -> None:
    result = invoke("runs", "list", "--task", "no-such-task", "--db", str(db))
    assert result.exit_code == 0
    assert "No runs match" in result.output


# -- runs show ------------------------------------------------------------------------


def test_runs_show_renders_reasoning_code_output_and_sub_calls(db: Path) -> None:
    result = invoke("runs", "show", "01HRUN0001", "--db", str(db))
    assert result.exit_code == 0, result.exception
    out = result.output
    lines = out.splitlines()
    assert max(len(line) for line in lines) <= WIDTH
    assert lines[0].startswith("Run 01HRUN0001  [submitted]  engine=rlmine  model=gpt-x  sub=gpt-x-mini")
    assert "Question: What is the café called?" in out
    assert "Answer: a café  correct" in out
    assert "2 iterations, 2 LLM calls (1 sub), tokens 160 in / 35 out, cost 0.0012, wall 2.5 s" in out
    it0, it1 = out.index("iteration 0"), out.index("iteration 1 · SUBMIT")
    zero, one = out[it0:it1], out[it1:]
    assert "─ reasoning ─" in zero and "Look at the context first." in zero
    assert "1 print(len(context))" in zero
    assert "─ output ─" in zero and "1024" in zero
    assert "1 x = llm_query('Summarise')" in one and "2 SUBMIT(x)" in one
    assert "─ error (code) ─" in one and "ValueError: bad" in one
    assert "1 sub-LLM call(s)" in one and "--calls to expand" in one  # collapsed by default
    assert "gpt-x-mini" not in one.replace("sub=gpt-x-mini", "")
    expanded = invoke("runs", "show", "01HRUN0001", "--calls", "--db", str(db)).output
    one = expanded[expanded.index("iteration 1 · SUBMIT") :]
    sub_row = next(line for line in one.splitlines() if "gpt-x-mini" in line)
    assert "Summarise chunk 1:" in sub_row and "a café" in sub_row and "40/5" in sub_row and "0.25" in sub_row


def test_runs_show_one_iteration_prefix_and_simulator_label(db: Path) -> None:
    result = invoke("runs", "show", "01HRUN0002", "--iter", "1", "--db", str(db))
    assert result.exit_code == 0, result.exception
    assert "model=sim (simulator)" in result.output
    assert "print(1)" in result.output and "iteration 0" not in result.output
    by_prefix = invoke("runs", "show", "01HRUN0001-ch", "--db", str(db))
    assert by_prefix.exit_code == 0, by_prefix.exception
    assert by_prefix.output.startswith("Run 01HRUN0001-child  [submitted]  engine=rlms")


def test_runs_show_json(db: Path) -> None:
    result = invoke("runs", "show", "01HRUN0001", "--json", "--db", str(db))
    assert result.exit_code == 0, result.exception
    data = json.loads(result.output)
    assert [r["id"] for r in data["runs"]] == ["01HRUN0001", "01HRUN0001-child"]
    assert [(r["run_id"], r["idx"]) for r in data["iterations"]][:2] == [("01HRUN0001", 0), ("01HRUN0001", 1)]
    assert {c["role"] for c in data["llm_calls"]} == {"root", "sub"}


# -- db info and export ---------------------------------------------------------------


def test_db_info(db: Path) -> None:
    result = invoke("db", "info", "--db", str(db))
    assert result.exit_code == 0, result.exception
    out = result.output
    assert f"database:       {db}" in out
    assert f"schema version: {LATEST_VERSION} (latest {LATEST_VERSION})" in out
    counts = {line.split()[0]: int(line.split()[1].replace(",", "")) for line in out.splitlines()[3:]}
    assert counts == {
        "tasks": 2,
        "instances": 0,
        "batches": 0,
        "runs": 5,
        "iterations": 9,
        "code_blocks": 0,
        "llm_calls": 2,
        "step_labels": 1,
    }
    data = json.loads(invoke("db", "info", "--json", "--db", str(db)).output)
    assert data["counts"] == counts and data["size_bytes"] == db.stat().st_size


def test_db_from_the_environment(db: Path) -> None:
    result = CliRunner().invoke(app, ["db", "info", "--json"], env={"RLMINE_DB": str(db)})
    assert result.exit_code == 0, result.exception
    assert json.loads(result.output)["path"] == str(db)


def test_export_parquet_writes_every_table(db: Path, tmp_path: Path) -> None:
    result = invoke("export", "--out", str(tmp_path / "pq"), "--db", str(db))
    assert result.exit_code == 0, result.exception
    assert f"Wrote {len(TRACE_TABLES)} Parquet files" in result.output
    assert sorted(p.stem for p in (tmp_path / "pq").iterdir()) == sorted(TRACE_TABLES)
