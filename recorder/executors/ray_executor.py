"""The Ray executor: each run is a Ray task with its own sandbox; the driver writes the store.

Each run executes :func:`recorder.executors.remote_run.stream_run` as a Ray
*streaming-generator* task (``num_returns="streaming"``): the worker builds the LM
backends from the batch's :class:`LMPlan`, the engine starts its sandbox worker process
on that node, and every finished iteration is yielded the moment it exists. The driver
thread that owns the run replays those events into the batch's observer — the same
spool callback the local executor feeds — so the driver stays the single writer of the
DuckDB file and resume, claims, progress and batch identity are shared code.

- Secrets: the environment variable named by ``api_key_env`` is sent as the task's
  ``runtime_env={"env_vars": …}``; it is never put in the plan, the run's params or the
  database.
- Cancellation: ``cancel`` set (Ctrl-C) → ``ray.cancel`` of the task; the worker stops
  the engine and its sandbox; the run is stored ``cancelled`` with the iterations it had
  sent, which resume runs again.
- A worker that dies mid-run (node lost, OOM kill, ``os._exit``) ends that run as
  ``error`` with the iterations it had sent; Ray's own task retry is off (``max_retries
  = 0``) because a re-executed generator would replay iterations with new call ids.
- Ray is imported only here and only when this executor is asked for: without it the
  error names ``pip install 'rlmine[ray]'``.
"""

from __future__ import annotations

import os
import threading
import time
from dataclasses import replace
from types import ModuleType
from typing import Any

from recorder.engine import RunObserver
from recorder.executors.base import LMPlan, RunRequest
from recorder.executors.local import close_lms
from recorder.executors.remote_run import stream_run
from rlmine.errors import RlmineRuntimeError, UserError
from rlmine.ray_connect import connect, import_ray
from rlmine.trace import Iteration, LLMCall, Run, StepLabel, Trace, utcnow

__all__ = ["RayExecutor", "RayWorkerLost"]

_POLL_S = 0.2  # how often a waiting driver thread looks at the cancel flag


class RayWorkerLost(RlmineRuntimeError):
    """The Ray worker running a run died before the run ended (stored as the run's error)."""


class RayExecutor:
    """Runs each request as a Ray task; see the module docstring.

    ``address``: a running cluster (``auto`` or ``HEAD:6379``, from a cluster node);
    None connects to ``$RAY_ADDRESS`` when set, else starts a private local Ray bound to
    127.0.0.1 (dashboard off) that :meth:`close` shuts down. An already initialised
    Ray (a notebook, a test) is used as it is. ``num_cpus`` is the CPU share Ray
    reserves per run (a run mostly waits on the LLM, so a fraction packs more per core).
    ``env``: names of further environment variables sent to the workers with the API key
    (e.g. ``ANTHROPIC_API_KEY`` for a ``litellm/`` model).
    """

    name = "ray"

    def __init__(
        self,
        address: str | None = None,
        *,
        num_cpus: float = 1.0,
        env: tuple[str, ...] = (),
        init_options: dict[str, Any] | None = None,
    ) -> None:
        self.address = address
        self.num_cpus = num_cpus
        self.env = tuple(env)
        self.init_options = dict(init_options or {})
        self._ray: ModuleType | None = None
        self._owns_ray = False
        self._task: Any = None
        self._plan_ref: Any = None

    # -- lifecycle ---------------------------------------------------------------
    def open(self, plan: LMPlan) -> None:
        ray = import_ray()
        # Build every backend once here, as the local executor does, so a bad model
        # spec or a missing API key fails before anything is written or submitted.
        close_lms([plan.make(m, role) for m in plan.models for role in ("root", "sub")])
        secrets = self._secrets(plan)
        self._owns_ray = connect(self.address, self.init_options)
        self._ray = ray
        options: dict[str, Any] = {"num_returns": "streaming", "num_cpus": self.num_cpus, "max_retries": 0}
        if secrets:
            options["runtime_env"] = {"env_vars": secrets}
        self._task = ray.remote(stream_run).options(**options)
        self._plan_ref = ray.put(plan)

    def _secrets(self, plan: LMPlan) -> dict[str, str]:
        """The API key variable and any ``env`` names, from the driver's environment."""
        names = [n for n in (plan.api_key_env, *self.env) if n]
        missing = [n for n in self.env if n not in os.environ]
        if missing:
            raise UserError(
                f"--ray-env {missing[0]} is not set in this environment",
                f"export {missing[0]}=… before recording, or drop --ray-env {missing[0]}",
            )
        return {n: os.environ[n] for n in names if n in os.environ}

    def close(self) -> None:
        if self._ray is not None and self._owns_ray:
            self._ray.shutdown()
        self._ray, self._owns_ray, self._task, self._plan_ref = None, False, None, None

    # -- one run -----------------------------------------------------------------
    def run(self, request: RunRequest, observer: RunObserver, cancel: threading.Event) -> Trace:
        ray = self._ray
        if ray is None or self._task is None:
            raise RlmineRuntimeError("the Ray executor is not open", "calling open() first")
        stream = self._task.remote(request, self._plan_ref)
        replay = _Replay(request, observer)
        t0 = time.perf_counter()
        while True:
            # What has arrived is taken first: a run that ended just before Ctrl-C keeps its end.
            ready, _ = ray.wait([stream], timeout=0 if cancel.is_set() else _POLL_S)
            if not ready:
                if cancel.is_set():
                    ray.cancel(stream)
                    return replay.cancelled(time.perf_counter() - t0)
                continue
            try:
                event = ray.get(next(stream))
            except StopIteration:
                raise RayWorkerLost("the Ray task ended without reporting the run's end") from None
            except ray.exceptions.TaskCancelledError:  # `ray cancel` from outside this driver
                return replay.cancelled(time.perf_counter() - t0)
            except ray.exceptions.RayTaskError as exc:  # the task's own code failed, not the engine
                raise RlmineRuntimeError(f"the Ray task failed: {_first_line(exc)}") from None
            except ray.exceptions.RayError as exc:  # worker or node died, object lost
                raise RayWorkerLost(
                    f"the Ray worker running this run died ({type(exc).__name__}: {_first_line(exc)})"
                ) from None
            done = replay.feed(event)
            if done is not None:
                return done


class _Replay:
    """Feeds one run's streamed events to the batch's observer and keeps what it needs
    to hand back the whole trace (the iterations are never sent twice)."""

    def __init__(self, request: RunRequest, observer: RunObserver) -> None:
        # Until the worker's "started" arrives, the run is the claimed template plus what a
        # local run that is cancelled before its first step would carry.
        self.run = replace(request.run, question=request.question, started_at=utcnow())
        self.observer = observer
        self.iterations: list[Iteration] = []
        self.calls: list[LLMCall] = []
        self.labels: list[StepLabel] = []

    def feed(self, event: tuple[Any, ...]) -> Trace | None:
        kind = event[0]
        if kind == "started":
            self.run = event[1]
            self.observer.run_started(self.run)
        elif kind == "iteration":
            _kind, iteration, calls, labels = event
            self.iterations.append(iteration)
            self.calls.extend(calls)
            self.labels.extend(labels)
            self.observer.iteration_finished(iteration, calls, labels)
        elif kind == "finished":
            return self._trace(event[1])
        elif kind == "raised":
            raise event[1]
        return None

    def _trace(self, run: Run) -> Trace:
        return Trace(
            run=run, iterations=tuple(self.iterations), calls=tuple(self.calls), labels=tuple(self.labels)
        )

    def cancelled(self, waited_s: float) -> Trace:
        run = replace(self.run, status="cancelled", finished_at=utcnow(), wall_s=waited_s)
        return self._trace(run).with_totals()


def _first_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return text[:300]
