"""``rlmine agent build --run RUN_ID --context FILE``: an agent from one run (an imported trace, say).

A single run has no validation instances, so the candidate is verified the only way
left: the rendered script runs on the run's own context in ``replay`` mode (answers
from the run's recorded sub-calls) and must give the run's recorded answer. Anything
else — a slice that does not replay, a different answer — emits nothing and says why.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from codegen.candidates import run_program
from codegen.render import AgentSpec, ProgramSpec, RenderedAgent, render_agent
from codegen.runner import ScriptOutcome, run_script
from codegen.slicing import SliceError
from rlmine import __version__
from rlmine.errors import RlmineRuntimeError, UserError
from rlmine.store import (
    AgentRecord,
    CandidateRecord,
    Store,
    get_run_summary,
    read_cells,
    save_build,
    sub_call_responses,
    task_row,
)


class BuildError(RlmineRuntimeError):
    """No agent could be built; the message says why (nothing was written)."""


@dataclass(frozen=True)
class BuildResult:
    agent_id: str | None
    build_id: str
    rendered: RenderedAgent | None
    message: str
    candidates: list[CandidateRecord]
    details: dict[str, Any]


def answers_match(recorded: str | None, produced: str | None) -> bool:
    """The same answer text, or the same value once both are JSON-decoded."""
    if recorded is None or produced is None:
        return False
    if recorded.strip() == produced.strip():
        return True
    try:
        return bool(json.loads(recorded) == json.loads(produced))
    except ValueError:
        return False


def _instance_params(
    con: Any, task_id: str | None, instance_id: str | None
) -> tuple[dict[str, Any], list[Any]]:
    if task_id is None or instance_id is None:
        return {}, []
    row = task_row(con, task_id)
    spec = json.loads(row["spec"]) if row and row.get("spec") else {}
    instances = spec.get("instances") or []
    mine = next((i.get("params") or {} for i in instances if i.get("id") == instance_id), {})
    return dict(mine), [i.get("params") or {} for i in instances]


def build_from_run(store: Store, run_id: str, context: Path, *, filename: str = "agent.py") -> BuildResult:
    """Slice, render and verify an agent from one run; stores the build (and the agent if it verified)."""
    if not context.exists():
        raise UserError(f"no context at {context}", "--context PATH to the context the run was given")
    with store.reader() as con:
        run = get_run_summary(con, run_id)
        cells = read_cells(con, run.id)
        params, all_params = _instance_params(con, run.task_id, run.instance_id)
        replay = dict(sub_call_responses(con, [run.id]))
    if run.final_answer is None:
        raise BuildError(
            f"run {run.id} has no recorded answer to reproduce", "a run that submitted an answer"
        )
    question = run.question or ""
    failure: str | None = None
    rendered: RenderedAgent | None = None
    outcome: ScriptOutcome | None = None
    statements: tuple[str, ...] = ()
    try:
        program = run_program(run.id, cells, question, params, all_params)
        statements = program.statements
        spec = AgentSpec(
            title=f"Agent built from run {run.id}",
            task=None,
            programs=(ProgramSpec(program.params.shape, program.statements, (run.id,), program.uses_llm),),
            default_question=question,
            default_model=run.sub_model or run.root_model or "gpt-4o-mini",
            replay=replay,
            version=__version__,
            date=datetime.now(UTC).strftime("%Y-%m-%d"),
            filename=filename,
            validation={"verified": "replay reproduces the recorded answer"},
        )
        rendered = render_agent(spec)
        outcome = run_script(rendered, context, question, llm="replay")
        if outcome.error is not None:
            failure = f"the agent does not replay: {outcome.error}"
        elif not answers_match(run.final_answer, outcome.answer_text):
            failure = f"the agent answered {outcome.answer_text!r}, the run {run.final_answer!r}"
    except SliceError as exc:
        failure = f"the run's cells do not replay: {exc.one_line()}"
    candidate = CandidateRecord(
        idx=0,
        shape="(single run)",
        group_key="run:" + run.id,
        source_runs=(run.id,),
        code="\n".join(statements),
        status="failed" if failure else "selected",
        failure=failure,
        n_instances=1,
        n_correct=0 if failure else 1,
        accuracy=0.0 if failure else 1.0,
        llm_calls=outcome.llm_calls if outcome else 0,
        wall_s=outcome.wall_s if outcome else 0.0,
    )
    agent = None
    if failure is None and rendered is not None:
        agent = AgentRecord(
            script=rendered.script,
            task_id=run.task_id,
            source_runs=(run.id,),
            tactic_sequence=(),
            shapes=[s.to_dict() for s in (program.params.shape,)],
            validation={"mode": "replay", "reproduced": True, "accuracy": 1.0, "instances": 1},
            rlmine_version=__version__,
        )
    message = failure or f"the agent reproduces run {run.id}'s answer in replay mode"
    with store.writer() as con:
        build_id, agent_id = save_build(
            con,
            task_id=run.task_id,
            run_id=run.id,
            params={"context": str(context)},
            candidates=[candidate],
            agent=agent,
            message=message,
        )
    if failure is not None:
        raise BuildError(
            f"no agent built from run {run.id}: {failure}", "another run, or `rlmine agent build --task`"
        )
    return BuildResult(agent_id, build_id, rendered, message, [candidate], {"run": run.id})
