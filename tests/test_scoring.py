"""One scoring: every judge of an answer (batch runner, importers, ``rlmine score``, codegen eval)
goes through :mod:`rlmine.scoring`, so a missing answer scores the same everywhere."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from recorder_fakes import write_task

from codegen.evaluate import EvalOptions, _agent_rows
from recorder.batch import RecordOptions, record
from recorder.checkers import CheckResult
from recorder.importers import ImportOptions, make_finalizer
from recorder.lm.base import LMResponse, Message
from recorder.lm.scripted import FunctionLM
from recorder.tasks import load_task
from rlmine.scoring import MISSING_ANSWER, judge, rescore_task, score_run
from rlmine.store import Store, get_trace, upsert_task
from rlmine.trace import Run, Trace

MISSING = (0.0, False)  # what a missing answer scores, wherever it is judged


class AlwaysRight:
    """A checker that calls every answer right: a missing one must never reach it."""

    name = "always-right"

    def __init__(self) -> None:
        self.seen: list[Any] = []

    def check(self, answer: Any, expected: Any) -> CheckResult:
        self.seen.append(answer)
        return CheckResult(1.0, True)


def test_judge_scores_a_missing_answer_without_asking_the_checker() -> None:
    checker = AlwaysRight()
    verdict = judge(None, 10, checker)
    assert verdict is not None and (verdict.score, verdict.correct) == MISSING
    assert verdict.detail == MISSING_ANSWER.detail and checker.seen == []
    assert judge("10", 10, checker) is not None and checker.seen == ["10"]  # a real answer does reach it
    assert judge(None, None, checker) is None  # nothing to compare against: no verdict


def test_a_checker_that_raises_gives_no_verdict_and_its_error() -> None:
    class Broken:
        name = "broken"

        def check(self, answer: Any, expected: Any) -> CheckResult:
            raise RuntimeError("boom")

    run = Run(id="R", engine="rlmine", status="submitted", final_answer="10")
    scored = score_run(run, Broken(), 10, "broken")
    assert (scored.score, scored.correct) == (None, None)
    assert scored.metadata["checker_error"] == "RuntimeError: boom"


def _never_submits(messages: list[Message], **_: Any) -> LMResponse:
    return LMResponse(text="Still thinking.\n```python\nprint(len(context))\n```", model="mute")


def test_a_missing_answer_scores_the_same_in_every_user(tmp_path: Path) -> None:
    task_file = write_task(tmp_path, instances=1)
    task = load_task(task_file)
    inst = task.instances[0]
    db = tmp_path / "t.duckdb"

    # 1. the batch runner: a model that never submits
    result = record(
        task,
        db=db,
        options=RecordOptions(models=("mute",), budget={"max_iterations": 2}),
        lm_factory=lambda spec, **_: FunctionLM(_never_submits, model=spec),
    )
    (recorded,) = result.runs
    assert recorded.final_answer is None
    assert (recorded.score, recorded.correct) == MISSING
    store = Store.open(db)
    with store.reader() as con:
        stored = get_trace(con, recorded.id).run
    assert (stored.score, stored.correct) == MISSING
    assert stored.metadata["check_detail"] == MISSING_ANSWER.detail

    # 2. the importers: --task with an expected answer, a run that carries no answer
    imported = Run(id="IMP", engine="rlms", status="error")
    finalizer = make_finalizer(store, ImportOptions(task=task.name, expected="10"))
    assert finalizer is not None
    finished = finalizer.finish(imported)
    assert (finished.score, finished.correct) == MISSING

    # 3. `rlmine score`: re-scoring the stored runs, the imported one among them
    with store.writer() as con:
        task_id = upsert_task(con, name=task.name)
    store.save_traces([Trace(run=finished)])
    report = rescore_task(store, task_id)
    assert report.runs == 2 and report.scored == 2 and report.correct == 0
    with store.reader() as con:
        for run_id in (recorded.id, "IMP"):
            run = get_trace(con, run_id).run
            assert (run.score, run.correct) == MISSING, run_id

    # 4. codegen's eval: an agent script that answers nothing
    script = "import json\nprint(json.dumps({'answer': None, 'llm_calls': 0}))\n"
    (row,) = _agent_rows(task, [inst], script, None, EvalOptions(root_model="mute"))
    assert (row.score, row.correct) == MISSING


@pytest.mark.parametrize("answer", ["", "   "])
def test_an_empty_answer_is_wrong_by_the_checkers_own_rule(answer: str) -> None:
    """Only a missing (None) answer skips the checker; an empty one is the checker's to judge."""
    task_checker = load_checker("exact")
    verdict = judge(answer, 10, task_checker)
    assert verdict is not None and (verdict.score, verdict.correct) == MISSING


def load_checker(spec: str) -> Any:
    from recorder.checkers import get_checker

    return get_checker(spec)
