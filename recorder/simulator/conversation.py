"""What the root simulator reads from the conversation: question, context, outcomes, budget.

Relies only on the engine's stable markers: ``Question:`` and ``Context:`` in the
first user message, ``Error (`` and ``REPL restarted`` in outputs, ``Budget:``
with "N steps left", and a last message starting ``Budget exhausted``.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from recorder.lm.base import Message

__all__ = ["Conversation", "Outcome", "read_conversation"]

_QUESTION = re.compile(r"^Question:\s*(.*?)(?=^Context:|\Z)", re.S | re.M)
_CONTEXT = re.compile(r"^Context:\s*([^,\n]+),\s*([\d,]+)\s+characters", re.M)
# The error text runs to the end of the message: tracebacks put the exception on a later line.
_ERROR = re.compile(r"^Error \((\w+)\):\s*(.*)", re.M | re.S)
_STEPS_LEFT = re.compile(r"^Budget:.*?(\d+)\s+steps? left", re.M)
_SUBS_LEFT = re.compile(r"(\d+)\s+sub-LLM calls? left")


@dataclass(frozen=True, slots=True)
class Outcome:
    """What one executed reply produced, as far as the simulator cares."""

    error: str | None  # "NameError: name 'x' is not defined", or None
    error_kind: str | None  # "code", "timeout", ...
    restarted: bool


@dataclass(frozen=True, slots=True)
class Conversation:
    question: str
    context_kind: str  # "str", "list", ... ("" when not stated)
    context_chars: int | None
    outcomes: tuple[Outcome, ...]  # one per assistant turn that has an output message
    exhausted: bool  # the last message asks for the final answer now
    steps_left: int | None
    sub_calls_left: int | None


def _outcome(text: str) -> Outcome:
    match = _ERROR.search(text)
    return Outcome(
        error=match.group(2).strip() if match else None,
        error_kind=match.group(1) if match else None,
        restarted="REPL restarted" in text,
    )


def read_conversation(messages: Sequence[Message]) -> Conversation:
    """Parse the engine's conversation (system, first user message, then turns)."""
    users = [m for m in messages if m.role == "user"]
    first = users[0].content if users else ""
    q = _QUESTION.search(first)
    question = q.group(1).strip() if q else first.strip()
    ctx = _CONTEXT.search(first)
    outcomes: list[Outcome] = []
    seen_assistant = False
    for m in messages:
        if m.role == "assistant":
            seen_assistant = True
        elif m.role == "user" and seen_assistant:
            outcomes.append(_outcome(m.content))
    last = users[-1].content if len(users) > 1 else ""
    steps = _STEPS_LEFT.search(last)
    subs = _SUBS_LEFT.search(last)
    return Conversation(
        question=question,
        context_kind=ctx.group(1).strip() if ctx else "",
        context_chars=int(ctx.group(2).replace(",", "")) if ctx else None,
        outcomes=tuple(outcomes),
        exhausted=last.lstrip().startswith("Budget exhausted"),
        steps_left=int(steps.group(1)) if steps else None,
        sub_calls_left=int(subs.group(1)) if subs else None,
    )
