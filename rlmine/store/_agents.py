"""Agents, their builds and candidates, and evals: written by codegen, read by CLI and dashboard.

Small tables written once per command, so plain parameterised statements are fine.
An agent's id is derived from its script's content hash: building the same agent
twice stores it once.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import duckdb
import pandas as pd

from rlmine.errors import NotFoundError
from rlmine.ids import new_id, sha256_text
from rlmine.store._rows import dumps
from rlmine.trace import utcnow


@dataclass(frozen=True, slots=True)
class CandidateRecord:
    """One candidate program of a build and how it did on validation instances."""

    idx: int
    shape: str
    group_key: str
    source_runs: tuple[str, ...]
    code: str
    status: str  # "selected" | "passed" | "below-threshold" | "failed"
    failure: str | None = None
    n_instances: int = 0
    n_correct: int = 0
    accuracy: float | None = None
    llm_calls: int = 0
    tokens_in: int = 0
    tokens_out: int = 0
    wall_s: float = 0.0
    details: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class AgentRecord:
    """A generated agent script and its provenance."""

    script: str
    task_id: str | None
    source_runs: tuple[str, ...]
    tactic_sequence: tuple[str, ...]
    shapes: list[dict[str, Any]]
    validation: dict[str, Any]
    rlmine_version: str

    @property
    def agent_id(self) -> str:
        return "agent-" + sha256_text(self.script)[:12]


@dataclass(frozen=True, slots=True)
class EvalRow:
    """One answer in an eval: the agent or the RLM on one instance, one repeat."""

    system: str  # "agent" | "rlm"
    instance_id: str
    repeat: int
    answer: str | None
    correct: bool | None
    score: float | None
    llm_calls: int
    tokens_in: int
    tokens_out: int
    cost: float | None
    wall_s: float | None
    run_id: str | None = None
    error: str | None = None


def save_build(
    con: duckdb.DuckDBPyConnection,
    *,
    task_id: str | None,
    run_id: str | None,
    params: dict[str, Any],
    candidates: Sequence[CandidateRecord],
    agent: AgentRecord | None,
    message: str,
) -> tuple[str, str | None]:
    """Store a build, its candidates and (if any) its agent; returns (build id, agent id)."""
    build_id = new_id()
    agent_id = agent.agent_id if agent is not None else None
    now = utcnow()
    con.execute(
        "INSERT INTO agent_builds VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        [build_id, task_id, run_id, dumps(params), "agent" if agent else "none", message, agent_id, now],
    )
    for c in candidates:
        con.execute(
            "INSERT INTO agent_candidates VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [
                build_id, c.idx, c.shape, c.group_key, dumps(list(c.source_runs)), c.code, c.status,
                c.failure, c.n_instances, c.n_correct, c.accuracy, c.llm_calls, c.tokens_in,
                c.tokens_out, c.wall_s, dumps(c.details),
            ],
        )  # fmt: skip
    if agent is not None:
        con.execute(
            "INSERT OR REPLACE INTO agents VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [
                agent_id, build_id, agent.task_id, dumps(list(agent.source_runs)),
                dumps(list(agent.tactic_sequence)), dumps(agent.shapes), dumps(agent.validation),
                agent.script, sha256_text(agent.script), agent.rlmine_version, now,
            ],
        )  # fmt: skip
    return build_id, agent_id


def list_agents(con: duckdb.DuckDBPyConnection) -> pd.DataFrame:
    """Agents, newest first, with their task name and validation accuracy."""
    return con.execute(
        """
        SELECT a.id, t.name AS task, json_array_length(a.source_runs) AS source_runs,
               CAST(json_extract(a.validation, '$.accuracy') AS DOUBLE) AS validation_accuracy,
               json_array_length(a.shapes) AS shapes, length(a.script) AS script_chars, a.created_at
        FROM agents a LEFT JOIN tasks t ON t.id = a.task_id ORDER BY a.created_at DESC, a.id
        """
    ).df()


def resolve_agent_id(con: duckdb.DuckDBPyConnection, agent_id: str) -> str:
    """A full agent id or a unique prefix (with or without the ``agent-`` prefix)."""
    wanted = agent_id if agent_id.startswith("agent-") else f"agent-{agent_id}"
    rows = con.execute(
        "SELECT id FROM agents WHERE starts_with(id, ?) ORDER BY id LIMIT 3", [wanted]
    ).fetchall()
    if len(rows) == 1 or (rows and rows[0][0] == wanted):
        return str(rows[0][0])
    if not rows:
        raise NotFoundError(f"no agent with id {agent_id!r}", "`rlmine agent list` to see agent ids")
    raise NotFoundError(f"agent id prefix {agent_id!r} is ambiguous", "a longer prefix")


def get_agent(con: duckdb.DuckDBPyConnection, agent_id: str) -> dict[str, Any]:
    """One agent: its columns (JSON decoded), task name and the candidates of its build."""
    aid = resolve_agent_id(con, agent_id)
    cur = con.execute(
        "SELECT a.*, t.name AS task FROM agents a LEFT JOIN tasks t ON t.id = a.task_id WHERE a.id = ?", [aid]
    )
    names = [d[0] for d in cur.description or []]
    row = cur.fetchone()
    assert row is not None  # resolved above
    out = dict(zip(names, row, strict=True))
    for key in ("source_runs", "tactic_sequence", "shapes", "validation"):
        out[key] = json.loads(out[key]) if out[key] else None
    candidates = list_candidates(con, str(out["build_id"]))
    # NULL arrives as NaN in a DataFrame: back to None, so the result is plain JSON
    out["candidates"] = candidates.astype(object).where(candidates.notna(), None).to_dict("records")
    return out


def list_candidates(con: duckdb.DuckDBPyConnection, build_id: str) -> pd.DataFrame:
    return con.execute(
        "SELECT idx, shape, status, failure, n_instances, n_correct, accuracy, llm_calls, tokens_in, "
        "tokens_out, wall_s, json_array_length(source_runs) AS source_runs, group_key, code "
        "FROM agent_candidates WHERE build_id = ? ORDER BY idx",
        [build_id],
    ).df()


def latest_build(con: duckdb.DuckDBPyConnection, task_id: str | None = None) -> dict[str, Any] | None:
    sql = "SELECT id, task_id, run_id, outcome, message, agent_id, created_at FROM agent_builds"
    params: list[Any] = []
    if task_id is not None:
        sql += " WHERE task_id = ?"
        params.append(task_id)
    row = con.execute(sql + " ORDER BY id DESC LIMIT 1", params).fetchone()
    keys = ("id", "task_id", "run_id", "outcome", "message", "agent_id", "created_at")
    return dict(zip(keys, row, strict=True)) if row else None


def latest_agent_for_task(con: duckdb.DuckDBPyConnection, task_id: str) -> str | None:
    row = con.execute(
        "SELECT id FROM agents WHERE task_id = ? ORDER BY created_at DESC, id LIMIT 1", [task_id]
    ).fetchone()
    return str(row[0]) if row else None


def save_eval(
    con: duckdb.DuckDBPyConnection,
    *,
    task_id: str,
    agent_id: str | None,
    split: str,
    runs_per_instance: int,
    rows: Sequence[EvalRow],
    summary: dict[str, Any],
) -> str:
    eval_id = new_id()
    con.execute(
        "INSERT INTO evals VALUES (?, ?, ?, ?, ?, ?, ?)",
        [eval_id, task_id, agent_id, split, runs_per_instance, dumps(summary), utcnow()],
    )
    for r in rows:
        con.execute(
            "INSERT INTO agent_evals VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [
                eval_id, r.system, r.instance_id, r.repeat, agent_id if r.system == "agent" else None,
                r.run_id, r.answer, r.correct, r.score, r.llm_calls, r.tokens_in, r.tokens_out, r.cost,
                r.wall_s, r.error,
            ],
        )  # fmt: skip
    return eval_id


def list_evals(con: duckdb.DuckDBPyConnection, agent_id: str | None = None) -> pd.DataFrame:
    """Evals, newest first, with their summary JSON (one row per eval)."""
    sql = (
        "SELECT e.id, t.name AS task, e.agent_id, e.split, e.runs_per_instance, e.summary, e.created_at "
        "FROM evals e LEFT JOIN tasks t ON t.id = e.task_id"
    )
    params: list[Any] = []
    if agent_id is not None:
        sql += " WHERE e.agent_id = ?"
        params.append(agent_id)
    return con.execute(sql + " ORDER BY e.id DESC", params).df()


def eval_rows(con: duckdb.DuckDBPyConnection, eval_id: str) -> pd.DataFrame:
    return con.execute(
        "SELECT * FROM agent_evals WHERE eval_id = ? ORDER BY system, instance_id, repeat", [eval_id]
    ).df()
