"""A strategy's plan: the turns it means to take, and the deliberate bug it may make.

The root simulator is stateless, so it re-derives where it is from the
conversation: :func:`next_action` replays the outcomes of earlier turns through
a small state machine (plan step, failed attempts at that step, recovery mode)
and returns what to emit now.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from .cell import Cell
from .conversation import Outcome

__all__ = ["Action", "Bug", "Plan", "Turn", "next_action"]


@dataclass(frozen=True, slots=True)
class Bug:
    """A deliberate mistake in a turn: the cell as first written, and the fix after it fails."""

    cell: Cell
    error_name: str  # what the output must show for the fix to apply, e.g. "NameError"
    fix_reasoning: str
    fix_cell: Cell


@dataclass(frozen=True, slots=True)
class Turn:
    reasoning: str
    cell: Cell
    bug: Bug | None = None


@dataclass(frozen=True, slots=True)
class Plan:
    """Turns to emit in order; the last one calls SUBMIT."""

    family: str
    strategy: str
    sound: bool
    turns: tuple[Turn, ...]
    answer_vars: tuple[str, ...]  # variables worth submitting when the budget runs out, best first
    fallback: str  # a Python literal submitted when none of them exists
    recovery_reasoning: str = "The REPL lost my variables, so I redo the essential steps in one cell."

    def recovery_cell(self, submit: Cell) -> Cell:
        """Every essential statement of the plan in one cell (variables were lost)."""
        body = Cell(())
        for turn in self.turns:
            body = body + turn.cell.essential()
        has_submit = any(s.tactic == "submit" for s in body.stmts)
        return body if has_submit else body + submit

    def rest_cell(self, step: int) -> Cell:
        """The remaining turns merged into one cell (when one step is left)."""
        body = Cell(())
        for turn in self.turns[step:]:
            body = body + turn.cell.essential()
        return body


@dataclass(frozen=True, slots=True)
class Action:
    kind: str  # "step", "buggy", "fix", "recover", "final"
    step: int = 0


def next_action(plan: Plan, outcomes: Sequence[Outcome], *, exhausted: bool) -> Action:
    """Replay ``outcomes`` (one per earlier turn) and decide the next emission."""
    step, mode, pending = 0, "plan", False
    action = _decide(plan, step, mode, pending)
    for out in outcomes:
        failed = out.error is not None or out.restarted
        if action.kind in ("recover", "final"):
            mode = "final"
        elif out.restarted:
            mode = "recover"
        elif not failed:
            step, pending = step + 1, False
            if step >= len(plan.turns):
                mode = "final"
        elif action.kind == "buggy" and _matches(plan.turns[step].bug, out):
            pending = True  # the deliberate mistake happened: fix it next
        else:
            mode = "recover"
        action = _decide(plan, step, mode, pending)
    if exhausted:
        return Action("final", step)
    return action


def _matches(bug: Bug | None, out: Outcome) -> bool:
    return bug is not None and out.error is not None and bug.error_name in out.error


def _decide(plan: Plan, step: int, mode: str, pending: bool) -> Action:
    if mode != "plan":
        return Action(mode, step)
    if pending:
        return Action("fix", step)
    if plan.turns[step].bug is not None:
        return Action("buggy", step)
    return Action("step", step)
