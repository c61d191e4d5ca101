"""Importing rlms RLMLogger logs: the exact rows each fixture becomes."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from fixtures.make_fixtures import (
    LOG,
    ROOT_PROMPT,
    outputs,
    rlms_answer_style,
    rlms_final_style,
    rlms_huge_locals,
)
from typer.testing import CliRunner

from recorder.importers import ImportOptions, import_files
from rlmine.cli import app
from rlmine.ids import sha256_text
from rlmine.store import Store
from rlmine.store._queries import table_counts

FIXTURES = Path(__file__).resolve().parent / "fixtures"
RLMS = FIXTURES / "rlms"
FINAL_STYLE = RLMS / "rlm_2025-01-10_09-00-00_a1b2c3d4.jsonl"
ANSWER_STYLE = RLMS / "rlm_2025-01-11_10-00-00_e5f6a7b8.jsonl"
BUDGET = RLMS / "rlm_2025-01-12_08-00-00_c9d0e1f2.jsonl.gz"
ERROR_END = RLMS / "rlm_2025-01-13_07-00-00_0badc0de.jsonl"


def rows(store: Store, sql: str, params: list[Any] | None = None) -> list[dict[str, Any]]:
    with store.reader() as con:
        cur = con.execute(sql, params or [])
        names = [d[0] for d in cur.description or []]
        return [dict(zip(names, r, strict=True)) for r in cur.fetchall()]


def run_of(store: Store, file: Path) -> dict[str, Any]:
    found = rows(
        store,
        "SELECT * FROM runs WHERE parent_run_id IS NULL AND metadata->>'$.source.file' = ?",
        [file.name],
    )
    assert len(found) == 1, found
    return found[0]


def write_jsonl(path: Path, entries: list[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(e) + "\n" for e in entries))
    return path


@pytest.fixture
def store(tmp_path: Path) -> Store:
    return Store.open(tmp_path / "t.duckdb", create=True)


@pytest.fixture
def imported(store: Store) -> Store:
    report = import_files(store, "rlms", [RLMS])
    assert report.failed == [] and report.runs == 5
    return store


def test_committed_fixtures_match_the_generator() -> None:
    for rel, data in outputs().items():
        assert (FIXTURES / rel).read_bytes() == data, (
            f"{rel} is stale: run python tests/fixtures/make_fixtures.py"
        )


def test_final_var_style_log(imported: Store) -> None:
    run = run_of(imported, FINAL_STYLE)
    assert (run["engine"], run["engine_version"], run["status"], run["final_answer"]) == (
        "rlms",
        "rlms-import/1",
        "submitted",
        "3",
    )
    assert run["question"] == ROOT_PROMPT
    assert run["root_model"] == "gpt-4o" and run["sub_model"] == "gpt-4o-mini"
    assert (run["n_iterations"], run["n_llm_calls"], run["n_sub_calls"]) == (3, 6, 3)
    # only the sub-calls reported usage: totals are theirs, root calls stay null
    assert (run["tokens_in"], run["tokens_out"]) == (40 + 41 + 42, 6)
    assert run["context_sha256"] == sha256_text(LOG) and run["context_bytes"] == len(LOG.encode())
    assert run["context_kind"] == "str"
    params = json.loads(run["params"])
    assert params["max_iterations"] == 10 and params["backend_kwargs"]["api_key"] == "<redacted>"
    meta = json.loads(run["metadata"])
    assert meta["final_style"] == "FINAL_VAR" and meta["calls_without_usage"] == 3
    assert (
        str(run["started_at"]) == "2025-01-10 09:00:00" and str(run["finished_at"]) == "2025-01-10 09:00:11"
    )
    assert run["wall_s"] == pytest.approx(11.0)

    its = rows(imported, "SELECT * FROM iterations WHERE run_id = ? ORDER BY idx", [run["id"]])
    assert [i["submitted"] for i in its] == [False, False, True]
    assert its[0]["reasoning"] == "Let me look at the context first."
    assert its[0]["code"] == "print(context[:200])\nprint(len(context))"
    assert its[2]["code"] is None and its[2]["reasoning"].endswith("FINAL_VAR(answer)")
    locals1 = json.loads(its[1]["metadata"])["locals"]
    assert locals1["context"] == {"type": "str", "len": len(LOG)} == locals1["context_0"]
    assert locals1["lines"] == {"type": "list", "len": 6} and locals1["re"] == {"type": "module"}
    assert locals1["helper"] == {"type": "function"}

    calls = rows(
        imported, "SELECT * FROM llm_calls WHERE run_id = ? ORDER BY iteration, role, id", [run["id"]]
    )
    roots = [c for c in calls if c["role"] == "root"]
    subs = [c for c in calls if c["role"] == "sub"]
    assert all(c["tokens_in"] is None and c["tokens_out"] is None for c in roots)
    assert all(c["model"] == "gpt-4o" and json.loads(c["metadata"])["n_messages"] >= 3 for c in roots)
    assert roots[0]["prompt"].startswith("Think step-by-step")  # the newest message, not the whole list
    assert sorted(c["tokens_in"] for c in subs) == [40, 41, 42] and {c["iteration"] for c in subs} == {1}
    assert {c["response"] for c in subs} == {"yes", "no"} and all(c["latency_s"] == 0.5 for c in subs)


def test_answer_style_log_with_error_iteration_and_nested_child(imported: Store) -> None:
    run = run_of(imported, ANSWER_STYLE)
    assert (run["status"], run["final_answer"]) == ("submitted", "db")
    assert run["question"] == "Which service logged the most errors?"
    assert json.loads(run["metadata"])["final_style"] == "answer"
    its = rows(imported, "SELECT * FROM iterations WHERE run_id = ? ORDER BY idx", [run["id"]])
    assert its[0]["error"] == "NameError: name 'Counter' is not defined" and its[0]["error_kind"] == "code"
    assert its[0]["stderr"].strip() == its[0]["error"]
    assert its[1]["error"] is None and its[1]["submitted"] is True
    assert its[1]["code"].count("\n\n") >= 1 and json.loads(its[1]["metadata"])["code_blocks"] == 2

    sub = rows(imported, "SELECT * FROM llm_calls WHERE run_id = ? AND role = 'sub'", [run["id"]])
    assert len(sub) == 1 and sub[0]["child_run_id"] is not None
    assert (sub[0]["tokens_in"], sub[0]["tokens_out"]) == (900, 60)
    child = rows(imported, "SELECT * FROM runs WHERE id = ?", [sub[0]["child_run_id"]])[0]
    assert (child["parent_run_id"], child["parent_call_id"]) == (run["id"], sub[0]["id"])
    assert (child["status"], child["final_answer"], child["question"]) == (
        "submitted",
        "db",
        "which service?",
    )
    assert child["root_model"] == "gpt-4o-mini" and child["n_iterations"] == 1
    assert child["tokens_in"] is None  # the child's own root call reported nothing


def test_budget_exhausted_gzip_log_keeps_missing_usage_null(imported: Store) -> None:
    run = run_of(imported, BUDGET)
    assert (run["status"], run["final_answer"], run["error"]) == ("budget_exhausted", None, None)
    assert (run["tokens_in"], run["tokens_out"], run["n_sub_calls"]) == (None, None, 1)
    assert run["context_sha256"] is None and run["context_kind"] == "str"  # only the size was in the log
    assert json.loads(run["metadata"])["context_chars"] == len(LOG)


def test_error_only_end(imported: Store) -> None:
    run = run_of(imported, ERROR_END)
    assert run["status"] == "error" and run["final_answer"] is None
    assert run["error"] == "TypeError: string indices must be integers, not 'str'"


def test_reimport_is_idempotent(imported: Store) -> None:
    with imported.reader() as con:
        before = table_counts(con)
        snapshot = con.execute("SELECT * FROM runs ORDER BY id").fetchall()
    again = import_files(imported, "rlms", [RLMS])
    assert again.runs == 5 and again.failed == []
    with imported.reader() as con:
        assert table_counts(con) == before
        assert con.execute("SELECT * FROM runs ORDER BY id").fetchall() == snapshot


def test_same_log_plain_or_gzipped_gets_the_same_ids(store: Store, tmp_path: Path) -> None:
    import gzip

    plain = FINAL_STYLE.read_bytes()
    (tmp_path / "copy.jsonl.gz").write_bytes(gzip.compress(plain))
    a = import_files(store, "rlms", [FINAL_STYLE]).run_ids
    b = import_files(store, "rlms", [tmp_path / "copy.jsonl.gz"]).run_ids
    assert a == b and len(a) == 1


def test_a_reused_logger_file_holds_several_runs(store: Store, tmp_path: Path) -> None:
    first, second = rlms_final_style(), rlms_answer_style()
    path = write_jsonl(tmp_path / "rlm_reused.jsonl", first + [e for e in second if e["type"] == "iteration"])
    report = import_files(store, "rlms", [path])
    assert report.runs == 2
    got = rows(
        store, "SELECT final_answer, status, root_model FROM runs WHERE parent_run_id IS NULL ORDER BY id"
    )
    # the second run inherits the logger's single metadata entry
    assert sorted((r["final_answer"], r["status"], r["root_model"]) for r in got) == [
        ("3", "submitted", "gpt-4o"),
        ("db", "submitted", "gpt-4o"),
    ]


def test_huge_locals_are_summarized_never_stored(store: Store, tmp_path: Path) -> None:
    size = 3 * 1024 * 1024
    path = write_jsonl(tmp_path / "rlm_huge.jsonl", rlms_huge_locals(size))
    assert path.stat().st_size > 2 * size  # the context is in the log twice
    assert import_files(store, "rlms", [path]).runs == 1
    run = rows(store, "SELECT * FROM runs")[0]
    assert run["status"] == "submitted" and run["final_answer"] == "done" and run["context_bytes"] == size
    it = rows(store, "SELECT * FROM iterations")[0]
    assert json.loads(it["metadata"])["locals"]["context"] == {"type": "str", "len": size}
    with store.reader() as con:
        longest = con.execute(
            "SELECT max(greatest(length(coalesce(stdout, '')), length(coalesce(metadata::VARCHAR, '')))) FROM iterations"
        ).fetchone()
        prompts = con.execute("SELECT max(length(coalesce(prompt, ''))) FROM llm_calls").fetchone()
    assert longest is not None and longest[0] < 10_000
    assert prompts is not None and prompts[0] < 10_000


def test_task_question_and_expected_options_score_the_runs(store: Store) -> None:
    opts = ImportOptions(task="log-errors", question="How many errors?", expected="3", checker="numeric")
    report = import_files(store, "rlms", [FINAL_STYLE, ERROR_END], opts)
    assert report.task_id is not None
    task = rows(store, "SELECT * FROM tasks")[0]
    assert (task["name"], task["checker"]) == ("log-errors", "numeric")
    got = rows(
        store, "SELECT question, expected, final_answer, score, correct, task_id FROM runs ORDER BY id"
    )
    assert {r["task_id"] for r in got} == {report.task_id}
    assert {r["question"] for r in got} == {"How many errors?"}
    assert sorted((r["final_answer"], r["score"], r["correct"]) for r in got if r["final_answer"]) == [
        ("3", 1.0, True)
    ]
    assert [(r["score"], r["correct"]) for r in got if r["final_answer"] is None] == [(0.0, False)]


def test_cli_import_then_score(tmp_path: Path) -> None:
    db = str(tmp_path / "cli.duckdb")
    result = CliRunner().invoke(app, ["import", "rlms", str(RLMS), "--task", "logs", "--db", db])
    assert result.exit_code == 0, result.output
    assert "Imported 5 runs from 5 of 5 files" in result.output
    # no expected answers yet: nothing scored; then give one to every run via re-import and re-score
    result = CliRunner().invoke(
        app, ["import", "rlms", str(RLMS), "--task", "logs", "--expected", "db", "--db", db]
    )
    assert result.exit_code == 0, result.output
    result = CliRunner().invoke(app, ["score", "--task", "logs", "--json", "--db", db])
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert (report["runs"], report["scored"], report["correct"], report["checker"]) == (5, 5, 2, "exact")
    result = CliRunner().invoke(
        app, ["score", "--task", "logs", "--checker", "contains", "--json", "--db", db]
    )
    assert json.loads(result.output)["checker"] == "contains"
    result = CliRunner().invoke(app, ["score", "--task", "nope", "--db", db])
    assert result.exit_code != 0 and "no task named 'nope'" in str(result.exception)


def test_many_files_parse_in_worker_processes_with_the_same_result(tmp_path: Path) -> None:
    logs = tmp_path / "logs"
    logs.mkdir()
    base = rlms_final_style()
    for n in range(40):  # enough files for the worker pool
        entries = [dict(base[0], timestamp=f"2025-02-01T10:{n:02d}:00"), *base[1:]]
        entries[-1] = dict(entries[-1], final_answer=str(n))
        write_jsonl(logs / f"rlm_{n:03d}.jsonl", entries)
    (logs / "rlm_broken.jsonl").write_text(
        '{"type": "metadata"}\n{"type": "iteration", "code_blocks": "x"}\n'
    )
    results = {}
    for workers in (1, 2):
        store = Store.open(tmp_path / f"w{workers}.duckdb", create=True)
        report = import_files(
            store, "rlms", [logs], ImportOptions(workers=workers, chunk_runs=7, task="many", expected="7")
        )
        assert report.runs == 40 and [f.path for f in report.failed] == [str(logs / "rlm_broken.jsonl")]
        assert "rlm_broken.jsonl:2: malformed iteration entry" in (report.failed[0].error or "")
        with store.reader() as con:
            results[workers] = {  # the task id is new in each database; everything else must match
                t: con.execute(
                    f"SELECT * {'EXCLUDE (task_id)' if t == 'runs' else ''} FROM {t} ORDER BY ALL"
                ).fetchall()
                for t in ("runs", "iterations", "llm_calls")
            }
            assert con.execute("SELECT count(*) FROM runs WHERE correct").fetchone() == (1,)
    assert results[1] == results[2]
