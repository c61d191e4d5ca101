"""The :class:`Family` interface: a seeded generator of contexts with known answers.

A family makes question parameters for an instance (``make_instance_params``),
writes that instance's context in a streaming way and returns the exact expected
answer computed while writing (``write_context``). ``write_context`` is a pure
function of (params, seed, size): same inputs, same bytes.

Families with several kinds of question keep one template per kind in
``questions``; ``question_template`` is the default kind's and instances of
another kind carry their own question text (see :mod:`.task_writer`).
"""

from __future__ import annotations

import random
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, ClassVar

from rlmine.errors import UserError

__all__ = ["Family", "ProgressFn", "require_param"]

ProgressFn = Callable[[int], None]


class Family(ABC):
    """A task family: see the module docstring."""

    name: ClassVar[str]
    description: ClassVar[str]
    checker: ClassVar[str | Mapping[str, Any]]
    context_suffix: ClassVar[str] = ".txt"
    questions: ClassVar[Mapping[str, str]]  # kind -> str.format template over params
    default_kind: ClassVar[str]
    budget: ClassVar[Mapping[str, Any]] = {"max_iterations": 12, "max_sub_calls": 500}
    # kind -> the params that make a different question of that kind (a topic, a sentiment),
    # as opposed to ones that only move it (a month, a k): see :meth:`question_category`
    categories: ClassVar[Mapping[str, tuple[str, ...]]] = {}

    @property
    def question_template(self) -> str:
        return self.questions[self.default_kind]

    def question_for(self, params: Mapping[str, Any]) -> str:
        """The question text of an instance with these params."""
        kind = str(params.get("kind", self.default_kind))
        if kind not in self.questions:
            raise UserError(
                f"{self.name}: unknown question kind {kind!r}", f"one of {', '.join(self.questions)}"
            )
        return self.questions[kind].format(**params)

    def question_category(self, params: Mapping[str, Any]) -> tuple[str, ...]:
        """The kind of question an instance asks and its categorical params, e.g.
        ``("topic", "delivery")``: what a split must have seen for its runs to cover it."""
        kind = str(params.get("kind", self.default_kind))
        return (kind, *(str(params.get(name)) for name in self.categories.get(kind, ())))

    @abstractmethod
    def make_instance_params(self, rng: random.Random) -> dict[str, Any]:
        """Question parameters for one instance, drawn from ``rng``."""

    @abstractmethod
    def write_context(
        self,
        path: Path,
        *,
        params: Mapping[str, Any],
        seed: int,
        size_bytes: int,
        on_progress: ProgressFn | None = None,
    ) -> dict[str, Any]:
        """Write the context to ``path``; return ``{"expected": ..., "stats": {...}}``."""


def require_param(family: str, params: Mapping[str, Any], key: str, kind: type) -> Any:
    """``params[key]`` checked against ``kind``; UserError naming the family otherwise."""
    value = params.get(key)
    if not isinstance(value, kind) or isinstance(value, bool):
        raise UserError(
            f"{family}: parameter {key!r} must be a {kind.__name__}, got {value!r}",
            f"set params.{key} in the task file",
        )
    return value
