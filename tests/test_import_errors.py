"""Bad input: one line naming the file (and line) per bad file, nothing kept from it, the rest imported."""

from __future__ import annotations

import gzip
import json
import os
import resource
import shutil
import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest
from fixtures.make_fixtures import dspy_object, rlms_final_style

from recorder.importers import ImportOptions, import_files
from recorder.importers.base import ImportReport
from rlmine.store import Store
from rlmine.store._queries import table_counts

ROOT = Path(__file__).resolve().parents[1]
GOOD = ROOT / "tests" / "fixtures" / "rlms" / "rlm_2025-01-10_09-00-00_a1b2c3d4.jsonl"
MB = 1 << 20


def lines(entries: Sequence[Mapping[str, Any]]) -> str:
    return "".join(json.dumps(e) + "\n" for e in entries)


@pytest.fixture
def store(tmp_path: Path) -> Store:
    return Store.open(tmp_path / "t.duckdb", create=True)


def only_error(report: ImportReport) -> str:
    assert len(report.failed) == 1, report.as_dict()
    error = report.failed[0].error or ""
    assert "\n" not in error
    return error


def import_with_good(store: Store, bad: Path, kind: str = "rlms", **opts: int) -> str:
    """Import ``bad`` next to a good log: the good one lands, the bad one is one error and no rows."""
    report = import_files(store, kind, [GOOD, bad], ImportOptions(**opts))  # type: ignore[arg-type]
    assert report.runs == 1 and [f.runs for f in report.files if f.error is None] == [1]
    with store.reader() as con:
        assert table_counts(con)["runs"] == 1
    return only_error(report)


def test_truncated_json_line(store: Store, tmp_path: Path) -> None:
    text = lines(rlms_final_style())
    bad = tmp_path / "rlm_truncated.jsonl"
    bad.write_text(text[: text.rindex("\n", 0, len(text) - 1) + 40])  # the last entry cut after 40 characters
    error = import_with_good(store, bad)
    assert error.startswith(f"{bad}:4: invalid JSON (") and "— try" in error


def test_wrong_entry_type(store: Store, tmp_path: Path) -> None:
    entries = rlms_final_style()
    bad = tmp_path / "rlm_wrong_type.jsonl"
    bad.write_text(lines([entries[0], {"type": "banana"}, *entries[1:]]))
    error = import_with_good(store, bad)
    assert error.startswith(
        f"{bad}:2: not an rlms log entry: found a JSON object with keys type (type 'banana'; "
        "an rlms entry has a type of metadata, run_context"
    )


def test_a_second_run_with_a_bad_line_keeps_nothing_of_the_file(store: Store, tmp_path: Path) -> None:
    entries = rlms_final_style()
    bad = tmp_path / "rlm_two_runs.jsonl"
    bad.write_text(lines(entries + entries[1:3]) + '{"type": "iteration", "code_blocks": 7}\n')
    error = import_with_good(store, bad)
    assert error.startswith(f'{bad}:7: malformed iteration entry: "code_blocks" is not a list')


def test_gzip_that_is_not_gzip(store: Store, tmp_path: Path) -> None:
    bad = tmp_path / "rlm_fake.jsonl.gz"
    bad.write_text(lines(rlms_final_style()))
    assert import_with_good(store, bad).startswith(f"{bad}: not a gzip file")


def test_truncated_gzip(store: Store, tmp_path: Path) -> None:
    data = gzip.compress(lines(rlms_final_style()).encode())
    bad = tmp_path / "rlm_cut.jsonl.gz"
    bad.write_bytes(data[: len(data) // 2])
    assert "corrupt or truncated gzip data" in import_with_good(store, bad)


def test_empty_file(store: Store, tmp_path: Path) -> None:
    bad = tmp_path / "rlm_empty.jsonl"
    bad.write_text("\n\n")
    assert import_with_good(store, bad).startswith(f"{bad}: empty file: no trace in it")


def test_binary_file(store: Store, tmp_path: Path) -> None:
    bad = tmp_path / "rlm_binary.jsonl"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(range(256)))
    assert import_with_good(store, bad).startswith(f"{bad}: binary data (NUL bytes), not JSON text")
    latin = tmp_path / "rlm_latin1.jsonl"
    latin.write_bytes(b'{"type": "metadata", "root_model": "caf\xe9"}\n')
    report = import_files(store, "rlms", [latin])
    assert only_error(report).startswith(f"{latin}:1: not UTF-8 text")


def test_line_over_the_cap_is_refused_without_reading_it_whole(store: Store, tmp_path: Path) -> None:
    bad = tmp_path / "rlm_long_line.jsonl"
    entries = rlms_final_style()
    big = dict(entries[1], response="y" * (6 * MB))
    bad.write_text(lines([entries[0], big]))
    error = import_with_good(store, bad, max_line_bytes=5 * MB)
    assert error.startswith(f"{bad}:2: line is longer than the 5 MB line cap")
    assert "--max-line-mb" in error


def test_two_gigabyte_line_in_a_sparse_file(store: Store, tmp_path: Path) -> None:
    bad = tmp_path / "rlm_sparse.jsonl"
    with open(bad, "wb") as handle:
        handle.write((json.dumps(rlms_final_style()[0]) + "\n").encode())
        handle.write(b'{"type": "iteration", "response": "' + b"x" * 65536)  # text first, then a 2 GB hole
        handle.seek(2 * (1 << 30))
        handle.write(b'"}\n')
    if bad.stat().st_blocks * 512 > 64 * MB:
        pytest.skip("this filesystem does not keep sparse files sparse")
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    error = import_with_good(store, bad, max_line_bytes=5 * MB)
    grown_mb = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024
    assert error.startswith(f"{bad}:2: line is longer than the 5 MB line cap")
    assert grown_mb < 200  # the 2 GB line was never held in memory


def test_directory_without_traces_and_missing_path(store: Store, tmp_path: Path) -> None:
    empty = tmp_path / "nothing-here"
    empty.mkdir()
    (empty / "notes.txt").write_text("not a log")
    report = import_files(store, "rlms", [empty, tmp_path / "missing.jsonl", GOOD])
    errors = sorted(f.error or "" for f in report.failed)
    assert errors == [
        f"{tmp_path / 'missing.jsonl'}: no such file or directory — try checking the path",
        f"{empty}: no rlms log files (*.jsonl, *.jsonl.gz) in this directory — try another directory, or naming the files directly",
    ]
    assert report.runs == 1


def test_big_file_streams_in_chunks_and_rolls_back_whole(store: Store, tmp_path: Path) -> None:
    good_records = [{**dspy_object(), "answer": f"a{i}"} for i in range(5)]
    fine = tmp_path / "fine.jsonl"
    fine.write_text(lines(good_records))
    bad = tmp_path / "bad_tail.jsonl"
    bad.write_text(
        lines([{**r, "answer": f"b{i}"} for i, r in enumerate(good_records)]) + '{"trajectory": 5}\n'
    )
    report = import_files(store, "dspy", [fine, bad], ImportOptions(chunk_runs=2))
    assert report.runs == 5 and only_error(report).startswith(
        f"{bad}:6: not a DSPy RLM result: the trajectory is int"
    )
    with store.reader() as con:
        answers = sorted(r[0] for r in con.execute("SELECT final_answer FROM runs").fetchall())
    assert answers == [
        f"a{i}" for i in range(5)
    ]  # two chunks of bad_tail.jsonl were written, then rolled back


def test_cli_prints_one_error_line_per_bad_file_and_exits_1(tmp_path: Path) -> None:
    logs = tmp_path / "logs"
    logs.mkdir()
    shutil.copy(GOOD, logs / GOOD.name)
    (logs / "rlm_empty.jsonl").write_text("")
    (logs / "rlm_fake.jsonl.gz").write_text("plain text")
    (logs / "rlm_bad.jsonl").write_text('{"type": "metadata"}\n{"type": "iteration", "response": "x"\n')
    db = tmp_path / "cli.duckdb"
    env = {**os.environ, "PYTHONPATH": str(ROOT), "COLUMNS": "200"}
    proc = subprocess.run(
        [sys.executable, "-m", "rlmine", "import", "rlms", str(logs), "--db", str(db)],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=120,
    )
    assert proc.returncode == 1, proc.stderr
    errors = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert len(errors) == 3 and all(ln.startswith("Error: ") for ln in errors), proc.stderr
    assert any("rlm_bad.jsonl:2: invalid JSON" in ln for ln in errors)
    assert any("rlm_empty.jsonl: empty file" in ln for ln in errors)
    assert any("rlm_fake.jsonl.gz: not a gzip file" in ln for ln in errors)
    assert "Imported 1 runs from 1 of 4 files" in proc.stdout and "3 failed" in proc.stdout
    with Store.open(db).reader() as con:
        assert table_counts(con)["runs"] == 1


def test_cli_rejects_both_expected_options(tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    answer = tmp_path / "answer.txt"
    answer.write_text("3\n")
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "rlmine",
            "import",
            "rlms",
            str(GOOD),
            "--expected",
            "3",
            "--expected-file",
            str(answer),
            "--db",
            str(tmp_path / "x.duckdb"),
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert proc.returncode == 1
    assert (
        proc.stderr.strip() == "Error: --expected and --expected-file were both given — try only one of them"
    )
