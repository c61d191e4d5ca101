"""Trace fidelity: imported traces arrive exact, block by block, and keep their identity.

The round trip of the issue's acceptance: an rlms log written by the project with three
blocks in one reply (the second raising, the third printing without a trailing newline)
goes import → tables → ``runs show --json`` → ``export --format jsonl`` → import into a
new database, equal at every step.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from fixtures.make_fixtures import MULTI_QUESTION, rlms_final_style, rlms_multi_block
from typer.testing import CliRunner

from recorder.importers import import_files
from rlmine.cli import app
from rlmine.store import Store

RLMS = Path(__file__).resolve().parent / "fixtures" / "rlms"
MULTI = RLMS / "rlm_2025-01-14_12-00-00_b10cb10c.jsonl"
TABLES = ("runs", "iterations", "code_blocks", "llm_calls", "step_labels")


def cli(*args: str) -> str:
    result = CliRunner().invoke(app, list(args))
    assert result.exit_code == 0, result.output
    return result.output


def write_jsonl(path: Path, entries: list[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(e) + "\n" for e in entries))
    return path


def rows(db: Path, sql: str, params: list[Any] | None = None) -> list[dict[str, Any]]:
    with Store(db).reader() as con:
        cur = con.execute(sql, params or [])
        names = [d[0] for d in cur.description or []]
        return [dict(zip(names, r, strict=True)) for r in cur.fetchall()]


def dump(db: Path) -> dict[str, list[tuple[Any, ...]]]:
    with Store(db).reader() as con:
        return {t: con.execute(f"SELECT * FROM {t} ORDER BY ALL").fetchall() for t in TABLES}


def only_run(db: Path) -> dict[str, Any]:
    found = rows(db, "SELECT * FROM runs WHERE parent_run_id IS NULL")
    assert len(found) == 1, found
    return found[0]


def test_a_three_block_reply_round_trips_exactly(tmp_path: Path) -> None:
    db, db2 = tmp_path / "a.duckdb", tmp_path / "b.duckdb"
    cli("import", "rlms", str(MULTI), "--db", str(db))

    # 1. tables: one row per block, each with its own output and error, byte for byte
    run = only_run(db)
    blocks = rows(db, "SELECT * FROM code_blocks WHERE run_id = ? ORDER BY iteration, idx", [run["id"]])
    first = [b for b in blocks if b["iteration"] == 0]
    assert [b["idx"] for b in first] == [0, 1, 2] and all(b["ran"] for b in first)
    assert first[0]["stdout"] == "6\n" and first[0]["error"] is None
    assert first[1]["stdout"] == "" and first[1]["error"] == "IndexError: list index out of range"
    assert first[1]["error_kind"] == "code" and first[1]["stderr"].startswith("Traceback")
    assert first[2]["stdout"] == "['api', 'db']" and first[2]["error"] is None  # no newline added
    assert first[2]["duration_s"] == 0.5
    its = rows(db, "SELECT * FROM iterations WHERE run_id = ? ORDER BY idx", [run["id"]])
    assert its[0]["stdout"] == "6\n['api', 'db']"  # the blocks' outputs, concatenated unchanged
    assert its[0]["code"] == "\n\n".join(b["code"] for b in first)
    assert its[0]["error"] == "IndexError: list index out of range"
    assert its[1]["stdout"] == "db\n"  # the final newline is kept

    # 2. runs show --json: the same rows
    shown = json.loads(cli("runs", "show", run["id"], "--json", "--db", str(db)))
    stored = dump(db)
    assert len(shown["code_blocks"]) == len(stored["code_blocks"]) == 4
    for table in ("code_blocks", "iterations"):
        assert sorted(json.dumps(r, sort_keys=True, default=str) for r in shown[table]) == sorted(
            json.dumps(r, sort_keys=True, default=str)
            for r in rows(db, f"SELECT * FROM {table} WHERE run_id = ?", [run["id"]])
        )

    # 3. export → 4. import into a new database: every row of every trace table equal
    cli("export", "--format", "jsonl", "--out", str(tmp_path / "out"), "--db", str(db))
    record = json.loads((tmp_path / "out" / "runs.jsonl").read_text().splitlines()[-1])
    assert record["version"] == 2
    assert [b["stdout"] for b in record["iterations"][0]["blocks"]] == ["6\n", "", "['api', 'db']"]
    cli("import", "jsonl", str(tmp_path / "out" / "runs.jsonl"), "--db", str(db2))
    assert dump(db2) == stored


def test_version_1_interchange_files_still_import(tmp_path: Path) -> None:
    db = tmp_path / "a.duckdb"
    cli("import", "rlms", str(MULTI), "--db", str(db))
    cli("export", "--format", "jsonl", "--out", str(tmp_path / "out"), "--db", str(db))
    lines = []
    for line in (tmp_path / "out" / "runs.jsonl").read_text().splitlines():
        record = json.loads(line)
        record["version"] = 1
        for it in record.get("iterations", []):
            it.pop("blocks")  # what a version 1 file holds
        lines.append(json.dumps(record))
    old = tmp_path / "v1.jsonl"
    old.write_text("\n".join(lines) + "\n")
    cli("import", "jsonl", str(old), "--db", str(tmp_path / "b.duckdb"))
    after = dump(tmp_path / "b.duckdb")
    assert after["code_blocks"] == [] and after["iterations"] == dump(db)["iterations"]


def test_every_blocks_error_is_kept(tmp_path: Path) -> None:
    entries = rlms_multi_block()
    blocks = entries[1]["code_blocks"]
    blocks[2]["result"]["stderr"] = "Traceback (most recent call last):\nKeyError: 'svc'\n"
    db = tmp_path / "a.duckdb"
    import_files(Store.open(db, create=True), "rlms", [write_jsonl(tmp_path / "two.jsonl", entries)])
    got = rows(db, "SELECT idx, error FROM code_blocks WHERE iteration = 0 ORDER BY idx")
    assert [b["error"] for b in got] == [None, "IndexError: list index out of range", "KeyError: 'svc'"]
    it = rows(db, "SELECT error FROM iterations WHERE idx = 0")[0]
    assert it["error"] == "IndexError: list index out of range\nKeyError: 'svc'"


def test_a_lone_user_message_is_the_question(tmp_path: Path) -> None:
    db = tmp_path / "a.duckdb"
    import_files(Store.open(db, create=True), "rlms", [MULTI])
    assert only_run(db)["question"] == MULTI_QUESTION


def test_batched_sub_calls_are_flagged_estimated_and_have_no_start_time(tmp_path: Path) -> None:
    db = tmp_path / "a.duckdb"
    import_files(
        Store.open(db, create=True), "rlms", [MULTI, RLMS / "rlm_2025-01-10_09-00-00_a1b2c3d4.jsonl"]
    )
    subs = rows(
        db,
        "SELECT c.*, r.question FROM llm_calls c JOIN runs r ON r.id = c.run_id WHERE role = 'sub' ORDER BY c.id",
    )
    batched = [c for c in subs if c["question"] == MULTI_QUESTION]
    assert len(batched) == 2
    for call in batched:
        meta = json.loads(call["metadata"])
        assert meta["batch_size"] == 2 and set(meta["estimated"]) >= {"tokens_in", "latency_s"}
        assert (call["tokens_in"], call["latency_s"]) == (120, 0.25)  # stored as the log gives them
    # different usage per prompt: real per-call figures, not flagged
    own = [c for c in subs if c["question"] != MULTI_QUESTION]
    assert own and all("estimated" not in json.loads(c["metadata"]) for c in own)
    assert all(c["started_at"] is None for c in subs)  # the log has no start time per sub-call


def test_iteration_time_is_the_iterations_duration_and_the_runs_timeline(tmp_path: Path) -> None:
    db = tmp_path / "a.duckdb"
    import_files(Store.open(db, create=True), "rlms", [MULTI])
    run = only_run(db)
    its = rows(db, "SELECT duration_s, started_at FROM iterations ORDER BY idx")
    assert [i["duration_s"] for i in its] == [7.0, 3.0]  # rlms iteration_time, root model included
    assert str(its[0]["started_at"]) == "2025-01-14 12:00:00"
    assert str(its[1]["started_at"]) == "2025-01-14 12:00:07"
    assert run["wall_s"] == pytest.approx(10.0)


def test_a_log_imported_while_growing_then_finished_is_one_run(tmp_path: Path) -> None:
    entries = rlms_multi_block()
    log = write_jsonl(tmp_path / "live.jsonl", entries[:2])  # metadata + the first iteration
    db = tmp_path / "a.duckdb"
    store = Store.open(db, create=True)
    import_files(store, "rlms", [log])
    early = only_run(db)
    assert early["n_iterations"] == 1 and early["final_answer"] is None

    write_jsonl(log, entries)  # the run went on and finished
    import_files(store, "rlms", [log])
    late = only_run(db)
    assert late["id"] == early["id"]
    assert (late["n_iterations"], late["status"], late["final_answer"]) == (2, "submitted", "db")
    assert len(rows(db, "SELECT * FROM code_blocks")) == 4


def test_reimport_without_task_keeps_the_earlier_scoring(tmp_path: Path) -> None:
    db = tmp_path / "a.duckdb"
    cli("import", "rlms", str(MULTI), "--task", "svc", "--expected", "db", "--db", str(db))
    cli("score", "--task", "svc", "--db", str(db))
    scored = only_run(db)
    assert scored["task_id"] is not None and scored["correct"] is True and scored["score"] == 1.0

    cli("import", "rlms", str(MULTI), "--db", str(db))  # no --task this time
    again = only_run(db)
    assert again["id"] == scored["id"]
    keep = ("task_id", "instance_id", "expected", "score", "correct")
    assert {k: again[k] for k in keep} == {k: scored[k] for k in keep}


def test_reimport_drops_a_score_whose_answer_changed(tmp_path: Path) -> None:
    entries = rlms_final_style()
    log = write_jsonl(tmp_path / "r.jsonl", entries)
    db = tmp_path / "a.duckdb"
    cli("import", "rlms", str(log), "--task", "t", "--expected", "3", "--db", str(db))
    cli("score", "--task", "t", "--db", str(db))
    assert only_run(db)["correct"] is True
    entries[-1]["final_answer"] = "4"
    write_jsonl(log, entries)
    cli("import", "rlms", str(log), "--db", str(db))
    run = only_run(db)
    assert run["final_answer"] == "4" and run["task_id"] is not None and run["expected"] is not None
    assert run["correct"] is None and run["score"] is None  # judged another answer: re-score


def test_unknown_files_say_what_they_found_and_what_fits(tmp_path: Path) -> None:
    dspy_like = write_jsonl(tmp_path / "d.jsonl", [{"trajectory": [], "answer": "x"}])
    result = CliRunner().invoke(app, ["import", "rlms", str(dspy_like), "--db", str(tmp_path / "a.duckdb")])
    assert result.exit_code != 0
    assert "keys answer, trajectory" in result.output and "rlmine import dspy" in result.output
    other = write_jsonl(tmp_path / "o.jsonl", [{"hello": 1}])
    for kind in ("rlms", "jsonl"):
        result = CliRunner().invoke(app, ["import", kind, str(other), "--db", str(tmp_path / "a.duckdb")])
        assert result.exit_code != 0
        assert "keys hello" in result.output and "docs/trace-format.md" in result.output
    rlms_log = RLMS / "rlm_2025-01-10_09-00-00_a1b2c3d4.jsonl"
    result = CliRunner().invoke(app, ["import", "jsonl", str(rlms_log), "--db", str(tmp_path / "a.duckdb")])
    assert result.exit_code != 0 and "rlmine import rlms" in result.output


def test_logs_that_share_their_metadata_line_are_still_different_runs(tmp_path: Path) -> None:
    # Runs started at once with one configuration can write the same metadata line word for word.
    first = rlms_multi_block()
    second = rlms_multi_block()
    second[1]["response"] = second[1]["response"].replace("Three steps", "Three other steps")
    logs = [write_jsonl(tmp_path / "a.jsonl", first), write_jsonl(tmp_path / "b.jsonl", second)]
    db = tmp_path / "a.duckdb"
    report = import_files(Store.open(db, create=True), "rlms", logs)
    assert report.runs == 2 and len(set(report.run_ids)) == 2
    assert len(rows(db, "SELECT id FROM runs WHERE parent_run_id IS NULL")) == 2
