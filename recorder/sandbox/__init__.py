"""The sandboxed REPL that runs LLM-written code (see :mod:`recorder.sandbox.base`).

Exports are resolved lazily: the worker process imports modules of this package at
start-up and must not pay for the host side (subprocess, the error classes, ...).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from recorder.sandbox.base import ExecutionResult, LLMHandler, Sandbox, SandboxConfig, SandboxError
    from recorder.sandbox.host.sandbox import SubprocessSandbox

__all__ = ["ExecutionResult", "LLMHandler", "Sandbox", "SandboxConfig", "SandboxError", "SubprocessSandbox"]

_HOMES = {name: "recorder.sandbox.base" for name in __all__} | {
    "SubprocessSandbox": "recorder.sandbox.host.sandbox"
}


def __getattr__(name: str) -> Any:
    if name in _HOMES:
        return getattr(importlib.import_module(_HOMES[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
