"""The trace store on real DuckDB files: round trips, upserts, spools, queries, exports."""

from __future__ import annotations

import dataclasses
import shutil
import socket
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import duckdb
import pytest

from rlmine import trace as model
from rlmine.errors import NotFoundError, StoreError
from rlmine.ids import sha256_text
from rlmine.store import Store
from rlmine.store._catalog import InstanceRow, find_task_id, upsert_batch, upsert_instances, upsert_task
from rlmine.store._export import export_parquet
from rlmine.store._migrations import LATEST_VERSION
from rlmine.store._owners import current_owner
from rlmine.store._queries import (
    TRACE_TABLES,
    get_trace,
    iter_run_ids,
    list_runs,
    resolve_run_id,
    stale_run_ids,
    success_by_task,
    table_counts,
)
from rlmine.store._rows import trace_rows
from rlmine.store._schema import JSON_COLUMNS, SCHEMAS
from rlmine.store._spool import SpoolWriter, read_spool_file, recover_spools, spool_dir
from rlmine.store._writes import KEYS, delete_runs, save_traces, upsert_rows
from rlmine.trace import MAX_STORED_PROMPT_CHARS, ContextRef, Iteration, LLMCall, Run, StepLabel, Trace

T0 = datetime(2025, 3, 1, 12, 0, 0, 123456)
DEAD_OWNER = f"{socket.gethostname()}:999999:1"  # pid above pid_max: never alive


def rich_trace(run_id: str = "01RUN", *, status: str = "submitted", **run_fields: Any) -> Trace:
    """A run exercising every column kind: JSON, timestamps, unicode, NULLs, a nested child."""
    child_id = f"{run_id}-child"
    prompt = "Summarise chunk 1:\n« naïve café » ✓"
    calls = (
        LLMCall(
            id=f"{run_id}-c0",
            run_id=run_id,
            iteration=0,
            role="root",
            model="gpt-x",
            prompt="system…",
            response="```repl\nprint(len(context))\n```",
            prompt_sha256=sha256_text("system…"),
            prompt_chars=7,
            tokens_in=120,
            tokens_out=30,
            cost=0.0012,
            latency_s=0.8,
            started_at=T0,
        ),
        LLMCall(
            id=f"{run_id}-c1",
            run_id=run_id,
            iteration=1,
            role="sub",
            model="gpt-x-mini",
            prompt=prompt,
            response="a café",
            prompt_sha256=sha256_text(prompt),
            prompt_chars=len(prompt),
            reasoning="think",
            tokens_in=40,
            tokens_out=5,
            cost=None,
            latency_s=0.25,
            started_at=T0,
            child_run_id=child_id,
            metadata={"chunk": 1, "tags": ["a", "b"]},
        ),
    )
    iterations = (
        Iteration(
            run_id=run_id,
            index=0,
            reasoning="Look at the context first.",
            code="print(len(context))",
            stdout="1024\n",
            duration_s=0.01,
            root_tokens_in=120,
            root_tokens_out=30,
            root_latency_s=0.8,
            started_at=T0,
            metadata={"blocks": 1},
        ),
        Iteration(
            run_id=run_id,
            index=1,
            reasoning=None,
            code="x = llm_query('Summarise')\nSUBMIT(x)",
            stdout="a café\n",
            stderr="warn\n",
            error="ValueError: bad\nline 2",
            error_kind="code",
            output_truncated=True,
            submitted=True,
            started_at=T0,
        ),
    )
    labels = (StepLabel(run_id=run_id, iteration=1, line_start=1, line_end=2, tactic="map-reduce"),)
    child = Trace(
        run=Run(
            id=child_id,
            engine="rlms",
            status="submitted",
            parent_run_id=run_id,
            parent_call_id=f"{run_id}-c1",
            final_answer="a café",
        ),
        iterations=(
            Iteration(run_id=child_id, index=0, reasoning="r", code="SUBMIT('a café')", submitted=True),
        ),
    ).with_totals()
    fields: dict[str, Any] = {
        "engine": "rlmine",
        "status": status,
        "question": "What is the café called?\nOne line.",
        "task_id": "T1",
        "instance_id": "i-1",
        "engine_version": "0.1",
        "root_model": "gpt-x",
        "sub_model": "gpt-x-mini",
        "params": {"max_iterations": 8, "temps": [0.0, 0.7]},
        "context": ContextRef(
            path=None,
            generator={"family": "needle", "params": {"n": 3}},
            sha256="ab" * 32,
            bytes=1024,
            kind="str",
        ),
        "final_answer": "a café",
        "expected": "a café",
        "score": 1.0,
        "correct": True,
        "wall_s": 2.5,
        "started_at": T0,
        "finished_at": T0,
        "slot_key": "needle/i-1/0",
        "owner": DEAD_OWNER,
        "metadata": {"seed": 7},
    }
    fields.update(run_fields)
    run = Run(id=run_id, **fields)
    return Trace(run=run, iterations=iterations, calls=calls, labels=labels, children=(child,)).with_totals()


def simple_trace(run_id: str, *, n_iter: int = 2, **run_fields: Any) -> Trace:
    fields: dict[str, Any] = {"engine": "rlmine", "status": "submitted"}
    fields.update(run_fields)
    its = tuple(
        Iteration(run_id=run_id, index=i, reasoning=f"step {i}", code=f"print({i})", stdout=f"{i}\n")
        for i in range(n_iter)
    )
    return Trace(run=Run(id=run_id, **fields), iterations=its).with_totals()


def dump(store: Store) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every trace table, sorted: equality means nothing changed."""
    with store.reader() as con:
        return {t: sorted(con.execute(f"SELECT * FROM {t}").fetchall(), key=repr) for t in TRACE_TABLES}


@pytest.fixture
def store(tmp_path: Path) -> Store:
    return Store.open(tmp_path / "rlmine.duckdb", create=True)


# -- schema and round trips ------------------------------------------------------------


_SQL_TYPES = {
    "string": "VARCHAR",
    "int64": "BIGINT",
    "double": "DOUBLE",
    "bool": "BOOLEAN",
    "timestamp[us]": "TIMESTAMP",
    "JSON": "JSON",
}


def test_every_row_converter_writes_exactly_the_schema_columns() -> None:
    """The Trace path (values → rows) names every column of :data:`SCHEMAS` and nothing else."""
    base = rich_trace()
    block = model.CodeBlock(run_id=base.run.id, iteration=0, index=0, code="print(1)", stdout="1\n")
    first = dataclasses.replace(base.iterations[0], blocks=(block,))
    rows = trace_rows(dataclasses.replace(base, iterations=(first, *base.iterations[1:])))
    for table, schema in SCHEMAS.items():
        assert rows[table], table  # the fixture fills every table
        for row in rows[table]:
            assert sorted(row) == sorted(schema.names), table


def test_row_schemas_match_the_migrated_tables(store: Store) -> None:
    with store.reader() as con:
        for table, schema in SCHEMAS.items():
            cols = dict(
                con.execute(
                    "SELECT column_name, data_type FROM information_schema.columns WHERE table_name = ?",
                    [table],
                ).fetchall()
            )
            # Same names, and each column's SQL type is its field's (JSON columns hold JSON text).
            assert sorted(cols) == sorted(schema.names), table
            declared = {f.name: _SQL_TYPES["JSON" if f.name in JSON_COLUMNS else str(f.type)] for f in schema}
            assert {c: t if t != "INTEGER" else "BIGINT" for c, t in cols.items()} == declared, table
            # llm_calls is a view (long prompts stored once); its key lives on the base table.
            base = "llm_call_rows" if table == "llm_calls" else table
            pk = con.execute(
                "SELECT constraint_column_names FROM duckdb_constraints() "
                "WHERE table_name = ? AND constraint_type = 'PRIMARY KEY'",
                [base],
            ).fetchone()
            assert pk is not None and tuple(pk[0]) == KEYS[table]


def test_saved_trace_reads_back_equal(store: Store) -> None:
    trace = rich_trace()
    assert store.save_traces([trace]) == {"runs": 2, "iterations": 3, "llm_calls": 2, "step_labels": 1}
    with store.reader() as con:
        back = get_trace(con, trace.run.id)
    assert back == trace


def test_huge_prompts_keep_only_hash_and_size(store: Store) -> None:
    prompt = "x" * (MAX_STORED_PROMPT_CHARS + 1)
    call = LLMCall(id="c", run_id="R", iteration=0, role="root", model="m", prompt=prompt, response="ok")
    store.save_traces([Trace(run=Run(id="R", engine="rlmine", status="submitted"), calls=(call,))])
    with store.reader() as con:
        (stored,) = get_trace(con, "R").calls
    assert stored.prompt is None
    assert stored.prompt_chars == len(prompt)
    assert stored.prompt_sha256 == sha256_text(prompt)


def test_saving_twice_changes_nothing_and_a_newer_version_replaces(store: Store) -> None:
    first = simple_trace("R1", status="running", n_iter=1)
    store.save_traces([first, simple_trace("R2")])
    snapshot = dump(store)
    store.save_traces([first, simple_trace("R2")])
    assert dump(store) == snapshot

    store.save_traces([simple_trace("R1", status="submitted", n_iter=3, final_answer="done")])
    with store.reader() as con:
        trace = get_trace(con, "R1")
        assert table_counts(con)["runs"] == 2
    assert (trace.run.status, trace.run.final_answer, len(trace.iterations)) == ("submitted", "done", 3)


def test_within_one_upsert_the_last_row_for_a_key_wins(store: Store) -> None:
    old, new = trace_rows(simple_trace("R", status="running")), trace_rows(simple_trace("R", status="error"))
    with store.writer() as con:
        counts = upsert_rows(con, {"runs": old["runs"] + new["runs"], "iterations": old["iterations"]})
        assert counts == {"runs": 1, "iterations": 2}
        assert con.execute("SELECT status FROM runs").fetchall() == [("error",)]


def test_writer_rolls_back_on_error(store: Store) -> None:
    with pytest.raises(RuntimeError, match="boom"), store.writer() as con:
        save_traces(con, [simple_trace("R1")])
        raise RuntimeError("boom")
    with store.reader() as con:
        assert table_counts(con)["runs"] == 0


def test_delete_runs_removes_everything_hanging_off_them(store: Store) -> None:
    store.save_traces([rich_trace("A"), simple_trace("B")])
    with store.writer() as con:
        assert delete_runs(con, ["A"]) == 1
    with store.reader() as con:
        for table in ("iterations", "llm_calls", "step_labels"):
            assert con.execute(f"SELECT count(*) FROM {table} WHERE run_id = 'A'").fetchone() == (0,)
        assert iter_run_ids(con, top_level_only=False) == ["A-child", "B"]


def test_reader_connection_cannot_write(store: Store) -> None:
    with store.reader() as con, pytest.raises(duckdb.Error):
        con.execute("DELETE FROM runs")


def test_open_refuses_missing_files_unless_asked_to_create(tmp_path: Path) -> None:
    with pytest.raises(StoreError, match="no database at"):
        Store.open(tmp_path / "none.duckdb")
    with pytest.raises(StoreError, match="does not exist"):
        Store.open(tmp_path / "no" / "dir.duckdb", create=True)
    assert not (tmp_path / "none.duckdb").exists()


# -- spools ----------------------------------------------------------------------------


def _spool_lines(store: Store, traces: list[Trace]) -> list[str]:
    """The spool lines the real writer produces for these traces (never flushed to the DB)."""
    writer = SpoolWriter(store, flush_interval_s=3600)
    try:
        for trace in traces:
            writer.write(trace_rows(trace))
        (path,) = spool_dir(store.path).glob("*.jsonl")
        return path.read_text(encoding="utf-8").splitlines(keepends=True)
    finally:
        writer.close()


def test_a_torn_last_spool_line_is_ignored(tmp_path: Path, store: Store) -> None:
    scratch = Store.open(tmp_path / "scratch.duckdb", create=True)
    lines = _spool_lines(scratch, [simple_trace("R1", n_iter=3), simple_trace("R2", n_iter=1)])
    torn = lines[-1][: len(lines[-1]) // 2]  # R2's iteration, cut mid-write
    spool = spool_dir(store.path) / "12345-dead.jsonl"
    spool.parent.mkdir(exist_ok=True)
    spool.write_text("".join(lines[:-1]) + torn, encoding="utf-8")

    rows = read_spool_file(spool)
    assert [r["id"] for r in rows["runs"]] == ["R1", "R2"]
    assert [(r["run_id"], r["idx"]) for r in rows["iterations"]] == [("R1", 0), ("R1", 1), ("R1", 2)]

    Store.open(store.path)  # recovers the dead writer's spool
    assert not spool.exists()
    with store.reader() as con:
        assert get_trace(con, "R1") == simple_trace("R1", n_iter=3)
        assert con.execute("SELECT count(*) FROM iterations WHERE run_id = 'R2'").fetchone() == (0,)


def test_replaying_a_spool_twice_changes_nothing(tmp_path: Path, store: Store) -> None:
    scratch = Store.open(tmp_path / "scratch.duckdb", create=True)
    lines = _spool_lines(scratch, [rich_trace("A"), simple_trace("B")])
    spool = spool_dir(store.path) / "1-dead.jsonl"
    spool.parent.mkdir(exist_ok=True)
    spool.write_text("".join(lines), encoding="utf-8")
    keep = tmp_path / "copy.jsonl"
    shutil.copy(spool, keep)

    assert recover_spools(store) == 1
    once = dump(store)
    shutil.copy(keep, spool)  # as if the process died between commit and delete
    assert recover_spools(store) == 1
    assert dump(store) == once
    with store.reader() as con:
        assert get_trace(con, "A") == rich_trace("A")


def test_a_live_writers_spool_is_left_alone(store: Store) -> None:
    writer = SpoolWriter(store, flush_interval_s=3600)
    try:
        writer.write(trace_rows(simple_trace("R1")))
        Store.open(store.path)  # another opener must not steal the live file
        assert recover_spools(store) == 0
        assert len(list(spool_dir(store.path).glob("*.jsonl"))) == 1
        with store.reader() as con:
            assert table_counts(con)["runs"] == 0
    finally:
        writer.close()
    assert list(spool_dir(store.path).glob("*.jsonl")) == []
    with store.reader() as con:
        assert get_trace(con, "R1") == simple_trace("R1")


def test_spool_writer_flushes_in_the_background(store: Store) -> None:
    writer = SpoolWriter(store, flush_interval_s=0.05)
    try:
        writer.write(trace_rows(rich_trace("R1")))
        deadline = time.monotonic() + 20
        seen = 0
        while time.monotonic() < deadline and seen < 3:
            with store.reader() as con:
                seen = table_counts(con)["iterations"]
            time.sleep(0.02)
        assert seen == 3  # visible to readers while the writer is still open
    finally:
        writer.close()
    with store.reader() as con:
        assert get_trace(con, "R1") == rich_trace("R1")


# -- catalogue and queries -------------------------------------------------------------


@pytest.fixture
def populated(store: Store) -> Store:
    with store.writer() as con:
        t_count = upsert_task(con, name="count", question="How many?", spec={"family": "count"})
        t_needle = upsert_task(con, name="needle", spec={"family": "needle"})
        upsert_instances(con, t_count, [InstanceRow(id="i1", split="test", question="q", expected=3)])
        b1 = upsert_batch(con, name="b1", task_id=t_count, params={"n": 2})
        save_traces(
            con,
            [
                simple_trace("01A", task_id=t_count, batch_id=b1, root_model="gpt-x", correct=True),
                simple_trace("01B", task_id=t_count, batch_id=b1, root_model="gpt-x", correct=False),
                simple_trace("01C", task_id=t_count, root_model="sim", status="running", owner=DEAD_OWNER),
                simple_trace("01D", task_id=t_needle, root_model="gpt-x", engine="rlms", correct=True),
                simple_trace(
                    "01E", task_id=t_needle, root_model="gpt-x", status="running", owner=current_owner()
                ),
                simple_trace("01F", task_id=t_needle, root_model="gpt-x", status="error", owner=DEAD_OWNER),
                rich_trace("01G", task_id=None, root_model="gpt-x", batch_id=None),
            ],
        )
    return store


def _ids(store: Store, **filters: Any) -> list[str]:
    with store.reader() as con:
        return list(list_runs(con, **filters)["id"])


def test_catalog_reuses_ids_by_name(store: Store) -> None:
    with store.writer() as con:
        first = upsert_task(con, name="count", question="q1")
        again = upsert_task(con, name="count", checker="exact")
        assert first == again
        assert find_task_id(con, "count") == find_task_id(con, first) == first
        assert find_task_id(con, "nope") is None
        assert upsert_batch(con, name="b", task_id=first, params={}) == upsert_batch(
            con, name="b", task_id=None, params={"x": 1}
        )
        row = con.execute("SELECT question, checker FROM tasks").fetchall()
    assert row == [("q1", "exact")]


def test_list_runs_newest_first_without_child_runs(populated: Store) -> None:
    assert _ids(populated) == ["01G", "01F", "01E", "01D", "01C", "01B", "01A"]
    assert _ids(populated, limit=2) == ["01G", "01F"]


def test_list_runs_filters(populated: Store) -> None:
    with populated.reader() as con:
        count_id = find_task_id(con, "count")
    assert _ids(populated, task="count") == ["01C", "01B", "01A"]
    assert _ids(populated, task=count_id) == ["01C", "01B", "01A"]
    assert _ids(populated, status="running") == ["01E", "01C"]
    assert _ids(populated, engine="rlms") == ["01D"]
    assert _ids(populated, batch="b1") == ["01B", "01A"]
    assert _ids(populated, task="needle", status="error") == ["01F"]
    assert _ids(populated, task="nope") == []


def test_stale_means_running_with_a_dead_owner(populated: Store) -> None:
    assert _ids(populated, status="stale") == ["01C"]
    with populated.reader() as con:
        assert stale_run_ids(con) == ["01C"]
        alive_only = list_runs(con, status="stale", task="needle")
        nothing = list_runs(con, status="stale", task="nope")
    for df in (alive_only, nothing):
        assert df.empty
        assert {"id", "status", "owner", "task"} <= set(df.columns)  # callers index columns regardless


def test_a_running_run_without_an_owner_is_stale(store: Store) -> None:
    store.save_traces(
        [
            simple_trace("N1", status="running", owner=None),
            simple_trace("N2", status="running", owner=DEAD_OWNER),
            simple_trace("N3", status="running", owner=current_owner()),
        ]
    )
    assert _ids(store, status="stale") == ["N2", "N1"]


def test_resolve_run_id_accepts_unique_prefixes(populated: Store) -> None:
    with populated.reader() as con:
        assert resolve_run_id(con, "01D") == "01D"
        assert resolve_run_id(con, "01G-c") == "01G-child"
        with pytest.raises(NotFoundError, match="ambiguous"):
            resolve_run_id(con, "01")
        with pytest.raises(NotFoundError, match="no run with id"):
            get_trace(con, "ZZZ")


def test_success_by_task(populated: Store) -> None:
    with populated.reader() as con:
        df = success_by_task(con)
    got = {(r.task, r.root_model): (r.runs, r.finished, r.correct, r.success_rate) for r in df.itertuples()}
    assert got[("count", "gpt-x")] == (2, 2, 1, 0.5)
    assert got[("count", "sim")][:3] == (1, 0, 0)
    assert got[("needle", "gpt-x")] == (3, 1, 1, 1.0)
    assert got[("(no task)", "gpt-x")] == (1, 1, 1, 1.0)


def test_info_reports_counts_and_version(populated: Store) -> None:
    info = populated.info()
    assert info["counts"] == {
        "tasks": 2,
        "instances": 1,
        "batches": 1,
        "runs": 8,
        "iterations": 15,
        "code_blocks": 0,
        "llm_calls": 2,
        "step_labels": 1,
    }
    assert info["schema_version"] == info["latest_schema_version"] == LATEST_VERSION
    assert info["size_bytes"] == populated.path.stat().st_size > 0


def test_parquet_export_round_trips_every_table(populated: Store, tmp_path: Path) -> None:
    out = tmp_path / "export"
    with populated.reader() as con:
        counts = export_parquet(con, out)
    assert sorted(p.name for p in out.iterdir()) == sorted(f"{t}.parquet" for t in TRACE_TABLES)
    with populated.reader() as con:
        for table in TRACE_TABLES:
            cur = con.execute(f"SELECT * FROM {table}")
            names = [d[0] for d in cur.description or []]
            original = sorted(cur.fetchall(), key=repr)
            pq = con.execute("SELECT * FROM read_parquet(?)", [str(out / f"{table}.parquet")])
            assert [d[0] for d in pq.description or []] == names, table
            assert sorted(pq.fetchall(), key=repr) == original, table
            assert len(original) == counts[table]
