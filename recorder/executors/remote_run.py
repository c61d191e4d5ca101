"""One run on a remote worker, as a stream of events (the body of the Ray task).

Pure Python, no Ray import: :mod:`recorder.executors.ray_executor` wraps
:func:`stream_run` as a Ray streaming-generator task, and the tests can drive it in
process. The worker builds its own LM backends from the batch's :class:`LMPlan` (API
keys come from its environment, which Ray fills from the task's ``runtime_env``) and the
engine starts its own sandbox worker process there, exactly as on the local executor.

The engine runs in a helper thread and reports through an observer into a queue; this
generator yields each event as soon as it exists, so an iteration reaches the driver the
moment it finishes. Events, in order::

    ("started", Run)                                   once
    ("iteration", Iteration, [LLMCall], [StepLabel])   per finished iteration
    ("finished", Run)  or  ("raised", Exception)       once, last

The final ``Run`` carries status, answer and totals; its iterations, calls and labels
were already sent one by one. When the task is cancelled (``ray.cancel`` raises
``KeyboardInterrupt`` here) the engine is told to stop and its sandbox is shut down
before the interrupt goes on.
"""

from __future__ import annotations

import pickle
import queue
import threading
from collections.abc import Iterator, Sequence
from typing import Any

from recorder.engine import run_rlm
from recorder.executors.base import LMPlan, RunRequest
from recorder.executors.local import close_lms
from rlmine.errors import RlmineRuntimeError
from rlmine.trace import Iteration, LLMCall, Run, StepLabel

__all__ = ["Event", "stream_run"]

Event = tuple[Any, ...]
_STOP_WAIT_S = 30.0  # how long a cancelled run may take to shut its sandbox down


class _QueueObserver:
    def __init__(self, events: queue.Queue[Event]) -> None:
        self._events = events

    def run_started(self, run: Run) -> None:
        self._events.put(("started", run))

    def iteration_finished(
        self, iteration: Iteration, calls: Sequence[LLMCall], labels: Sequence[StepLabel]
    ) -> None:
        self._events.put(("iteration", iteration, list(calls), list(labels)))


def _portable(exc: BaseException) -> Exception:
    """The exception itself when it survives pickling, else one that says the same."""
    try:
        pickle.loads(pickle.dumps(exc))
    except Exception:
        return RlmineRuntimeError(f"{type(exc).__name__}: {exc}")
    return exc if isinstance(exc, Exception) else RlmineRuntimeError(f"{type(exc).__name__}: {exc}")


def stream_run(request: RunRequest, plan: LMPlan) -> Iterator[Event]:
    """Run ``request`` here, yielding its events as they happen (see the module docstring)."""
    events: queue.Queue[Event] = queue.Queue()
    cancel = threading.Event()
    lms = []
    try:
        root = plan.make(request.model, "root")
        lms.append(root)
        sub = plan.make(request.model, "sub")
        lms.append(sub)
    except Exception as exc:
        close_lms(lms)
        yield ("raised", _portable(exc))
        return

    def target() -> None:
        try:
            trace = run_rlm(
                request.question,
                request.context_path,
                lm=root,
                sub_lm=sub,
                options=request.options,
                run=request.run,
                observer=_QueueObserver(events),
                cancel=cancel,
            )
        except BaseException as exc:  # handed to the driver as the run's failure
            events.put(("raised", _portable(exc)))
        else:
            events.put(("finished", trace.run))

    thread = threading.Thread(target=target, name=f"rlm-run-{request.run.id}", daemon=True)
    thread.start()
    try:
        while True:
            event = events.get()
            yield event
            if event[0] in ("finished", "raised"):
                break
    except BaseException:  # cancelled (KeyboardInterrupt) or the consumer went away
        cancel.set()
        thread.join(_STOP_WAIT_S)
        raise
    finally:
        thread.join(_STOP_WAIT_S)
        close_lms(lms)
