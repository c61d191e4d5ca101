"""Run candidate programs on validation instances in the recorder's sandbox, score them.

Each instance gets one sandbox (its context loaded once); every candidate runs there
as one cell — the program's function followed by ``SUBMIT(solve(context, params))`` —
with the sub-LM behind the recorder's :class:`~recorder.sublm.SubCallHandler`, so calls,
tokens and budget are counted as in a recorded run. Between the two sits the agent's own
:class:`~codegen.cascade.Cascade` (cache and distilled item models), as in the script.
The answer is scored by the task's checker exactly as the batch recorder scores a run.
"""

from __future__ import annotations

import functools
import json
import logging
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from codegen.cascade import Cascade
from codegen.program import program_source
from recorder.checkers import Checker
from recorder.lm.base import LM
from recorder.sandbox import SandboxConfig, SubprocessSandbox
from recorder.sublm import SubCallHandler
from rlmine.ids import new_id
from rlmine.scoring import judge

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Trial:
    """One validation instance: where its context is, its parameters, what is expected."""

    instance_id: str
    context: Path
    values: dict[str, Any]
    expected: Any


@dataclass(frozen=True, slots=True)
class TrialResult:
    instance_id: str
    answer: Any
    correct: bool
    error: str | None
    llm_calls: int
    tokens_in: int
    tokens_out: int
    wall_s: float


@dataclass
class Score:
    results: list[TrialResult] = field(default_factory=list)

    @property
    def n(self) -> int:
        return len(self.results)

    @property
    def correct(self) -> int:
        return sum(r.correct for r in self.results)

    @property
    def accuracy(self) -> float:
        return self.correct / self.n if self.n else 0.0

    def total(self, name: str) -> float:
        return float(sum(getattr(r, name) for r in self.results))

    @property
    def first_error(self) -> str | None:
        return next((r.error for r in self.results if r.error), None)

    def rank(self) -> tuple[float, float, float, float]:
        """Best first: accuracy, then fewer LLM calls, fewer tokens, less time."""
        return (
            -self.accuracy,
            self.total("llm_calls"),
            self.total("tokens_in") + self.total("tokens_out"),
            self.total("wall_s"),
        )


def answer_value(answer: Any) -> Any:
    """As the recorder scores: the answer's text, JSON-decoded when it is JSON."""
    text = answer if isinstance(answer, str) else json.dumps(answer, ensure_ascii=False, default=str)
    try:
        return json.loads(text)
    except ValueError:
        return text


class _Switch:
    """The sandbox's LLM handler, pointed at one candidate's cascade (and counter) at a time."""

    def __init__(self) -> None:
        self.current: Cascade | None = None

    def __call__(self, prompts: list[str], model: str | None) -> list[str]:
        if self.current is None:
            raise RuntimeError("no sub-LM handler is active")
        return self.current.answer(prompts)


def _one_instance(
    trial: Trial,
    programs: Sequence[tuple[str, ...]],
    checker: Checker,
    sub_lm: LM,
    max_calls: int,
    cell_timeout_s: float,
    item_models: dict[str, dict[str, Any]],
) -> list[TrialResult]:
    switch = _Switch()
    results = []
    config = SandboxConfig(
        context_path=str(trial.context), cell_timeout_s=cell_timeout_s, max_output_chars=2000
    )
    with SubprocessSandbox(config, switch) as sandbox:
        for index, statements in enumerate(programs):
            handler = SubCallHandler(run_id=new_id(), sub_lm=sub_lm, max_calls=max_calls, temperature=0.0)
            switch.current = Cascade(item_models, functools.partial(handler, model=None))
            name = f"solve_candidate_{index}"
            code = program_source(name, statements) + f"SUBMIT({name}(context, {trial.values!r}))\n"
            try:
                outcome = sandbox.execute(code)
            finally:
                handler.close()
            calls = handler.take_calls()
            error = outcome.error if not outcome.submitted else None
            correct = False
            if outcome.submitted and error is None:
                verdict = judge(answer_value(outcome.answer), trial.expected, checker)
                correct = verdict is not None and verdict.right
                if verdict is not None and verdict.error is not None:  # a wrong answer, with its reason
                    error = f"the checker refused the answer: {verdict.error}"
            results.append(
                TrialResult(
                    trial.instance_id,
                    outcome.answer,
                    correct,
                    error.strip().splitlines()[-1] if error else None,
                    len(calls),
                    sum(c.tokens_in or 0 for c in calls),
                    sum(c.tokens_out or 0 for c in calls),
                    outcome.duration_s,
                )
            )
    return results


def validate(
    programs: Sequence[tuple[str, ...]],
    trials: Sequence[Trial],
    checker: Checker,
    sub_lm_factory: Callable[[], LM],
    *,
    max_calls: int = 500,
    cell_timeout_s: float = 120.0,
    concurrency: int = 4,
    item_models: dict[str, dict[str, Any]] | None = None,
) -> list[Score]:
    """One :class:`Score` per program, over every trial (instances run in parallel).

    ``item_models`` are the distilled models the agent will ship with (:mod:`codegen.distill`).
    """
    scores = [Score() for _ in programs]
    if not programs or not trials:
        return scores
    sub_lm = sub_lm_factory()
    with ThreadPoolExecutor(max_workers=max(1, concurrency)) as pool:
        futures = [
            pool.submit(
                _one_instance, t, programs, checker, sub_lm, max_calls, cell_timeout_s, item_models or {}
            )
            for t in trials
        ]
        for future in futures:
            for index, result in enumerate(future.result()):
                scores[index].results.append(result)
    return scores
