"""Code cells the simulator writes, with the tactic of every top-level statement.

A :class:`Cell` is a sequence of :class:`Stmt` (one or more top-level statements
sharing a tactic). It renders to code and to ``step_labels``: 1-based inclusive
line ranges relative to the first line of the code block, as the engine's
contract asks. Code is written with ``$name`` placeholders (``string.Template``)
so one strategy text serves many variable namings.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from string import Template

__all__ = ["TACTICS", "Cell", "Stmt", "render"]

TACTICS: tuple[str, ...] = (
    "peek",
    "probe_format",
    "measure",
    "sample",
    "filter_regex",
    "parse",
    "chunk",
    "map_llm",
    "batch_llm",
    "aggregate",
    "verify",
    "fix",
    "plan",
    "submit",
)


def render(code: str, names: Mapping[str, object]) -> str:
    """Fill ``$name`` placeholders; unknown ``$`` words are left as written."""
    return Template(code).safe_substitute({k: str(v) for k, v in names.items()})


@dataclass(frozen=True, slots=True)
class Stmt:
    """Top-level statement(s) with one tactic.

    ``essential`` marks statements the answer depends on: a recovery cell (after
    the REPL lost its variables) replays exactly those.
    """

    code: str
    tactic: str
    essential: bool = True

    def __post_init__(self) -> None:
        if self.tactic not in TACTICS:
            raise ValueError(f"unknown tactic {self.tactic!r}")


@dataclass(frozen=True, slots=True)
class Cell:
    """An ordered list of statements; renders to code plus step labels."""

    stmts: tuple[Stmt, ...]

    @staticmethod
    def of(stmts: Iterable[Stmt]) -> Cell:
        return Cell(tuple(stmts))

    def __add__(self, other: Cell) -> Cell:
        return Cell(self.stmts + other.stmts)

    def code(self) -> str:
        return "\n".join(s.code.strip("\n") for s in self.stmts)

    def labels(self) -> list[list[int | str]]:
        out: list[list[int | str]] = []
        line = 1
        for stmt in self.stmts:
            n = stmt.code.strip("\n").count("\n") + 1
            out.append([line, line + n - 1, stmt.tactic])
            line += n
        return out

    def essential(self) -> Cell:
        return Cell(tuple(s for s in self.stmts if s.essential))

    def relabel(self, index: int, tactic: str) -> Cell:
        stmts = list(self.stmts)
        stmts[index] = replace(stmts[index], tactic=tactic)
        return Cell(tuple(stmts))
