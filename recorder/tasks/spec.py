"""The typed task model: what a task file means once it has been validated.

A :class:`TaskSpec` is a question template, a checker, a budget and a list of
:class:`InstanceSpec` (one context + params + expected answer each, in a
train / validation / test split). Values are frozen dataclasses built only by
:mod:`recorder.tasks.loader`, which has already checked every field, so the
methods here trust their inputs apart from the filesystem (a context file can
vanish after validation). Context resolution lives in
:mod:`recorder.tasks.contexts`.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from rlmine.errors import UserError

if TYPE_CHECKING:
    from recorder.checkers import Checker
    from rlmine.trace import ContextRef

SPLITS: tuple[str, ...] = ("train", "validation", "test")
DEFAULT_SPLIT = "train"
ContextKind = Literal["file", "dir", "generator"]
CheckerSpec = str | Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class Budget:
    """Limits of one RLM run. ``None`` for cost and tokens means unlimited."""

    max_iterations: int = 12
    max_sub_calls: int = 500
    max_output_chars: int = 4000
    cell_timeout_s: float = 120.0
    max_wall_s: float = 900.0
    max_cost: float | None = None
    max_tokens: int | None = None

    def merged(self, overrides: Mapping[str, Any]) -> Budget:
        """A copy with ``overrides`` applied; ``None`` values in overrides are ignored.

        Unknown keys raise :class:`UserError` (a typo must not silently lift a limit).
        """
        names = [f.name for f in fields(self)]
        unknown = [k for k in overrides if k not in names]
        if unknown:
            close = difflib.get_close_matches(unknown[0], names, n=1)
            guess = f" (did you mean {close[0]!r}?)" if close else ""
            raise UserError(f"unknown budget field {unknown[0]!r}{guess}", f"one of: {', '.join(names)}")
        changes = {k: v for k, v in overrides.items() if v is not None}
        return replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True, slots=True)
class ContextSource:
    """Where an instance's context comes from, as written in the task file.

    ``path`` is relative to the task file for ``file`` and ``dir``; a
    ``generator`` context names a family and is materialized on first use.
    """

    kind: ContextKind
    path: str | None = None
    generator: str | None = None
    params: Mapping[str, Any] = field(default_factory=dict)
    seed: int = 0
    size_bytes: int | None = None
    size: str | int | None = None  # as written ("1MB"), kept for spec_dict round trips

    def to_dict(self) -> dict[str, Any]:
        """The JSON-able form, matching the task-file syntax."""
        if self.kind == "file":
            return {"file": self.path}
        if self.kind == "dir":
            return {"dir": self.path}
        return {
            "generator": self.generator,
            "params": dict(self.params),
            "seed": self.seed,
            "size": self.size if self.size is not None else self.size_bytes,
            "size_bytes": self.size_bytes,
        }


@dataclass(frozen=True, slots=True)
class InstanceSpec:
    """One question instance: a context, template params, and the expected answer."""

    id: str
    split: str
    context: ContextSource
    params: Mapping[str, Any] = field(default_factory=dict)
    expected: Any = None
    question: str | None = None  # a literal per-instance question, used instead of the template

    def question_text(self, task: TaskSpec) -> str:
        """The question asked for this instance: the override, else the filled-in template."""
        if self.question is not None:
            return self.question
        try:
            return task.question.format_map(dict(self.params))
        except (KeyError, IndexError, ValueError, AttributeError) as exc:
            raise UserError(
                f"instance {self.id!r}: cannot fill the question template: {type(exc).__name__}: {exc}",
                "give the instance every {field} the question uses in its params",
            ) from exc

    def context_path(self, task: TaskSpec) -> Path:
        """The context on disk; a generator context is written to the task's cache on first use."""
        from recorder.tasks.contexts import resolve_context

        return resolve_context(self.context, task.base_dir)

    def context_ref(self, task: TaskSpec) -> ContextRef:
        """Path, generator, sha256, size and kind of this instance's context (for the store)."""
        from recorder.tasks.contexts import context_ref

        return context_ref(self.context, task.base_dir)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "id": self.id,
            "split": self.split,
            "context": self.context.to_dict(),
            "params": dict(self.params),
            "expected": self.expected,
        }
        if self.question is not None:
            out["question"] = self.question
        return out


@dataclass(frozen=True, slots=True)
class TaskSpec:
    """A validated task: build with :func:`recorder.tasks.load_task`."""

    name: str
    question: str
    checker: CheckerSpec
    instances: tuple[InstanceSpec, ...]
    source: Path
    description: str | None = None
    family: str | None = None
    budget: Budget = field(default_factory=Budget)

    @property
    def base_dir(self) -> Path:
        """The folder context paths are relative to (the task file's folder)."""
        return self.source.parent

    @property
    def checker_name(self) -> str:
        from recorder.checkers import checker_name

        return checker_name(self.checker)

    def make_checker(self) -> Checker:
        from recorder.checkers import get_checker

        return get_checker(self.checker)

    def instances_in(self, split: str | None) -> list[InstanceSpec]:
        """Instances of one split (``None``: all of them), in file order."""
        if split is None:
            return list(self.instances)
        if split not in SPLITS:
            raise UserError(f"unknown split {split!r}", f"one of: {', '.join(SPLITS)}")
        return [inst for inst in self.instances if inst.split == split]

    def instance(self, instance_id: str) -> InstanceSpec:
        """The instance with this id; :class:`UserError` naming close ids otherwise."""
        for inst in self.instances:
            if inst.id == instance_id:
                return inst
        ids = [inst.id for inst in self.instances]
        close = difflib.get_close_matches(instance_id, ids, n=3)
        hint = (
            f"did you mean {', '.join(close)}?"
            if close
            else f"`rlmine tasks validate {self.source}` lists them"
        )
        raise UserError(f"task {self.name!r} has no instance {instance_id!r}", hint)

    def split_counts(self) -> dict[str, int]:
        """Number of instances in each split, every split listed."""
        counts = dict.fromkeys(SPLITS, 0)
        for inst in self.instances:
            counts[inst.split] += 1
        return counts

    def spec_dict(self) -> dict[str, Any]:
        """A JSON-able dict of the whole spec, for the store's ``tasks.spec`` column."""
        return {
            "name": self.name,
            "description": self.description,
            "family": self.family,
            "question": self.question,
            "checker": self.checker if isinstance(self.checker, str) else dict(self.checker),
            "budget": self.budget.to_dict(),
            "instances": [inst.to_dict() for inst in self.instances],
            "source": str(self.source),
        }
