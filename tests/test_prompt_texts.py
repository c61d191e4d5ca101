"""Long prompts are stored once (``prompt_texts``) and read back unchanged through ``llm_calls``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import duckdb
import pytest

from rlmine.ids import sha256_text
from rlmine.store import Store
from rlmine.store._migrations import apply_migrations
from rlmine.store._prompt_texts import MIN_SHARED_BYTES
from rlmine.store._queries import get_trace
from rlmine.store._rows import to_arrow, trace_rows
from rlmine.store._writes import delete_runs, save_traces
from rlmine.trace import Iteration, LLMCall, Run, Trace

# A chunk of "context" that every run's sub-calls quote, as the simulator's do.
CHUNK = "".join(f"{i:05d} Taylor Swift, naïve café ✓ — line of the shared context\n" for i in range(600))


def _call(run_id: str, name: str, prompt: str, role: str = "sub") -> LLMCall:
    return LLMCall(
        id=f"{run_id}-{name}",
        run_id=run_id,
        iteration=0,
        role=role,  # type: ignore[arg-type]
        model="sim",
        prompt=prompt,
        response=f"answer {name}",
        prompt_sha256=sha256_text(prompt),
        prompt_chars=len(prompt),
    )


def _trace(run_id: str, n_sub: int = 4) -> Trace:
    calls = [_call(run_id, "r", "short", "root")]
    # two distinct long prompts per run, each sent twice
    calls += [_call(run_id, f"s{k}", f"Part {k % 2}: who is mentioned?\n{CHUNK}") for k in range(n_sub)]
    its = (Iteration(run_id=run_id, index=0, reasoning="look", code="print(1)", stdout="1\n"),)
    run = Run(id=run_id, engine="rlmine", status="submitted")
    return Trace(run=run, iterations=its, calls=tuple(calls)).with_totals()


def _calls(con: duckdb.DuckDBPyConnection) -> list[tuple[Any, ...]]:
    return con.execute("SELECT * FROM llm_calls ORDER BY id").fetchall()


def _stored(con: duckdb.DuckDBPyConnection) -> tuple[int, int]:
    """(texts in prompt_texts, prompt bytes kept inline in the call rows)."""
    (texts,) = con.execute("SELECT count(*) FROM prompt_texts").fetchall()
    (inline,) = con.execute("SELECT coalesce(sum(strlen(prompt)), 0) FROM llm_call_rows").fetchall()
    return int(texts[0]), int(inline[0])


@pytest.fixture
def store(tmp_path: Path) -> Store:
    return Store.open(tmp_path / "rlmine.duckdb", create=True)


def test_repeated_long_prompts_are_stored_once_and_read_back_whole(store: Store) -> None:
    traces = [_trace(f"R{i}") for i in range(100)]
    store.save_traces(traces)
    with store.reader() as con:
        assert _stored(con) == (2, 100 * len("short"))  # 400 long prompts, two texts
        for trace in traces[:3]:
            assert get_trace(con, trace.run.id) == trace
        rows = con.execute("SELECT prompt, prompt_chars FROM llm_calls WHERE role = 'sub'").fetchall()
    assert all(p is not None and len(p) == n and p.endswith(CHUNK) for p, n in rows)
    # The file holds the chunk twice, not 400 times (400 x 35 KB = 14 MB uncompressed); a
    # blank database is 0.8 MB of 256 KB blocks.
    assert store.path.stat().st_size < 5_000_000


def test_short_prompts_stay_inline(store: Store) -> None:
    short = "q" * (MIN_SHARED_BYTES - 1)
    call = _call("R", "c", short)
    store.save_traces(
        [Trace(run=Run(id="R", engine="rlmine", status="submitted"), calls=(call,)).with_totals()]
    )
    with store.reader() as con:
        assert _stored(con) == (0, len(short))
        assert _calls(con)[0][5] == short


def test_saving_again_and_deleting_keep_texts_exactly_as_referenced(store: Store) -> None:
    store.save_traces([_trace("A"), _trace("B")])
    with store.reader() as con:
        before = _calls(con)
    store.save_traces([_trace("A"), _trace("B")])  # a replayed spool or a second import
    with store.reader() as con:
        assert _calls(con) == before
        assert _stored(con)[0] == 2
    with store.writer() as con:
        delete_runs(con, ["A"])
        assert _stored(con)[0] == 2  # B still quotes both texts
        delete_runs(con, ["B"])
        assert _stored(con)[0] == 0  # nothing refers to them any more
        save_traces(con, [_trace("A")])  # deleted and re-inserted in one transaction
        assert _stored(con)[0] == 2
    with store.reader() as con:
        assert get_trace(con, "A") == _trace("A")


def test_a_v3_database_holding_calls_migrates_to_shared_texts(tmp_path: Path) -> None:
    db = tmp_path / "old.duckdb"
    con = duckdb.connect(str(db))
    apply_migrations(con, "0.0.1", upto=3)
    rows: dict[str, list[dict[str, Any]]] = {}
    for trace in (_trace("OLD1"), _trace("OLD2")):
        for table, part in trace_rows(trace).items():
            rows.setdefault(table, []).extend(part)
    for table in ("runs", "iterations", "llm_calls"):  # the v3 writer: straight into the tables
        con.register("staged", to_arrow(table, rows[table]))
        con.execute(f"INSERT INTO {table} BY NAME SELECT * FROM staged")
        con.unregister("staged")
    before = _calls(con)
    con.close()

    store = Store.open(db)

    assert (tmp_path / "old.duckdb.bak-v3").exists()
    with store.reader() as con:
        assert _calls(con) == before
        assert _stored(con) == (2, 2 * len("short"))
        assert get_trace(con, "OLD1") == _trace("OLD1")
    store.save_traces([_trace("NEW")])  # new rows share the migrated texts
    with store.reader() as con:
        assert _stored(con)[0] == 2


def test_a_replaced_call_reads_its_new_prompt(store: Store) -> None:
    long_first = _trace("A")
    store.save_traces([long_first])
    calls = tuple(
        _call("A", c.id.split("-")[1], "now short") if c.role == "sub" else c for c in long_first.calls
    )
    short_now = Trace(run=long_first.run, iterations=long_first.iterations, calls=calls).with_totals()
    store.save_traces([short_now])
    with store.reader() as con:
        assert get_trace(con, "A") == short_now
        refs = con.execute("SELECT count(prompt_ref) FROM llm_call_rows").fetchall()
    assert refs == [(0,)]
