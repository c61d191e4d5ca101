"""The store never touches a database that is not rlmine's, and read-only commands write nothing.

Each command runs end to end (``python -m rlmine`` in a subprocess): what matters is the exit
code, the one ``Error:`` line, and that the file's bytes — and the folder around it — are
exactly as before.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

import duckdb
import pytest

from rlmine.errors import StoreError
from rlmine.store import Store
from rlmine.store._migrations import LATEST_VERSION, apply_migrations

REPO = Path(__file__).resolve().parents[1]


def rlmine(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(REPO), "COLUMNS": "120"}
    return subprocess.run(
        [sys.executable, "-m", "rlmine", *args], env=env, capture_output=True, text=True, timeout=120
    )


def snapshot(folder: Path) -> dict[str, str]:
    return {
        p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir()) if p.is_file()
    } | {p.name + "/": "dir" for p in folder.iterdir() if p.is_dir()}


@pytest.fixture
def foreign_db(tmp_path: Path) -> Path:
    path = tmp_path / "shop.duckdb"
    con = duckdb.connect(str(path))
    con.execute("CREATE TABLE orders (id INTEGER, total DOUBLE)")
    con.execute("INSERT INTO orders VALUES (1, 9.5)")
    con.execute("CREATE SCHEMA billing")
    con.execute("CREATE TABLE billing.invoices (id INTEGER)")
    con.close()
    return path


@pytest.mark.parametrize(
    "command",
    [
        ["runs", "list"],
        ["db", "info"],
        ["export", "--out", "OUT"],
        ["db", "upgrade"],
        ["import", "jsonl", "MISSING.jsonl"],
    ],
    ids=lambda c: " ".join(c[:2]),
)
def test_a_foreign_duckdb_file_is_refused_and_left_as_it_was(
    foreign_db: Path, tmp_path: Path, command: list[str]
) -> None:
    before = snapshot(tmp_path)
    args = [
        str(tmp_path / "out") if a == "OUT" else str(tmp_path / a) if a.endswith(".jsonl") else a
        for a in command
    ]
    result = rlmine(*args, "--db", str(foreign_db))
    assert result.returncode != 0
    errors = [line for line in result.stderr.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1 and "another application's DuckDB database" in errors[0], result.stderr
    assert "orders" in errors[0] and "--db" in errors[0]
    assert snapshot(tmp_path) == before  # no rlmine tables, no spool folder, no backup copy
    con = duckdb.connect(str(foreign_db), read_only=True)
    tables = con.execute("SELECT table_name FROM information_schema.tables ORDER BY 1").fetchall()
    con.close()
    assert tables == [("invoices",), ("orders",)]


def test_the_library_refuses_it_too(foreign_db: Path) -> None:
    with pytest.raises(StoreError, match="another application's DuckDB database"):
        Store.open(foreign_db, create=True)


def test_a_table_named_schema_migrations_is_not_enough(tmp_path: Path) -> None:
    path = tmp_path / "rails.duckdb"
    con = duckdb.connect(str(path))
    con.execute("CREATE TABLE schema_migrations (version VARCHAR)")  # what Rails would make
    con.close()
    with pytest.raises(StoreError, match="schema_migrations"):
        Store.open(path)


def test_read_only_commands_create_nothing(tmp_path: Path) -> None:
    missing = tmp_path / "nothing-here.duckdb"
    for command in (["runs", "list"], ["db", "info"], ["runs", "show", "x"]):
        result = rlmine(*command, "--db", str(missing))
        assert result.returncode != 0 and "no database at" in result.stderr
    assert list(tmp_path.iterdir()) == []


def test_read_only_commands_never_write_an_rlmine_database(tmp_path: Path) -> None:
    path = tmp_path / "rl.duckdb"
    Store.open(path, create=True)
    before = snapshot(tmp_path)
    for command in (["runs", "list"], ["db", "info"], ["runs", "list", "--json"]):
        assert rlmine(*command, "--db", str(path)).returncode == 0
    assert snapshot(tmp_path) == before


def test_an_older_schema_is_not_upgraded_by_a_read_only_command(tmp_path: Path) -> None:
    path = tmp_path / "old.duckdb"
    con = duckdb.connect(str(path))
    apply_migrations(con, "0.0.1", upto=LATEST_VERSION - 1)
    con.close()
    before = snapshot(tmp_path)
    result = rlmine("runs", "list", "--db", str(path))
    assert result.returncode != 0 and "rlmine db upgrade" in result.stderr
    assert snapshot(tmp_path) == before
    upgraded = rlmine("db", "upgrade", "--db", str(path))
    assert upgraded.returncode == 0, upgraded.stderr
    assert f"schema version {LATEST_VERSION}" in upgraded.stdout
    assert rlmine("runs", "list", "--db", str(path)).returncode == 0
