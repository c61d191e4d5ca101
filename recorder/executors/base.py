"""The executor interface: where the runs of a batch execute.

:func:`recorder.batch.record` owns everything that makes a batch a batch — the plan,
slot claims, the spool (the single writer of the database), scoring, the progress
events, resume and cancellation. An executor owns only *where one run executes*: it
takes a :class:`RunRequest` (a claimed slot turned into engine inputs), runs the RLM
engine somewhere, tells the batch's observer of every finished iteration as it happens,
and returns the run's :class:`~rlmine.trace.Trace`. So the local thread-pool executor
and the Ray executor share every line of batch logic (decision 0018).

Lifecycle: :meth:`Executor.open` once before the database is touched (it builds or
checks the LM backends, connects to a cluster: a bad model or an unreachable cluster
fails before anything is written), :meth:`Executor.run` from many threads at once,
:meth:`Executor.close` once at the end (also after a failure).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from recorder.engine import EngineOptions, RunObserver
from recorder.lm.base import LM
from rlmine.trace import Run, Trace

__all__ = ["Executor", "LMFactory", "LMPlan", "RunRequest"]

LMFactory = Callable[..., LM]


@dataclass(frozen=True)
class LMPlan:
    """How to build a batch's LM backends: the same on the driver and on every worker.

    ``options`` are the backend options of :func:`recorder.lm.registry.make_lm`
    (``api_base``, ``api_key_env``, simulator latency, retries…); never secrets: an API
    key stays in the environment variable ``api_key_env`` names.
    """

    models: tuple[str, ...]
    sub_model: str | None
    options: Mapping[str, Any] = field(default_factory=dict)
    factory: LMFactory | None = None  # None: recorder.lm.registry.make_lm

    def make(self, model: str, role: str) -> LM:
        from recorder.lm.registry import make_lm

        spec = model if role == "root" else (self.sub_model or model)
        return (self.factory or make_lm)(spec, role=role, **self.options)

    @property
    def api_key_env(self) -> str | None:
        value = self.options.get("api_key_env")
        return value if isinstance(value, str) else None


@dataclass(frozen=True)
class RunRequest:
    """One claimed slot as the engine needs it. Plain, picklable values only."""

    question: str
    context_path: Path
    model: str  # the slot's root model spec; the sub model comes from the LMPlan
    options: EngineOptions
    run: Run  # the claimed run: its id, task, batch, slot key and owner are already fixed


class Executor(Protocol):
    """Runs the RLM engine for one request at a time per calling thread."""

    name: str

    def open(self, plan: LMPlan) -> None:
        """Build or check the LM backends (and connect); raise before anything is written."""
        ...

    def run(self, request: RunRequest, observer: RunObserver, cancel: threading.Event) -> Trace:
        """Run one request; ``observer`` hears each finished iteration as it happens.

        Returns the run's trace (status ``cancelled`` when ``cancel`` was set during
        it); raises when the run could not complete (the batch records it as ``error``).
        """
        ...

    def close(self) -> None:
        """Release the backends (and the cluster connection this executor made)."""
        ...
