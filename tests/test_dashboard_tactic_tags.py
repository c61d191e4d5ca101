"""Mined tactics in the run viewer (a badge per step, placed on its code block) and Compare (alignment)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pandas as pd
import pytest
from dashboard_fixtures import KNOWN_RUN, WRONG_RUN, build_fixture_db
from miner_fixtures import make_db, make_trace
from test_dashboard_apptest import UseDb, open_page, texts, use_db  # noqa: F401  (fixture)

import miner
from dashboard import components
from dashboard import tactic_tags as tt
from rlmine.store import Store, run_steps, task_id_for
from rlmine.trace import CodeBlock

BLOCKS_RUN = "RB001"  # iteration 1 holds two code blocks: the peek (2 lines), then the parse (3 lines)


def _steps(rows: list[tuple[int, int, str | None, str | None]]) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=["line_start", "line_end", "tactic_id", "tactic_label"])


def test_steps_land_on_the_block_that_holds_their_first_line() -> None:
    codes = ["a = 1\nprint(a)", "b = 2\nc = 3\nprint(b + c)", "SUBMIT(c)"]
    joined = "\n\n".join(codes).split("\n")
    assert tt.block_starts(codes) == [1, 4, 8]
    assert [joined[s - 1] for s in tt.block_starts(codes)] == ["a = 1", "b = 2", "SUBMIT(c)"]
    tags = tt.place_steps(_steps([(2, 2, "T1", "print"), (5, 6, "T2", "sum"), (8, 8, None, None)]), codes)
    assert [(t.block, t.line_start, t.line_end) for t in tags] == [(0, 2, 2), (1, 2, 3), (2, 1, 1)]
    assert [t.badge for t in tags] == ["L2 · T1 print", "L2–3 · T2 sum", "L1 · rare"]


def test_alignment_pairs_common_tactics_and_marks_gaps() -> None:
    steps = _steps([(1, 1, "T1", None), (2, 2, "T1", None), (3, 3, None, None), (4, 4, "T2", None)])
    assert tt.tactic_sequence(steps) == ["T1", "T2"]  # repeats collapsed, the rare step left out
    table = tt.align(["T1", "T2", "T3", "T4"], ["T1", "T9", "T4"])
    pairs = list(zip(table["tactic_a"], table["tactic_b"], strict=True))
    assert pairs == [("T1", "T1"), ("T2", None), ("T3", None), (None, "T9"), ("T4", "T4")]
    assert list(table["match"]) == [True, False, False, False, True]


@pytest.fixture(scope="module")
def mined_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """24 runs of task "logs" plus one whose iteration 1 is two code blocks, mined with the hashing embedder."""
    path = tmp_path_factory.mktemp("tags") / "mined.duckdb"
    store = make_db(path)
    with store.reader() as con:
        task_id = task_id_for(con, "logs")
    trace = make_trace(BLOCKS_RUN, 0, task_id=task_id, approach="regex")
    its = list(trace.iterations)
    peek, parse = str(its[0].code), str(its[1].code)
    blocks = (
        CodeBlock(BLOCKS_RUN, 1, 0, peek, stdout="peeked\n"),
        CodeBlock(BLOCKS_RUN, 1, 1, parse, stdout="3\n"),
    )
    its[1] = replace(its[1], code="\n\n".join([peek, parse]), blocks=blocks)
    store.save_traces([replace(trace, iterations=tuple(its), labels=())])
    miner.mine(store, task="logs", embedder="hashing")
    return path


def _run_steps(path: Path, run_id: str) -> pd.DataFrame:
    with Store.open(path).reader() as con:
        return run_steps(con, run_id)


def test_viewer_tags_each_step_with_its_tactic(mined_db: Path, use_db: UseDb) -> None:  # noqa: F811
    use_db(mined_db)
    steps = _run_steps(mined_db, "R0000")
    regex = steps[(steps["iteration"] == 1) & (steps["line_start"] == 2)].iloc[0]  # the re.search line
    at = open_page(components.RUN_VIEWER, run="R0000", iter="1")
    body = texts(at)
    assert "Mined tactics" in body and "Not mined yet" not in body
    assert f"L2 · {regex['tactic_id']} {regex['tactic_label']}" in body
    # only this iteration's steps are shown: iteration 3's SUBMIT step is not
    submit = steps[steps["iteration"] == 3].iloc[0]
    assert f"L1 · {submit['tactic_id']} {submit['tactic_label']}" not in body


def test_viewer_counts_a_steps_lines_from_its_own_code_block(mined_db: Path, use_db: UseDb) -> None:  # noqa: F811
    use_db(mined_db)
    steps = _run_steps(mined_db, BLOCKS_RUN)
    second = steps[(steps["iteration"] == 1) & (steps["line_start"] >= 4)]  # the parse block: cell lines 4-6
    assert len(second) == 3
    at = open_page(components.RUN_VIEWER, run=BLOCKS_RUN, iter="1")
    body = texts(at)
    assert "Block 2 of 2" in body
    for local, step in enumerate(second.to_dict("records"), start=1):
        assert f"L{local} · {step['tactic_id']} {step['tactic_label']}" in body
    assert not any(f"L{n} · " in body for n in (4, 5, 6))  # no badge points past a block's 3 lines
    assert body.count("Mined tactics") == 2  # one column of badges beside each block


def test_compare_aligns_two_runs_by_tactic(mined_db: Path, use_db: UseDb) -> None:  # noqa: F811
    use_db(mined_db)
    regex, llm = _run_steps(mined_db, "R0000"), _run_steps(mined_db, "R0002")
    peek = str(regex[regex["iteration"] == 0]["tactic_id"].iloc[0])  # both runs start by peeking
    batched = llm[(llm["iteration"] == 2) & (llm["line_start"] == 1)].iloc[0]  # llm_query_batched
    assert peek == str(llm[llm["iteration"] == 0]["tactic_id"].iloc[0])
    at = open_page(components.COMPARE, runs="R0000,R0002")
    assert not at.error
    assert "Tactic alignment" in [s.value for s in at.subheader]
    table = at.dataframe[1].value  # after the runs summary
    assert list(table.columns) == ["R0000", "", "R0002"]
    first = table.iloc[0]
    assert first["R0000"].startswith(f"{peek} · ") and first[""] == "=" and first["R0002"] == first["R0000"]
    gap = table[table["R0002"].str.startswith(f"{batched['tactic_id']} · ")].iloc[0]
    assert gap["R0000"] == tt.GAP and gap[""] == "≠"
    assert "Not mined yet" not in texts(at)


@pytest.fixture(scope="module")
def unmined_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_fixture_db(tmp_path_factory.mktemp("unmined") / "fixture.duckdb")


def test_unmined_runs_say_how_to_mine(unmined_db: Path, use_db: UseDb) -> None:  # noqa: F811
    use_db(unmined_db)
    at = open_page(components.RUN_VIEWER, run=KNOWN_RUN)
    assert not at.error and "Mined tactics" not in texts(at)
    assert "Not mined yet" in texts(at) and "rlmine mine --task" in texts(at)
    at = open_page(components.COMPARE, runs=f"{WRONG_RUN},{KNOWN_RUN}")
    info = " ".join(i.value for i in at.info)
    assert f"Not mined yet: {WRONG_RUN}, {KNOWN_RUN}" in info and "rlmine mine --task" in info
    assert "#### Iteration 0" in texts(at)  # the iterations are still lined up by index
