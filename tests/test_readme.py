"""Every ``rlmine`` command and every Python snippet in the README runs as written.

The commands run in order, in one scratch folder (so ``tasks/logs`` made by one line is there
for the next), each as ``python -m rlmine`` in a subprocess. A few are adapted, and only
these: context sizes are made small (the code path is the same, the test stays fast); the
placeholder run, tactic and agent ids become real ones (``agent build --run`` takes the
imported FINAL_VAR fixture run, whose context is copied to ``server.log``) (``rlmine demo`` gets ``--size 100KB``); the import sources are the test fixtures; the
long-running servers are started, checked to serve, and stopped; the line for a real
provider runs without an API key and must stop at the preflight, writing nothing.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()
FIXTURES = ROOT / "tests" / "fixtures"


def readme_blocks(language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", README, re.S)


def readme_commands() -> list[str]:
    """The ``rlmine …`` lines of the README's shell blocks, continuations joined, comments cut."""
    commands = []
    for block in readme_blocks("bash"):
        text = re.sub(r"\\\n\s*", " ", block)
        for line in text.splitlines():
            line = line.split("  #", 1)[0].strip()
            if line.startswith("rlmine "):
                commands.append(line)
    return commands


def env_for(tmp: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RLMINE_", "OPENAI_"))}
    return {**env, "PYTHONPATH": str(ROOT), "COLUMNS": "120", **extra}


def run(argv: list[str], cwd: Path, **extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "rlmine", *argv],
        cwd=cwd,
        env=env_for(cwd, **extra),
        capture_output=True,
        text=True,
        timeout=300,
    )


def serves(argv: list[str], cwd: Path, pattern: str) -> str:
    """Start a long-running command, wait for ``pattern`` on stdout, stop it; the matched line."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "rlmine", *argv],
        cwd=cwd,
        env=env_for(cwd),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    try:
        assert proc.stdout is not None
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            line = proc.stdout.readline()
            if re.search(pattern, line):
                return line
            assert line or proc.poll() is None, f"{argv} exited: {proc.returncode}"
        raise AssertionError(f"{argv} never printed {pattern!r}")
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_the_readme_lists_the_commands_this_test_expects() -> None:
    commands = readme_commands()
    assert len(commands) >= 15
    assert any("--resume" in c for c in commands)


@pytest.mark.timeout(900)
def test_every_readme_command_runs(tmp_path: Path) -> None:
    shutil.copytree(FIXTURES / "rlms", tmp_path / "logs")
    for log in (FIXTURES / "rlms_codegen").glob("*.jsonl"):
        shutil.copy(log, tmp_path / "logs")
    # The context the FINAL_VAR fixture run read: `agent build --run` replays the run on it.
    shutil.copy(FIXTURES / "rlms_codegen" / "context.log", tmp_path / "server.log")
    shutil.copy(FIXTURES / "dspy" / "predictions.jsonl", tmp_path / "results.jsonl")
    run_id = ""
    for line in readme_commands():
        argv = shlex.split(line)[1:]
        argv = [
            {"50MB": "100KB", "30": "8"}.get(arg, arg)
            if i and argv[i - 1] in ("--size", "--instances")
            else arg
            for i, arg in enumerate(argv)
        ]
        if argv[0] in ("dashboard", "sim-server"):
            port = str(free_port())
            argv = [*argv[:1], *[port if a == "8000" else a for a in argv[1:]]]
            if "--port" not in argv:
                argv += ["--port", port]
            assert f":{port}" in serves(argv, tmp_path, r"http://"), line
            continue
        if argv[:2] == ["runs", "show"]:
            argv[2] = run_id
        if argv[:2] in (["tactics", "show"], ["tactics", "merge"], ["tactics", "rename"]):
            listed = run(["tactics", "list", "--task", "logs", "--json"], tmp_path)
            ids = re.findall(r'"id": "(T[0-9]+)"', listed.stdout)
            argv[2] = ids[0]
            if argv[1] == "merge":
                argv[3] = ids[-1]
        if argv[:2] == ["tactics", "unedit"]:
            listed = run(["tactics", "edits", "--json"], tmp_path)
            argv[2] = re.findall(r'"id": "(E[0-9A-Z]+)"', listed.stdout)[0]
        if argv[:2] == ["agent", "show"]:
            listed = run(["agent", "list", "--json"], tmp_path)
            argv[2] = re.findall(r'"id": "(agent-[0-9a-f]+)"', listed.stdout)[0]
        if argv[:2] == ["agent", "build"] and "--run" in argv:
            imported = run(["runs", "list", "--engine", "rlms", "--json"], tmp_path).stdout
            # the fixture whose answer comes from FINAL_VAR (started 2025-02-01 09:00)
            final_var = re.findall(r'"id": "([0-9A-Z]{26})"[^}]*"started_at": "2025-02-01', imported)
            argv[argv.index("--run") + 1] = final_var[0]
        if argv == ["demo"]:  # the same pipeline on small contexts (its own test covers the sizes)
            argv += ["--size", "100KB"]
        result = run(argv, tmp_path)
        if "--api-base" in argv and "api.openai.com" in line:  # a real provider, no key here
            assert result.returncode == 1 and "OPENAI_API_KEY is not set" in result.stderr, result.stderr
            continue
        assert result.returncode == 0, f"{line}\n{result.stdout}\n{result.stderr}"
        if "--resume" in argv:
            assert "runs were already done" in result.stdout, result.stdout
        if argv[0] == "record" and not run_id:
            listed = run(["runs", "list", "--json"], tmp_path)
            run_id = re.findall(r'"id": "([0-9A-Z]{26})"', listed.stdout)[0]


def test_every_readme_python_snippet_runs(tmp_path: Path) -> None:
    made = run(
        shlex.split("tasks make incident-logs --size 100KB --instances 8 --name logs --out tasks/logs"),
        tmp_path,
    )
    assert made.returncode == 0, made.stderr
    for snippet in readme_blocks("python"):
        result = subprocess.run(
            [sys.executable, "-c", snippet],
            cwd=tmp_path,
            env=env_for(tmp_path),
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert result.returncode == 0, f"{snippet}\n{result.stderr}"
