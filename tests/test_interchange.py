"""The JSONL interchange format: export → import reproduces every row; records follow the schema."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from recorder.importers import ImportOptions, import_files
from rlmine.cli import app
from rlmine.store import Store
from rlmine.store._catalog import InstanceRow, upsert_batch, upsert_instances, upsert_task
from rlmine.store._interchange import RecordError, export_jsonl, record_from_trace, trace_from_record
from rlmine.store._queries import TRACE_TABLES, get_trace, table_counts
from rlmine.trace import MAX_STORED_PROMPT_CHARS, ContextRef, Iteration, LLMCall, Run, StepLabel, Trace

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = ROOT / "tests" / "fixtures"
SCHEMA = ROOT / "docs" / "trace-format.schema.json"
T0 = datetime(2025, 2, 3, 4, 5, 6, 789012)


def rlmine_trace(task_id: str, batch_id: str) -> Trace:
    """A hand-made engine trace that sets every field, labels and a prompt too big to store."""
    rid = "01JKRLMINE0000000000000001"
    run = Run(
        id=rid,
        engine="rlmine",
        status="submitted",
        question="Top 2 celebrities?",
        task_id=task_id,
        instance_id="train-000",
        engine_version="0.1.0",
        root_model="sim",
        sub_model="sim",
        params={"temperature": 0.7, "seed": 3, "budget": {"max_iterations": 8}},
        context=ContextRef(
            path="contexts/train-000.txt",
            generator={"family": "celebrities", "params": {"k": 2}},
            sha256="ab" * 32,
            bytes=123456,
            kind="str",
        ),
        final_answer='["Taylor Swift", "Keanu Reeves"]',
        expected='["Taylor Swift", "Keanu Reeves"]',
        score=0.5,
        correct=False,
        tokens_in=1200,
        tokens_out=340,
        cost=0.0012345,
        wall_s=12.75,
        started_at=T0,
        finished_at=T0.replace(second=20),
        batch_id=batch_id,
        slot_key="sim|train-000|3",
        owner="host:1:2",
        metadata={"simulated": True, "strategy": "chunk-map"},
    )
    its = (
        Iteration(
            run_id=rid,
            index=0,
            reasoning="peek",
            code="print(context[:100])",
            stdout="abc",
            duration_s=0.01,
            root_tokens_in=600,
            root_tokens_out=120,
            root_latency_s=0.5,
            started_at=T0,
            output_truncated=True,
        ),
        Iteration(
            run_id=rid,
            index=1,
            reasoning="oops",
            code="x[",
            stderr="",
            error="SyntaxError: '[' was never closed",
            error_kind="code",
            started_at=T0.replace(second=9),
        ),
        Iteration(
            run_id=rid,
            index=2,
            reasoning="answer",
            code="SUBMIT(top)",
            submitted=True,
            metadata={"k": [1, 2]},
        ),
    )
    calls = (
        LLMCall(
            id=rid + "-r0",
            run_id=rid,
            iteration=0,
            role="root",
            model="sim",
            prompt="Question: ...",
            response="```python\nprint(1)\n```",
            reasoning="thinking",
            tokens_in=600,
            tokens_out=120,
            cost=0.001,
            latency_s=0.5,
            started_at=T0,
            metadata={"n_messages": 2},
        ),
        LLMCall(
            id=rid + "-s0",
            run_id=rid,
            iteration=0,
            role="sub",
            model="sim",
            prompt="x" * (MAX_STORED_PROMPT_CHARS + 1),
            response="Taylor Swift",
            tokens_in=None,
            tokens_out=None,
            error=None,
            latency_s=0.25,
        ),
        LLMCall(
            id=rid + "-s1",
            run_id=rid,
            iteration=1,
            role="sub",
            model="sim",
            prompt="p",
            response=None,
            error="Error: timeout",
        ),
        LLMCall(  # long enough to be stored once in prompt_texts, read back through the view
            id=rid + "-s2",
            run_id=rid,
            iteration=1,
            role="sub",
            model="sim",
            prompt="Chunk « naïve » ✓\n" * 200,
            response="Keanu Reeves",
        ),
    )
    labels = (StepLabel(rid, 0, 1, 1, "peek"), StepLabel(rid, 2, 1, 1, "submit"))
    return Trace(run=run, iterations=its, calls=calls, labels=labels).with_totals()


def build_db(path: Path) -> Store:
    store = Store.open(path, create=True)
    import_files(store, "rlms", [FIXTURES / "rlms"], ImportOptions(task="imported-logs", expected="3"))
    import_files(store, "dspy", [FIXTURES / "dspy"])
    with store.writer() as con:
        tid = upsert_task(
            con,
            name="celebs",
            spec={"name": "celebs", "budget": {"max_iterations": 8}},
            question="Top {k}?",
            checker='{"name": "topk_overlap"}',
            source_path="tasks/celebs.yaml",
        )
        upsert_task(con, name="empty-task")
        upsert_instances(
            con,
            tid,
            [
                InstanceRow(
                    "train-000",
                    "train",
                    "Top 2?",
                    ["Taylor Swift", "Keanu Reeves"],
                    ContextRef(path="contexts/train-000.txt", sha256="ab" * 32, bytes=123456),
                ),
                InstanceRow("test-000", "test", None, None, metadata={"note": "unused"}),
                InstanceRow(
                    "val-000",
                    "validation",
                    "Top 3?",
                    {"k": 3},
                    ContextRef(generator={"family": "celebrities", "params": {"k": 3}}),
                ),
            ],
        )
        bid = upsert_batch(con, name="nightly", task_id=tid, params={"models": ["sim"], "seeds": [1, 2]})
        upsert_batch(con, name="unused-batch", task_id=None, params={})
    store.save_traces([rlmine_trace(tid, bid)])
    return store


def table_rows(store: Store) -> dict[str, list[tuple[Any, ...]]]:
    with store.reader() as con:
        return {t: con.execute(f"SELECT * FROM {t} ORDER BY ALL").fetchall() for t in TRACE_TABLES}


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> tuple[Store, Path, int]:
    root = tmp_path_factory.mktemp("interchange")
    store = build_db(root / "source.duckdb")
    with store.reader() as con:
        path, n = export_jsonl(con, root / "out")
    return store, path, n


def test_export_then_import_into_a_fresh_database_reproduces_every_row(
    exported: tuple[Store, Path, int], tmp_path: Path
) -> None:
    source, path, n_runs = exported
    with source.reader() as con:
        assert n_runs == con.execute("SELECT count(*) FROM runs WHERE parent_run_id IS NULL").fetchone()[0]  # type: ignore[index]
        counts = table_counts(con)
    assert counts["runs"] > n_runs  # the nested rlms child travelled inside its parent's record
    assert min(counts.values()) > 0  # every table has rows to compare
    target = Store.open(tmp_path / "copy.duckdb", create=True)
    report = import_files(target, "jsonl", [path])
    assert report.failed == [] and report.runs == n_runs
    expected = table_rows(source)
    got = table_rows(target)
    for table in TRACE_TABLES:
        assert got[table] == expected[table], f"{table} differs after the round trip"
    # idempotent: importing the same export again changes nothing
    import_files(target, "jsonl", [path])
    assert table_rows(target) == expected


def test_each_line_is_self_contained_and_valid_against_the_schema(exported: tuple[Store, Path, int]) -> None:
    jsonschema = pytest.importorskip("jsonschema")
    schema = json.loads(SCHEMA.read_text())
    jsonschema.Draft202012Validator.check_schema(schema)
    validator = jsonschema.Draft202012Validator(schema)
    records = [json.loads(line) for line in exported[1].read_text().splitlines()]
    for record in records:
        errors = sorted(validator.iter_errors(record), key=str)
        assert not errors, errors[0].message
    kinds = [r["kind"] for r in records]
    assert kinds.count("task") == 3 and kinds.count("batch") == 2 and kinds.count("run") == exported[2]
    engine_run = next(r for r in records if r["kind"] == "run" and r["run"]["engine"] == "rlmine")
    assert engine_run["task"]["name"] == "celebs" and engine_run["batch"]["name"] == "nightly"
    assert engine_run["instance"]["expected"] == ["Taylor Swift", "Keanu Reeves"]
    huge = next(c for c in engine_run["calls"] if c["id"].endswith("-s0"))
    assert huge["prompt"] is None and huge["prompt_chars"] == MAX_STORED_PROMPT_CHARS + 1
    nested = next(r for r in records if r["kind"] == "run" and r["children"])
    assert nested["children"][0]["run"]["parent_run_id"] == nested["run"]["id"]


def test_a_single_run_line_recreates_its_task_instance_and_batch(
    exported: tuple[Store, Path, int], tmp_path: Path
) -> None:
    line = next(ln for ln in exported[1].read_text().splitlines() if '"engine":"rlmine"' in ln)
    one = tmp_path / "one.jsonl"
    one.write_text(line + "\n")
    target = Store.open(tmp_path / "one.duckdb", create=True)
    assert import_files(target, "jsonl", [one]).runs == 1
    with target.reader() as con:
        assert con.execute("SELECT name, checker FROM tasks").fetchall() == [
            ("celebs", '{"name": "topk_overlap"}')
        ]
        assert con.execute("SELECT id FROM instances").fetchall() == [("train-000",)]
        assert con.execute("SELECT name FROM batches").fetchall() == [("nightly",)]
        trace = get_trace(con, "01JKRLMINE0000000000000001")
    assert trace.run.instance_id == "train-000" and len(trace.labels) == 2


def test_runs_join_an_existing_task_of_the_same_name(
    exported: tuple[Store, Path, int], tmp_path: Path
) -> None:
    target = Store.open(tmp_path / "existing.duckdb", create=True)
    with target.writer() as con:
        local_id = upsert_task(con, name="celebs")
    import_files(target, "jsonl", [exported[1]])
    with target.reader() as con:
        rows = con.execute("SELECT DISTINCT task_id FROM runs WHERE engine = 'rlmine'").fetchall()
        assert rows == [(local_id,)]
        assert con.execute("SELECT count(*) FROM instances WHERE task_id = ?", [local_id]).fetchone() == (3,)


def test_record_round_trip_is_the_identity() -> None:
    trace = rlmine_trace("task-1", "batch-1")
    record = json.loads(json.dumps(record_from_trace(trace)))
    assert trace_from_record(record) == trace


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda r: r.update(version=3), "written by a newer rlmine (format version 3"),
        (lambda r: r.update(format="other"), "not an rlmine trace record"),
        (lambda r: r["run"].pop("id"), "record.run.id is missing"),
        (lambda r: r["run"].update(n_iterations="three"), "record.run.n_iterations has the wrong type"),
        (
            lambda r: r["iterations"][0].update(started_at="yesterday"),
            "record.iterations[0].started_at is not an ISO",
        ),
        (lambda r: r["calls"][0].pop("role"), "record.calls[0].role is missing"),
        (lambda r: r.update(kind="banana"), "unknown kind 'banana'"),
    ],
)
def test_bad_records_name_the_field(mutate: Any, message: str) -> None:
    record = json.loads(json.dumps(record_from_trace(rlmine_trace("t", "b"))))
    mutate(record)
    with pytest.raises(RecordError, match=None) as info:
        trace_from_record(record)
    assert message in str(info.value)


def test_cli_export_and_import_jsonl(exported: tuple[Store, Path, int], tmp_path: Path) -> None:
    out = tmp_path / "cli-out"
    result = CliRunner().invoke(
        app, ["export", "--format", "jsonl", "--out", str(out), "--db", str(exported[0].path)]
    )
    assert result.exit_code == 0, result.output
    assert f"Wrote {exported[2]:,} runs" in result.output
    db = tmp_path / "cli.duckdb"
    result = CliRunner().invoke(app, ["import", "jsonl", str(out / "runs.jsonl"), "--db", str(db), "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["runs"] == exported[2]


def test_score_uses_the_instance_expected_answer_and_the_task_checker(tmp_path: Path) -> None:
    from rlmine.scoring import rescore_task

    store = Store.open(tmp_path / "score.duckdb", create=True)
    with store.writer() as con:
        tid = upsert_task(con, name="counts", checker='{"name": "numeric", "tolerance": 0.5}')
        upsert_instances(con, tid, [InstanceRow("i1", "test", "How many?", 42)])
    runs = [
        Run(
            id="r-close",
            engine="rlmine",
            status="submitted",
            task_id=tid,
            instance_id="i1",
            final_answer="42.3",
        ),
        Run(
            id="r-far", engine="rlmine", status="submitted", task_id=tid, instance_id="i1", final_answer="45"
        ),
        Run(
            id="r-none",
            engine="rlmine",
            status="error",
            task_id=tid,
            instance_id="unknown",
            score=1.0,
            correct=True,
        ),
    ]
    store.save_traces([Trace(run=r) for r in runs])
    report = rescore_task(store, "counts")
    assert (report.checker, report.runs, report.scored, report.correct) == ("numeric", 3, 2, 1)
    with store.reader() as con:
        got = dict(con.execute("SELECT id, correct FROM runs").fetchall())
    assert got == {
        "r-close": True,
        "r-far": False,
        "r-none": None,
    }  # no expected answer: the stale verdict goes
