"""The default executor: each run on a thread of this process (the batch's thread pool).

One root and one sub LM per model are built once and shared by every thread (the
backends are thread-safe); each run gets its own sandbox worker process from the engine.
"""

from __future__ import annotations

import threading

from recorder.engine import RunObserver, run_rlm
from recorder.executors.base import LMPlan, RunRequest
from recorder.lm.base import LM
from rlmine.trace import Trace

__all__ = ["LocalExecutor", "close_lms"]


def close_lms(lms: list[LM]) -> None:
    for lm in lms:
        close = getattr(lm, "close", None)
        if callable(close):
            close()


class LocalExecutor:
    """Runs the engine in the calling thread with LMs shared across the batch."""

    name = "local"

    def __init__(self) -> None:
        self._roots: dict[str, LM] = {}
        self._subs: dict[str, LM] = {}

    def open(self, plan: LMPlan) -> None:
        try:
            for model in plan.models:
                self._roots[model] = plan.make(model, "root")
                self._subs[model] = plan.make(model, "sub")
        except BaseException:
            self.close()
            raise

    def run(self, request: RunRequest, observer: RunObserver, cancel: threading.Event) -> Trace:
        return run_rlm(
            request.question,
            request.context_path,
            lm=self._roots[request.model],
            sub_lm=self._subs[request.model],
            options=request.options,
            run=request.run,
            observer=observer,
            cancel=cancel,
        )

    def close(self) -> None:
        close_lms([*self._roots.values(), *self._subs.values()])
        self._roots.clear()
        self._subs.clear()
