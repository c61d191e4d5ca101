"""Codegen: turn the approach recorded runs discovered into a standalone, validated agent script.

Pipeline (each step its own module): REPL cells (``rlmine.store.read_cells``) →
backward slice (:mod:`codegen.slicing`, over :mod:`codegen.dataflow`) → question
parameters (:mod:`codegen.params`) → a program function (:mod:`codegen.program`) →
candidates grouped and validated in the recorder's sandbox (:mod:`codegen.candidates`,
:mod:`codegen.validate`, :mod:`codegen.build_task`) or one run verified by replay
(:mod:`codegen.build_run`) → the script rendered with Jinja2 (:mod:`codegen.render`) →
compared with the RLM on test instances (:mod:`codegen.evaluate`).
"""

from __future__ import annotations

import importlib
from typing import Any

_HOMES = {
    "BuildError": "build_run",
    "BuildResult": "build_run",
    "build_from_run": "build_run",
    "TaskBuildOptions": "build_task",
    "build_for_task": "build_task",
    "Cell": "slicing",
    "Slice": "slicing",
    "SliceError": "slicing",
    "slice_cells": "slicing",
    "EvalOptions": "evaluate",
    "EvalReport": "evaluate",
    "run_eval": "evaluate",
}

__all__ = sorted(_HOMES)


def __getattr__(name: str) -> Any:
    # Lazy: `rlmine --help` must not import the recorder, the sandbox or Jinja2.
    if name in _HOMES:
        return getattr(importlib.import_module(f"codegen.{_HOMES[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
