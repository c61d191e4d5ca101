"""The recorder: task specs, the RLM engine, the sandbox, LM backends, batch runs, importers.

Python API::

    from recorder import record, run_rlm
    result = record("task.yaml", db="traces/rlmine.duckdb", runs=4, model="sim")
    trace = run_rlm("How many lines mention ERROR?", "server.log", lm="sim", sub_lm="sim")
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from recorder.batch import BatchResult
    from recorder.executors import Executor
    from recorder.lm.base import LM
    from recorder.tasks import Budget, TaskSpec
    from rlmine.trace import Trace

__all__ = ["record", "run_rlm"]


def run_rlm(
    question: str,
    context: str | Path | None,
    *,
    lm: LM | str = "sim",
    sub_lm: LM | str | None = None,
    budget: Budget | Mapping[str, Any] | None = None,
    temperature: float | None = None,
    seed: int | None = None,
    api_base: str | None = None,
) -> Trace:
    """One RLM run over the context file ``context``, without a database."""
    from recorder import engine
    from recorder.lm.registry import make_lm
    from recorder.tasks import Budget

    root = make_lm(lm, role="root", api_base=api_base) if isinstance(lm, str) else lm
    sub_spec = sub_lm if sub_lm is not None else (lm if isinstance(lm, str) else None)
    sub = make_lm(sub_spec, role="sub", api_base=api_base) if isinstance(sub_spec, str) else sub_spec
    if budget is None:
        budget = Budget()
    elif not isinstance(budget, Budget):
        budget = Budget().merged(budget)
    opts = engine.EngineOptions(budget=budget, temperature=temperature, seed=seed)
    return engine.run_rlm(question, context, lm=root, sub_lm=sub, options=opts)


def record(
    task: TaskSpec | str | Path,
    *,
    db: str | Path = "traces/rlmine.duckdb",
    runs: int = 1,
    model: str | tuple[str, ...] = "sim",
    executor: Executor | str = "local",
    **options: Any,
) -> BatchResult:
    """Record a batch; ``options`` are the fields of :class:`recorder.batch.RecordOptions`.

    ``executor``: ``"local"``, ``"ray"`` (a local Ray, or ``$RAY_ADDRESS``), or an executor
    object such as ``RayExecutor(address="auto", num_cpus=0.25)`` (see ``docs/scale-out.md``).
    """
    from recorder.batch import RecordOptions
    from recorder.batch import record as _record
    from recorder.executors import make_executor

    runner = make_executor(executor) if isinstance(executor, str) else executor
    models = (model,) if isinstance(model, str) else tuple(model)
    return _record(task, db=db, options=RecordOptions(runs=runs, models=models, **options), executor=runner)
