"""Importing dspy.RLM results: bare trajectories, saved Predictions, JSON lines of them."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from fixtures.make_fixtures import LOG, dspy_list, dspy_object

from recorder.importers import ImportOptions, import_files
from recorder.importers.dspy import FORCED_EXTRACT
from rlmine.ids import sha256_text
from rlmine.store import Store

DSPY = Path(__file__).resolve().parent / "fixtures" / "dspy"


def rows(store: Store, sql: str, params: list[Any] | None = None) -> list[dict[str, Any]]:
    with store.reader() as con:
        cur = con.execute(sql, params or [])
        names = [d[0] for d in cur.description or []]
        return [dict(zip(names, r, strict=True)) for r in cur.fetchall()]


@pytest.fixture
def store(tmp_path: Path) -> Store:
    return Store.open(tmp_path / "t.duckdb", create=True)


def by_file(store: Store, name: str) -> list[dict[str, Any]]:
    return rows(
        store,
        "SELECT * FROM runs WHERE metadata->>'$.source.file' = ? ORDER BY metadata->>'$.source.record'",
        [name],
    )


def test_bare_trajectory_list(store: Store) -> None:
    assert import_files(store, "dspy", [DSPY / "trajectory_list.json"]).runs == 1
    [run] = by_file(store, "trajectory_list.json")
    assert (run["engine"], run["engine_version"], run["status"]) == ("dspy", "dspy-import/1", "submitted")
    assert run["final_answer"] == "3"  # read back from the `FINAL: {'answer': '3'}` output
    assert (run["n_iterations"], run["n_llm_calls"], run["n_sub_calls"]) == (2, 2, 0)
    assert run["question"] is None and run["root_model"] is None
    assert (run["tokens_in"], run["tokens_out"], run["cost"]) == (None, None, None)
    its = rows(store, "SELECT * FROM iterations WHERE run_id = ? ORDER BY idx", [run["id"]])
    assert [i["reasoning"] for i in its] == [e["reasoning"] for e in dspy_list()]
    assert [i["code"] for i in its] == [e["code"] for e in dspy_list()]
    assert [i["submitted"] for i in its] == [False, True]
    sub_calls = json.loads(run["metadata"])["sub_calls"]
    assert (
        sub_calls["recorded"] is False
        and sub_calls["count"] is None
        and "does not record" in sub_calls["reason"]
    )


def test_saved_prediction_object(store: Store) -> None:
    import_files(store, "dspy", [DSPY / "prediction.json"])
    [run] = by_file(store, "prediction.json")
    obj = dspy_object()
    assert (run["status"], run["final_answer"], run["question"]) == ("submitted", "db", obj["question"])
    assert (run["root_model"], run["sub_model"], run["expected"]) == (
        "openai/gpt-4o",
        "openai/gpt-4o-mini",
        "db",
    )
    assert run["context_sha256"] == sha256_text(LOG) and run["context_bytes"] == len(LOG)
    assert json.loads(run["params"]) == {"max_iters": 10}
    assert json.loads(run["metadata"])["final_reasoning"] == "db has two errors."
    its = rows(store, "SELECT * FROM iterations WHERE run_id = ? ORDER BY idx", [run["id"]])
    assert its[1]["error"] == "[Error] NameError: name 'conext' is not defined" and its[1]["stdout"] is None
    assert its[1]["stderr"] == its[1]["error"]
    assert its[1]["error_kind"] == "code" and its[0]["error"] is None
    assert [i["submitted"] for i in its] == [False, False, False, True]
    calls = rows(store, "SELECT * FROM llm_calls WHERE run_id = ?", [run["id"]])
    assert (
        len(calls) == 4
        and {c["role"] for c in calls} == {"root"}
        and {c["model"] for c in calls} == {"openai/gpt-4o"}
    )
    assert all(c["prompt"] is None and c["tokens_in"] is None for c in calls)
    # the context is hashed, never stored
    with store.reader() as con:
        hits = con.execute(
            "SELECT count(*) FROM iterations WHERE strpos(coalesce(stdout, ''), ?) > 0", [LOG]
        ).fetchone()
    assert hits == (0,)


def test_jsonl_of_records_maps_statuses_and_revealed_sub_calls(store: Store) -> None:
    assert import_files(store, "dspy", [DSPY / "predictions.jsonl"]).runs == 3
    submitted, forced, limited = by_file(store, "predictions.jsonl")
    assert (submitted["status"], submitted["final_answer"]) == ("submitted", "db")
    assert submitted["context_sha256"] is None  # this record's context was null

    assert (forced["status"], forced["final_answer"]) == ("budget_exhausted", "db errors dominate")
    assert json.loads(forced["metadata"])["final_reasoning"] == FORCED_EXTRACT
    assert (forced["n_iterations"], forced["n_llm_calls"]) == (2, 3)  # + the extract call
    extract = rows(store, "SELECT * FROM llm_calls WHERE run_id = ? AND iteration IS NULL", [forced["id"]])
    assert [json.loads(c["metadata"])["purpose"] for c in extract] == ["extract"]
    assert not any(
        i["submitted"] for i in rows(store, "SELECT * FROM iterations WHERE run_id = ?", [forced["id"]])
    )

    assert limited["status"] == "error" and limited["error"].startswith(
        "[Error] RuntimeError: LLM call limit"
    )
    assert (limited["n_sub_calls"], limited["n_llm_calls"]) == (48, 49)
    assert json.loads(limited["metadata"])["sub_calls"] == {
        "recorded": False,
        "count": 48,
        "count_source": "LLM call limit message in iteration 0",
    }


def test_list_of_saved_predictions_and_reimport(store: Store, tmp_path: Path) -> None:
    many = tmp_path / "many.json"
    many.write_text(json.dumps([dspy_object(), {**dspy_object(), "answer": "api"}]))
    first = import_files(store, "dspy", [many])
    again = import_files(store, "dspy", [many])
    assert first.runs == 2 and first.run_ids == again.run_ids
    assert sorted(r["final_answer"] for r in rows(store, "SELECT final_answer FROM runs")) == ["api", "db"]


def test_several_outputs_and_the_expected_answer_score_on_import(store: Store, tmp_path: Path) -> None:
    path = tmp_path / "two_outputs.json"
    path.write_text(json.dumps({**dspy_object(), "answer": "db", "confidence": 0.9}))
    import_files(store, "dspy", [path], ImportOptions(task="services"))
    [run] = rows(store, "SELECT * FROM runs")
    assert json.loads(run["final_answer"]) == {"answer": "db", "confidence": 0.9}
    assert json.loads(run["metadata"])["output_fields"] == ["answer", "confidence"]
    assert run["correct"] is False  # exact against "db": the answer is an object
    import_files(store, "dspy", [DSPY / "prediction.json"], ImportOptions(task="services"))
    scored = rows(store, "SELECT final_answer, correct, score FROM runs WHERE final_answer = 'db'")
    assert scored == [{"final_answer": "db", "correct": True, "score": 1.0}]


def test_not_a_dspy_result_is_one_clear_error(store: Store, tmp_path: Path) -> None:
    path = tmp_path / "other.json"
    path.write_text(json.dumps({"answer": "x"}))
    report = import_files(store, "dspy", [path])
    assert report.runs == 0 and len(report.failed) == 1
    error = report.failed[0].error or ""
    assert error.startswith(f'{path}: not a DSPy RLM result: no "trajectory"') and "\n" not in error
