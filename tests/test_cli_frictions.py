"""Newcomer frictions: help that reads right, hints that name real flags and commands, one-line errors."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import typer.main
from typer.testing import CliRunner

from rlmine.cli import app

REPO = Path(__file__).resolve().parents[1]
_ERRORS = "UserError|RlmineRuntimeError|LMError|StoreError|NotFoundError|SandboxError|DatabaseBusyError|SchemaTooNewError"


def _walk(cmd: Any, path: tuple[str, ...] = ()) -> Iterator[tuple[tuple[str, ...], Any]]:
    yield path, cmd
    for name, sub in sorted(getattr(cmd, "commands", {}).items()):
        yield from _walk(sub, (*path, name))


COMMANDS = dict(_walk(typer.main.get_command(app)))


def _hints() -> Iterator[tuple[Path, str]]:
    """The text of every domain error raised in the packages (message and hint)."""
    for folder in ("rlmine", "recorder"):
        for path in sorted((REPO / folder).rglob("*.py")):
            for match in re.finditer(rf"(?:{_ERRORS})\((.*?)\)\n", path.read_text(), re.S):
                yield path, match.group(1)


@pytest.mark.parametrize("path", list(COMMANDS), ids=lambda p: " ".join(p) or "rlmine")
def test_flags_are_not_shown_as_taking_a_value(path: tuple[str, ...]) -> None:
    result = CliRunner().invoke(app, [*path, "--help"], env={"COLUMNS": "200", "NO_COLOR": "1"})
    assert result.exit_code == 0
    assert "<bool>" not in result.output, result.output


def test_short_options_mean_one_thing_across_commands() -> None:
    meaning: dict[str, set[str]] = {}
    for cmd in COMMANDS.values():
        for param in getattr(cmd, "params", []):
            for opt in getattr(param, "opts", []):
                if re.fullmatch(r"-[a-zA-Z]", opt):
                    longest = max(param.opts, key=len)
                    meaning.setdefault(opt, set()).add(longest)
    assert {short: longs for short, longs in meaning.items() if len(longs) > 1} == {}
    assert meaning.get("-n") == {"--runs"}  # `tasks make` says --instances in full


def test_error_hints_name_only_flags_and_commands_that_exist() -> None:
    flags = {
        opt
        for cmd in COMMANDS.values()
        for param in getattr(cmd, "params", [])
        for opt in [*getattr(param, "opts", []), *getattr(param, "secondary_opts", [])]
    }
    missing = []
    for path, text in _hints():
        for flag in re.findall(r"(?<![\w-])--[a-z][a-z0-9-]+", text):
            if flag not in flags:
                missing.append(f"{path.name}: {flag}")
        for words in re.findall(r"`rlmine ([a-z][a-z-]*(?: [a-z][a-z-]*)?)", text):
            parts = tuple(words.split())
            if parts not in COMMANDS and parts[:1] not in COMMANDS:
                missing.append(f"{path.name}: rlmine {words}")
    assert missing == []


def _rlmine(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.run(
        [sys.executable, "-m", "rlmine", *args], env=env, capture_output=True, text=True, timeout=60
    )


@pytest.mark.parametrize("port", ["99999", "-1"])
def test_sim_server_port_out_of_range_is_one_line(port: str) -> None:
    result = _rlmine("sim-server", "--port", port)
    assert result.returncode == 1 and result.stdout == ""
    assert (
        result.stderr
        == f"Error: port {port} is out of range (0-65535) — try --port 8000, or --port 0 for a free one\n"
    )
