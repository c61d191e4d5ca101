"""Building blocks shared by the per-family strategies.

A strategy writes code as ``$role`` templates (see :mod:`..cell`); :class:`Writer`
fills them with the run's variable names and wraps them in :class:`Stmt`.
Also here: the deliberate-typo bug, the final "submit what you have" cell and
the question-parsing helper each family uses to recognise its questions.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from ..cell import Cell, Stmt, render
from ..plan import Bug, Plan, Turn
from ..style import Style

__all__ = [
    "Strategy",
    "StrategyFn",
    "Writer",
    "final_cell",
    "maybe_typo",
    "phrase",
    "plan_stmt",
    "split_explore",
    "submit_stmt",
]

StrategyFn = Callable[[dict[str, Any], Style], Plan]


@dataclass(frozen=True, slots=True)
class Strategy:
    name: str
    sound: bool  # False: a plausible approach that gives wrong answers
    build: StrategyFn
    summary: str


class Writer:
    """Renders ``$role`` templates with a run's names plus extra values."""

    def __init__(self, style: Style, roles: Sequence[str], **extra: object) -> None:
        self.style = style
        self.values: dict[str, object] = {**style.names(*roles), **extra}

    def __getitem__(self, key: str) -> str:
        return str(self.values[key])

    def s(self, code: str, tactic: str, essential: bool = True) -> Stmt:
        return Stmt(render(code, self.values), tactic, essential)

    def show(self, label: str, expr: str, tactic: str) -> Stmt:
        """A print of ``expr`` (a template) in this run's print style; never essential."""
        return Stmt(self.style.show(label, render(expr, self.values)), tactic, essential=False)


def phrase(style: Style, *options: str) -> str:
    return style.pick(options)


def _misspell(var: str, taken: frozenset[str]) -> str:
    for candidate in (var[:-1] if var.endswith("s") else var + "s", var + "_all", "my_" + var, var + "2"):
        if candidate not in taken and candidate.isidentifier():
            return candidate
    return var + "_undefined"


def maybe_typo(turn: Turn, style: Style, stmt_index: int, var: str) -> Turn:
    """``turn`` with a misspelt ``var`` in statement ``stmt_index``, if this run makes a typo.

    The fix re-runs the statements from the failing one on (the earlier ones
    ran and their variables persist), the repaired one labelled ``fix``.
    """
    if not style.take_bug():
        return turn
    stmts = list(turn.cell.stmts)
    typo = _misspell(var, style.used_names)
    pattern = re.compile(rf"\b{re.escape(var)}\b")
    original = stmts[stmt_index]
    broken = pattern.sub(typo, original.code, count=1)
    if broken == original.code:
        return turn
    stmts[stmt_index] = Stmt(broken, original.tactic, original.essential)
    fix_cell = Cell(tuple(turn.cell.stmts[stmt_index:])).relabel(0, "fix")
    reasoning = phrase(
        style,
        f"NameError: I wrote `{typo}` but the variable is `{var}`. Re-running the failed part with the right name.",
        f"Typo on my side (`{typo}` instead of `{var}`). Fixing it and running the rest of that step again.",
        f"The cell stopped at a NameError: `{typo}` does not exist, I meant `{var}`. Fixed below.",
    )
    return Turn(turn.reasoning, turn.cell, Bug(Cell(tuple(stmts)), "NameError", reasoning, fix_cell))


def final_cell(answer_vars: Sequence[str], fallback: str) -> Cell:
    """SUBMIT the first of ``answer_vars`` that exists, else ``fallback``."""
    names = ", ".join(f'"{v}"' for v in answer_vars) + ("," if len(answer_vars) == 1 else "")
    return Cell(
        (
            Stmt(f"final_value = {fallback}", "submit"),
            Stmt(
                f"for _name in ({names}):\n"
                "    if _name in globals() and globals()[_name] not in (None, [], {}, ''):\n"
                "        final_value = globals()[_name]\n"
                "        break",
                "submit",
            ),
            Stmt("SUBMIT(final_value)", "submit"),
        )
    )


def submit_stmt(w: Writer, var: str = "$answer") -> Stmt:
    return w.s(f"SUBMIT({var})", "submit")


def plan_stmt(w: Writer, steps: Sequence[str]) -> Stmt:
    text = " ".join(f"{i + 1}) {s}" for i, s in enumerate(steps))
    return Stmt(f'print("Plan: {text}")', "plan", essential=False)


def split_explore(
    style: Style, first: Sequence[Stmt], optional: Sequence[Stmt], reasoning: Sequence[str]
) -> list[Turn]:
    """Exploration turns: ``first`` in order, ``optional`` shuffled; one turn or two."""
    rest = list(optional)
    style.rng.shuffle(rest)
    keep = rest[: max(2, len(rest) - style.rng.randrange(2))]
    stmts = [*first, *keep]
    if len(stmts) >= 4 and style.rng.random() < 0.4:
        cut = style.rng.randrange(2, len(stmts) - 1)
        return [Turn(reasoning[0], Cell.of(stmts[:cut])), Turn(reasoning[1], Cell.of(stmts[cut:]))]
    return [Turn(reasoning[0], Cell.of(stmts))]
