"""Task specs: loading YAML/TOML, reporting every problem, contexts, and `rlmine tasks validate`."""

from __future__ import annotations

import hashlib
import json
import random
import shutil
import sys
import types
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest
import typer
import yaml
from typer.testing import CliRunner

from recorder.tasks import Budget, TaskSpecError, load_task
from recorder.tasks.contexts import CACHE_DIR_NAME
from rlmine.cli.tasks import tasks_app
from rlmine.errors import UserError

FIXTURES = Path(__file__).parent / "fixtures" / "tasks"


@pytest.fixture
def task_dir(tmp_path: Path) -> Path:
    """A copy of the fixture tasks, so caches and sidecars never land in the repository."""
    dest = tmp_path / "tasks"
    shutil.copytree(FIXTURES, dest, ignore=shutil.ignore_patterns("__pycache__", "*.py"))
    return dest


class FakeFamily:
    """A deterministic generator that records every context it writes."""

    name = "fake"
    context_suffix = ".txt"

    def __init__(self) -> None:
        self.calls: list[tuple[Path, dict[str, Any], int, int]] = []

    def write_context(
        self, path: Path, *, params: Mapping[str, Any], seed: int, size_bytes: int, on_progress: Any = None
    ) -> dict[str, Any]:
        self.calls.append((path, dict(params), seed, size_bytes))
        line = f"seed={seed} word={params.get('word')}\n"
        path.write_text((line * (size_bytes // len(line) + 1))[:size_bytes])
        return {"expected": seed, "stats": {}}


class FailingFamily(FakeFamily):
    name = "failing"

    def write_context(self, path: Path, **kwargs: Any) -> dict[str, Any]:
        path.write_text("half a context")
        raise OSError("disk full")


def _fake_parse_size(raw: str | int) -> int:
    if isinstance(raw, int):
        return raw
    number, unit = raw[:-2], raw[-2:].upper()
    if unit != "KB" or not number.isdigit():
        raise UserError(f"cannot read the size {raw!r}", "e.g. 2KB")
    return int(number) * 1024


@pytest.fixture
def fake_family(monkeypatch: pytest.MonkeyPatch) -> FakeFamily:
    """Register FakeFamily in the real families registry, or in a stand-in module when it is absent."""
    family = FakeFamily()
    try:
        import recorder.families as families
    except ImportError:
        stand_in: Any = types.ModuleType("recorder.families")
        stand_in.FAMILIES = {}
        stand_in.get_family = lambda name: stand_in.FAMILIES[name]
        stand_in.parse_size = _fake_parse_size
        monkeypatch.setitem(sys.modules, "recorder.families", stand_in)
        families = stand_in
    monkeypatch.setitem(families.FAMILIES, "fake", family)
    monkeypatch.setitem(families.FAMILIES, "failing", FailingFamily())
    return family


def write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def problems_of(path: Path) -> list[str]:
    with pytest.raises(TaskSpecError) as info:
        load_task(path)
    return list(info.value.problems)


# --------------------------------------------------------------------------- loading


@pytest.mark.parametrize("name", ["valid.yaml", "valid.toml"])
def test_valid_task_loads(task_dir: Path, name: str) -> None:
    task = load_task(task_dir / name)
    assert task.name == "fixture-celebrities"
    assert task.family == "celebrities"
    assert task.checker_name == "topk_overlap"
    assert task.budget == Budget(max_iterations=8, max_cost=0.5)  # the rest are defaults
    assert task.split_counts() == {"train": 2, "validation": 1, "test": 1}
    assert [i.id for i in task.instances_in("train")] == ["train-000", "train-001"]
    assert [i.context.kind for i in task.instances] == ["file", "file", "dir", "file"]
    first, _, _, last = task.instances
    assert first.question_text(task) == "Which 2 celebrities are named most often in these prompts?"
    assert last.question_text(task) == "Name the single most frequent celebrity."
    assert first.expected == ["Taylor Swift", "Keanu Reeves"]
    assert task.make_checker().check("Keanu Reeves, Zendaya", first.expected).correct  # threshold 0.5
    assert task.instance("val-000").split == "validation"


def test_yaml_and_toml_mean_the_same_task(task_dir: Path) -> None:
    from_yaml = load_task(task_dir / "valid.yaml").spec_dict()
    from_toml = load_task(task_dir / "valid.toml").spec_dict()
    assert from_yaml.pop("source") != from_toml.pop("source")
    assert from_yaml == from_toml
    assert json.loads(json.dumps(from_yaml)) == from_yaml  # JSON-able for the store


def test_lookups_name_the_choices(task_dir: Path) -> None:
    task = load_task(task_dir / "valid.yaml")
    with pytest.raises(UserError, match="unknown split 'dev'"):
        task.instances_in("dev")
    with pytest.raises(UserError) as info:
        task.instance("train-00")
    assert "train-000" in info.value.one_line()
    assert len(task.instances_in(None)) == 4


def test_broken_yaml_reports_every_problem_with_its_line(task_dir: Path, fake_family: FakeFamily) -> None:
    file = task_dir / "broken.yaml"
    got = problems_of(file)
    expected = [
        (2, "unknown key 'descripton' in the task (did you mean 'description'?)"),
        (4, "unknown checker 'topk_overlapp' (did you mean 'topk_overlap'?)"),
        (6, "budget max_iterations must not be negative, got -3"),
        (7, "unknown key 'max_sub_cals' in budget (did you mean 'max_sub_calls'?)"),
        (13, "instance #2 has no id"),
        (16, "duplicate instance id 'a' (first at line 9)"),
        (21, "instance 'b': unknown split 'dev'"),
        (22, "instance 'b': context file contexts/missing.txt does not exist"),
        (23, "instance 'b': params lack {corpus} used by the question template"),
        (26, "instance 'c': unknown generator 'no-such-family'"),
    ]
    assert len(got) == len(expected), got
    for line, (want_line, text) in zip(got, expected, strict=True):
        assert line.startswith(f"{file}:{want_line}: "), line
        assert text in line, line
    assert "exact, contains, set_f1, topk_overlap, numeric" in got[1]  # the registry's choices
    assert "fake" in got[-1]  # ... and the families'


def test_broken_toml_reports_lines_too(task_dir: Path) -> None:
    file = task_dir / "broken.toml"
    got = problems_of(file)
    assert [line.split(": ", 1)[0] for line in got] == [f"{file}:{n}" for n in (6, 16, 17, 18)]
    assert "unknown split 'tset' (did you mean 'test'?)" in got[1]
    assert "params lack {k}" in got[3]


@pytest.mark.parametrize(
    ("text", "line", "message"),
    [
        ("name: x\nquestion: q\ninstances:\n  - id: a\n   split: train\n", 5, "YAML syntax error"),
        ("name: x\nquestion: [unclosed\n", 3, "YAML syntax error"),
        ("name: x\nname: y\nquestion: q\n", 2, "duplicate key 'name' (first at line 1)"),
        ("- just\n- a list\n", 1, "a task file is a mapping"),
    ],
)
def test_yaml_structure_errors(tmp_path: Path, text: str, line: int, message: str) -> None:
    file = write(tmp_path / "t.yaml", text)
    got = problems_of(file)
    assert any(p.startswith(f"{file}:{line}: ") and message in p for p in got), got


def test_toml_syntax_error_has_its_line(tmp_path: Path) -> None:
    file = write(tmp_path / "t.toml", 'name = "x"\nquestion = "q"\nbudget = {max_iterations = }\n')
    assert problems_of(file) == [f"{file}:3: TOML syntax error: Invalid value"]


def test_empty_file_is_a_problem(tmp_path: Path) -> None:
    assert problems_of(write(tmp_path / "t.yaml", "# nothing\n")) == [
        f"{tmp_path / 't.yaml'}: the task file is empty"
    ]


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("checker: exact\n", "missing question"),
        ('question: "Top {k} of {}"\n', "positional field"),
        ('question: "Top {k"\n', "question template is invalid"),
        ("question: q\nbudget: {max_wall_s: 0}\n", "max_wall_s must be greater than 0"),
        ("question: q\nbudget: {max_tokens: 1.5}\n", "max_tokens must be an integer"),
        ("question: q\nchecker: {name: numeric, tol: 1}\n", "has no parameter 'tol'"),
        ("question: q\nchecker: numeric\n", "expected value 'x' is not a number"),
    ],
)
def test_field_problems(tmp_path: Path, body: str, message: str) -> None:
    (tmp_path / "c.txt").write_text("ctx")
    text = (
        f"name: t\n{body}instances:\n  - id: a\n    context: c.txt\n    params: {{k: 1}}\n    expected: x\n"
    )
    got = problems_of(write(tmp_path / "t.yaml", text))
    assert any(message in p for p in got), got


def test_instance_overrides_make_the_template_optional(tmp_path: Path) -> None:
    (tmp_path / "c.txt").write_text("ctx")
    file = write(tmp_path / "t.yaml", "name: t\ninstances:\n  - {id: 1, context: c.txt, question: 'Why?'}\n")
    task = load_task(file)
    assert task.instances[0].id == "1"
    assert task.instances[0].question_text(task) == "Why?"
    assert task.instances[0].split == "train"
    assert task.checker == "exact"


# --------------------------------------------------------------------------- budgets


def test_budget_merged_applies_overrides_and_rejects_typos() -> None:
    budget = Budget().merged({"max_iterations": 3, "max_cost": None, "max_tokens": 1000})
    assert (budget.max_iterations, budget.max_cost, budget.max_tokens) == (3, None, 1000)
    assert budget.max_sub_calls == 500
    with pytest.raises(UserError, match="did you mean 'max_iterations'"):
        Budget().merged({"max_iteration": 3})


# --------------------------------------------------------------------------- contexts


GEN_TASK = """\
name: generated
question: "How often does {word} occur?"
checker: numeric
instances:
  - id: g1
    context: {generator: fake, params: {word: x}, seed: 3, size: 2KB}
    params: {word: x}
    expected: 3
  - id: g2
    context: {generator: fake, params: {word: x}, seed: 4, size: 2KB}
    params: {word: x}
    expected: 4
"""


def test_generator_context_is_materialized_once_and_cached(tmp_path: Path, fake_family: FakeFamily) -> None:
    task = load_task(write(tmp_path / "task.yaml", GEN_TASK))
    g1, g2 = task.instances
    first = g1.context_path(task)
    assert first.parent == tmp_path / CACHE_DIR_NAME
    assert first.read_text().startswith("seed=3 word=x")
    assert first.stat().st_size == 2048
    assert g1.context_path(task) == first
    assert (
        load_task(tmp_path / "task.yaml").instances[0].context_path(task) == first
    )  # a new process, same file
    assert len(fake_family.calls) == 1
    assert fake_family.calls[0][1:] == ({"word": "x"}, 3, 2048)
    assert g2.context_path(task) != first  # another seed, another file
    assert len(fake_family.calls) == 2
    assert sorted(p.name.startswith(".") for p in first.parent.iterdir()) == [
        False,
        False,
    ]  # no temp files left

    ref = g1.context_ref(task)
    assert ref.generator == {"family": "fake", "params": {"word": "x"}, "seed": 3, "size_bytes": 2048}
    assert ref.sha256 == hashlib.sha256(first.read_bytes()).hexdigest()
    assert (ref.bytes, ref.kind, ref.path) == (2048, "str", str(first))


def test_failed_generation_leaves_no_partial_file(tmp_path: Path, fake_family: FakeFamily) -> None:
    task = load_task(
        write(
            tmp_path / "task.yaml",
            GEN_TASK.replace("generator: fake, params: {word: x}, seed: 3", "generator: failing"),
        )
    )
    with pytest.raises(OSError, match="disk full"):
        task.instances[0].context_path(task)
    assert list((tmp_path / CACHE_DIR_NAME).iterdir()) == []


def test_file_hash_is_cached_in_a_sidecar_until_the_file_changes(task_dir: Path) -> None:
    task = load_task(task_dir / "valid.yaml")
    inst = task.instances[0]
    context = task_dir / "contexts" / "prompts-a.txt"
    ref = inst.context_ref(task)
    assert ref.sha256 == hashlib.sha256(context.read_bytes()).hexdigest()
    assert (ref.bytes, ref.kind, ref.generator) == (context.stat().st_size, "str", None)
    sidecar = context.with_name("prompts-a.txt.sha256")
    cached = json.loads(sidecar.read_text())
    sidecar.write_text(json.dumps({**cached, "sha256": "f" * 64}))
    assert inst.context_ref(task).sha256 == "f" * 64  # served from the sidecar, not re-hashed
    context.write_text("new content, new size\n")
    assert inst.context_ref(task).sha256 == hashlib.sha256(b"new content, new size\n").hexdigest()


def test_directory_and_json_contexts(task_dir: Path) -> None:
    task = load_task(task_dir / "valid.yaml")
    dir_ref = task.instance("val-000").context_ref(task)
    docs = task_dir / "contexts" / "docs"
    assert (dir_ref.kind, dir_ref.bytes) == ("dict", len("first doc\n") + len("second doc\n"))
    assert sorted(p.name for p in docs.iterdir()) == ["one.txt", "two.txt"]  # no sidecar inside the context
    assert task.instance("val-000").context_ref(task).sha256 == dir_ref.sha256
    (docs / "two.txt").write_text("changed\n")
    assert task.instance("val-000").context_ref(task).sha256 != dir_ref.sha256
    assert task.instance("train-001").context_ref(task).kind == "list"  # .jsonl


def test_context_that_vanished_after_loading(task_dir: Path) -> None:
    task = load_task(task_dir / "valid.yaml")
    (task_dir / "contexts" / "records.jsonl").unlink()
    with pytest.raises(UserError, match=r"records\.jsonl does not exist"):
        task.instance("train-001").context_path(task)


def test_real_family_generates_a_loadable_context(tmp_path: Path) -> None:
    families = pytest.importorskip("recorder.families")
    name = sorted(families.FAMILIES)[0]
    family = families.FAMILIES[name]
    params = family.make_instance_params(random.Random(7))
    instance = {"id": "a", "params": params, "context": {"generator": name, "seed": 1, "size": "100KB"}}
    text = yaml.safe_dump({"name": "real", "question": family.question_template, "instances": [instance]})
    task = load_task(write(tmp_path / "task.yaml", text))
    inst = task.instances[0]
    assert inst.context.params == params  # generator params default to the instance's
    path = inst.context_path(task)
    assert path.stat().st_size > 50_000
    assert path.suffix == family.context_suffix
    assert inst.context_ref(task).generator == {
        "family": name,
        "params": params,
        "seed": 1,
        "size_bytes": 102400,
    }


# --------------------------------------------------------------------------- CLI

runner = CliRunner()


def cli_app() -> typer.Typer:
    app = typer.Typer()
    app.add_typer(tasks_app, name="tasks")
    return app


def test_cli_validate_summarizes_a_valid_task(task_dir: Path) -> None:
    result = runner.invoke(cli_app(), ["tasks", "validate", str(task_dir / "valid.yaml")])
    assert result.exit_code == 0, result.output
    assert "task:        fixture-celebrities" in result.stdout
    assert "checker:     topk_overlap (threshold=0.5)" in result.stdout
    assert "4 (train 2, validation 1, test 1)" in result.stdout
    assert "max_iterations=8" in result.stdout
    assert "OK" in result.stdout


def test_cli_validate_json(task_dir: Path) -> None:
    result = runner.invoke(cli_app(), ["tasks", "validate", str(task_dir / "valid.toml"), "--json"])
    assert result.exit_code == 0
    data = json.loads(result.stdout)
    assert data["ok"] is True
    assert data["splits"] == {"train": 2, "validation": 1, "test": 1}
    assert data["contexts"] == {"file": 3, "dir": 1, "generator": 0}


def test_cli_validate_lists_every_problem_one_per_line(task_dir: Path) -> None:
    file = task_dir / "broken.toml"
    result = runner.invoke(cli_app(), ["tasks", "validate", str(file)])
    assert result.exit_code == 1
    lines = result.stderr.strip().splitlines()
    assert lines[0] == f"Error: 4 problems in task file {file}"
    assert [line.split(": ", 1)[0] for line in lines[1:]] == [f"{file}:{n}" for n in (6, 16, 17, 18)]
    assert "Traceback" not in result.output

    as_json = runner.invoke(cli_app(), ["tasks", "validate", str(file), "--json"])
    assert as_json.exit_code == 1
    assert [p["line"] for p in json.loads(as_json.stdout)["problems"]] == [6, 16, 17, 18]


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda d: d / "nope.yaml", "does not exist"),
        (lambda d: d, "is a directory, not a task file"),
        (lambda d: write(d / "blob.yaml", "").with_suffix(".yaml"), "the task file is empty"),
    ],
)
def test_cli_validate_unreadable_files(tmp_path: Path, make: Any, message: str) -> None:
    result = runner.invoke(cli_app(), ["tasks", "validate", str(make(tmp_path))])
    assert result.exit_code == 1
    assert message in result.stderr
    assert result.stderr.startswith("Error: ")
    assert "Traceback" not in result.output


def test_cli_validate_binary_file_is_one_line(tmp_path: Path) -> None:
    blob = tmp_path / "task.yaml"
    blob.write_bytes(b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR")
    result = runner.invoke(cli_app(), ["tasks", "validate", str(blob)])
    assert result.exit_code == 1
    assert result.stderr.count("\n") == 1
    assert "is a binary file" in result.stderr
