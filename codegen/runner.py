"""Run a generated agent script as a user would: ``python agent.py … --json`` in a subprocess.

Used to verify a single-run agent (replay mode) and by ``rlmine eval`` (live mode), so
the numbers measured are those of the standalone script, interpreter start-up included.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from codegen.render import RenderedAgent


@dataclass(frozen=True, slots=True)
class ScriptOutcome:
    answer: Any
    answer_text: str | None
    llm_calls: int
    tokens_in: int
    tokens_out: int
    wall_s: float  # measured outside the script: start-up included
    error: str | None
    exit_code: int


def _text(answer: Any) -> str:
    return answer if isinstance(answer, str) else json.dumps(answer, ensure_ascii=False, default=str)


def run_script_file(
    script: Path,
    context: Path,
    question: str | None,
    *,
    llm: str,
    api_base: str | None = None,
    model: str | None = None,
    timeout_s: float = 600.0,
    extra: tuple[str, ...] = (),
) -> ScriptOutcome:
    """Run ``script`` once and read its ``--json`` report (``extra``: more arguments)."""
    cmd = [sys.executable, str(script), "--context", str(context), "--llm", llm, "--json", *extra]
    if question is not None:
        cmd += ["--question", question]
    if api_base:
        cmd += ["--api-base", api_base]
    if model:
        cmd += ["--model", model]
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}  # the script stands alone
    started = time.monotonic()
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout_s, env=env, check=False)
    except subprocess.TimeoutExpired:
        return ScriptOutcome(
            None, None, 0, 0, 0, time.monotonic() - started, f"timed out after {timeout_s:g} s", -1
        )
    wall = time.monotonic() - started
    if proc.returncode != 0:
        lines = [line for line in proc.stderr.strip().splitlines() if line.strip()]
        return ScriptOutcome(
            None, None, 0, 0, 0, wall, lines[-1] if lines else f"exit {proc.returncode}", proc.returncode
        )
    try:
        report = json.loads(proc.stdout.strip().splitlines()[-1])
    except (ValueError, IndexError):
        return ScriptOutcome(None, None, 0, 0, 0, wall, "the script printed no JSON report", proc.returncode)
    answer = report.get("answer")
    return ScriptOutcome(
        answer,
        _text(answer),
        int(report.get("llm_calls") or 0),
        int(report.get("tokens_in") or 0),
        int(report.get("tokens_out") or 0),
        wall,
        None,
        0,
    )


def run_script(
    rendered: RenderedAgent, context: Path, question: str | None, *, llm: str, **kwargs: Any
) -> ScriptOutcome:
    """Write ``rendered`` (and its side-car) to a scratch folder and run it."""
    with tempfile.TemporaryDirectory(prefix="rlmine-agent-") as tmp:
        script = Path(tmp) / "agent.py"
        script.write_text(rendered.script, encoding="utf-8")
        if rendered.sidecar_name and rendered.sidecar is not None:
            (Path(tmp) / rendered.sidecar_name).write_text(rendered.sidecar, encoding="utf-8")
        return run_script_file(script, context, question, llm=llm, **kwargs)
