"""The dashboard's query functions and page loaders, on the small fixture database."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import duckdb
import pandas as pd
import pytest
from dashboard_fixtures import (
    CHILD_RUN,
    ERROR_RUN,
    EXHAUSTED_RUN,
    GPT_RUN,
    IMPORTED_RUN,
    KNOWN_CODE_MARKER,
    KNOWN_RUN,
    RUNNING_RUN,
    TOP_LEVEL_RUNS,
    WRONG_RUN,
    build_empty_db,
    build_fixture_db,
)

from dashboard import data
from rlmine.errors import UserError
from rlmine.store import Store
from rlmine.store import _dashboard_queries as q
from rlmine.store import _dashboard_runs as rq
from rlmine.store._migrations import LATEST_VERSION


@pytest.fixture(scope="module")
def db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_fixture_db(tmp_path_factory.mktemp("dash") / "fixture.duckdb")


@pytest.fixture()
def con(db: Path) -> Iterator[duckdb.DuckDBPyConnection]:
    with Store(db).reader() as connection:
        yield connection


@pytest.fixture(scope="module")
def empty_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_empty_db(tmp_path_factory.mktemp("dash-empty") / "empty.duckdb")


def by(df: pd.DataFrame, column: str, value: object) -> pd.Series:
    rows = df[df[column] == value]
    assert len(rows) == 1, f"expected one row with {column}={value!r}, got {len(rows)}"
    return rows.iloc[0]


# -- overview ----------------------------------------------------------------------


def test_overview_counts_top_level_runs_and_marks_simulator_and_imported(
    con: duckdb.DuckDBPyConnection,
) -> None:
    c = q.overview_counts(con).iloc[0]
    assert c["runs"] == len(TOP_LEVEL_RUNS)
    assert c["child_runs"] == 1
    assert (c["tasks"], c["batches"], c["running"], c["errors"]) == (3, 2, 1, 1)
    assert c["simulator_runs"] == 4  # the three log runs and the running oolong run
    assert c["imported_runs"] == 1  # the rlms parent; its child is not a top-level run
    assert (c["judged"], c["correct"]) == (5, 3)
    assert c["success_rate"] == pytest.approx(3 / 5)
    assert c["cost"] == pytest.approx(0.012)  # only the priced gpt-4o-mini runs report cost


def test_success_by_task_model_labels_simulator(con: duckdb.DuckDBPyConnection) -> None:
    df = q.success_by_task_model(con)
    logs = by(df, "task", "log-incidents")
    assert logs["model"] == "sim (simulator)" and bool(logs["is_simulator"])
    assert (logs["runs"], logs["judged"], logs["correct"]) == (3, 3, 1)
    assert logs["success_rate"] == pytest.approx(1 / 3)
    oolong = df[df["task"] == "oolong-records"].set_index("model")
    assert oolong.loc["gpt-4o", "imported_runs"] == 1
    assert oolong.loc[["sim (simulator)"], "success_rate"].isna().all()  # running: not judged yet


def test_time_bucket_follows_the_span_and_usage_sums_tokens_and_cost(con: duckdb.DuckDBPyConnection) -> None:
    assert q.pick_time_bucket(con) == "hour"  # fixture runs span two days
    usage = q.usage_over_time(con)
    totals = q.overview_counts(con).iloc[0]
    assert usage["runs"].sum() == len(TOP_LEVEL_RUNS)
    assert usage["tokens"].sum() == totals["tokens"] - _child_tokens(con)  # top-level runs only
    assert usage["cost"].sum() == pytest.approx(0.012)
    daily = q.usage_over_time(con, "day")
    assert len(daily["period"].unique()) == 3
    with pytest.raises(UserError, match="time bucket"):
        q.usage_over_time(con, "fortnight")


def _child_tokens(con: duckdb.DuckDBPyConnection) -> int:
    return int(rq.run_summary(con, CHILD_RUN).iloc[0]["tokens"])


def test_budget_usage_reads_params_budget(con: duckdb.DuckDBPyConnection) -> None:
    df = q.budget_usage(con)
    assert IMPORTED_RUN not in set(df["run_id"])  # no budget recorded
    exhausted = by(df, "run_id", EXHAUSTED_RUN)
    assert (exhausted["iterations"], exhausted["max_iterations"]) == (5, 5)
    assert exhausted["iterations_used"] == pytest.approx(1.0)
    gpt = by(df, "run_id", GPT_RUN)
    assert (gpt["sub_calls"], gpt["max_sub_calls"]) == (2, 30)
    assert gpt["sub_calls_used"] == pytest.approx(2 / 30)


def test_budget_summary_counts_runs_at_their_limit(con: duckdb.DuckDBPyConnection) -> None:
    logs = by(q.budget_summary(con), "task", "log-incidents")
    assert (logs["runs"], logs["hit_iteration_limit"], logs["budget_exhausted"]) == (3, 1, 1)
    assert logs["mean_iterations_used"] == pytest.approx((0.4 + 0.3 + 1.0) / 3)


def test_recent_batches_newest_first_with_outcomes(con: duckdb.DuckDBPyConnection) -> None:
    df = q.recent_batches(con)
    assert list(df["batch"]) == ["celebs-gpt", "logs-sim"]
    logs = by(df, "batch", "logs-sim")
    assert (logs["runs"], logs["correct"], logs["errors"]) == (3, 1, 0)
    assert logs["models"] == "sim (simulator)"
    assert by(df, "batch", "celebs-gpt")["errors"] == 1
    assert len(q.recent_batches(con, limit=1)) == 1


# -- runs --------------------------------------------------------------------------


def test_runs_table_lists_top_level_runs_newest_first_with_links(con: duckdb.DuckDBPyConnection) -> None:
    df = q.runs_table(con)
    assert set(df["id"]) == set(TOP_LEVEL_RUNS) and CHILD_RUN not in set(df["id"])
    assert list(df["started_at"]) == sorted(df["started_at"], reverse=True)
    assert (df["total"] == len(TOP_LEVEL_RUNS)).all()
    known = by(df, "id", KNOWN_RUN)
    assert known["link"] == f"run_viewer?run={KNOWN_RUN}"
    assert (known["model"], known["kind"], known["batch"]) == ("sim (simulator)", "simulator", "logs-sim")
    imported = by(df, "id", IMPORTED_RUN)
    assert (imported["engine"], imported["kind"], imported["child_runs"]) == (
        "rlms (imported)",
        "imported",
        1,
    )


def test_runs_table_filters_combine(con: duckdb.DuckDBPyConnection) -> None:
    sim_wrong = q.runs_table(con, q.RunFilter(models=("sim (simulator)",), correct=("no",)))
    assert set(sim_wrong["id"]) == {WRONG_RUN, EXHAUSTED_RUN}
    unknown = q.runs_table(con, q.RunFilter(correct=("unknown",)))
    assert set(unknown["id"]) == {ERROR_RUN, RUNNING_RUN}
    assert set(q.runs_table(con, q.RunFilter(kinds=("imported",)))["id"]) == {IMPORTED_RUN}
    assert set(q.runs_table(con, q.RunFilter(statuses=("error", "running")))["id"]) == {
        ERROR_RUN,
        RUNNING_RUN,
    }
    assert set(q.runs_table(con, q.RunFilter(batches=("celebs-gpt",)))["id"]) == {GPT_RUN, ERROR_RUN}
    assert set(q.runs_table(con, q.RunFilter(tasks=("oolong-records",), engines=("rlmine",)))["id"]) == {
        RUNNING_RUN
    }
    assert q.runs_table(con, q.RunFilter(tasks=("no-such-task",))).empty


def test_runs_table_sorts_and_limits_but_reports_the_total(con: duckdb.DuckDBPyConnection) -> None:
    most_iterations = q.runs_table(con, q.RunFilter(sort_by="iterations"), limit=2)
    assert list(most_iterations["id"]) == [EXHAUSTED_RUN, KNOWN_RUN]
    assert most_iterations["total"].iloc[0] == len(TOP_LEVEL_RUNS)
    cheapest = q.runs_table(con, q.RunFilter(sort_by="cost", descending=False))
    assert list(cheapest["id"][:2]) == [ERROR_RUN, GPT_RUN]  # unknown costs sort last
    with pytest.raises(UserError, match="cannot sort"):
        q.runs_table(con, q.RunFilter(sort_by="id; DROP TABLE runs"))
    with pytest.raises(UserError, match="unknown filter"):
        q.runs_table(con, q.RunFilter(correct=("maybe",)))


def test_filter_options_offer_every_value_with_counts(con: duckdb.DuckDBPyConnection) -> None:
    df = q.filter_options(con)
    models = df[df["field"] == "model"].set_index("value")["runs"].to_dict()
    assert models == {"gpt-4o": 1, "gpt-4o-mini": 2, "sim (simulator)": 4}
    assert set(df[df["field"] == "engine"]["value"]) == {"rlmine", "rlms (imported)"}
    assert set(df[df["field"] == "batch"]["value"]) == {"logs-sim", "celebs-gpt"}
    assert set(df["field"]) == {"task", "model", "engine", "status", "kind", "batch"}


def test_search_finds_code_case_insensitively_with_a_snippet_and_deep_link(
    con: duckdb.DuckDBPyConnection,
) -> None:
    df = q.search_runs(con, KNOWN_CODE_MARKER.upper())
    hit = by(df, "run_id", KNOWN_RUN)
    assert (hit["iteration"], hit["field"], hit["matches"]) == (2, "code", 1)
    assert KNOWN_CODE_MARKER in hit["snippet"] and "\n" not in hit["snippet"]
    assert hit["link"] == f"run_viewer?run={KNOWN_RUN}&iter=2"


def test_search_covers_outputs_errors_and_child_runs(con: duckdb.DuckDBPyConnection) -> None:
    assert by(q.search_runs(con, "zerodivision"), "run_id", WRONG_RUN)["field"] == "error"
    output_hit = by(q.search_runs(con, "<class 'dict'>"), "run_id", IMPORTED_RUN)
    assert output_hit["field"] == "output"
    child_hit = by(q.search_runs(con, "context['records'][:3]"), "run_id", CHILD_RUN)
    assert child_hit["parent_run_id"] == IMPORTED_RUN
    assert set(q.search_runs(con, "SUBMIT(")["run_id"]) >= {KNOWN_RUN, WRONG_RUN, GPT_RUN}


def test_search_treats_like_wildcards_literally(con: duckdb.DuckDBPyConnection) -> None:
    assert q.search_runs(con, "100%").empty
    assert q.search_runs(con, "l_n(").empty  # '_' is not "any character"
    assert not q.search_runs(con, "len(").empty
    with pytest.raises(UserError, match="empty search"):
        q.search_runs(con, "   ")


def test_search_snippet_is_centred_on_a_late_match(con: duckdb.DuckDBPyConnection) -> None:
    hit = by(q.search_runs(con, "return counts"), "run_id", KNOWN_RUN)
    assert hit["snippet"].startswith("…") and "return counts" in hit["snippet"]


# -- run viewer --------------------------------------------------------------------


def test_run_summary_labels_budget_and_parent_link(con: duckdb.DuckDBPyConnection) -> None:
    known = rq.run_summary(con, KNOWN_RUN).iloc[0]
    assert (known["model"], bool(known["is_simulator"]), known["iterations"], known["max_iterations"]) == (
        "sim (simulator)",
        True,
        4,
        10,
    )
    assert (known["sub_calls"], known["max_sub_calls"], known["child_runs"]) == (2, 20, 0)
    child = rq.run_summary(con, CHILD_RUN).iloc[0]
    assert (child["parent_run_id"], child["parent_iteration"], child["engine"]) == (
        IMPORTED_RUN,
        1,
        "rlms (imported)",
    )
    assert rq.run_summary(con, IMPORTED_RUN).iloc[0]["child_runs"] == 1
    assert rq.run_summary(con, "no-such-run").empty


def test_run_iterations_in_order_with_their_sub_call_totals(con: duckdb.DuckDBPyConnection) -> None:
    its = rq.run_iterations(con, KNOWN_RUN)
    assert list(its["iteration"]) == [0, 1, 2, 3]
    assert KNOWN_CODE_MARKER in its.iloc[2]["code"]
    assert list(its["n_sub_calls"]) == [0, 2, 0, 0]
    assert its.iloc[1]["sub_latency_s"] == pytest.approx(0.8)
    assert list(its["submitted"]) == [False, False, False, True]
    wrong = rq.run_iterations(con, WRONG_RUN)
    assert wrong.iloc[0]["error_kind"] == "code" and "ZeroDivisionError" in wrong.iloc[0]["error"]
    assert rq.run_iterations(con, "no-such-run").empty


def test_sub_calls_carry_prompt_response_and_nested_child(con: duckdb.DuckDBPyConnection) -> None:
    calls = rq.sub_calls(con, KNOWN_RUN)
    assert list(calls["prompt"]) == ["Classify: db timeout", "Classify: disk full"]
    assert list(calls["response"]) == ["database", "storage"]
    assert set(calls["model"]) == {"sim (simulator)"}
    nested = rq.sub_calls(con, IMPORTED_RUN).iloc[0]
    assert (nested["child_run_id"], nested["child_status"], nested["child_iterations"]) == (
        CHILD_RUN,
        "submitted",
        2,
    )


def test_run_timeline_splits_time_without_double_counting(con: duckdb.DuckDBPyConnection) -> None:
    tl = rq.run_timeline(con, KNOWN_RUN)
    assert len(tl) == 4 * 3 and list(tl["phase"][:3]) == ["root LM", "code", "sub-LLM calls"]
    second = tl[tl["iteration"] == 1].set_index("phase")
    assert second.loc["root LM", "seconds"] == pytest.approx(1.5)
    assert second.loc["sub-LLM calls", "seconds"] == pytest.approx(0.8)
    assert second.loc["code", "seconds"] == pytest.approx(0.3)  # 1.1 s cell minus 0.8 s of sub-calls
    assert second.loc["sub-LLM calls", "tokens"] == 2 * (300 + 40)
    its = rq.run_iterations(con, KNOWN_RUN)
    code_and_subs = tl[tl["phase"] != "root LM"]["seconds"].sum()
    assert code_and_subs == pytest.approx(its["duration_s"].sum())


def test_child_runs_and_step_labels(con: duckdb.DuckDBPyConnection) -> None:
    kids = rq.child_runs(con, IMPORTED_RUN)
    assert list(kids["id"]) == [CHILD_RUN] and kids.iloc[0]["parent_iteration"] == 1
    assert kids.iloc[0]["link"] == f"run_viewer?run={CHILD_RUN}"
    assert rq.child_runs(con, KNOWN_RUN).empty
    labels = rq.step_labels(con, KNOWN_RUN)
    assert list(labels[labels["iteration"] == 1]["tactic"]) == ["filter lines", "count"]
    assert rq.step_labels(con, GPT_RUN).empty  # only simulator runs have ground truth


def test_compare_keeps_the_given_order_and_aligns_every_step(con: duckdb.DuckDBPyConnection) -> None:
    summary = rq.compare_summary(con, [WRONG_RUN, KNOWN_RUN, "no-such-run"])
    assert list(summary["id"]) == [WRONG_RUN, KNOWN_RUN]
    aligned = rq.aligned_iterations(con, [WRONG_RUN, KNOWN_RUN])
    assert len(aligned) == 4 * 2  # four steps (the longer run) for both runs
    assert list(aligned["run_id"][:2]) == [WRONG_RUN, KNOWN_RUN]
    last = aligned[aligned["step"] == 3].set_index("run_id")
    assert not bool(last.loc[WRONG_RUN, "present"]) and bool(last.loc[KNOWN_RUN, "present"])
    long_output = aligned[(aligned["step"] == 2) & (aligned["run_id"] == KNOWN_RUN)].iloc[0]
    assert bool(long_output["output_clipped"]) and len(long_output["output"]) == rq.COMPARE_OUTPUT_CHARS
    step1 = aligned[aligned["step"] == 1].set_index("run_id")
    assert step1.loc[KNOWN_RUN, "n_sub_calls"] == 2


# -- empty database and loaders ----------------------------------------------------


def test_every_query_works_on_an_empty_database(empty_db: Path) -> None:
    with Store(empty_db).reader() as con:
        assert q.overview_counts(con).iloc[0]["runs"] == 0
        for frame in (
            q.success_by_task_model(con),
            q.usage_over_time(con),
            q.budget_usage(con),
            q.budget_summary(con),
            q.recent_batches(con),
            q.runs_table(con),
            q.filter_options(con),
            q.search_runs(con, "x"),
            rq.run_summary(con, "x"),
            rq.run_iterations(con, "x"),
            rq.sub_calls(con, "x"),
            rq.run_timeline(con, "x"),
            rq.child_runs(con, "x"),
            rq.step_labels(con, "x"),
            rq.compare_summary(con, ["x"]),
            rq.aligned_iterations(con, ["x", "y"]),
        ):
            assert frame.empty


def test_load_page_states(tmp_path: Path, db: Path) -> None:
    assert data.load_page(tmp_path / "nope.duckdb", "overview").state == data.MISSING
    duckdb.connect(str(tmp_path / "blank.duckdb")).close()
    assert data.load_page(tmp_path / "blank.duckdb", "overview").state == data.UNINITIALIZED
    page = data.load_page(db, "overview")
    assert page.state == data.READY and page["counts"].iloc[0]["runs"] == len(TOP_LEVEL_RUNS)
    assert page.note is None


def test_load_page_refuses_a_schema_newer_than_it_knows(tmp_path: Path) -> None:
    newer = build_empty_db(tmp_path / "newer.duckdb")
    with duckdb.connect(str(newer)) as con:
        con.execute(
            "INSERT INTO schema_migrations VALUES (?, 'future', now()::TIMESTAMP, '9.9')",
            [LATEST_VERSION + 1],
        )
    page = data.load_page(newer, "overview")
    assert page.state == data.TOO_NEW and not page.frames
    assert page.note == f"schema version {LATEST_VERSION + 1}, this dashboard reads up to {LATEST_VERSION}"


def test_load_page_closes_its_connection(db: Path) -> None:
    data.load_page(db, "runs", (q.RunFilter(), KNOWN_CODE_MARKER))
    # A read-write open in this process fails while any read-only connection is still open.
    duckdb.connect(str(db), read_only=False).close()


def test_viewer_loader_resolves_prefixes_and_reports_unknown_ids(db: Path) -> None:
    page = data.load_page(db, "run_viewer", (GPT_RUN,))
    assert page["summary"].iloc[0]["id"] == GPT_RUN
    prefix = data.load_page(db, "run_viewer", ("r-oolong-ru",))
    assert prefix["summary"].iloc[0]["id"] == RUNNING_RUN
    unknown = data.load_page(db, "run_viewer", ("no-such-run",))
    assert "no run with id 'no-such-run'" in unknown["not_found"]["message"].iloc[0]
    assert "summary" not in unknown.frames and len(unknown["recent"]) == len(TOP_LEVEL_RUNS)
    ambiguous = data.load_page(db, "run_viewer", ("r-logs",))
    assert "ambiguous" in ambiguous["not_found"]["message"].iloc[0]


def test_compare_loader_lists_unknown_ids_and_compares_the_rest(db: Path) -> None:
    page = data.load_page(db, "compare", ((KNOWN_RUN, "bogus", WRONG_RUN),))
    assert list(page["summary"]["id"]) == [KNOWN_RUN, WRONG_RUN]
    assert list(page["not_found"]["message"]) == ["no run with id 'bogus'"]
    assert set(page["aligned"]["run_id"]) == {KNOWN_RUN, WRONG_RUN}


def test_runs_loader_narrows_the_table_by_the_search(db: Path) -> None:
    plain = data.load_page(db, "runs", (q.RunFilter(), None))["runs"]
    assert plain["match"].isna().all() and plain["snippet"].isna().all()
    page = data.load_page(db, "runs", (q.RunFilter(kinds=("imported",)), "answer"))
    assert list(page["runs"]["id"]) == [IMPORTED_RUN]
    row = page["runs"].iloc[0]
    assert row["match"] == "code · iteration 1" and "answer" in row["snippet"]
    assert row["link"] == f"run_viewer?run={IMPORTED_RUN}&iter=1"


def test_a_match_only_in_a_nested_run_lists_its_parent(db: Path) -> None:
    with Store(db).reader() as con:
        found = q.runs_table(con, q.RunFilter(search="context['records'][:3]"))
    assert list(found["id"]) == [IMPORTED_RUN] and list(found["match"]) == ["nested run"]
