"""Tactic edits: `rlmine tactics merge/rename/edits/unedit` and what later minings do with them."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from miner_fixtures import add_runs, make_db
from test_cli_basics import invoke, run_cli

import miner.curate as curate
from miner.cluster import ClusterOptions, cluster_vectors
from miner.edits import Merge, apply_merges, force_ids
from rlmine.store import Store, task_id_for

MINE = ("mine", "--embedder", "hashing", "--task", "logs", "--json")


def _mine(db: Path) -> dict[str, Any]:
    out = invoke(*MINE, "--db", str(db))
    assert out.exit_code == 0, out.output
    return dict(json.loads(out.output))


def _tactics(db: Path) -> dict[str, dict[str, Any]]:
    out = invoke("tactics", "list", "--db", str(db), "--task", "logs", "--json")
    assert out.exit_code == 0, out.output
    return {t["id"]: t for t in json.loads(out.output)["tactics"]}


def _steps_of(db: Path, tactic_id: str) -> set[tuple[str, int, int]]:
    with Store.open(db).reader() as con:
        rows = con.execute(
            "SELECT run_id, iteration, line_start FROM mined_steps WHERE tactic_id = ?", [tactic_id]
        ).fetchall()
    return {(r[0], r[1], r[2]) for r in rows}


def test_merge_holds_in_later_minings_and_unedit_gives_the_ids_back(tmp_path: Path) -> None:
    db = tmp_path / "m.duckdb"
    store = make_db(db)
    _mine(db)
    before = _tactics(db)
    kept, joined = sorted(before, key=lambda t: int(t[1:]))[-2:]
    steps_kept, steps_joined = _steps_of(db, kept), _steps_of(db, joined)

    out = invoke("tactics", "merge", kept, joined.lower(), "--db", str(db), "--json")
    assert out.exit_code == 0, out.output
    merged = json.loads(out.output)
    assert merged["tactic"]["id"] == kept and merged["n_tactics"] == len(before) - 1
    after = _tactics(db)
    assert joined not in after and after[kept]["size"] == before[kept]["size"] + before[joined]["size"]
    assert _steps_of(db, kept) == steps_kept | steps_joined
    with store.reader() as con:
        in_sequences = con.execute(
            "SELECT count(*) FROM run_tactics WHERE mining_id = ? AND tactic_id = ?",
            [merged["mining_id"], joined],
        ).fetchone()
    assert in_sequences == (0,)

    # New runs, a plain `rlmine mine`: the merge is an input of every mining of the scope.
    with store.reader() as con:
        task_id = task_id_for(con, "logs")
    add_runs(store, task_id, range(100, 112))
    again = _mine(db)
    assert joined not in {t["id"] for t in again["tactics"]}
    assert again["edits"] == [merged["edit_id"]]
    assert _steps_of(db, kept) >= steps_kept | steps_joined

    listed = json.loads(invoke("tactics", "edits", "--db", str(db), "--json").output)["edits"]
    assert [(e["kind"], e["tactic_ids"]) for e in listed] == [("merge", [kept, joined])]
    undone = invoke("tactics", "unedit", merged["edit_id"], "--db", str(db))
    assert undone.exit_code == 0, undone.output
    restored = _tactics(db)
    assert joined in restored and _steps_of(db, joined) >= steps_joined
    assert _steps_of(db, kept) >= steps_kept and not _steps_of(db, kept) & steps_joined
    assert json.loads(invoke("tactics", "edits", "--db", str(db), "--json").output)["edits"] == []


def test_rename_is_kept_by_later_minings_until_taken_back(tmp_path: Path) -> None:
    db = tmp_path / "m.duckdb"
    make_db(db)
    _mine(db)
    tactic, row = next(iter(_tactics(db).items()))
    out = invoke("tactics", "rename", tactic, "  peek at   the log ", "--db", str(db))
    assert out.exit_code == 0, out.output
    assert _tactics(db)[tactic]["label"] == "peek at the log"  # the latest mining, at once
    assert "peek at the log" in invoke("tactics", "show", tactic, "--db", str(db)).output
    assert {t["id"]: t["label"] for t in _mine(db)["tactics"]}[tactic] == "peek at the log"

    table = invoke("tactics", "edits", "--db", str(db), "--task", "logs")
    assert f"rename {tactic} to 'peek at the log'" in table.output
    (edit,) = json.loads(invoke("tactics", "edits", "--db", str(db), "--json").output)["edits"]
    assert invoke("tactics", "unedit", edit["id"], "--db", str(db)).exit_code == 0
    assert _tactics(db)[tactic]["label"] == row["label"]


def test_python_api_merge_then_undo(tmp_path: Path) -> None:
    db = tmp_path / "m.duckdb"
    store = make_db(db)
    _mine(db)
    ids = sorted(_tactics(db), key=lambda t: int(t[1:]))
    edit_id, result = curate.merge_tactics(store, [ids[0], ids[1], ids[2]])
    assert {ids[1], ids[2]}.isdisjoint(t.id for t in result.tactics) and ids[0] in {
        t.id for t in result.tactics
    }
    edit, back = curate.undo_edit(store, edit_id)
    assert edit["id"] == edit_id and back is not None
    assert set(ids) == {t.id for t in back.tactics}


def test_a_merge_whose_mining_fails_is_not_kept(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    db = tmp_path / "m.duckdb"
    store = make_db(db)
    _mine(db)
    ids = sorted(_tactics(db))

    def broken(*args: Any, **kwargs: Any) -> None:
        raise RuntimeError("the machine went away")

    monkeypatch.setattr(curate, "remine", broken)
    with pytest.raises(RuntimeError):
        curate.merge_tactics(store, ids[:2])
    assert json.loads(invoke("tactics", "edits", "--db", str(db), "--json").output)["edits"] == []


def test_bad_edits_are_one_line_each(tmp_path: Path) -> None:
    db = tmp_path / "m.duckdb"
    make_db(db)
    _mine(db)
    ids = sorted(_tactics(db), key=lambda t: int(t[1:]))
    everything = json.loads(invoke("mine", "--embedder", "hashing", "--json", "--db", str(db)).output)
    other = everything["tactics"][0]["id"]  # a tactic of the all-runs scope
    assert invoke("tactics", "merge", ids[0], ids[1], "--db", str(db)).exit_code == 0
    cases = [
        (("tactics", "merge", ids[0]), "a merge needs two or more different tactic ids"),
        (("tactics", "merge", ids[0], ids[0].lower()), "a merge needs two or more different tactic ids"),
        (("tactics", "merge", ids[0], "T999"), "no tactic 'T999'"),
        (("tactics", "merge", ids[0], other), "are tactics of different minings"),
        (("tactics", "merge", ids[1], ids[2]), "is not a tactic of the latest mining of its scope"),
        (("tactics", "rename", ids[0], "x" * 81), "a tactic name is 1 to 80 characters"),
        (("tactics", "unedit", "E0NOPE"), "no tactic edit 'E0NOPE'"),
        (("tactics", "edits", "--task", "nope"), "no task named 'nope'"),
    ]
    for args, message in cases:
        proc = run_cli(*args, "--db", str(db))
        assert proc.returncode == 1, (args, proc.stdout, proc.stderr)
        lines = proc.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("Error: ") and message in lines[0], proc.stderr
    edits = json.loads(invoke("tactics", "edits", "--db", str(db), "--json").output)["edits"]
    assert len(edits) == 1  # nothing was recorded by the refused ones

    # The all-runs scope has edits of its own, listed as such.
    both = [t["id"] for t in everything["tactics"][:2]]
    merged = invoke("tactics", "merge", both[0], both[1], both[0], "--db", str(db))
    assert merged.exit_code == 0 and f"merged {both[1]} into {both[0]} (edit" in merged.output
    table = invoke("tactics", "edits", "--db", str(db)).output
    assert "all runs" in table and f"merge {both[1]} into {both[0]}" in table and "nan" not in table


def _unit(*rows: list[float]) -> np.ndarray:
    v = np.asarray(rows, dtype=np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def test_apply_merges_finds_tactics_by_medoid_and_applies_merges_in_order() -> None:
    # Four code shapes, far apart: a, b, c, d (two distinct steps each).
    vectors = _unit(
        [1, 0.01, 0, 0], [1, 0.02, 0, 0], [0, 1, 0.01, 0], [0, 1, 0.02, 0],
        [0, 0, 1, 0.01], [0, 0, 1, 0.02], [0.01, 0, 0, 1], [0.02, 0, 0, 1],
    )  # fmt: skip
    distinct = [f"h{i}" for i in range(8)]
    weights = [2] * 8
    opts = ClusterOptions(threshold=0.2, min_size=1, min_share=0.0)
    clusters = cluster_vectors(vectors, weights, opts)
    assert len(clusters.medoids) == 4
    by_hash = dict(zip(distinct, vectors, strict=True))
    merges = [
        Merge("E1", ("T1", "T2"), ("h0", "h3")),  # a + b kept as T1
        Merge("E2", ("T9", "T1"), ("h6", "h1")),  # then d + (a + b) kept as T9
        Merge("E3", ("T5", "T6"), ("gone1", "gone2")),  # tactics this mining no longer has
    ]
    joined, forced, notes = apply_merges(vectors, weights, distinct, clusters, merges, by_hash, opts)
    assert len(joined.medoids) == 2
    label = joined.labels
    assert len({label[0], label[2], label[6]}) == 1 and label[4] != label[0]
    assert forced == {int(label[0]): "T9"}
    assert notes == ["edit E3 (merge T5 + T6) found none of its tactics"]
    assert force_ids(["T1", "T9"], {0: "T9"}) == ["T9", None]
