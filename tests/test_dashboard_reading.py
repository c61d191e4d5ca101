"""Finding failures and reading runs in the dashboard (AppTest, on the reading fixture).

The runs here are known exactly (``tests/reading_fixtures.py``): which had code
errors, which iteration holds three blocks, which made 150 sub-calls.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from reading_fixtures import (
    BLOCK_OUTPUTS,
    BLOCKS_QUESTION,
    BLOCKS_RUN,
    CODE_ERROR_RUNS,
    ERRORS_RUN,
    INDEX_ERROR,
    LIVE_RUN,
    N_PAGER_CALLS,
    PAGER_RUN,
    RUNS,
    build_reading_db,
)
from streamlit.testing.v1 import AppTest

from dashboard import components
from rlmine.store import Store
from rlmine.store import _dashboard_queries as q
from rlmine.store import _dashboard_runs as rq

APP = Path(__file__).resolve().parents[1] / "dashboard" / "app.py"


@pytest.fixture(scope="module")
def reading_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_reading_db(tmp_path_factory.mktemp("reading") / "reading.duckdb")


@pytest.fixture(autouse=True)
def use_reading_db(reading_db: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RLMINE_DB", str(reading_db))
    monkeypatch.delenv("RLMINE_DEBUG", raising=False)


def open_page(page: str, **params: str | list[str]) -> AppTest:
    at = AppTest.from_file(str(APP), default_timeout=60)
    at.run()
    for key, value in params.items():
        at.query_params[key] = value
    at.switch_page(page).run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def texts(at: AppTest) -> str:
    parts = [*at.markdown, *at.caption, *at.info, *at.warning, *at.error, *at.code, *at.title, *at.subheader]
    return "\n".join(str(p.value) for p in parts)


# -- finding failures ------------------------------------------------------------------


def test_the_code_error_filter_finds_exactly_the_runs_with_code_errors(reading_db: Path) -> None:
    with Store(reading_db).reader() as con:
        assert set(q.runs_table(con, q.RunFilter(errors=("code errors",)))["id"]) == CODE_ERROR_RUNS
        assert (
            set(q.runs_table(con, q.RunFilter(errors=("no code errors",)))["id"])
            == set(RUNS) - CODE_ERROR_RUNS
        )
    at = open_page(components.RUNS)
    assert set(at.dataframe(key="runs_table").value["id"]) == set(RUNS)
    at.multiselect(key="f_errors").select("code errors").run()
    assert set(at.dataframe(key="runs_table").value["id"]) == CODE_ERROR_RUNS
    assert at.query_params["errors"] in ("code errors", ["code errors"])  # the filter is in the URL


def test_verdict_and_status_read_as_badges_and_imported_runs_show_their_question(reading_db: Path) -> None:
    at = open_page(components.RUNS)
    table = at.dataframe(key="runs_table").value.set_index("id")
    assert table.loc[BLOCKS_RUN, "verdict"] == "not judged" and table.loc[ERRORS_RUN, "verdict"] == "correct"
    assert table.loc[LIVE_RUN, "status_badge"] == "running"
    assert table.loc[BLOCKS_RUN, "question_preview"] == BLOCKS_QUESTION
    assert table.loc[BLOCKS_RUN, "answer_preview"] == "db" and table.loc[BLOCKS_RUN, "code_errors"] == 1
    at.multiselect(key="f_correct").select("unknown").run()  # shown as "not judged"
    assert set(at.dataframe(key="runs_table").value["id"]) == {BLOCKS_RUN, LIVE_RUN}


def test_a_url_with_filters_and_search_reproduces_the_table(reading_db: Path) -> None:
    at = open_page(
        components.RUNS, errors="code errors", correct="yes", q="SUBMIT", sort="iterations", asc="1"
    )
    assert set(at.dataframe(key="runs_table").value["id"]) == {ERRORS_RUN}
    assert at.multiselect(key="f_errors").value == ["code errors"]
    assert at.text_input(key="search").value == "SUBMIT" and at.toggle(key="f_desc").value is False
    assert "Showing 1 of 1 runs containing “SUBMIT”." in texts(at)
    # values this database does not have are dropped, not an error
    odd = open_page(components.RUNS, task="no-such-task", status=["error", "running"])
    assert set(odd.dataframe(key="runs_table").value["id"]) == {LIVE_RUN}
    assert odd.multiselect(key="f_task").value == []


def test_overview_counts_iteration_errors_as_well_as_run_errors(reading_db: Path) -> None:
    with Store(reading_db).reader() as con:
        counts = q.overview_counts(con).iloc[0]
    assert (counts["errors"], counts["runs_with_code_errors"], counts["iteration_errors"]) == (0, 2, 2)
    at = open_page(components.OVERVIEW)
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Runs with code errors"] == "2" and metrics["Iteration errors"] == "2"
    assert not at.error and not at.warning


# -- reading a run ---------------------------------------------------------------------


def test_a_multi_block_iteration_shows_each_blocks_output_under_its_code(reading_db: Path) -> None:
    at = open_page(components.RUN_VIEWER, run=BLOCKS_RUN, iter="0")
    code = [c.value for c in at.code]
    starts = [code.index(c) for c in code if c.startswith(("lines = context", "print(lines[0]", "svcs = "))]
    assert len(starts) == 3
    # each block's own output right under its code (a code element drops a final newline)
    assert code[starts[0] + 1] == BLOCK_OUTPUTS[0].rstrip("\n")
    assert code[starts[1] + 1].startswith("Traceback") and INDEX_ERROR in code[starts[1] + 1]
    assert code[starts[2] + 1] == BLOCK_OUTPUTS[2]
    assert [e.value for e in at.error] == ["code error in block 2"]
    badges = texts(at)
    assert "#### Iteration 0 · ⚠ error" in badges
    assert at.selectbox(key="viewer_iter").options == ["Iteration 0 of 2 · ⚠ error", "Iteration 1 of 2"]
    # the batched calls' figures are estimates, and say so
    assert {m.label: m.value for m in at.metric}["Tokens"] == "≈256"
    assert "≈ estimated" in badges and any(
        e.label.startswith("#1 · 2025-01-01 10:00:00 line 0") for e in at.expander
    )


def test_the_sub_call_pager_reaches_the_150th_call(reading_db: Path) -> None:
    at = open_page(components.RUN_VIEWER, run=PAGER_RUN, iter="1")
    assert f"**{N_PAGER_CALLS} sub-LLM call(s)**" in texts(at)
    calls = [e.label for e in at.expander if e.label.startswith("#")]
    assert len(calls) == 50 and calls[0].startswith("#1 · Summarise chunk 0 of the log")
    pager = at.selectbox(key="calls_page_1")
    assert pager.options == ["1–50 of 150", "51–100 of 150", "101–150 of 150"]
    pager.select_index(2).run()
    calls = [e.label for e in at.expander if e.label.startswith("#")]
    assert calls[-1].startswith("#150 · Summarise chunk 149 of the log")


def test_the_conversation_and_the_system_prompt_are_shown_or_said_missing(reading_db: Path) -> None:
    at = open_page(components.RUN_VIEWER, run=BLOCKS_RUN)
    assert "System prompt" not in texts(at)  # folded until asked for
    at.toggle(key="viewer_conversation").set_value(True).run()
    assert "System prompt: only its hash is stored (sha256 `" in texts(at)
    assert BLOCKS_QUESTION in [c.value for c in at.code]  # the first user message, rebuilt
    rec = open_page(components.RUN_VIEWER, run=PAGER_RUN)
    rec.toggle(key="viewer_conversation").set_value(True).run()
    assert "System prompt: not stored" in texts(rec)


def test_a_running_run_shows_its_iterations_so_far(reading_db: Path) -> None:
    at = open_page(components.RUN_VIEWER, run=LIVE_RUN)
    assert "This run is still running: 2 iteration(s) so far." in texts(at)
    assert at.selectbox(key="viewer_iter").options == ["Iteration 0 of 2", "Iteration 1 of 2"]


def test_the_time_axis_is_right_for_imported_runs(reading_db: Path) -> None:
    with Store(reading_db).reader() as con:
        axis = rq.run_time_axis(con, BLOCKS_RUN)
    spans = {
        (r.iteration, r.phase): (r.start_s, r.seconds)
        for r in axis.itertuples()
        if r.phase != "sub-LLM calls"
    }
    # the turn took 7 s (rlms iteration_time); its blocks 0.53 s; the root model the rest
    assert spans[(0, "root LM")] == pytest.approx((0.0, 7.0 - 0.53))
    assert spans[(0, "code")] == pytest.approx((7.0 - 0.53, 0.53))
    assert spans[(1, "root LM")][0] == pytest.approx(7.0)
    assert int(axis["unplaced"].iloc[0]) == 2  # the batched calls have no start time
    assert bool(axis.loc[axis["iteration"] == 0, "failed"].all())
    with Store(reading_db).reader() as con:
        recorded = rq.run_time_axis(con, PAGER_RUN)
    subs = recorded[recorded["phase"] == "sub-LLM calls"]
    assert len(subs) == N_PAGER_CALLS and subs["start_s"].min() == pytest.approx(2 + 1.5)


def test_overview_draws_no_cost_chart_when_no_cost_is_known(reading_db: Path) -> None:
    at = open_page(components.OVERVIEW)
    assert "Tokens over time" in [s.value for s in at.subheader]
    assert "No run reports a cost, so there is no cost chart." in texts(at)


def test_compare_puts_answers_first_and_marks_where_the_code_differs(reading_db: Path) -> None:
    at = open_page(components.COMPARE, runs=f"{ERRORS_RUN},{PAGER_RUN}")
    body = texts(at)
    assert body.index(":green-background[**correct**] · submitted") < body.index("#### Iteration 0")
    assert "#### Iteration 0 · :orange[code differs]" in body
    diff = next(c.value for c in at.code if c.value.startswith(f"--- {ERRORS_RUN}"))
    assert "-n = len(context) // 0" in diff and "+print(len(context))" in diff
    assert (
        "#### Iteration 2" in body and "#### Iteration 2 · :orange" not in body
    )  # one run only: nothing to diff
