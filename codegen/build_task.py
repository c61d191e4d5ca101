"""``rlmine agent build --task NAME``: many successful runs → candidates → one validated agent.

1. every successful run of the task is sliced and parameterized (a run whose cells do
   not replay becomes a failed candidate with its reason);
2. runs are grouped by question shape, then by tactic sequence (miner) or normalized
   slice, and the best supported groups of each shape become candidates;
3. each candidate runs in the sandbox on the task's validation instances of its shape,
   scored by the task's checker; the winner of a shape is the best by accuracy, then
   LLM calls, tokens and time, and must reach ``min_accuracy``;
4. the agent holds one program per shape that has a winner. No winner at all: nothing
   is emitted, the build is stored with the reason, and :class:`BuildError` says it.

Before validation, the sub-calls recorded in the runs on *train* instances are distilled
into per-item models (:mod:`codegen.distill`); candidates are validated with them in
place, exactly as the agent will run (:mod:`codegen.cascade`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from codegen.build_run import BuildError, BuildResult
from codegen.candidates import CandidateGroup, RunProgram, group_programs, run_program
from codegen.params import extract
from codegen.render import AgentSpec, ProgramSpec, render_agent
from codegen.slicing import SliceError
from codegen.validate import Score, Trial, validate
from recorder.lm.registry import make_lm
from recorder.tasks import TaskSpec, load_task
from rlmine import __version__
from rlmine.errors import NotFoundError, UserError
from rlmine.store import (
    AgentRecord,
    CandidateRecord,
    Store,
    read_cells,
    runs_on_instances,
    save_build,
    sub_call_responses,
    successful_runs,
    tactic_sequences,
    task_names,
    task_row,
)


@dataclass(frozen=True)
class TaskBuildOptions:
    min_accuracy: float = 0.6
    max_candidates: int = 6  # per question shape
    split: str = "validation"
    sub_model: str | None = None  # default: the sub model of the source runs
    api_base: str | None = None
    lm_options: dict[str, Any] = field(default_factory=dict)
    cell_timeout_s: float = 120.0
    concurrency: int = 4
    cascade: bool = True  # distil per-item models from the recorded sub-calls (needs scikit-learn)


def load_task_spec(store: Store, name: str) -> tuple[str, TaskSpec]:
    """(task id, spec) of the task called ``name``, from the task file the store points at."""
    with store.reader() as con:
        row = task_row(con, name)
        names = task_names(con)
    if row is None:
        raise NotFoundError(
            f"no task named {name!r} in {store.path}",
            f"one of: {', '.join(names)}" if names else "`rlmine record TASK_FILE` first",
        )
    spec = json.loads(row["spec"]) if row.get("spec") else {}
    source = spec.get("source") or row.get("source_path")
    if not source or not Path(source).exists():
        raise UserError(
            f"the task file of {name!r} is gone ({source})", "recording the task again from its file"
        )
    return str(row["id"]), load_task(Path(source))


def _trials(
    task: TaskSpec, group: CandidateGroup, split: str, exclude: frozenset[str] = frozenset()
) -> list[Trial]:
    shape = group.representative.params.shape
    out = []
    for inst in task.instances_in(split):
        if inst.id in exclude:
            continue
        values = extract(shape, inst.question_text(task))
        if values is not None:
            out.append(Trial(inst.id, inst.context_path(task), values, inst.expected))
    return out


def item_models(
    store: Store, task: TaskSpec, runs: list[Any], enabled: bool
) -> tuple[dict[str, dict[str, Any]], dict[str, Any]]:
    """Distilled per-item models from the sub-calls of the runs on train instances."""
    if not enabled:
        return {}, {"enabled": False}
    try:
        from codegen.distill import distil
    except ImportError:  # pragma: no cover - scikit-learn is part of the miner extra
        return {}, {"enabled": False, "reason": "scikit-learn is not installed (pip install 'rlmine[miner]')"}
    # Every finished run on a train instance: a run whose final answer was wrong still
    # recorded the sub-LLM's own answers about its items. Never validation or test instances.
    train = [i.id for i in task.instances_in("train")]
    task_id = next((r.task_id for r in runs if r.task_id), None)
    with store.reader() as con:
        source = sorted(
            {
                r.id
                for engine in sorted({r.engine for r in runs})
                for r in runs_on_instances(con, task_id or "", train, engine)
            }
        )
        calls = sub_call_responses(con, source)
    try:
        models, reports = distil(calls)
    except ImportError:  # pragma: no cover
        return {}, {"enabled": False, "reason": "scikit-learn is not installed (pip install 'rlmine[miner]')"}
    return models, {"enabled": True, "runs": len(source), "questions": [r.to_dict() for r in reports]}


def _record(
    idx: int, group: CandidateGroup, score: Score | None, status: str, failure: str | None
) -> CandidateRecord:
    rep = group.representative
    return CandidateRecord(
        idx=idx,
        shape=rep.params.shape.template,
        group_key=group.key,
        source_runs=group.source_runs,
        code="\n".join(rep.statements),
        status=status,
        failure=failure,
        n_instances=score.n if score else 0,
        n_correct=score.correct if score else 0,
        accuracy=score.accuracy if score and score.n else None,
        llm_calls=int(score.total("llm_calls")) if score else 0,
        tokens_in=int(score.total("tokens_in")) if score else 0,
        tokens_out=int(score.total("tokens_out")) if score else 0,
        wall_s=score.total("wall_s") if score else 0.0,
        details={"errors": sorted({r.error for r in score.results if r.error})[:3]} if score else {},
    )


def build_for_task(
    store: Store, task_name: str, options: TaskBuildOptions | None = None, *, filename: str = "agent.py"
) -> BuildResult:
    opts = options or TaskBuildOptions()
    task_id, task = load_task_spec(store, task_name)
    with store.reader() as con:
        runs = successful_runs(con, task_id)
        if not runs:
            raise BuildError(
                f"task {task.name!r} has no successful runs to build from",
                f"`rlmine record {task.source}` (more runs, or another model) first",
            )
        cells = {r.id: read_cells(con, r.id) for r in runs}
        tactics = tactic_sequences(con, [r.id for r in runs])
    params = {i.id: dict(i.params) for i in task.instances}
    instance_of = {r.id: r.instance_id or "" for r in runs}
    all_params = list(params.values())
    programs: list[RunProgram] = []
    records: list[CandidateRecord] = []
    for run in runs:
        try:
            programs.append(
                run_program(
                    run.id, cells[run.id], run.question or "", params.get(run.instance_id or "", {}),
                    all_params, tactics.get(run.id, ()),
                )
            )  # fmt: skip
        except SliceError as exc:
            records.append(
                CandidateRecord(len(records), "?", "run:" + run.id, (run.id,), "", "failed", exc.one_line())
            )
    models, cascade_report = item_models(store, task, runs, opts.cascade)
    sub_model = opts.sub_model or next((r.sub_model for r in runs if r.sub_model), None) or "sim"
    lm_kw = {"api_base": opts.api_base, **opts.lm_options}
    checker = task.make_checker()
    winners: list[tuple[CandidateGroup, Score]] = []
    for _shape, groups in group_programs(programs).items():
        tried = groups[: opts.max_candidates]
        trials = _trials(task, tried[0], opts.split)
        validated_on = opts.split
        if not trials and opts.split != "train":
            # No validation instance of this shape (small tasks): hold out the train instances
            # that none of the shape's runs came from, rather than leave the shape uncovered.
            used = frozenset(instance_of[m.run_id] for g in groups for m in g.members)
            trials = _trials(task, tried[0], "train", used)
            validated_on = "train (instances no source run used)"
        if not trials:
            for group in tried:
                records.append(
                    _record(
                        len(records),
                        group,
                        None,
                        "failed",
                        f"no {opts.split} instance (nor a held-out train one) has this question shape",
                    )
                )
            continue
        scores = validate(
            [g.representative.statements for g in tried],
            trials,
            checker,
            lambda: make_lm(sub_model, role="sub", **lm_kw),
            max_calls=task.budget.max_sub_calls,
            cell_timeout_s=opts.cell_timeout_s,
            concurrency=opts.concurrency,
            item_models=models,
        )
        order = sorted(range(len(tried)), key=lambda i: (scores[i].rank(), i))
        best = order[0]
        ok = scores[best].accuracy >= opts.min_accuracy
        if ok:
            winners.append((tried[best], scores[best]))
        for i, (group, score) in enumerate(zip(tried, scores, strict=True)):
            failure = score.first_error if score.correct == 0 and score.first_error else None
            if failure:
                status = "failed"
            elif i == best and ok:
                status = "selected"
            else:
                status = "passed" if score.accuracy >= opts.min_accuracy else "below-threshold"
            record = _record(len(records), group, score, status, failure)
            records.append(replace(record, details={**record.details, "validated_on": validated_on}))
    params_used = {
        "min_accuracy": opts.min_accuracy,
        "max_candidates": opts.max_candidates,
        "split": opts.split,
        "cascade": cascade_report,
    }
    if not winners:
        best_seen = max((r.accuracy or 0.0 for r in records), default=0.0)
        message = (
            f"no candidate reached {opts.min_accuracy:.0%} accuracy on the {opts.split} instances "
            f"(best {best_seen:.0%} of {len(records)} candidates); no agent written"
        )
        with store.writer() as con:
            save_build(
                con,
                task_id=task_id,
                run_id=None,
                params=params_used,
                candidates=records,
                agent=None,
                message=message,
            )
        raise BuildError(message, "more successful runs, or a lower --min-accuracy")
    return _emit(store, task_id, task, winners, records, params_used, sub_model, filename, models)


def _emit(
    store: Store,
    task_id: str,
    task: TaskSpec,
    winners: list[tuple[CandidateGroup, Score]],
    records: list[CandidateRecord],
    params_used: dict[str, Any],
    sub_model: str,
    filename: str,
    models: dict[str, dict[str, Any]],
) -> BuildResult:
    # Shapes with slots first: a shape without slots accepts any question, so it goes last.
    winners.sort(key=lambda w: (not w[0].representative.params.shape.slots, w[0].shape_key))
    source_runs = [r for g, _ in winners for r in g.source_runs]
    with store.reader() as con:
        replay = dict(sub_call_responses(con, source_runs))
    n = sum(s.n for _, s in winners)
    correct = sum(s.correct for _, s in winners)
    validation = {"accuracy": round(correct / n, 4) if n else 0.0, "instances": n, "correct": correct}
    tactic_seq = next(
        (g.representative.tactic_sequence for g, _ in winners if g.representative.tactic_sequence), ()
    )
    first = winners[0][0].representative
    with store.reader() as con:
        question = next((r.question for r in successful_runs(con, task_id) if r.id == first.run_id), None)
    spec = AgentSpec(
        title=f"Agent for task {task.name}",
        task=task.name,
        programs=tuple(
            ProgramSpec(
                g.representative.params.shape,
                g.representative.statements,
                g.source_runs,
                g.representative.uses_llm,
            )
            for g, _ in winners
        ),
        default_question=question or task.question,
        default_model="sim-sub" if sub_model == "sim" else sub_model,
        replay=replay,
        tactic_sequence=tactic_seq,
        validation=validation,
        version=__version__,
        date=datetime.now(UTC).strftime("%Y-%m-%d"),
        filename=filename,
        item_models=models,
    )
    rendered = render_agent(spec)
    agent = AgentRecord(
        script=rendered.script,
        task_id=task_id,
        source_runs=tuple(source_runs),
        tactic_sequence=tactic_seq,
        shapes=[
            {**g.representative.params.shape.to_dict(), "validation_accuracy": s.accuracy} for g, s in winners
        ],
        validation=validation,
        rlmine_version=__version__,
    )
    message = (
        f"agent for {len(winners)} question shape(s), validation accuracy {validation['accuracy']:.0%} "
        f"on {n} instance(s), from {len(records)} candidates"
    )
    with store.writer() as con:
        build_id, agent_id = save_build(
            con,
            task_id=task_id,
            run_id=None,
            params=params_used,
            candidates=records,
            agent=agent,
            message=message,
        )
    details = {"validation": validation, "cascade": params_used.get("cascade", {})}
    return BuildResult(agent_id, build_id, rendered, message, records, details)
