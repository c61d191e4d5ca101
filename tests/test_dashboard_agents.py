"""The dashboard's Agents page under Streamlit's AppTest: empty, an agent with candidates and an eval."""

from __future__ import annotations

from pathlib import Path

import pytest
from dashboard_fixtures import build_empty_db
from streamlit.testing.v1 import AppTest
from test_agent_script import LOG, _trace

from codegen.build_run import build_from_run
from codegen.evaluate import summarize
from dashboard import components
from rlmine.store import EvalRow, Store, save_eval

APP = Path(__file__).resolve().parents[1] / "dashboard" / "app.py"


def _open(db: Path, monkeypatch: pytest.MonkeyPatch, **params: str) -> AppTest:
    monkeypatch.setenv("RLMINE_DB", str(db))
    monkeypatch.delenv("RLMINE_DEBUG", raising=False)
    at = AppTest.from_file(str(APP), default_timeout=60)
    at.run()
    at.query_params.update(params)
    at.switch_page(components.AGENTS).run()
    assert not at.exception, [e.value for e in at.exception]
    return at


@pytest.fixture(scope="module")
def agent_db(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    root = tmp_path_factory.mktemp("agents-page")
    store = Store.open(root / "a.duckdb", create=True)
    store.save_traces([_trace()])
    context = root / "log.txt"
    context.write_text(LOG)
    built = build_from_run(store, "01RUNAAAAAAAAAAAAAAAAAAAAA", context)
    assert built.agent_id is not None
    rows = [
        EvalRow("rlm", "i1", 0, "svc0", True, 1.0, 5, 4000, 300, None, 12.0, "01RUNAAAAAAAAAAAAAAAAAAAAA"),
        EvalRow("agent", "i1", 0, "svc0", True, 1.0, 1, 20, 2, 0.0, 1.5),
    ]
    with store.writer() as con:
        save_eval(con, task_id="t", agent_id=built.agent_id, split="test", runs_per_instance=1,
                  rows=rows, summary={**summarize(rows), "split": "test", "runs_per_instance": 1})  # fmt: skip
    return store.path, built.agent_id


def test_agents_page_on_an_empty_database_says_how_to_build_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    at = _open(build_empty_db(tmp_path / "e.duckdb"), monkeypatch)
    assert not at.error
    assert any("rlmine agent build" in i.value for i in at.info)


def test_agents_page_shows_script_provenance_candidates_and_eval(
    agent_db: tuple[Path, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    db, agent_id = agent_db
    at = _open(db, monkeypatch, agent=agent_id)
    assert not at.error and not at.warning
    assert [s.value for s in at.subheader] == [
        f"{agent_id} · built from one run",
        "Candidates",
        "Against the RLM",
    ]
    assert any("def solve_0" in c.value for c in at.code)
    assert at.dataframe[0].value["status"].tolist() == ["selected"]  # candidates, then the eval rows
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Accuracy (agent / RLM)"] == "100% / 100%"
    assert metrics["Tokens ratio"] == "0.0051" and metrics["Wall time ratio (median)"] == "0.125"
    assert "01RUNAAAAAAAAAAAAAAAAAAAAA" in " ".join(m.value for m in at.markdown)


def test_an_unknown_agent_in_the_url_falls_back_to_the_newest(
    agent_db: tuple[Path, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    db, agent_id = agent_db
    at = _open(db, monkeypatch, agent="agent-nope")
    assert any("no agent with id" in w.value for w in at.warning)
    assert at.subheader[0].value.startswith(agent_id)
