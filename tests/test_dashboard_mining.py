"""The Tactics and Flows pages under Streamlit's AppTest: no mining yet, and a mined database."""

from __future__ import annotations

from pathlib import Path

import pytest
from dashboard_fixtures import build_empty_db
from miner_fixtures import make_db
from test_dashboard_apptest import UseDb, open_page, texts, use_db  # noqa: F401  (fixture)

import miner
from dashboard import components


@pytest.fixture(scope="module")
def mined_db(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, miner.MiningResult]:
    path = tmp_path_factory.mktemp("mined") / "mined.duckdb"
    store = make_db(path)
    return path, miner.mine(store, task="logs", embedder="hashing")


@pytest.mark.parametrize("page", [components.TACTICS, components.FLOWS])
def test_pages_without_a_mining_say_how_to_mine(page: str, tmp_path: Path, use_db: UseDb) -> None:  # noqa: F811
    use_db(build_empty_db(tmp_path / "empty.duckdb"))
    at = open_page(page)
    assert not at.error
    assert "No mining in" in " ".join(i.value for i in at.info) and "rlmine mine" in texts(at)


@pytest.mark.parametrize("page", [components.TACTICS, components.FLOWS])
def test_pages_on_a_missing_database_are_friendly(page: str, tmp_path: Path, use_db: UseDb) -> None:  # noqa: F811
    use_db(tmp_path / "nothing.duckdb")
    at = open_page(page)
    assert not at.error and "No database at" in " ".join(i.value for i in at.info)


def test_tactics_page_lists_tactics_shows_one_and_maps_steps(
    mined_db: tuple[Path, miner.MiningResult],
    use_db: UseDb,  # noqa: F811
) -> None:
    path, result = mined_db
    use_db(path)
    at = open_page(components.TACTICS)
    assert not at.error
    assert [t.value for t in at.title] == ["Tactics"]
    table = at.dataframe[0].value
    assert list(table["id"]) == [t.id for t in sorted(result.tactics, key=lambda t: (-t.size, t.id))]
    first = str(table["id"].iloc[0])
    assert any(s.value.startswith(f"{first} · ") for s in at.subheader)
    assert "Map of steps" in texts(at) and "Frequency per task" in texts(at)
    other = str(table["id"].iloc[1])
    at.selectbox(key="tactic_pick").select(other).run()
    assert not at.exception
    assert any(s.value.startswith(f"{other} · ") for s in at.subheader)
    assert at.query_params["tactic"] == [other] or at.query_params["tactic"] == other


def test_tactics_page_says_which_edits_its_mining_applied(tmp_path: Path, use_db: UseDb) -> None:  # noqa: F811
    import miner.curate as curate

    store = make_db(tmp_path / "edited.duckdb")
    plain = miner.mine(store, task="logs", embedder="hashing")
    kept, joined = sorted(t.id for t in plain.tactics)[:2]
    curate.merge_tactics(store, [kept, joined])
    curate.rename_tactic(store, kept, "my name for it")
    miner.mine(store, task="logs", embedder="hashing")  # a later mining applies both
    use_db(tmp_path / "edited.duckdb")
    at = open_page(components.TACTICS)
    assert not at.error and not at.exception
    table = at.dataframe[0].value
    assert joined not in set(table["id"]) and "my name for it" in set(table["label"])
    shown = " ".join(c.value for c in at.caption)
    assert f"merge {joined} into {kept}; rename {kept} to “my name for it”" in shown


def test_flows_page_shows_the_graph_sequences_and_outcomes(
    mined_db: tuple[Path, miner.MiningResult],
    use_db: UseDb,  # noqa: F811
) -> None:
    path, result = mined_db
    use_db(path)
    at = open_page(components.FLOWS)
    assert not at.error
    assert [t.value for t in at.title] == ["Flows"]  # and no other page's script ran with it
    assert [s.value for s in at.subheader] == [
        "Directly-follows graph",
        "Top sequences",
        "Successful vs failed runs",
    ]
    assert "Consensus plan:" in texts(at) and " → ".join(result.consensus) in texts(at)
    edges = at.dataframe[0].value
    assert {"START", "END"} <= set(edges["source"]) | set(edges["target"])
    assert edges["count"].sum() >= result.n_runs


@pytest.mark.parametrize("page", [components.TACTICS, components.FLOWS])
def test_pages_on_a_database_from_before_the_miner_say_how_to_mine(
    page: str,
    tmp_path: Path,
    use_db: UseDb,  # noqa: F811
) -> None:
    import duckdb

    from rlmine.store._migrations import apply_migrations

    old = tmp_path / "v1.duckdb"
    con = duckdb.connect(str(old))
    apply_migrations(con, "0.0.1", upto=1)  # the core tables only: no mining tables yet
    con.close()
    use_db(old)
    at = open_page(page)
    assert not at.error and not at.exception
    assert "No mining in" in " ".join(i.value for i in at.info)
