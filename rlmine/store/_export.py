"""Table exports: one Parquet file per table, written by DuckDB's COPY.

(The per-run JSONL interchange format lives in :mod:`rlmine.store._interchange`.)
"""

from __future__ import annotations

from pathlib import Path

import duckdb

from rlmine.errors import UserError
from rlmine.store._queries import TRACE_TABLES, table_counts


def prepare_out_dir(out: Path) -> Path:
    """Create ``out`` if needed; a clear error if it is a file or not writable."""
    if out.exists() and not out.is_dir():
        raise UserError(f"{out} is a file, not a folder", "--out with a folder path")
    try:
        out.mkdir(parents=True, exist_ok=True)
        probe = out / ".rlmine-write-test"
        probe.write_text("")
        probe.unlink()
    except OSError as exc:
        raise UserError(f"cannot write to {out}: {exc.strerror}", "--out with a writable folder") from exc
    return out


def export_parquet(con: duckdb.DuckDBPyConnection, out: Path) -> dict[str, int]:
    """Write ``<table>.parquet`` for every trace table; returns rows per table."""
    prepare_out_dir(out)
    counts = table_counts(con)
    for table in TRACE_TABLES:
        if table not in counts:
            continue
        target = (out / f"{table}.parquet").as_posix().replace("'", "''")
        con.execute(f"COPY (SELECT * FROM {table}) TO '{target}' (FORMAT parquet, COMPRESSION zstd)")
    return counts
