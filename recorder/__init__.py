"""The recorder: task specs, the RLM engine, the sandbox, LM backends, batch runs, importers.

Python API::

    from recorder import RecordOptions, record, run_rlm
    trace = run_rlm("How many lines mention ERROR?", "server.log", lm="sim")
    result = record("task.yaml", db="traces/rlmine.duckdb", options=RecordOptions(runs=4))

Every name here *is* the object of the same name in its home module (``recorder.run_rlm is
recorder.engine.run_rlm``), so one name has one signature wherever it is imported from.
Names resolve on first use: ``import recorder`` loads nothing else, and a caller that passes
LM objects to ``run_rlm`` never loads a provider SDK.

Fakes for tests and offline use sit beside the real things: :class:`ScriptedLM` and
:class:`FunctionLM` for models, :class:`ScriptedSandbox` (with :func:`cell_result`) for the REPL.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from recorder.batch import RecordOptions, record
    from recorder.engine import EngineOptions, run_rlm
    from recorder.lm.registry import make_lm
    from recorder.lm.scripted import FunctionLM, ScriptedLM
    from recorder.sandbox.scripted import ScriptedSandbox, cell_result
    from recorder.tasks import Budget

__all__ = [
    "Budget",
    "EngineOptions",
    "FunctionLM",
    "RecordOptions",
    "ScriptedLM",
    "ScriptedSandbox",
    "cell_result",
    "make_lm",
    "record",
    "run_rlm",
]

HOMES = {
    "Budget": "recorder.tasks",
    "EngineOptions": "recorder.engine",
    "FunctionLM": "recorder.lm.scripted",
    "RecordOptions": "recorder.batch",
    "ScriptedLM": "recorder.lm.scripted",
    "ScriptedSandbox": "recorder.sandbox.scripted",
    "cell_result": "recorder.sandbox.scripted",
    "make_lm": "recorder.lm.registry",
    "record": "recorder.batch",
    "run_rlm": "recorder.engine",
}


def __getattr__(name: str) -> Any:
    if name in HOMES:
        return getattr(importlib.import_module(HOMES[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(__all__)
