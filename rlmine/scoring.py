"""Scoring answers against expected ones with their task's checker: the one place that judges.

Every judge of an answer goes through :func:`judge`: the batch runner (each
recorded run), the importers (``--task``: runs that come with an expected answer
are scored as they are stored), ``rlmine score --task NAME`` (which re-scores
every top-level run of a task) and codegen (validating candidates, ``rlmine
eval``). So a missing answer scores the same everywhere: 0, wrong, and the
checker is not asked (a ``python:`` checker need not handle ``None``); nothing
to compare against leaves the verdict empty; a checker that raises gives no
verdict and its error, never a lost run. The checker is the task's
(``tasks.checker``: a name, or a JSON mapping such as
``{"name": "numeric", "tolerance": 0.01}``; else the ``checker`` of the task's
spec; else ``exact``). The expected answer is the run's own, else its
instance's. Answers and expected values that are JSON text are compared as the
values they encode (``"[1, 2]"`` is a list), like the engine does. A run with
nothing to compare against keeps ``score``/``correct`` null.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

from recorder.checkers import Checker, CheckResult, checker_name, get_checker
from rlmine.errors import NotFoundError, UserError
from rlmine.store import Store, find_task_id, iter_traces, read_instances, read_task, save_runs, upsert_task
from rlmine.trace import Run

DEFAULT_CHECKER = "exact"
CheckerSpec = str | dict[str, Any]


def parse_checker(text: str) -> CheckerSpec:
    """A checker spec from text: a name, ``python:mod:func``, or a JSON mapping. Validated."""
    raw = text.strip()
    spec: CheckerSpec = raw
    if raw.startswith("{"):
        try:
            loaded = json.loads(raw)
        except ValueError as exc:
            raise UserError(
                f"checker {raw!r} is not valid JSON", 'e.g. \'{"name": "numeric", "tolerance": 0.01}\''
            ) from exc
        if not isinstance(loaded, dict):
            raise UserError(
                "a checker mapping must be a JSON object", '\'{"name": "numeric", "tolerance": 0.01}\''
            )
        spec = loaded
    get_checker(spec)  # raises UserError listing the choices
    return spec


def task_checker(task: Mapping[str, Any] | None) -> CheckerSpec:
    """The checker a task names (its column, else its spec's), default ``exact``."""
    if task is None:
        return DEFAULT_CHECKER
    column = task.get("checker")
    if isinstance(column, str) and column.strip():
        return parse_checker(column)
    spec = task.get("spec")
    inner = spec.get("checker") if isinstance(spec, dict) else None
    if isinstance(inner, str | dict) and inner:
        return inner
    return DEFAULT_CHECKER


def decode(value: Any) -> Any:
    """JSON text as the value it encodes; any other text as itself."""
    if not isinstance(value, str):
        return value
    try:
        return json.loads(value)
    except ValueError:
        return value


MISSING_ANSWER = CheckResult(0.0, False, "no answer was submitted")


@dataclass(frozen=True, slots=True)
class Verdict:
    """A judged answer: ``score``/``correct`` (None when no verdict) and why not, if it failed."""

    score: float | None
    correct: bool | None
    detail: str | None = None
    error: str | None = None  # the checker raised: "<Exception>: <message>"

    @property
    def right(self) -> bool:
        """Correct for sure (an error or no verdict counts as not correct)."""
        return self.correct is True


def judge(value: Any, expected: Any, checker: Checker) -> Verdict | None:
    """Judge an answer ``value`` (JSON text already decoded: :func:`decode`) against ``expected``.

    None when there is nothing to compare against (``expected`` is None). A missing
    answer (None) is 0 and wrong without asking the checker.
    """
    if expected is None:
        return None
    if value is None:
        return Verdict(MISSING_ANSWER.score, MISSING_ANSWER.correct, MISSING_ANSWER.detail)
    try:
        result = checker.check(value, expected)
    except Exception as exc:  # a broken custom checker must not lose the run
        return Verdict(None, None, error=f"{type(exc).__name__}: {exc}")
    return Verdict(float(result.score), bool(result.correct), result.detail or None)


def score_run(run: Run, checker: Checker, expected: Any, name: str) -> Run:
    """``run`` with score, correct and the checker's verdict; unchanged without an expected value.

    A checker that raises leaves score and correct as they were and records its error
    under ``metadata["checker_error"]``.
    """
    verdict = judge(decode(run.final_answer), expected, checker)
    if verdict is None:
        return run
    meta = {**run.metadata, "checker": name}
    if verdict.error is not None:
        meta["checker_error"] = verdict.error
        return replace(run, metadata=meta)
    meta.pop("checker_error", None)
    if verdict.detail:
        meta["check_detail"] = verdict.detail
    else:
        meta.pop("check_detail", None)
    return replace(run, score=verdict.score, correct=verdict.correct, metadata=meta)


@dataclass(frozen=True, slots=True)
class ScoreReport:
    task: str
    checker: str
    runs: int
    scored: int
    correct: int

    @property
    def unscored(self) -> int:
        return self.runs - self.scored

    def as_dict(self) -> dict[str, Any]:
        rate = self.correct / self.scored if self.scored else None
        return {
            "task": self.task,
            "checker": self.checker,
            "runs": self.runs,
            "scored": self.scored,
            "correct": self.correct,
            "unscored": self.unscored,
            "success_rate": rate,
        }


def rescore_task(store: Store, task: str, *, checker: str | None = None) -> ScoreReport:
    """Re-score every top-level run of ``task`` (name or id); ``checker`` overrides and is saved on the task."""
    override = parse_checker(checker) if checker else None
    with store.reader() as con:
        task_id = find_task_id(con, task)
        if task_id is None:
            raise NotFoundError(
                f"no task named {task!r}", "`rlmine runs list` to see tasks, or import with --task NAME"
            )
        task_obj = read_task(con, task_id)
        instances = read_instances(con, task_id)
        runs = [t.run for t in iter_traces(con, task_id=task_id, runs_only=True)]
    spec = override if override is not None else task_checker(task_obj)
    check, name = get_checker(spec), checker_name(spec)
    scored: list[Run] = []
    for run in runs:
        expected = decode(run.expected)
        if expected is None and run.instance_id in instances:
            expected = instances[run.instance_id]["expected"]
        new = score_run(run, check, expected, name)
        if expected is None:  # nothing to compare: clear a stale verdict
            new = replace(run, score=None, correct=None)
        scored.append(new)
    with store.writer() as con:
        if override is not None and task_obj is not None:
            upsert_task(con, name=task_obj["name"], checker=checker.strip() if checker else None)
        save_runs(con, scored)
    n_scored = sum(1 for r in scored if r.score is not None)
    return ScoreReport(
        task=task_obj["name"] if task_obj else task,
        checker=name,
        runs=len(scored),
        scored=n_scored,
        correct=sum(1 for r in scored if r.correct),
    )
