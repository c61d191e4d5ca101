"""What the Python API costs before the first model call, when the caller passes LM objects.

    .venv/bin/python bench/api_import_bench.py [--quick] [--repeats 15] [--code-root DIR]

Each sample is a fresh interpreter that runs ``from recorder import run_rlm`` and then one
``run_rlm`` call with a function-backed root model that answers ``SUBMIT`` at once. The child
reports, from its own start (``time.perf_counter`` at its first line, after the interpreter
itself is up):

* ``import``: ``from recorder import run_rlm`` alone;
* ``first call``: until the root model is first called (everything the call imports before
  it needs the model; the sandbox starts beside it in a thread);
* whether the ``openai`` SDK or ``litellm`` got imported on the way.

``--code-root`` (repeatable) measures other checkouts of the project (say, an older commit
unpacked with ``git archive``) with the same script, their samples alternating, so before and
after sit side by side under the same load. Medians over ``--repeats`` runs; prints a table
and writes bench/results/api_import_bench.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results" / "api_import_bench.json"

# Runs in the child. Only names every version of the API has: the top-level ``run_rlm``
# and ``recorder.lm.scripted.FunctionLM``.
CHILD = r"""
import time
t0 = time.perf_counter()
from recorder import run_rlm
t_import = time.perf_counter() - t0
import json, sys
from recorder.lm.scripted import FunctionLM
first = []
def reply(messages, **_):
    first.append(time.perf_counter() - t0)
    return "```python\nSUBMIT(1)\n```"
trace = run_rlm("q", sys.argv[1], lm=FunctionLM(reply), sub_lm=FunctionLM(lambda m, **_: "x"))
assert trace.run.status == "submitted", trace.run
print(json.dumps({"import_s": t_import, "first_call_s": first[0],
                  "openai": "openai" in sys.modules, "litellm": "litellm" in sys.modules}))
"""


def sample(code_root: Path, context: Path) -> dict[str, Any]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("RLMINE_")}
    env["PYTHONPATH"] = str(code_root)  # ahead of the editable install's finder
    out = subprocess.run(
        [sys.executable, "-c", CHILD, str(context)],
        cwd=code_root,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    result: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument(
        "--code-root",
        type=Path,
        action="append",
        default=None,
        help="a checkout to measure (repeatable; samples alternate between them); default: this one",
    )
    parser.add_argument("--quick", action="store_true", help="5 repeats (a smoke run)")
    args = parser.parse_args()
    repeats = 5 if args.quick else args.repeats
    roots = [r.resolve() for r in (args.code_root or [ROOT])]
    samples: dict[Path, list[dict[str, Any]]] = {r: [] for r in roots}
    load_before = [round(x, 2) for x in os.getloadavg()]
    with tempfile.TemporaryDirectory() as tmp:
        context = Path(tmp) / "ctx.txt"
        context.write_text("line\n" * 100)
        for root in roots:
            sample(root, context)  # warm the OS file cache and .pyc files
        for _ in range(repeats):  # alternate, so that load on the machine hits every checkout alike
            for root in roots:
                samples[root].append(sample(root, context))
    table = Table(title="from recorder import run_rlm; run_rlm(..., lm=<LM object>)")
    for column in ("code", "import (median ms)", "to first model call (median ms)", "openai loaded"):
        table.add_column(column)
    saved: dict[str, Any] = {
        "repeats": repeats,
        "load_average_before": load_before,
        "load_average_after": [round(x, 2) for x in os.getloadavg()],
        "machine": {"python": platform.python_version(), "cpus": os.cpu_count()},
        "runs": {},
    }
    for root, runs in samples.items():
        label = "this checkout" if root == ROOT else str(root)
        row = {
            "import_ms_median": round(statistics.median(r["import_s"] for r in runs) * 1000, 1),
            "first_call_ms_median": round(statistics.median(r["first_call_s"] for r in runs) * 1000, 1),
            "openai_imported": any(r["openai"] for r in runs),
            "litellm_imported": any(r["litellm"] for r in runs),
        }
        saved["runs"][label] = row
        table.add_row(
            label,
            f"{row['import_ms_median']:.1f}",
            f"{row['first_call_ms_median']:.1f}",
            "yes" if row["openai_imported"] else "no",
        )
    Console().print(table)
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(saved, indent=2) + "\n")


if __name__ == "__main__":
    main()
