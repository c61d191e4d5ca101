"""What codegen reads of recorded runs: REPL cells, successful runs, their sub-calls.

A *cell* is one unit of code the REPL executed, with whether it failed: today one
per iteration (``iterations.code``, the reply's blocks joined; the engine stops at
the first failing block). When code blocks are stored as records of their own,
:func:`read_cells` returns one cell per block and its callers need not change.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import duckdb

from rlmine.store._queries import resolve_run_id


@dataclass(frozen=True, slots=True)
class ReplCell:
    """One executed cell of a run, in execution order."""

    run_id: str
    iteration: int
    block: int  # index of the block within its iteration (0 while blocks are joined)
    code: str
    failed: bool
    error: str | None  # the formatted exception when ``failed``
    reply: str  # the reply text outside code fences (reasoning: FINAL_VAR(...) lives here)


@dataclass(frozen=True, slots=True)
class RunSummary:
    """The fields of a run that codegen needs to build from and verify against."""

    id: str
    task_id: str | None
    instance_id: str | None
    engine: str
    question: str | None
    final_answer: str | None
    correct: bool | None
    status: str
    root_model: str | None
    sub_model: str | None
    context_path: str | None
    n_sub_calls: int
    tokens: int


_RUN_COLS = (
    "id, task_id, instance_id, engine, question, final_answer, correct, status, root_model, sub_model, "
    "context_path, coalesce(n_sub_calls, 0), coalesce(tokens_in, 0) + coalesce(tokens_out, 0)"
)


def _summary(row: tuple[Any, ...]) -> RunSummary:
    rid, task, inst, engine, question, answer, correct, status, root, sub, ctx, subs, tokens = row
    return RunSummary(
        rid, task, inst, engine, question, answer, correct, status, root, sub, ctx, int(subs), int(tokens)
    )


def read_cells(con: duckdb.DuckDBPyConnection, run_id: str) -> list[ReplCell]:
    """The cells of a run in the order they ran (iterations without code are skipped)."""
    rid = resolve_run_id(con, run_id)
    rows = con.execute(
        "SELECT idx, code, error, coalesce(reasoning, '') FROM iterations WHERE run_id = ? ORDER BY idx",
        [rid],
    ).fetchall()
    return [
        ReplCell(rid, int(idx), 0, code or "", error is not None, error, reply)
        for idx, code, error, reply in rows
    ]


def get_run_summary(con: duckdb.DuckDBPyConnection, run_id: str) -> RunSummary:
    rid = resolve_run_id(con, run_id)
    row = con.execute(f"SELECT {_RUN_COLS} FROM runs WHERE id = ?", [rid]).fetchone()
    assert row is not None  # resolve_run_id found it
    return _summary(row)


def successful_runs(con: duckdb.DuckDBPyConnection, task_id: str) -> list[RunSummary]:
    """Top-level runs of a task that submitted a correct answer, oldest first."""
    rows = con.execute(
        f"SELECT {_RUN_COLS} FROM runs WHERE task_id = ? AND parent_run_id IS NULL AND correct "
        "AND final_answer IS NOT NULL ORDER BY id",
        [task_id],
    ).fetchall()
    return [_summary(r) for r in rows]


def runs_on_instances(
    con: duckdb.DuckDBPyConnection, task_id: str, instance_ids: list[str], engine: str = "rlmine"
) -> list[RunSummary]:
    """Finished top-level runs of ``engine`` on these instances (for eval), oldest first."""
    if not instance_ids:
        return []
    rows = con.execute(
        f"SELECT {_RUN_COLS} FROM runs WHERE task_id = ? AND parent_run_id IS NULL AND engine = ? "
        "AND list_contains(?, instance_id) AND status IN ('submitted', 'budget_exhausted', 'error') "
        "ORDER BY id",
        [task_id, engine, instance_ids],
    ).fetchall()
    return [_summary(r) for r in rows]


def run_costs(con: duckdb.DuckDBPyConnection, run_ids: list[str]) -> dict[str, dict[str, Any]]:
    """Per run: LLM calls, tokens in/out, cost and wall time (what eval compares)."""
    if not run_ids:
        return {}
    rows = con.execute(
        "SELECT id, n_llm_calls, tokens_in, tokens_out, cost, wall_s, final_answer, correct, score "
        "FROM runs WHERE list_contains(?, id)",
        [run_ids],
    ).fetchall()
    keys = ("llm_calls", "tokens_in", "tokens_out", "cost", "wall_s", "answer", "correct", "score")
    return {r[0]: dict(zip(keys, r[1:], strict=True)) for r in rows}


def sub_call_responses(con: duckdb.DuckDBPyConnection, run_ids: list[str]) -> list[tuple[str, str]]:
    """(prompt, response) of every answered sub-call of these runs, in call order.

    Prompts stored only as a hash (over 200,000 characters) cannot be replayed and are left out.
    """
    if not run_ids:
        return []
    rows = con.execute(
        "SELECT prompt, response FROM llm_calls WHERE list_contains(?, run_id) AND role = 'sub' "
        "AND prompt IS NOT NULL AND response IS NOT NULL AND error IS NULL "
        "ORDER BY run_id, iteration, started_at, id",
        [run_ids],
    ).fetchall()
    return [(str(p), str(r)) for p, r in rows]


def task_row(con: duckdb.DuckDBPyConnection, name_or_id: str) -> dict[str, Any] | None:
    """The task called (or with id) ``name_or_id``: id, name, spec (JSON text), checker."""
    row = con.execute(
        "SELECT id, name, spec, checker, source_path FROM tasks WHERE name = ? OR id = ? LIMIT 1",
        [name_or_id, name_or_id],
    ).fetchone()
    if row is None:
        return None
    return dict(zip(("id", "name", "spec", "checker", "source_path"), row, strict=True))


def task_names(con: duckdb.DuckDBPyConnection) -> list[str]:
    return [str(r[0]) for r in con.execute("SELECT name FROM tasks ORDER BY name").fetchall()]


def tactic_sequences(con: duckdb.DuckDBPyConnection, run_ids: list[str]) -> dict[str, tuple[str, ...]]:
    """Each run's tactic sequence from the miner's ``mined_steps`` view (its latest mining).

    Runs never mined are absent: callers then group them by slice.
    """
    if not run_ids:
        return {}
    rows = con.execute(
        "SELECT run_id, list(tactic_id ORDER BY iteration, line_start) FROM mined_steps "
        "WHERE list_contains(?, run_id) GROUP BY run_id",
        [run_ids],
    ).fetchall()
    out: dict[str, tuple[str, ...]] = {}
    for run_id, tactics in rows:
        seq: list[str] = []
        for tactic in tactics or []:
            if tactic is not None and (not seq or seq[-1] != str(tactic)):
                seq.append(str(tactic))  # consecutive repeats collapse: a tactic, not a step count
        out[str(run_id)] = tuple(seq)
    return out
