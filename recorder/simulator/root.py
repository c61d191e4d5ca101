"""The simulated root model: a seeded stand-in for a real RLM root on the demo families.

``complete`` is a pure function of (messages, seed, temperature): it reads the
question, picks a family and a plan (strategy + style) from a hash of (seed,
temperature, question), replays earlier outcomes to find where it stands (see
:func:`.plan.next_action`) and writes the next reply: reasoning plus exactly one
```python block whose code computes the answer in the REPL. It never sees the
expected answer.

Sound and flawed strategies are chosen so that, over consecutive seeds, the
share of sound runs follows ``success_rate`` closely: the draw is a golden-ratio
sequence over the seed (low discrepancy, unlike independent coin flips), so a
batch of seeds 0..n-1 has about ``success_rate * n`` sound runs on any mix of
questions. Which sound (or flawed) strategy, and the style, hash the question too.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Sequence
from typing import Any

from recorder.families.streaming import derive_seed
from recorder.lm.base import LMResponse, Message

from .cell import Cell
from .conversation import Conversation, read_conversation
from .latency import ROOT_LATENCY
from .plan import Action, Plan, next_action
from .strategies import STRATEGIES, detect_family
from .strategies.common import final_cell
from .style import Style

__all__ = ["DEFAULT_SUCCESS_RATE", "SimulatorRootLM", "choose_plan"]

DEFAULT_SUCCESS_RATE = 0.74
_GOLDEN = 0.6180339887498949


def choose_plan(question: str, *, seed: int, temperature: float | None, success_rate: float) -> Plan:
    """The plan a run with this (question, seed, temperature) follows."""
    family, params = detect_family(question)
    offset = derive_seed("sim-offset", temperature) / float(1 << 63)
    sound = ((offset + seed * _GOLDEN) % 1.0) < success_rate
    rng = random.Random(derive_seed("sim-style", seed, temperature, question))
    options = STRATEGIES[family]
    pool = [s for s in options if s.sound == sound] or list(options)
    strategy = pool[rng.randrange(len(pool))]
    return strategy.build(params, Style(rng))


class SimulatorRootLM:
    """``LM`` protocol implementation; ``model`` is "sim" everywhere."""

    model = "sim"

    def __init__(
        self,
        *,
        seed: int | None = None,
        latency: float | None = None,
        success_rate: float | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.seed = seed
        self.latency = latency
        self.success_rate = DEFAULT_SUCCESS_RATE if success_rate is None else success_rate
        self._sleep = sleep

    def complete(
        self,
        messages: Sequence[Message],
        *,
        temperature: float | None = None,
        seed: int | None = None,
        max_tokens: int | None = None,
    ) -> LMResponse:
        started = time.perf_counter()
        conv = read_conversation(messages)
        run_seed = seed if seed is not None else (self.seed or 0)
        plan = choose_plan(
            conv.question, seed=run_seed, temperature=temperature, success_rate=self.success_rate
        )
        action = next_action(plan, conv.outcomes, exhausted=conv.exhausted)
        reasoning, cell = _emit(plan, action, conv)
        text = f"{reasoning}\n\n```python\n{cell.code()}\n```"
        tokens_in = sum(len(m.content) for m in messages) // 4
        tokens_out = len(text) // 4
        latency_s = time.perf_counter() - started
        if self.latency is not None:
            delay = ROOT_LATENCY.delay(tokens_in, tokens_out, self.latency)
            self._sleep(delay)
            latency_s += delay
        metadata: dict[str, Any] = {
            "step_labels": cell.labels(),
            "strategy": plan.strategy,
            "family": plan.family,
            "sound": plan.sound,
            "action": action.kind,
            "simulator": True,
        }
        return LMResponse(
            text=text,
            model=self.model,
            tokens_in=tokens_in,
            tokens_out=tokens_out,
            cost=None,
            latency_s=latency_s,
            metadata=metadata,
        )


def _emit(plan: Plan, action: Action, conv: Conversation) -> tuple[str, Cell]:
    submit = final_cell(plan.answer_vars, plan.fallback)
    if action.kind == "final":
        reason = (
            "The budget is exhausted; submitting the best answer I have."
            if conv.exhausted
            else "Something went wrong again; submitting what I have rather than burning the budget."
        )
        return reason, submit
    if action.kind == "recover":
        return plan.recovery_reasoning, plan.recovery_cell(submit)
    turn = plan.turns[action.step]
    last = action.step == len(plan.turns) - 1
    if conv.steps_left == 1 and not last:
        return "Only one step left: running the rest of my plan in one cell.", plan.rest_cell(action.step)
    if action.kind == "fix" and turn.bug is not None:
        return turn.bug.fix_reasoning, turn.bug.fix_cell
    if action.kind == "buggy" and turn.bug is not None:
        return turn.reasoning, turn.bug.cell
    return turn.reasoning, turn.cell
