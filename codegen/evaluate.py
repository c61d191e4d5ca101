"""``rlmine eval``: the agent against the RLM on a task's held-out instances, side by side.

The RLM side is the recorded runs of an eval batch on those instances (recorded first
when missing, same root and sub models, distinct seeds per instance; re-running the
eval reuses them). The agent
side runs the standalone script in a subprocess, ``--llm live``, as a user would —
against the same sub-LM (for the simulator, a loopback ``SimServer`` with the same
simulated latency). Both are scored by the task's checker. Reported per system:
accuracy with a 95% Wilson interval, LLM calls, tokens in/out, cost, wall time (median
and p95), and agent/RLM ratios.
"""

from __future__ import annotations

import math
import statistics
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from codegen.build_task import load_task_spec
from codegen.runner import run_script_file
from codegen.validate import answer_value
from recorder.batch import RecordOptions, record
from recorder.lm.pricing import bundled_prices
from recorder.lm.registry import make_lm
from recorder.lm.server import SimServer
from rlmine.errors import NotFoundError, UserError
from rlmine.scoring import judge
from rlmine.store import (
    EvalRow,
    Store,
    finished_batch_runs,
    get_agent,
    latest_agent_for_task,
    run_costs,
    save_eval,
)


@dataclass(frozen=True)
class EvalOptions:
    split: str = "test"
    runs_per_instance: int = 1
    root_model: str = "sim"
    sub_model: str | None = None  # default: the root model
    sim_latency: float | None = None
    api_base: str | None = None  # the agent's endpoint when the sub model is not the simulator
    concurrency: int = 4
    timeout_s: float = 600.0


@dataclass(frozen=True)
class EvalReport:
    eval_id: str
    agent_id: str | None
    task: str
    summary: dict[str, Any]
    rows: list[EvalRow]


def wilson(correct: int, n: int, z: float = 1.959964) -> tuple[float, float]:
    """95% Wilson score interval of a proportion (sensible at 0% and 100%, unlike the normal one)."""
    if n == 0:
        return 0.0, 0.0
    p = correct / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return max(0.0, centre - half), min(1.0, centre + half)


def _p95(values: list[float]) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, math.ceil(0.95 * len(ordered)) - 1)]


def summarize(rows: list[EvalRow]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for system in ("rlm", "agent"):
        mine = [r for r in rows if r.system == system]
        n = len(mine)
        correct = sum(bool(r.correct) for r in mine)
        low, high = wilson(correct, n)
        walls = [r.wall_s for r in mine if r.wall_s is not None]
        costs = [r.cost for r in mine if r.cost is not None]
        out[system] = {
            "n": n,
            "correct": correct,
            "accuracy": correct / n if n else 0.0,
            "ci95": [round(low, 4), round(high, 4)],
            "llm_calls": sum(r.llm_calls for r in mine),
            "tokens_in": sum(r.tokens_in for r in mine),
            "tokens_out": sum(r.tokens_out for r in mine),
            "cost": round(sum(costs), 6) if costs else None,
            "wall_median_s": round(statistics.median(walls), 4) if walls else 0.0,
            "wall_p95_s": round(_p95(walls), 4),
            "errors": sum(1 for r in mine if r.error),
        }
    rlm, agent = out["rlm"], out["agent"]

    def ratio(a: float | None, b: float | None) -> float | None:
        return round(a / b, 4) if a is not None and b else None

    out["ratios"] = {
        "accuracy": ratio(agent["accuracy"], rlm["accuracy"]),
        "llm_calls": ratio(agent["llm_calls"], rlm["llm_calls"]),
        "tokens": ratio(agent["tokens_in"] + agent["tokens_out"], rlm["tokens_in"] + rlm["tokens_out"]),
        "cost": ratio(agent["cost"], rlm["cost"]),
        "wall_median": ratio(agent["wall_median_s"], rlm["wall_median_s"]),
        "wall_p95": ratio(agent["wall_p95_s"], rlm["wall_p95_s"]),
    }
    return out


def resolve_agent_script(
    store: Store, task_id: str, agent: str | Path | None
) -> tuple[str | None, Path | None, str]:
    """(agent id, file, script text) from an id, a file, or the task's latest agent."""
    if agent is not None and (isinstance(agent, Path) or Path(agent).suffix == ".py" or Path(agent).exists()):
        path = Path(agent)
        if not path.is_file():
            raise UserError(f"no agent file at {path}", "--agent AGENT_ID or --agent path/to/agent.py")
        text = path.read_text(encoding="utf-8")
        try:
            compile(text, str(path), "exec")
        except SyntaxError as exc:
            raise UserError(
                f"the agent file {path} no longer parses (line {exc.lineno}: {exc.msg})",
                "undoing the edit, or `rlmine agent show ID -o FILE` to write it again",
            ) from exc
        return None, path, text
    with store.reader() as con:
        agent_id = str(agent) if agent is not None else latest_agent_for_task(con, task_id)
        if agent_id is None:
            raise NotFoundError("this task has no agent yet", "`rlmine agent build --task NAME` first")
        row = get_agent(con, agent_id)
    return str(row["id"]), None, str(row["script"])


def run_eval(
    store: Store, task_name: str, agent: str | Path | None = None, options: EvalOptions | None = None
) -> EvalReport:
    opts = options or EvalOptions()
    task_id, task = load_task_spec(store, task_name)
    instances = task.instances_in(opts.split)
    if not instances:
        raise UserError(
            f"task {task.name!r} has no {opts.split} instances", "--split validation, or more instances"
        )
    agent_id, agent_file, script = resolve_agent_script(store, task_id, agent)
    batch_id = _record_rlm(store, task, instances, opts)
    with store.reader() as con:
        finished = finished_batch_runs(con, batch_id)
        costs = run_costs(con, [rid for rid, _inst in finished])
    ids = [rid for rid, _inst in finished]
    by_instance = dict(finished)
    rows: list[EvalRow] = []
    repeats: dict[str, int] = {}
    for run_id in ids:
        c = costs[run_id]
        inst_id = str(by_instance[run_id])
        repeat = repeats[inst_id] = repeats.get(inst_id, -1) + 1
        rows.append(
            EvalRow("rlm", inst_id, repeat, c["answer"], bool(c["correct"]), c["score"], int(c["llm_calls"] or 0),
                    int(c["tokens_in"] or 0), int(c["tokens_out"] or 0), c["cost"], c["wall_s"], run_id)
        )  # fmt: skip
    rows += _agent_rows(task, instances, script, agent_file, opts)
    summary = summarize(rows)
    summary.update({"task": task.name, "split": opts.split, "runs_per_instance": opts.runs_per_instance,
                    "root_model": opts.root_model, "sub_model": opts.sub_model or opts.root_model,
                    "sim_latency": opts.sim_latency, "agent_ref": agent_id or str(agent_file)})  # fmt: skip
    with store.writer() as con:
        eval_id = save_eval(con, task_id=task_id, agent_id=agent_id, split=opts.split,
                            runs_per_instance=opts.runs_per_instance, rows=rows, summary=summary)  # fmt: skip
    return EvalReport(eval_id, agent_id, task.name, summary, rows)


def _record_rlm(store: Store, task: Any, instances: list[Any], opts: EvalOptions) -> str:
    """Record (or reuse) the RLM runs: instance i gets seeds i*K .. i*K+K-1.

    Distinct seeds per instance matter: a seeded model (the simulator draws its strategy
    from the seed) run with seed 0 everywhere would be judged on one draw repeated.
    """
    k = opts.runs_per_instance
    name = f"eval-{task.name}-{opts.split}-{opts.root_model}-x{k}" + (
        f"-lat{opts.sim_latency:g}" if opts.sim_latency is not None else ""
    )
    lm_options = {"latency": opts.sim_latency} if opts.sim_latency is not None else {}

    def one(index: int) -> str:
        options = RecordOptions(
            runs=k, models=(opts.root_model,), sub_model=opts.sub_model, split=None, seeds=(index * k,),
            instance_ids=(instances[index].id,), concurrency=max(1, min(k, opts.concurrency)), batch=name,
            lm_options=lm_options, api_base=opts.api_base,
        )  # fmt: skip
        return record(task, db=store, options=options).batch_id

    # One instance after the other: concurrent record() calls would race on the catalogue rows.
    batch_ids = [one(index) for index in range(len(instances))]
    return batch_ids[0]


def _agent_rows(
    task: Any, instances: list[Any], script: str, agent_file: Path | None, opts: EvalOptions
) -> list[EvalRow]:
    import tempfile

    sub = opts.sub_model or opts.root_model
    checker = task.make_checker()
    prices = bundled_prices()
    rows: list[EvalRow] = []
    with ExitStack() as stack:
        if sub == "sim":
            latency = opts.sim_latency

            def factory(model: str) -> Any:
                return make_lm("sim", role="root" if model == "sim" else "sub", latency=latency)

            server = stack.enter_context(SimServer(factory, models=("sim", "sim-sub")))
            api_base: str | None = server.base_url
            model = "sim-sub"
        else:
            api_base, model = opts.api_base, sub
        path = agent_file
        if path is None:
            folder = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="rlmine-eval-")))
            path = folder / "agent.py"
            path.write_text(script, encoding="utf-8")
        for inst in instances:
            for repeat in range(opts.runs_per_instance):
                out = run_script_file(path, inst.context_path(task), inst.question_text(task), llm="live",
                                      api_base=api_base, model=model, timeout_s=opts.timeout_s)  # fmt: skip
                verdict = (
                    judge(answer_value(out.answer), inst.expected, checker) if out.error is None else None
                )
                correct = verdict is not None and verdict.right  # a checker that raises: a wrong answer
                score = verdict.score if verdict is not None and verdict.score is not None else 0.0
                cost = 0.0 if sub == "sim" else prices.cost(model or "", out.tokens_in, out.tokens_out)
                rows.append(
                    EvalRow("agent", inst.id, repeat, out.answer_text, correct, score,
                            out.llm_calls, out.tokens_in, out.tokens_out, cost, out.wall_s, None, out.error)
                )  # fmt: skip
    return rows
