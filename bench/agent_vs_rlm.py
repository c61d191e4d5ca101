"""The generated agent against the RLM, on each demo family, with simulated LM latency.

    PYTHONPATH=. .venv/bin/python bench/agent_vs_rlm.py [--quick] [--sim-latency 1] [--random-split]

For each family: make a task (train / validation / test splits; *covered*: validation and
test ask only question categories train asks, such as a review topic, unless
``--random-split``; decision 0021), record simulator runs
on the train instances (no latency: building does not need it), build an agent
(candidates selected on the *validation* instances), then ``rlmine eval`` on the *test*
instances — never used for selection — with the simulator's latency on for both
systems: the RLM records fresh runs, the agent script runs ``--llm live`` against a
loopback simulator server. Finally the agent runs twice more on every test instance
and its outputs are compared (determinism).

Goals (issue #13): agent accuracy >= the RLM's; agent tokens <= 1/10 of the RLM's;
agent wall time (median) <= 1/5 of the RLM's; identical output on two runs.
Prints a table and writes bench/results/agent_vs_rlm.json.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from codegen import EvalOptions, TaskBuildOptions, build_for_task, run_eval
from codegen.runner import run_script_file
from recorder.batch import RecordOptions, record
from recorder.families import make_task
from recorder.lm.registry import make_lm
from recorder.lm.server import SimServer
from recorder.tasks import load_task
from rlmine.store import Store

RESULTS = Path(__file__).resolve().parent / "results" / "agent_vs_rlm.json"
FAMILIES = ("celebrities", "incident-logs", "reviews-aggregate")


def _determinism(script: Path, task: Any) -> bool:
    """Two runs of the agent on every test instance give the same output."""

    def factory(model: str) -> Any:
        return make_lm("sim", role="sub" if model == "sim-sub" else "root")

    with SimServer(factory, models=("sim", "sim-sub")) as server:
        for inst in task.instances_in("test"):
            outs = [
                run_script_file(script, inst.context_path(task), inst.question_text(task), llm="live",
                                api_base=server.base_url, model="sim-sub").answer_text
                for _ in range(2)
            ]  # fmt: skip
            if outs[0] != outs[1]:
                return False
    return True


def one_family(family: str, root: Path, args: argparse.Namespace) -> dict[str, Any]:
    started = time.monotonic()
    task_file = make_task(
        family, root / family, size_bytes=args.size, instances=args.instances, seed=args.seed,
        covered=not args.random_split,
    )  # fmt: skip
    task = load_task(task_file)
    store = Store.open(root / f"{family}.duckdb", create=True)
    record(
        task,
        db=store,
        options=RecordOptions(runs=args.train_runs, concurrency=args.concurrency, batch="train"),
    )
    built = build_for_task(store, task.name, TaskBuildOptions(concurrency=args.concurrency))
    assert built.rendered is not None
    script = root / f"{family}-agent.py"
    script.write_text(built.rendered.script)
    report = run_eval(
        store,
        task.name,
        built.agent_id,
        EvalOptions(split="test", sim_latency=args.sim_latency, concurrency=args.concurrency),
    )
    s = report.summary
    rlm_tokens = s["rlm"]["tokens_in"] + s["rlm"]["tokens_out"]
    agent_tokens = s["agent"]["tokens_in"] + s["agent"]["tokens_out"]
    deterministic = _determinism(script, task)
    return {
        "family": family,
        "agent_id": built.agent_id,
        "build": built.message,
        "selected": [
            {
                "shape": c.shape[:90],
                "llm_calls": c.llm_calls,
                "tokens": c.tokens_in + c.tokens_out,
                "validation_instances": c.n_instances,
            }
            for c in built.candidates
            if c.status == "selected"
        ],
        "distilled": built.details.get("cascade", {}),
        "test_instances": s["agent"]["n"],
        "rlm": s["rlm"],
        "agent": s["agent"],
        "ratios": s["ratios"],
        "goals": {
            "accuracy_agent_ge_rlm": s["agent"]["accuracy"] >= s["rlm"]["accuracy"],
            "tokens_le_tenth": agent_tokens * 10 <= rlm_tokens,
            "wall_le_fifth": s["agent"]["wall_median_s"] * 5 <= s["rlm"]["wall_median_s"],
            "deterministic": deterministic,
        },
        "bench_s": round(time.monotonic() - started, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small contexts and fewer instances")
    parser.add_argument("--sim-latency", type=float, default=1.0, help="simulated latency scale at eval")
    parser.add_argument("--families", default=",".join(FAMILIES))
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument(
        "--random-split", action="store_true",
        help="test questions drawn freely, also of categories no train run asked (default: covered)",
    )  # fmt: skip
    parser.add_argument("--out", type=Path, default=RESULTS, help="where to write the JSON")
    args = parser.parse_args()
    args.size = 102_400 if args.quick else 1 << 20
    args.instances = 15 if args.quick else 25
    args.train_runs = 2 if args.quick else 3
    rows = []
    with tempfile.TemporaryDirectory(prefix="agent-vs-rlm-") as tmp:
        for family in args.families.split(","):
            rows.append(one_family(family, Path(tmp), args))
    table = Table(title=f"agent vs RLM on test instances (simulator latency {args.sim_latency:g})")
    for col in ("family", "n", "accuracy RLM / agent", "LLM calls RLM / agent", "tokens RLM / agent",
                "wall median RLM / agent", "tokens ratio", "wall ratio", "same output twice"):  # fmt: skip
        table.add_column(col)
    for r in rows:
        rlm, agent, ratios = r["rlm"], r["agent"], r["ratios"]
        table.add_row(
            r["family"], str(r["test_instances"]),
            f"{rlm['accuracy']:.0%} / {agent['accuracy']:.0%}",
            f"{rlm['llm_calls']:,} / {agent['llm_calls']:,}",
            f"{rlm['tokens_in'] + rlm['tokens_out']:,} / {agent['tokens_in'] + agent['tokens_out']:,}",
            f"{rlm['wall_median_s']:.2f} s / {agent['wall_median_s']:.2f} s",
            f"{ratios['tokens']}", f"{ratios['wall_median']}", "yes" if r["goals"]["deterministic"] else "NO",
        )  # fmt: skip
    Console(width=160).print(table)
    for r in rows:
        failed = [k for k, ok in r["goals"].items() if not ok]
        Console().print(
            f"{r['family']}: goals {'all met' if not failed else 'NOT met: ' + ', '.join(failed)}"
        )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(
        json.dumps(
            {"quick": args.quick, "sim_latency": args.sim_latency, "python": platform.python_version(),
             "split": "random" if args.random_split else "covered",
             "families": rows},
            indent=2, default=str,
        ) + "\n"
    )  # fmt: skip


if __name__ == "__main__":
    main()
