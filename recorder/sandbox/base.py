"""The sandbox interface: what the RLM engine sees of the REPL that runs LLM-written code.

Lifecycle (as in DSPy's code interpreter): ``start()`` → ``execute(code)``\\* → ``shutdown()``;
a sandbox is also a context manager. Each ``execute`` returns an :class:`ExecutionResult`, a
typed value: the engine formats it for the LM only at the prompt boundary.

Errors are split by who can recover:

* a cell that fails (exception, timeout, memory, even a crashed worker that could be
  restarted) is a *result* with ``error_kind`` set — the model sees the message and goes on;
* :class:`SandboxError` is *terminal*: the sandbox cannot continue (it cannot start or
  restart, the context cannot be loaded). The engine records it and ends the run.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal, Protocol

from rlmine.errors import RlmineRuntimeError, UserError

ErrorKind = Literal["code", "timeout", "memory", "sandbox"]
ContextFormat = Literal["auto", "text", "json", "jsonl"]
NamespaceMode = Literal["auto", "userns", "off"]
StartMethod = Literal["forkserver", "spawn"]

CONTEXT_FORMATS: tuple[str, ...] = ("auto", "text", "json", "jsonl")
NAMESPACE_MODES: tuple[str, ...] = ("auto", "userns", "off")
START_METHODS: tuple[str, ...] = ("forkserver", "spawn")
START_METHOD_ENV = "RLMINE_SANDBOX_START"

# (prompts, model) -> responses, one per prompt, in order. Called on the host, in the thread
# that called ``execute``; the handler owns parallelism and turns per-prompt failures into
# strings. An exception it raises becomes a RuntimeError inside the cell.
LLMHandler = Callable[[list[str], str | None], list[str]]


@dataclass(frozen=True, slots=True)
class ExecutionResult:
    """What one cell did.

    ``stdout``/``stderr`` hold at most ``max_output_chars`` characters each. When output was
    cut (``output_truncated``), the kept text is a head and a tail joined at index
    ``stdout_cut`` (resp. ``stderr_cut``): the engine inserts its own marker there.

    ``error_kind``: "code" (the cell raised), "memory" (MemoryError at the memory limit; the
    worker lives on), "timeout" (with ``restarted`` False the cell was interrupted and the
    namespace kept; with ``restarted`` True it ignored the interruption and the worker was
    killed), "sandbox" (the worker died — segfault, ``os._exit``, OOM kill — and was
    restarted). Whenever ``restarted`` is True every variable is gone; ``context`` is back.
    """

    stdout: str
    stderr: str
    error: str | None  # formatted exception: user frames only, then "Type: message"
    error_kind: ErrorKind | None
    submitted: bool  # SUBMIT(answer) was called in this cell
    answer: object | None  # the SUBMIT argument, converted to JSON-able values
    duration_s: float  # wall time of the whole cell, LLM calls included
    stdout_bytes: int  # UTF-8 bytes the cell wrote to stdout, before capping
    output_truncated: bool
    restarted: bool  # the worker was restarted: every variable was lost, context reloaded
    stdout_cut: int | None = None
    stderr_cut: int | None = None

    @property
    def ok(self) -> bool:
        return self.error is None


def default_start_method() -> StartMethod:
    """``$RLMINE_SANDBOX_START`` if set, else "forkserver" on Linux and "spawn" elsewhere."""
    chosen = os.environ.get(START_METHOD_ENV)
    if chosen:
        return chosen  # type: ignore[return-value]  # checked by SandboxConfig.validate
    return "forkserver" if sys.platform.startswith("linux") else "spawn"


class SandboxError(RlmineRuntimeError):
    """Terminal: the sandbox cannot start, restart or load its context."""


class Sandbox(Protocol):
    """A REPL with a persistent namespace holding ``context``, ``llm_query``, ``SUBMIT``."""

    def start(self) -> None: ...

    def execute(self, code: str) -> ExecutionResult: ...

    def shutdown(self) -> None: ...


@dataclass(frozen=True)
class SandboxConfig:
    """Settings of one sandbox. Limits apply per worker process.

    ``context_path`` may be a file (``context_format`` "text" gives a str, "json" the parsed
    value, "jsonl" a list of objects; "auto" picks by extension) or a directory (a dict
    ``{relative_path: text}``). The memory limit is raised to fit the loaded context: the
    worker gets at least its size after loading plus ``max(512 MB, 1.5 × file size)``.
    ``namespaces``: "auto" uses Linux namespaces where permitted (root directly, otherwise
    through a user namespace), "userns" always goes through a user namespace, "off" relies
    on rlimits and in-process guards only.
    ``start_method``: "forkserver" forks workers from a per-host template process that has
    the worker's modules loaded (fast; falls back to "spawn" by itself when the template
    cannot run, see :mod:`recorder.sandbox.host.forkserver`); "spawn" starts a new interpreter
    per worker. Both confine the worker the same way; ``isolation["start"]`` says which ran.
    ``share_context``: with the fork server, sandboxes whose context is the same large file
    (16 MB and more, same version) fork their workers from one process that loaded it, so
    they share its memory copy-on-write (see :mod:`recorder.sandbox.host.context_share`).
    ``view``: where mount namespaces apply, the worker sees a private filesystem
    (:mod:`recorder.sandbox.worker.fsview`): Python, the context (read-only) and a scratch folder —
    a fresh tmpfs of at most ``scratch_limit_mb`` at ``workdir``, emptied whenever the
    worker is (re)started — plus its own ``/tmp`` and ``/dev/shm`` of ``tmp_limit_mb`` each.
    Started as root, the worker then runs as uid/gid 65534 (nobody). False keeps the host's
    filesystem (the worker's files then land in ``workdir`` on the host).
    """

    context_path: str | None = None
    context_format: ContextFormat = "auto"
    cell_timeout_s: float = 60.0
    memory_limit_mb: int = 4096
    file_size_limit_mb: int = 256
    max_output_chars: int = 100_000
    max_processes: int = 64
    network: bool = False
    workdir: str | None = None
    extra_env: dict[str, str] = field(default_factory=dict)
    start_timeout_s: float = 120.0
    namespaces: NamespaceMode = "auto"
    start_method: StartMethod = field(default_factory=default_start_method)
    share_context: bool = True
    view: bool = True
    scratch_limit_mb: int = 256
    tmp_limit_mb: int = 32

    def validate(self) -> None:
        """Raise UserError on a setting no sandbox could honour."""
        checks: list[tuple[bool, str, str]] = [
            (self.cell_timeout_s > 0, f"cell_timeout_s must be > 0, got {self.cell_timeout_s}", "60"),
            (
                self.memory_limit_mb >= 64,
                f"memory_limit_mb must be >= 64, got {self.memory_limit_mb}",
                "4096",
            ),
            (
                self.file_size_limit_mb >= 1,
                f"file_size_limit_mb must be >= 1, got {self.file_size_limit_mb}",
                "256",
            ),
            (
                self.max_output_chars >= 0,
                f"max_output_chars must be >= 0, got {self.max_output_chars}",
                "100000",
            ),
            (self.max_processes >= 1, f"max_processes must be >= 1, got {self.max_processes}", "64"),
            (self.start_timeout_s > 0, f"start_timeout_s must be > 0, got {self.start_timeout_s}", "120"),
            (
                self.scratch_limit_mb >= 1,
                f"scratch_limit_mb must be >= 1, got {self.scratch_limit_mb}",
                "256",
            ),
            (self.tmp_limit_mb >= 1, f"tmp_limit_mb must be >= 1, got {self.tmp_limit_mb}", "32"),
        ]
        for ok, message, example in checks:
            if not ok:
                raise UserError(message, f"a value such as {example}")
        if self.context_format not in CONTEXT_FORMATS:
            raise UserError(
                f"unknown context format {self.context_format!r}",
                f"one of {', '.join(CONTEXT_FORMATS)}",
            )
        if self.namespaces not in NAMESPACE_MODES:
            raise UserError(
                f"unknown namespaces mode {self.namespaces!r}", f"one of {', '.join(NAMESPACE_MODES)}"
            )
        if self.start_method not in START_METHODS:
            raise UserError(
                f"unknown sandbox start method {self.start_method!r} (from start_method or ${START_METHOD_ENV})",
                f"one of {', '.join(START_METHODS)}",
            )
        for key, value in self.extra_env.items():
            if not isinstance(key, str) or not isinstance(value, str) or not key or "=" in key:
                raise UserError(
                    f"invalid extra_env entry {key!r}", "string names without '=' and string values"
                )
