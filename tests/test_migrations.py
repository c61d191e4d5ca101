"""Schema migrations on real DuckDB files: blank, older, newer and failing databases."""

from __future__ import annotations

import hashlib
from pathlib import Path

import duckdb
import pytest

import rlmine.store
from rlmine.errors import SchemaTooNewError, StoreError
from rlmine.store import Store
from rlmine.store import _migrations as migrations
from rlmine.store._migrations import LATEST_VERSION, MIGRATIONS, Migration, apply_migrations, current_version
from rlmine.store._queries import TRACE_TABLES
from rlmine.store.schema_doc import UNDOCUMENTED, render_schema_markdown
from rlmine.trace import Iteration, Run, Trace

REPO = Path(__file__).resolve().parents[1]

# Two future migrations on top of today's list, to exercise the upgrade path.
_NOW = LATEST_VERSION
_NOTES, _AUTHOR = _NOW + 1, _NOW + 2
_M2 = Migration(
    _NOTES, "run notes", "CREATE TABLE run_notes (run_id VARCHAR PRIMARY KEY, note VARCHAR NOT NULL);"
)
_M3 = Migration(_AUTHOR, "notes author", "ALTER TABLE run_notes ADD COLUMN author VARCHAR;")


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _tables(path: Path) -> set[str]:
    con = duckdb.connect(str(path), read_only=True)
    try:
        return {r[0] for r in con.execute("SELECT table_name FROM information_schema.tables").fetchall()}
    finally:
        con.close()


def _versions(path: Path) -> list[int]:
    con = duckdb.connect(str(path), read_only=True)
    try:
        return [
            r[0] for r in con.execute("SELECT version FROM schema_migrations ORDER BY version").fetchall()
        ]
    finally:
        con.close()


def _trace(run_id: str) -> Trace:
    run = Run(id=run_id, engine="rlmine", status="submitted", question="how many?", final_answer="42")
    its = (
        Iteration(run_id=run_id, index=0, reasoning="count them", code="print(len(context))", stdout="42\n"),
    )
    return Trace(run=run, iterations=its).with_totals()


@pytest.fixture
def future_schema(monkeypatch: pytest.MonkeyPatch) -> tuple[Migration, ...]:
    """Pretend this rlmine ships two more migrations on top of today's list."""
    extended = (*MIGRATIONS, _M2, _M3)
    monkeypatch.setattr(migrations, "MIGRATIONS", extended)
    monkeypatch.setattr(migrations, "LATEST_VERSION", _AUTHOR)
    monkeypatch.setattr(rlmine.store, "LATEST_VERSION", _AUTHOR)
    return extended


def test_migration_versions_are_contiguous_from_one() -> None:
    assert [m.version for m in MIGRATIONS] == list(range(1, len(MIGRATIONS) + 1))
    assert MIGRATIONS[-1].version == LATEST_VERSION


def test_blank_database_gets_every_table_and_every_version(tmp_path: Path) -> None:
    db = tmp_path / "blank.duckdb"
    store = Store.open(db, create=True)

    assert set(TRACE_TABLES) | {"schema_migrations"} <= _tables(db)
    assert _versions(db) == [m.version for m in MIGRATIONS]
    assert store.schema_version() == LATEST_VERSION
    with store.reader() as con:
        names = [r[0] for r in con.execute("SELECT name FROM schema_migrations ORDER BY version").fetchall()]
    assert names == [m.name for m in MIGRATIONS]


def test_reopening_an_up_to_date_database_changes_nothing(tmp_path: Path) -> None:
    db = tmp_path / "x.duckdb"
    Store.open(db, create=True).save_traces([_trace("R1")])
    before = _sha(db)
    Store.open(db)
    assert _sha(db) == before
    assert not list(tmp_path.glob("*.bak-*"))
    con = duckdb.connect(str(db))
    try:
        assert apply_migrations(con, "test") == []
    finally:
        con.close()


def test_newer_schema_is_refused_and_the_file_left_untouched(tmp_path: Path) -> None:
    db = tmp_path / "future.duckdb"
    Store.open(db, create=True).save_traces([_trace("R1")])
    con = duckdb.connect(str(db))
    con.execute(
        "INSERT INTO schema_migrations VALUES (?, 'from the future', now()::TIMESTAMP, '99.0')",
        [LATEST_VERSION + 1],
    )
    con.close()
    before = _sha(db)

    with pytest.raises(SchemaTooNewError) as info:
        Store.open(db)

    line = info.value.one_line()
    assert "\n" not in line
    assert f"schema version {LATEST_VERSION + 1}" in line
    assert "upgrading rlmine" in line
    assert _sha(db) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["future.duckdb"]


@pytest.mark.parametrize("old_version", sorted({0, 1, _NOW, _NOTES}))
def test_older_database_is_backed_up_then_migrated_in_place(
    tmp_path: Path, future_schema: tuple[Migration, ...], old_version: int
) -> None:
    db = tmp_path / "old.duckdb"
    con = duckdb.connect(str(db))
    apply_migrations(con, "0.0.1", upto=old_version)
    if old_version >= 1:
        from rlmine.store._writes import save_traces

        save_traces(con, [_trace("R-old")])
    if old_version >= _NOTES:
        con.execute("INSERT INTO run_notes VALUES ('R-old', 'keep me')")
    con.close()
    before = _sha(db)

    store = Store.open(db)

    assert store.schema_version() == _AUTHOR
    assert _versions(db) == [m.version for m in future_schema]
    backup = tmp_path / f"old.duckdb.bak-v{old_version}"
    if old_version == 0:
        assert not backup.exists()  # nothing worth keeping in a database without a schema
    else:
        assert backup.exists()
        assert _sha(backup) == before
        assert _versions(backup) == list(range(1, old_version + 1))
    with store.reader() as con:
        cols = [
            r[0]
            for r in con.execute(
                "SELECT column_name FROM information_schema.columns "
                "WHERE table_name = 'run_notes' ORDER BY ordinal_position"
            ).fetchall()
        ]
        assert cols == ["run_id", "note", "author"]
        runs = con.execute("SELECT id, final_answer FROM runs").fetchall()
        its = con.execute("SELECT count(*) FROM iterations").fetchone()
        notes = con.execute("SELECT run_id, note, author FROM run_notes").fetchall()
    if old_version >= 1:
        assert runs == [("R-old", "42")]
        assert its == (1,)
    if old_version >= _NOTES:
        assert notes == [("R-old", "keep me", None)]


def test_a_failing_migration_leaves_the_previous_version_intact(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    db = tmp_path / "x.duckdb"
    Store.open(db, create=True).save_traces([_trace("R1")])
    broken = Migration(_NOTES, "broken", "CREATE TABLE half_done (x INTEGER); SELECT * FROM no_such_table;")
    monkeypatch.setattr(migrations, "MIGRATIONS", (*MIGRATIONS, broken))
    monkeypatch.setattr(migrations, "LATEST_VERSION", _NOTES)
    monkeypatch.setattr(rlmine.store, "LATEST_VERSION", _NOTES)

    with pytest.raises(StoreError, match=r"upgrading the schema .* failed .* the database is unchanged"):
        Store.open(db)

    assert _versions(db) == list(range(1, _NOW + 1))
    assert "half_done" not in _tables(db)
    assert (tmp_path / f"x.duckdb.bak-v{_NOW}").exists()
    con = duckdb.connect(str(db), read_only=True)
    try:
        assert current_version(con) == _NOW
        assert con.execute("SELECT id FROM runs").fetchall() == [("R1",)]
    finally:
        con.close()


def test_docs_schema_md_is_the_render_of_the_migrations() -> None:
    doc = (REPO / "docs" / "schema.md").read_text(encoding="utf-8")
    assert doc == render_schema_markdown(), "regenerate: python -m rlmine.store.schema_doc > docs/schema.md"


def test_schema_doc_describes_every_table_and_column() -> None:
    doc = render_schema_markdown()
    assert UNDOCUMENTED not in doc
    for table in (*TRACE_TABLES, "schema_migrations"):
        assert f"## `{table}`" in doc
    assert "Primary key: `run_id`, `idx`." in doc
    assert "| `context_sha256` | VARCHAR | yes |  | v1 |" in doc


def test_schema_doc_follows_new_migrations(future_schema: tuple[Migration, ...]) -> None:
    doc = render_schema_markdown()
    assert f"Schema version {_AUTHOR}." in doc
    assert f"{_AUTHOR}. notes author" in doc
    assert "## `run_notes`" in doc
    assert f"| `note` | VARCHAR | no |  | v{_NOTES} |" in doc
    assert f"| `author` | VARCHAR | yes |  | v{_AUTHOR} |" in doc
