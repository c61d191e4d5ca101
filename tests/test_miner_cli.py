"""`rlmine mine` and `rlmine tactics` from the command line (hashing embedder: no model)."""

from __future__ import annotations

import json
from pathlib import Path

from miner_fixtures import make_db
from test_cli_basics import invoke, run_cli

from rlmine.store import Store


def test_mine_prints_tactics_sequences_and_the_consensus_plan(tmp_path: Path) -> None:
    db = tmp_path / "m.duckdb"
    make_db(db)
    result = invoke("mine", "--db", str(db), "--task", "logs", "--embedder", "hashing")
    assert result.exit_code == 0, result.output
    assert "24 runs" in result.output
    assert "Tactics" in result.output and "Top sequences" in result.output
    assert "Consensus plan" in result.output


def test_mine_json_then_tactics_list_and_show(tmp_path: Path) -> None:
    db = tmp_path / "m.duckdb"
    make_db(db)
    out = invoke("mine", "--db", str(db), "--embedder", "hashing", "--json")
    assert out.exit_code == 0, out.output
    data = json.loads(out.output)
    assert data["n_runs"] == 24 and data["tactics"] and data["consensus"]
    first = data["tactics"][0]["id"]

    listed = invoke("tactics", "list", "--db", str(db), "--json")
    assert listed.exit_code == 0, listed.output
    ids = [t["id"] for t in json.loads(listed.output)["tactics"]]
    assert sorted(ids) == sorted(t["id"] for t in data["tactics"])

    table = invoke("tactics", "list", "--db", str(db), "--task", "logs")
    assert first in table.output

    shown = invoke("tactics", "show", first.lower(), "--db", str(db))
    assert shown.exit_code == 0, shown.output
    assert first in shown.output and "example" in shown.output and "run R" in shown.output
    shown_json = json.loads(invoke("tactics", "show", first, "--db", str(db), "--json").output)
    assert shown_json["id"] == first and shown_json["member_steps"]


def test_bad_input_is_one_line_each(tmp_path: Path) -> None:
    db = tmp_path / "m.duckdb"
    make_db(db)
    empty = tmp_path / "empty.duckdb"
    Store.open(empty, create=True)
    cases = [
        (("mine", "--db", str(empty), "--embedder", "hashing"), "no runs with code to mine"),
        (("mine", "--db", str(db), "--task", "nope", "--embedder", "hashing"), "no task named 'nope'"),
        (("mine", "--db", str(db), "--embedder", "bogus"), "unknown embedder 'bogus'"),
        (("tactics", "list", "--db", str(db)), "no mining in this database yet"),
        (("tactics", "show", "T999", "--db", str(db)), "no tactic 'T999'"),
    ]
    for args, message in cases:
        proc = run_cli(*args)
        assert proc.returncode == 1, (args, proc.stdout, proc.stderr)
        lines = proc.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("Error: ") and message in lines[0], proc.stderr
        assert " — try " in lines[0]


def test_label_model_through_the_simulator_keeps_names_when_it_cannot_answer(tmp_path: Path) -> None:
    db = tmp_path / "m.duckdb"
    make_db(db)
    plain = json.loads(invoke("mine", "--db", str(db), "--embedder", "hashing", "--json").output)
    named = invoke("mine", "--db", str(db), "--embedder", "hashing", "--label-model", "sim", "--json")
    assert named.exit_code == 0, named.output
    assert [t["label"] for t in json.loads(named.output)["tactics"]] == [t["label"] for t in plain["tactics"]]


def test_shapes_only_keeps_code_shapes_apart(tmp_path: Path) -> None:
    db = tmp_path / "m.duckdb"
    make_db(db)
    joined = json.loads(invoke("mine", "--db", str(db), "--embedder", "hashing", "--json").output)
    shapes = invoke("mine", "--db", str(db), "--embedder", "hashing", "--json", "--shapes-only")
    assert shapes.exit_code == 0, shapes.output
    # The fixture's runs write statements that feed each other: joined, they are fewer tactics.
    assert len(json.loads(shapes.output)["tactics"]) > len(joined["tactics"])


def test_db_prune_minings_keeps_the_newest_per_scope(tmp_path: Path) -> None:
    db = tmp_path / "m.duckdb"
    make_db(db)
    mine = ("mine", "--db", str(db), "--embedder", "hashing", "--json")
    scoped = [json.loads(invoke(*mine, "--task", "logs").output)["mining_id"] for _ in range(3)]
    everything = json.loads(invoke(*mine).output)["mining_id"]
    store = Store.open(db)
    with store.reader() as con:
        mined_before = con.execute("SELECT * FROM mined_steps ORDER BY ALL").fetchall()
        cached = con.execute("SELECT count(*) FROM embeddings").fetchone()

    out = invoke("db", "prune-minings", "--keep", "1", "--db", str(db), "--json")
    assert out.exit_code == 0, out.output
    assert json.loads(out.output)["deleted"] == scoped[:2]  # the all-runs mining is its own scope
    with store.reader() as con:
        left = [r[0] for r in con.execute("SELECT id FROM mining_runs ORDER BY id").fetchall()]
        orphans = con.execute(
            "SELECT count(*) FROM steps WHERE mining_id NOT IN (SELECT id FROM mining_runs)"
        ).fetchone()
        assert con.execute("SELECT * FROM mined_steps ORDER BY ALL").fetchall() == mined_before
        assert con.execute("SELECT count(*) FROM embeddings").fetchone() == cached
    assert left == sorted([scoped[2], everything]) and orphans == (0,)
    listed = json.loads(invoke("tactics", "list", "--db", str(db), "--task", "logs", "--json").output)
    assert listed["mining_id"] == scoped[2]

    again = invoke("db", "prune-minings", "--keep", "1", "--db", str(db))
    assert again.exit_code == 0 and "deleted 0 mining(s)" in again.output
    bad = run_cli("db", "prune-minings", "--keep", "1", "--task", "nope", "--db", str(db))
    assert bad.returncode == 1 and bad.stderr.startswith("Error: no task named 'nope'"), bad.stderr
    assert len(bad.stderr.strip().splitlines()) == 1
