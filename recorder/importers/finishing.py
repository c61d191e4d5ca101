"""The rewrite applied to each imported run: ``--task`` grouping, overrides, scoring.

:class:`RunFinalizer` is a small picklable value (it travels to the parsing
worker processes), built once per import by :func:`make_finalizer`, which
also creates the ``--task`` when it is missing.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from functools import lru_cache
from typing import Any

from recorder.importers.base import ImportOptions
from rlmine.store import Store
from rlmine.trace import Run


@lru_cache(maxsize=16)
def _checker(spec_json: str) -> tuple[Any, str]:
    from recorder.checkers import checker_name, get_checker

    spec = json.loads(spec_json)
    return get_checker(spec), checker_name(spec)


@dataclass(frozen=True, slots=True)
class RunFinalizer:
    """Sets the task, question and expected answer on a top-level run, then scores it.

    Scoring needs ``checker_spec`` (set when importing under a task); a run
    without an expected answer keeps ``score``/``correct`` null.
    """

    task_id: str | None = None
    question: str | None = None
    expected: str | None = None
    checker_spec: str | None = None  # JSON text of the task's checker spec

    def finish(self, run: Run) -> Run:
        run = replace(
            run,
            task_id=self.task_id if self.task_id is not None else run.task_id,
            question=self.question if self.question is not None else run.question,
            expected=self.expected if self.expected is not None else run.expected,
        )
        if self.checker_spec is None:
            return run
        from rlmine.scoring import decode, score_run

        check, name = _checker(self.checker_spec)
        return score_run(run, check, decode(run.expected), name)


def make_finalizer(store: Store, opts: ImportOptions) -> RunFinalizer | None:
    """The finalizer for ``opts`` (None when there is nothing to change); creates ``--task`` if missing."""
    if opts.task is None and opts.question is None and opts.expected is None:
        return None
    task_id: str | None = None
    spec_json: str | None = None
    if opts.task:
        from rlmine.scoring import parse_checker, task_checker
        from rlmine.store import read_task, upsert_task

        if opts.checker:
            parse_checker(opts.checker)  # a bad checker fails before anything is written
        with store.writer() as con:
            task_id = upsert_task(con, name=opts.task, checker=opts.checker.strip() if opts.checker else None)
            spec = task_checker(read_task(con, task_id))
        spec_json = json.dumps(spec, sort_keys=True)
        _checker(spec_json)  # validate now, once
    return RunFinalizer(
        task_id=task_id, question=opts.question, expected=opts.expected, checker_spec=spec_json
    )
