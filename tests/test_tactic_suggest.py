"""`rlmine tactics suggest`: a model proposes which tactics serve one purpose (decision 0023)."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from loopback import serve_lm
from miner_fixtures import add_runs, make_db
from test_cli_basics import invoke, run_cli

import miner.curate as curate
from miner.suggest import merge_prompt, parse_groups
from recorder.lm.base import Message
from recorder.lm.scripted import FunctionLM
from rlmine.store import Store, task_id_for

MINE = ("mine", "--embedder", "hashing", "--task", "logs", "--json")


def _tactics(db: Path) -> dict[str, dict[str, Any]]:
    out = invoke("tactics", "list", "--db", str(db), "--task", "logs", "--json")
    assert out.exit_code == 0, out.output
    return {t["id"]: t for t in json.loads(out.output)["tactics"]}


def _steps(db: Path, ids: list[str]) -> set[tuple[str, int, int]]:
    with Store.open(db).reader() as con:
        rows = con.execute(
            "SELECT run_id, iteration, line_start FROM mined_steps WHERE list_contains(?, tactic_id)", [ids]
        ).fetchall()
    return {(r[0], r[1], r[2]) for r in rows}


class PrintJoiner:
    """Plays a model: every tactic whose example is a print is one purpose ("look at the data")."""

    def __init__(self) -> None:
        self.prompts: list[str] = []

    def __call__(self, messages: list[Message], **_: Any) -> str:
        prompt = messages[-1].content
        self.prompts.append(prompt)
        blocks = re.findall(r"^## (T\d+): .*?\n```python\n(.*?)\n```", prompt, re.M | re.S)
        prints = [tid for tid, code in blocks if code.startswith("print(")]
        # Noise a real model adds: prose, a fence, an unknown id, an id proposed twice.
        return f"Sure.\n```json\n{json.dumps([prints[::-1], ['T999', prints[0]], ['T999']])}\n```"


@pytest.mark.loopback_models
def test_suggested_merges_are_shown_for_review_and_applied_as_edits_later_minings_keep(
    tmp_path: Path,
) -> None:
    db = tmp_path / "m.duckdb"
    store = make_db(db)
    first = json.loads(invoke(*MINE, "--db", str(db)).output)
    before = _tactics(db)
    prints = sorted(
        (t for t in before.values() if t["example"].startswith("print(")), key=lambda t: -t["size"]
    )
    assert len(prints) >= 2
    ids = [t["id"] for t in prints]
    model = PrintJoiner()
    with serve_lm(FunctionLM(model)) as base:
        args = ("tactics", "suggest", "--db", str(db), "--task", "logs", "--model", "m", "--api-base", base)
        review = invoke(*args)
        assert review.exit_code == 0, review.output
        assert f"rlmine tactics merge {' '.join(ids)}" in review.output  # largest tactic kept first
        assert "T999" not in review.output
        # Nothing is stored without --apply.
        assert _tactics(db).keys() == before.keys()
        assert json.loads(invoke("tactics", "edits", "--db", str(db), "--json").output)["edits"] == []
        # The model saw every tactic with its example code.
        assert all(
            f"## {t}: " in model.prompts[0] and before[t]["example"] in model.prompts[0] for t in before
        )

        applied = json.loads(invoke(*args, "--apply", "--json").output)
    assert applied["applied"] and len(applied["edit_ids"]) == 1
    assert applied["groups"] == [{"keep": ids[0], "join": ids[1:], "labels": [t["label"] for t in prints]}]
    assert applied["mining"]["mining_id"] != first["mining_id"]
    after = _tactics(db)
    assert set(after) == set(before) - set(ids[1:])
    assert after[ids[0]]["size"] == sum(t["size"] for t in prints)
    # The merge is an ordinary edit: a plain `rlmine mine` after new runs keeps it, unedit undoes it.
    with store.writer() as con:
        task_id = task_id_for(con, "logs")
    add_runs(store, task_id, range(100, 106))
    invoke(*MINE, "--db", str(db))
    assert not set(ids[1:]) & set(_tactics(db))
    assert _steps(db, [ids[0]]) == _steps(db, ids) and len(_steps(db, [ids[0]])) > sum(
        t["size"] for t in prints
    )
    assert invoke("tactics", "unedit", applied["edit_ids"][0], "--db", str(db)).exit_code == 0
    assert set(ids) <= set(_tactics(db))


def test_a_model_that_cannot_read_code_is_a_one_line_error_and_nothing_is_stored(tmp_path: Path) -> None:
    db = tmp_path / "m.duckdb"
    make_db(db)
    invoke(*MINE, "--db", str(db))
    # The simulator's sub-LLM answers task questions; it does not read code.
    proc = run_cli("tactics", "suggest", "--db", str(db), "--model", "sim", "--task", "logs", "--apply")
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 1 and len(lines) == 1, proc.stderr
    assert "not a JSON list of tactic-id groups" in lines[0] and " — try " in lines[0]
    assert json.loads(invoke("tactics", "edits", "--db", str(db), "--json").output)["edits"] == []
    proc = run_cli("tactics", "suggest", "--db", str(tmp_path / "none.duckdb"), "--model", "sim")
    assert proc.returncode == 1 and len(proc.stderr.strip().splitlines()) == 1, proc.stderr


def test_python_api_proposes_and_a_no_merge_reply_changes_nothing(tmp_path: Path) -> None:
    db = tmp_path / "m.duckdb"
    make_db(db)
    invoke(*MINE, "--db", str(db))
    assert curate.suggest_merges(db, lambda prompt: "[]", task="logs") == []
    with pytest.raises(Exception, match="no mining yet"):
        curate.suggest_merges(db, lambda prompt: "[]")  # the all-runs scope was never mined
    groups = curate.suggest_merges(db, lambda p: PrintJoiner()([Message("user", p)]), task="logs")
    edit_ids, result = curate.merge_groups(db, groups)
    assert len(edit_ids) == len(groups) == 1 and len(result.tactics) == len(_tactics(db))


def test_parse_groups_reads_fenced_json_and_drops_what_it_cannot_use() -> None:
    sizes = {"T1": 5, "T2": 9, "T3": 1, "T4": 2}
    reply = 'Groups:\n```json\n[["t1", "T2", "T2"], ["T3", "T1"], ["T9", "T4"], ["T3", "T4"]]\n```\nDone.'
    assert parse_groups(reply, sizes) == [["T2", "T1"], ["T4", "T3"]]
    for bad in ("no idea", "[1, 2", '{"groups": 1}', '["T1", "T2"]'):
        with pytest.raises(ValueError):
            parse_groups(bad, sizes)
    prompt = merge_prompt(
        [
            {
                "id": "T1",
                "label": "peek",
                "size": 5,
                "n_runs": 3,
                "example": "print(x)",
                "members": '["print(x)", "print(y)"]',
            }
        ]
    )
    assert (
        "## T1: peek (5 steps in 3 runs)" in prompt and "print(y)" in prompt and prompt.count("print(x)") == 1
    )
