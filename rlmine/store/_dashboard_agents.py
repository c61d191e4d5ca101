"""The Agents page's data: agents, one agent's script and candidates, its evals against the RLM.

A database from before the codegen migration has
no agent tables: the page then says so instead of failing (the dashboard never migrates).
"""

from __future__ import annotations

import json

import duckdb
import pandas as pd

from rlmine.errors import NotFoundError
from rlmine.store._agents import eval_rows, get_agent, list_agents, list_evals

Frames = dict[str, pd.DataFrame]


def _has_agent_tables(con: duckdb.DuckDBPyConnection) -> bool:
    row = con.execute("SELECT count(*) FROM duckdb_tables() WHERE table_name = 'agents'").fetchone()
    return bool(row and row[0])


def agent_page(con: duckdb.DuckDBPyConnection, agent_id: str | None) -> Frames:
    if not _has_agent_tables(con):
        return {"agents": pd.DataFrame(), "no_tables": pd.DataFrame({"message": ["no agent tables"]})}
    agents = list_agents(con)
    frames: Frames = {"agents": agents}
    if agents.empty:
        return frames
    wanted = agent_id or str(agents["id"].iloc[0])
    try:
        agent = get_agent(con, wanted)
    except NotFoundError as exc:
        frames["not_found"] = pd.DataFrame({"message": [exc.message]})
        agent = get_agent(con, str(agents["id"].iloc[0]))
    candidates = pd.DataFrame(agent.pop("candidates"))
    frames["agent"] = pd.DataFrame(
        [{k: json.dumps(v) if isinstance(v, list | dict) else v for k, v in agent.items()}]
    )
    frames["candidates"] = candidates
    evals = list_evals(con, str(agent["id"]))
    frames["evals"] = evals
    if not evals.empty:
        frames["eval_rows"] = eval_rows(con, str(evals["id"].iloc[0]))
    return frames
