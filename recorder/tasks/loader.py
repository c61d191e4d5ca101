"""``load_task``: validate a task file completely and build a :class:`TaskSpec`.

Validation never stops at the first problem: every check appends a
:class:`Problem` (with the line of the offending key) and the loader raises
one :class:`TaskSpecError` listing them all, sorted by line, so a user fixes a
broken file in one pass. Checks: unknown keys (with a did-you-mean), required
fields, types, budget ranges, the checker (through the checker registry),
instance ids (present, unique), splits, template fields present in each
instance's params, context paths (relative to the task file) and generator
names. The generator check uses :mod:`recorder.families` when it can be
imported, and is skipped otherwise.
"""

from __future__ import annotations

import difflib
import json
import logging
import re
import string
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import fields
from pathlib import Path
from typing import Any

from recorder.tasks.document import Document, Problem, read_document
from recorder.tasks.spec import DEFAULT_SPLIT, SPLITS, Budget, ContextSource, InstanceSpec, TaskSpec
from rlmine.errors import UserError

__all__ = ["TaskSpecError", "load_task"]

log = logging.getLogger(__name__)

TOP_KEYS = ("name", "description", "family", "question", "checker", "budget", "instances")
INSTANCE_KEYS = ("id", "split", "context", "params", "expected", "question")
GENERATOR_KEYS = ("generator", "params", "seed", "size")
DEFAULT_CHECKER = "exact"
_POSITIVE = {"max_iterations", "cell_timeout_s", "max_wall_s"}  # zero would make every run fail at once
_INT_FIELDS = {"max_iterations", "max_sub_calls", "max_output_chars", "max_tokens"}
_OPTIONAL = {"max_cost", "max_tokens"}


class TaskSpecError(UserError):
    """A task file with problems; ``problems`` holds one ``FILE:LINE: problem`` string each."""

    def __init__(self, file: str, problems: Sequence[Problem]) -> None:
        ordered = sorted(problems, key=lambda p: (p.line is None, p.line or 0))
        self.file = file
        self.problems: tuple[str, ...] = tuple(p.render(file) for p in ordered)
        self.items: tuple[Problem, ...] = tuple(ordered)
        count = f"{len(ordered)} problem{'s' if len(ordered) != 1 else ''}"
        super().__init__(
            f"{count} in task file {file}:\n" + "\n".join(self.problems), f"rlmine tasks validate {file}"
        )


def load_task(path: str | Path) -> TaskSpec:
    """Read, validate and return the task at ``path`` (YAML or TOML).

    Raises :class:`UserError` for an unreadable file and :class:`TaskSpecError`
    (a UserError) listing every problem of an invalid one.
    """
    file = Path(path)
    doc = read_document(file)
    checker = _Validator(doc, file.resolve().parent)
    spec = checker.build(file.resolve()) if doc.data is not None else None
    problems = doc.problems + checker.problems
    if problems or spec is None:
        raise TaskSpecError(str(path), problems or [Problem(None, "the task file is empty")])
    return spec


def _did_you_mean(word: str, choices: Iterable[str]) -> str:
    close = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _families() -> Any:
    """The families package, or None while it cannot be imported (then generator checks are skipped)."""
    try:
        import recorder.families as families
    except Exception as exc:  # a broken optional dependency must not break validation
        log.debug("recorder.families unavailable, skipping generator checks: %s", exc)
        return None
    return families


class _Validator:
    def __init__(self, doc: Document, base_dir: Path) -> None:
        self.doc = doc
        self.base_dir = base_dir
        self.problems: list[Problem] = []
        self.families = _families()

    def add(self, path: tuple[str | int, ...], message: str) -> None:
        self.problems.append(Problem(self.doc.line(*path), message))

    def unknown_keys(
        self, mapping: Mapping[Any, Any], allowed: Sequence[str], path: tuple[str | int, ...], where: str
    ) -> None:
        for key in mapping:
            if key not in allowed:
                self.add(
                    (*path, str(key)), f"unknown key {key!r} in {where}{_did_you_mean(str(key), allowed)}"
                )

    def text(self, data: Mapping[str, Any], key: str, *, required: bool) -> str | None:
        value = data.get(key)
        if value is None:
            if required:
                self.add((key,), f"missing {key}: add `{key}: ...` at the top level")
            return None
        if not isinstance(value, str) or (required and not value.strip()):
            self.add((key,), f"{key} must be a non-empty string, got {value!r}")
            return None
        return value

    # ------------------------------------------------------------------ task

    def build(self, source: Path) -> TaskSpec | None:
        data = self.doc.data
        if not isinstance(data, dict):
            self.add(
                (), f"a task file is a mapping with keys {', '.join(TOP_KEYS)}; got {type(data).__name__}"
            )
            return None
        self.unknown_keys(data, TOP_KEYS, (), "the task")
        name = self.text(data, "name", required=True)
        description = self.text(data, "description", required=False)
        family = self.text(data, "family", required=False)
        budget = self.budget(data.get("budget"))
        checker_spec, expected_problem = self.checker(data.get("checker", DEFAULT_CHECKER))
        instances = self.instances(data.get("instances"), expected_problem)
        question = data.get("question")
        if question is None and (not instances or any(inst.question is None for inst in instances)):
            self.add((), "missing question: add `question: ...` (a template over instance params, e.g. {k})")
        elif question is not None and (not isinstance(question, str) or not question.strip()):
            self.add(("question",), f"question must be a non-empty string, got {question!r}")
            question = None
        elif isinstance(question, str):
            self.template_fields(question, data.get("instances"), instances)
        if self.problems or name is None or checker_spec is None or budget is None:
            return None
        return TaskSpec(
            name=name,
            question=question if isinstance(question, str) else "",
            checker=checker_spec,
            instances=tuple(instances),
            source=source,
            description=description,
            family=family,
            budget=budget,
        )

    def budget(self, raw: Any) -> Budget | None:
        if raw is None:
            return Budget()
        if not isinstance(raw, dict):
            self.add(("budget",), f"budget must be a mapping of limits, got {raw!r}")
            return None
        names = [f.name for f in fields(Budget)]
        self.unknown_keys(raw, names, ("budget",), "budget")
        values: dict[str, Any] = {}
        for key in names:
            if key not in raw:
                continue
            value = raw[key]
            path = ("budget", key)
            if value is None:
                if key not in _OPTIONAL:
                    self.add(path, f"budget {key} cannot be null; remove it to use the default")
                continue
            wanted = "an integer" if key in _INT_FIELDS else "a number"
            ok_type = isinstance(value, int) if key in _INT_FIELDS else isinstance(value, int | float)
            if isinstance(value, bool) or not ok_type:
                self.add(path, f"budget {key} must be {wanted}, got {value!r}")
            elif value < 0:
                self.add(path, f"budget {key} must not be negative, got {value!r}")
            elif value == 0 and key in _POSITIVE:
                self.add(path, f"budget {key} must be greater than 0")
            else:
                values[key] = value
        return Budget(**values)

    def checker(self, raw: Any) -> tuple[str | dict[str, Any] | None, Callable[[Any], str | None] | None]:
        from recorder.checkers import get_checker

        path: tuple[str, ...] = ("checker", "name") if isinstance(raw, dict) else ("checker",)
        try:
            checker = get_checker(raw)
        except UserError as exc:
            self.add(path, exc.one_line())
            return None, None
        spec = dict(raw) if isinstance(raw, dict) else str(raw).strip()
        return spec, getattr(checker, "expected_problem", None)

    # ------------------------------------------------------------------ instances

    def instances(self, raw: Any, expected_problem: Callable[[Any], str | None] | None) -> list[InstanceSpec]:
        if raw is None:
            self.add((), "missing instances: add a list under `instances:` (each with id, split, context)")
            return []
        if not isinstance(raw, list) or not raw:
            self.add(("instances",), "instances must be a non-empty list")
            return []
        out: list[InstanceSpec] = []
        first_line: dict[str, int | None] = {}
        for index, item in enumerate(raw):
            inst = self.instance(index, item, expected_problem)
            if inst is None:
                continue
            if inst.id in first_line:
                where = f" (first at line {first_line[inst.id]})" if first_line[inst.id] else ""
                self.add(("instances", index, "id"), f"duplicate instance id {inst.id!r}{where}")
                continue
            first_line[inst.id] = self.doc.line("instances", index, "id")
            out.append(inst)
        return out

    def instance(
        self, index: int, item: Any, expected_problem: Callable[[Any], str | None] | None
    ) -> InstanceSpec | None:
        at: tuple[str | int, ...] = ("instances", index)
        if not isinstance(item, dict):
            self.add(at, f"instance #{index + 1} must be a mapping (id, split, context, ...), got {item!r}")
            return None
        self.unknown_keys(item, INSTANCE_KEYS, at, f"instance #{index + 1}")
        raw_id = item.get("id")
        if (
            raw_id is None
            or isinstance(raw_id, bool)
            or not isinstance(raw_id, str | int)
            or not str(raw_id).strip()
        ):
            self.add(at, f"instance #{index + 1} has no id: add `id: ...` (a unique string)")
            label = f"#{index + 1}"
            ident = None
        else:
            ident = str(raw_id).strip()
            label = repr(ident)
        split = item.get("split", DEFAULT_SPLIT)
        if split not in SPLITS:
            guess = _did_you_mean(str(split), SPLITS)
            self.add(
                (*at, "split"),
                f"instance {label}: unknown split {split!r}{guess}; use one of {', '.join(SPLITS)}",
            )
        params = item.get("params", {})
        if params is None:
            params = {}
        if not isinstance(params, dict) or any(not isinstance(k, str) for k in params):
            self.add(
                (*at, "params"),
                f"instance {label}: params must be a mapping with string keys, got {params!r}",
            )
            params = {}
        question = item.get("question")
        if question is not None and not isinstance(question, str):
            self.add((*at, "question"), f"instance {label}: question must be a string, got {question!r}")
        expected = item.get("expected")
        self.check_expected(at, label, expected, expected_problem)
        context = self.context(at, label, item.get("context"), params)
        if ident is None or context is None or split not in SPLITS:
            return None
        return InstanceSpec(
            ident, split, context, params, expected, question if isinstance(question, str) else None
        )

    def check_expected(
        self,
        at: tuple[str | int, ...],
        label: str,
        expected: Any,
        problem: Callable[[Any], str | None] | None,
    ) -> None:
        try:
            json.dumps(expected, allow_nan=False)
        except (TypeError, ValueError):
            self.add(
                (*at, "expected"),
                f"instance {label}: expected value {expected!r} is not JSON data (quote it)",
            )
            return
        message = problem(expected) if problem is not None else None
        if message:
            self.add((*at, "expected"), f"instance {label}: {message}")

    def context(
        self, at: tuple[str | int, ...], label: str, raw: Any, instance_params: dict[str, Any]
    ) -> ContextSource | None:
        path = (*at, "context")
        if raw is None:
            self.add(
                at,
                f"instance {label} has no context: add `context: contexts/FILE` (relative to the task file)",
            )
            return None
        if isinstance(raw, str):
            target = self.base_dir / raw
            if target.is_dir():
                return ContextSource("dir", raw)
            if not target.is_file():
                self.add(path, f"instance {label}: context file {raw} does not exist (looked for {target})")
                return None
            return ContextSource("file", raw)
        if not isinstance(raw, dict):
            self.add(
                path,
                f"instance {label}: context must be a path or a mapping (file, dir or generator), got {raw!r}",
            )
            return None
        kinds = [k for k in ("file", "dir", "generator") if k in raw]
        if len(kinds) != 1:
            self.add(
                path,
                f"instance {label}: context needs exactly one of file, dir, generator; got {sorted(map(str, raw))}",
            )
            return None
        if kinds[0] == "generator":
            return self.generator(path, label, raw, instance_params)
        self.unknown_keys(raw, kinds, path, f"instance {label}'s context")
        rel = raw[kinds[0]]
        if not isinstance(rel, str):
            self.add((*path, kinds[0]), f"instance {label}: context {kinds[0]} must be a path, got {rel!r}")
            return None
        target = self.base_dir / rel
        exists = target.is_dir() if kinds[0] == "dir" else target.is_file()
        if not exists:
            what = "directory" if kinds[0] == "dir" else "file"
            self.add(
                (*path, kinds[0]),
                f"instance {label}: context {what} {rel} does not exist (looked for {target})",
            )
            return None
        return ContextSource("dir" if kinds[0] == "dir" else "file", rel)

    def generator(
        self, path: tuple[str | int, ...], label: str, raw: dict[str, Any], instance_params: dict[str, Any]
    ) -> ContextSource | None:
        """A generator context; its params default to the instance's (the question and the data agree)."""
        self.unknown_keys(raw, GENERATOR_KEYS, path, f"instance {label}'s generator context")
        ok = True
        name = raw.get("generator")
        registry = getattr(self.families, "FAMILIES", None)
        if not isinstance(name, str) or not name:
            self.add((*path, "generator"), f"instance {label}: generator must be a family name, got {name!r}")
            ok = False
        elif isinstance(registry, Mapping) and name not in registry:
            choices = ", ".join(sorted(registry))
            guess = _did_you_mean(name, registry)
            self.add(
                (*path, "generator"),
                f"instance {label}: unknown generator {name!r}{guess}; families: {choices}",
            )
            ok = False
        params = raw["params"] if raw.get("params") is not None else instance_params
        if not isinstance(params, dict):
            self.add(
                (*path, "params"), f"instance {label}: generator params must be a mapping, got {params!r}"
            )
            ok = False
        seed = raw.get("seed", 0)
        if isinstance(seed, bool) or not isinstance(seed, int):
            self.add((*path, "seed"), f"instance {label}: generator seed must be an integer, got {seed!r}")
            ok = False
        size_bytes = self.size(path, label, raw.get("size"))
        if not ok or size_bytes is None:
            return None
        return ContextSource(
            "generator",
            generator=name,
            params=params,
            seed=seed,
            size_bytes=size_bytes or None,
            size=raw["size"],
        )

    def size(self, path: tuple[str | int, ...], label: str, raw: Any) -> int | None:
        """Bytes of a generator context; 0 when only recorder.families could read it; None if invalid."""
        where = (*path, "size")
        if raw is None:
            self.add(path, f"instance {label}: generator context needs a size, e.g. `size: 1MB`")
            return None
        parse_size = getattr(self.families, "parse_size", None)
        try:
            if parse_size is not None:
                size_bytes = int(parse_size(raw))
            elif isinstance(raw, int | float) and not isinstance(raw, bool):
                size_bytes = int(raw)
            else:  # families unavailable: a size in words ("1MB") is read when the context is made
                return 0
        except UserError as exc:
            self.add(where, f"instance {label}: {exc.one_line()}")
            return None
        if size_bytes <= 0:
            self.add(where, f"instance {label}: generator size must be positive, got {raw!r}")
            return None
        return size_bytes

    # ------------------------------------------------------------------ template

    def template_fields(self, template: str, raw_instances: Any, instances: Sequence[InstanceSpec]) -> None:
        try:
            names = _template_names(template)
        except ValueError as exc:
            self.add(
                ("question",), f"question template is invalid: {exc} (write {{{{ and }}}} for literal braces)"
            )
            return
        positional = sorted(n for n in names if not n or n.isdigit())
        if positional:
            self.add(("question",), "question template uses a positional field {}; name it, e.g. {k}")
            return
        by_id = {inst.id: inst for inst in instances}
        for index, item in enumerate(raw_instances if isinstance(raw_instances, list) else []):
            if not isinstance(item, dict) or item.get("question") is not None:
                continue
            inst = by_id.get(str(item.get("id", "")).strip())
            params = inst.params if inst is not None else item.get("params")
            if not isinstance(params, Mapping):
                params = {}
            missing = sorted(names - set(params))
            if missing:
                label = repr(str(item["id"]).strip()) if item.get("id") is not None else f"#{index + 1}"
                fields_text = ", ".join("{" + m + "}" for m in missing)
                at = ("instances", index, "params") if "params" in item else ("instances", index)
                self.add(at, f"instance {label}: params lack {fields_text} used by the question template")


def _template_names(template: str) -> set[str]:
    """Root names of the fields in a str.format template (``{a.b}`` -> ``a``)."""
    names: set[str] = set()
    for _literal, field_name, _spec, _conv in string.Formatter().parse(template):
        if field_name is not None:
            names.add(re.split(r"[.\[]", field_name, maxsplit=1)[0])
    return names
