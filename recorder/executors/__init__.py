"""Where a batch's runs execute: ``local`` (threads of this process, the default) or ``ray``.

A registry maps ``--executor`` names to factories; the Ray executor's module (and Ray)
is imported only when asked for. See :mod:`recorder.executors.base` for the contract.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from recorder.executors.base import Executor, LMPlan, RunRequest
from recorder.executors.local import LocalExecutor
from rlmine.errors import UserError

__all__ = ["EXECUTORS", "Executor", "LMPlan", "LocalExecutor", "RunRequest", "make_executor"]


_RAY_FLAGS = {"address": "--ray-address", "num_cpus": "--ray-cpus-per-run", "env": "--ray-env"}


def _local(**options: Any) -> Executor:
    given = [_RAY_FLAGS.get(k, k) for k, v in options.items() if v not in (None, ())]
    if given:
        verb = "is" if len(given) == 1 else "are"
        raise UserError(f"{' and '.join(given)} {verb} for the Ray executor only", "adding --executor ray")
    return LocalExecutor()


def _ray(**options: Any) -> Executor:
    from rlmine.ray_connect import import_ray

    import_ray()  # the install hint before anything else
    from recorder.executors.ray_executor import RayExecutor

    kwargs = {k: v for k, v in options.items() if v not in (None, ())}
    return RayExecutor(**kwargs)


EXECUTORS: Mapping[str, Callable[..., Executor]] = {"local": _local, "ray": _ray}


def make_executor(name: str, **options: Any) -> Executor:
    """An executor by registry name; ``options`` (address, num_cpus, env) are the Ray executor's."""
    try:
        factory = EXECUTORS[name]
    except KeyError:
        raise UserError(f"unknown executor {name!r}", f"--executor one of: {', '.join(EXECUTORS)}") from None
    return factory(**options)
