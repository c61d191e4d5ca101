"""docs/task-spec.md stays true: its examples validate, and its tables list exactly the fields
the loader accepts (a field added to the loader but not to the page fails here)."""

from __future__ import annotations

import re
import subprocess
import sys
from dataclasses import fields
from pathlib import Path

import pytest

from recorder.checkers import CHECKERS
from recorder.tasks import load_task
from recorder.tasks.loader import GENERATOR_KEYS, INSTANCE_KEYS, TOP_KEYS
from recorder.tasks.spec import Budget

ROOT = Path(__file__).resolve().parents[1]
DOC = (ROOT / "docs" / "task-spec.md").read_text()


def section(title: str) -> str:
    return DOC.split(f"## {title}\n", 1)[1].split("\n## ", 1)[0]


def first_column(title: str) -> list[str]:
    rows = [line for line in section(title).splitlines() if line.startswith("| `")]
    return [re.match(r"\| `([^`]+)`", row).group(1) for row in rows]  # type: ignore[union-attr]


@pytest.fixture
def example_dir(tmp_path: Path) -> Path:
    (tmp_path / "contexts" / "runbooks").mkdir(parents=True)
    (tmp_path / "contexts" / "day-1.log").write_text("2024-06-08 ERROR checkout-api: payment failed\n")
    (tmp_path / "contexts" / "tickets.jsonl").write_text('{"id": 1, "text": "timeout"}\n')
    (tmp_path / "contexts" / "runbooks" / "disk.md").write_text("# Disk pressure\n")
    for language, body in re.findall(r"```(yaml|toml)\n(.*?)```", DOC, re.S):
        (tmp_path / f"task.{language}").write_text(body)
    return tmp_path


@pytest.mark.parametrize("language", ["yaml", "toml"])
def test_the_example_is_accepted_by_tasks_validate(example_dir: Path, language: str) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "rlmine", "tasks", "validate", str(example_dir / f"task.{language}")],
        capture_output=True,
        text=True,
        timeout=60,
        env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin", "COLUMNS": "120"},
    )
    assert result.returncode == 0, result.stderr
    assert "OK: the task file is valid" in result.stdout


def test_the_yaml_and_toml_examples_say_the_same(example_dir: Path) -> None:
    yaml_spec = {k: v for k, v in load_task(example_dir / "task.yaml").spec_dict().items() if k != "source"}
    toml_spec = {k: v for k, v in load_task(example_dir / "task.toml").spec_dict().items() if k != "source"}
    assert yaml_spec == toml_spec
    kinds = {
        "generator" if "generator" in inst["context"] else next(iter(inst["context"]))
        for inst in yaml_spec["instances"]
    }
    assert kinds == {"file", "dir", "generator"}  # the example shows every kind of context


def test_the_tables_list_exactly_the_fields_the_loader_accepts() -> None:
    assert first_column("Top-level fields") == list(TOP_KEYS)
    assert first_column("Instances") == list(INSTANCE_KEYS)
    assert first_column("Budget") == [f.name for f in fields(Budget)]
    documented = first_column("Checkers")
    assert documented == [*CHECKERS, "python:module:function"]
    generator_row = next(line for line in section("Contexts").splitlines() if "generator:" in line)
    assert all(f"{key}:" in generator_row for key in GENERATOR_KEYS)


def test_the_budget_defaults_are_the_code_defaults() -> None:
    rows = [line for line in section("Budget").splitlines() if line.startswith("| `")]
    for row, field in zip(rows, fields(Budget), strict=True):
        shown = row.split("|")[2].strip()
        assert shown == ("none" if field.default is None else f"{field.default:g}"), row
