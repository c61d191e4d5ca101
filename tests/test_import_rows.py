"""The import fast path: rlms logs mapped straight to rows, Arrow batches from workers, plain inserts.

The rows the rlms importer builds without trace values must be exactly what
``trace_rows`` makes of the same run; the parallel writer must still store
every file when a group write fails or when one log comes twice.
"""

from __future__ import annotations

import json
import math
import os
import pickle
import time
from collections import defaultdict
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import duckdb
import pytest
from fixtures.make_fixtures import outputs, rlms_final_style

import recorder.importers.parallel as parallel
import rlmine.store._held_writer as held_writer
from recorder.importers import ImportOptions, import_files
from recorder.importers.base import default_save, loads_line
from recorder.importers.rlms import RlmsImporter
from recorder.importers.sources import discover
from rlmine.store import Store
from rlmine.store._replacing import replace_run_tables
from rlmine.store._rows import (
    Row,
    TraceRows,
    block_from_row,
    call_from_row,
    iteration_from_row,
    run_from_row,
    to_arrow,
    trace_rows,
)
from rlmine.store._schema import SCHEMAS
from rlmine.store._writes import insert_tables, upsert_rows
from rlmine.trace import Trace


@pytest.fixture
def rlms_logs(tmp_path: Path) -> list[Path]:
    paths = []
    for rel, data in outputs().items():
        if rel.startswith("rlms/"):
            path = tmp_path / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)
            paths.append(path)
    return paths


def _trace(rows: TraceRows, run: Row) -> Trace:
    """The trace value these rows describe (children found through parent_run_id)."""
    rid = run["id"]
    return Trace(
        run=run_from_row(run),
        iterations=tuple(
            iteration_from_row(
                r,
                tuple(
                    block_from_row(b)
                    for b in rows["code_blocks"]
                    if b["run_id"] == rid and b["iteration"] == r["idx"]
                ),
            )
            for r in rows["iterations"]
            if r["run_id"] == rid
        ),
        calls=tuple(call_from_row(r) for r in rows["llm_calls"] if r["run_id"] == rid),
        children=tuple(_trace(rows, r) for r in rows["runs"] if r["parent_run_id"] == rid),
    )


def _keyed(rows: TraceRows) -> dict[str, list[str]]:
    return {t: sorted(json.dumps(r, sort_keys=True, default=str) for r in rs) for t, rs in rows.items()}


def test_rlms_rows_are_what_trace_rows_makes_of_the_same_run(rlms_logs: list[Path]) -> None:
    # Read back into trace values and converted again, the rows do not change: same columns,
    # same JSON text, prompt hashes and sizes (what each column holds: test_import_rlms.py).
    nested = 0
    for path in rlms_logs:
        for item in RlmsImporter().parse(path, ImportOptions()):
            rows = item.rows
            assert rows is not None and item.trace is None
            for table, table_rows in rows.items():  # a misspelt column would silently be stored as NULL
                assert all(sorted(r) == sorted(SCHEMAS[table].names) for r in table_rows), table
            top = rows["runs"][0]
            assert top["parent_run_id"] is None and item.run_id == top["id"]
            nested += len(rows["runs"]) - 1
            assert _keyed(trace_rows(_trace(rows, top))) == _keyed(rows)
    assert nested >= 1  # the fixtures include a nested child run


def _stored(store: Store) -> dict[str, list[tuple[Any, ...]]]:
    with store.reader() as con:
        return {
            t: con.execute(f"SELECT * FROM {t} ORDER BY ALL").fetchall()
            for t in ("runs", "iterations", "code_blocks", "llm_calls")
        }


def _many_logs(folder: Path, n: int) -> Path:
    folder.mkdir()
    base = rlms_final_style()
    for i in range(n):
        entries = [dict(base[0], timestamp=f"2025-02-01T10:{i % 60:02d}:{i // 60:02d}"), *base[1:]]
        (folder / f"rlm_{i:03d}.jsonl").write_text("".join(json.dumps(e) + "\n" for e in entries))
    return folder


def test_a_failed_group_write_is_retried_file_by_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    logs = _many_logs(tmp_path / "logs", 40)
    serial = Store.open(tmp_path / "serial.duckdb", create=True)
    assert import_files(serial, "rlms", [logs], ImportOptions(workers=1)).runs == 40

    group_writes = []

    def flaky(con: duckdb.DuckDBPyConnection, tables: Any, *, upsert: bool) -> None:
        group_writes.append(tables["runs"].num_rows)
        if len(group_writes) == 2:  # the second group fails: the first, in the same transaction, goes too
            raise duckdb.ConstraintException("Duplicate key (simulated)")
        replace_run_tables(con, tables, upsert=upsert)

    monkeypatch.setattr(held_writer, "replace_run_tables", flaky)
    pooled = Store.open(tmp_path / "pooled.duckdb", create=True)
    report = import_files(pooled, "rlms", [logs], ImportOptions(workers=2, chunk_runs=16))
    assert len(group_writes) >= 2 and report.failed == [] and report.runs == 40
    assert sorted(report.run_ids) == sorted(set(report.run_ids))  # each file reported once
    assert _stored(pooled) == _stored(serial)


def test_a_group_that_cannot_be_stored_reports_only_its_culprit(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    logs = _many_logs(tmp_path / "logs", 40)
    culprit = sorted(logs.iterdir())[5]

    def refuse_one(con: duckdb.DuckDBPyConnection, items: Any) -> None:
        if any(
            i.rows["runs"][0]["metadata"] and culprit.name in i.rows["runs"][0]["metadata"] for i in items
        ):
            raise duckdb.IOException("disk full (simulated)")
        default_save(con, items)

    def always_fail(con: duckdb.DuckDBPyConnection, tables: Any, *, upsert: bool) -> None:
        raise duckdb.IOException("disk full (simulated)")

    monkeypatch.setattr(held_writer, "replace_run_tables", always_fail)  # every pooled group fails...
    monkeypatch.setattr(RlmsImporter, "save", staticmethod(refuse_one))  # ...and, re-read, one file
    store = Store.open(tmp_path / "t.duckdb", create=True)
    report = import_files(store, "rlms", [logs], ImportOptions(workers=2, chunk_runs=16))
    assert [f.path for f in report.failed] == [str(culprit)]
    assert "rlm_005.jsonl: cannot store it (disk full (simulated))" in (report.failed[0].error or "")
    assert report.runs == 39
    with store.reader() as con:
        assert con.execute("SELECT count(*) FROM runs").fetchone() == (39,)


def test_the_same_log_twice_in_one_import_is_stored_once(tmp_path: Path) -> None:
    logs = tmp_path / "logs"
    logs.mkdir()
    text = "".join(json.dumps(e) + "\n" for e in rlms_final_style())
    for i in range(40):  # identical content: the same run ids, in one batch and across batches
        (logs / f"rlm_copy_{i:02d}.jsonl").write_text(text)
    store = Store.open(tmp_path / "t.duckdb", create=True)
    report = import_files(store, "rlms", [logs], ImportOptions(workers=2, chunk_runs=20))
    assert report.failed == [] and report.runs == 40 and len(set(report.run_ids)) == 1
    with store.reader() as con:
        assert con.execute("SELECT count(*) FROM runs").fetchone() == (1,)


def test_plain_insert_refuses_a_key_twice_and_upsert_keeps_the_last(tmp_path: Path) -> None:
    store = Store.open(tmp_path / "t.duckdb", create=True)
    run = {"id": "r1", "engine": "rlms", "status": "submitted", "n_iterations": 0}
    runs = [dict(run, final_answer="1"), dict(run, final_answer="2")]
    with pytest.raises(duckdb.ConstraintException), store.writer() as con:
        upsert_rows(con, {"runs": runs}, replace=False)
    with pytest.raises(duckdb.ConstraintException), store.writer() as con:
        insert_tables(con, {"runs": to_arrow("runs", runs)})
    with store.writer() as con:
        upsert_rows(con, {"runs": runs})
    with store.reader() as con:
        assert con.execute("SELECT final_answer FROM runs").fetchall() == [("2",)]


def test_what_orjson_refuses_still_parses_like_json(tmp_path: Path) -> None:
    where = tmp_path / "x.jsonl"
    value = loads_line(where, 1, b'{"score": NaN, "n": 123456789012345678901234567890}')
    assert math.isnan(value["score"]) and value["n"] == 123456789012345678901234567890


def test_discovery_finds_each_file_once_in_path_order(tmp_path: Path) -> None:
    root = tmp_path / "logs"
    for rel in ("a/x.jsonl", "a-b/x.jsonl", "a/.hidden.jsonl", "a/b/c.jsonl.gz", "a/notes.txt", "Z/q.JSONL"):
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text("{}")
    os.symlink(root / "a" / "x.jsonl", root / "Z" / "link.jsonl")  # the same file under another name
    found = discover([root / "a", root], (".jsonl", ".jsonl.gz"), "rlms log")
    names = [p.relative_to(root).as_posix() for p in found if isinstance(p, Path)]
    # named paths first; then part-by-part order ("a" before "a-b"), each real file once
    assert names == ["a/b/c.jsonl.gz", "a/x.jsonl", "Z/q.JSONL", "a-b/x.jsonl"]


def test_run_ids_are_those_of_the_trace_path(rlms_logs: list[Path]) -> None:
    # Rows carry the ids the trace values would have had: parents link to children both ways.
    by_parent: dict[str, list[str]] = defaultdict(list)
    for path in rlms_logs:
        for item in RlmsImporter().parse(path, ImportOptions()):
            assert item.rows is not None
            calls = {c["id"]: c for c in item.rows["llm_calls"]}
            for run in item.rows["runs"][1:]:
                by_parent[run["parent_run_id"]].append(run["id"])
                assert calls[run["parent_call_id"]]["child_run_id"] == run["id"]
    assert by_parent


def test_this_process_parses_while_the_workers_start(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    logs = _many_logs(tmp_path / "logs", 40)
    serial = Store.open(tmp_path / "serial.duckdb", create=True)
    assert import_files(serial, "rlms", [logs], ImportOptions(workers=1)).runs == 40

    slow_start = ProcessPoolExecutor.submit

    def submit(self: ProcessPoolExecutor, *args: Any, **kwargs: Any) -> Any:
        time.sleep(0.05)  # a fork server still importing: starting workers takes a while
        return slow_start(self, *args, **kwargs)

    here: list[int] = []
    parse_here = parallel._parse_here

    def counted(name: str, batch: list[str], *args: Any) -> Any:
        here.append(len(batch))
        return parse_here(name, batch, *args)

    monkeypatch.setattr(ProcessPoolExecutor, "submit", submit)
    monkeypatch.setattr(parallel, "_parse_here", counted)
    monkeypatch.setattr(parallel, "BATCH_FILES", 2)  # 20 batches: 8 go to the workers first
    pooled = Store.open(tmp_path / "pooled.duckdb", create=True)
    report = import_files(pooled, "rlms", [logs], ImportOptions(workers=2, chunk_runs=4))
    assert here and report.failed == [] and report.runs == 40 and len(set(report.run_ids)) == 40
    assert _stored(pooled) == _stored(serial)


def test_the_write_transaction_is_committed_when_held_long_enough(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    logs = _many_logs(tmp_path / "logs", 40)
    commits: list[int] = []
    commit = held_writer.HeldWriter.commit

    def counted(self: held_writer.HeldWriter[Any]) -> Any:
        if self.files:
            commits.append(len(self.files))
        return commit(self)

    monkeypatch.setattr(held_writer.HeldWriter, "commit", counted)
    monkeypatch.setattr(held_writer, "DEFAULT_HOLD_S", 0.0)  # due as soon as a group is in
    monkeypatch.setattr(parallel, "BATCH_FILES", 4)  # groups of ~8 runs
    store = Store.open(tmp_path / "t.duckdb", create=True)
    report = import_files(store, "rlms", [logs], ImportOptions(workers=2, chunk_runs=8))
    assert report.runs == 40 and sum(commits) == 40 and len(commits) >= 40 // 8


def test_an_interrupted_import_keeps_what_was_committed_and_nothing_half_written(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    logs = _many_logs(tmp_path / "logs", 40)
    inserts: list[int] = []
    insert = held_writer.HeldWriter.insert

    def interrupted(self: held_writer.HeldWriter[Any], tables: Any, files: Any, run_ids: Any) -> None:
        inserts.append(len(files))
        if len(inserts) == 3:
            raise KeyboardInterrupt  # Ctrl-C while the third group is written
        insert(self, tables, files, run_ids)

    monkeypatch.setattr(held_writer.HeldWriter, "insert", interrupted)
    monkeypatch.setattr(held_writer, "DEFAULT_HOLD_S", 0.0)  # each group committed on its own
    monkeypatch.setattr(parallel, "BATCH_FILES", 4)  # groups of ~8 runs
    store = Store.open(tmp_path / "t.duckdb", create=True)
    reported: list[str] = []
    with pytest.raises(KeyboardInterrupt):
        import_files(
            store,
            "rlms",
            [logs],
            ImportOptions(workers=2, chunk_runs=8),
            on_file=lambda f: reported.append(f.path),
        )
    with store.reader() as con:  # not left locked; exactly the reported files' runs are stored
        stored = con.execute("SELECT count(*) FROM runs").fetchone()
    assert stored == (len(reported),) and 0 < len(reported) < 40


def test_worker_results_travel_through_the_pipe_unchanged(tmp_path: Path) -> None:
    """A parsed batch pickles to Arrow IPC streams (what a worker sends back) and reads back equal."""
    logs = _many_logs(tmp_path / "logs", 3)
    paths = sorted(str(p) for p in logs.iterdir())
    batch = parallel.parse_batch("rlms", paths, ImportOptions(), None)
    again = pickle.loads(pickle.dumps(batch))
    assert again.files == batch.files and again.tables.keys() == batch.tables.keys()
    assert all(again.tables[t].equals(batch.tables[t]) for t in batch.tables)


def test_a_pooled_import_stores_what_a_serial_one_does(tmp_path: Path) -> None:
    logs = _many_logs(tmp_path / "logs", 40)
    serial = Store.open(tmp_path / "serial.duckdb", create=True)
    assert import_files(serial, "rlms", [logs], ImportOptions(workers=1)).runs == 40
    pooled = Store.open(tmp_path / "pooled.duckdb", create=True)
    assert import_files(pooled, "rlms", [logs], ImportOptions(workers=2, chunk_runs=8)).runs == 40
    assert _stored(pooled) == _stored(serial)
