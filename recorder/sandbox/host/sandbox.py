"""The host side of the sandbox: one worker process per sandbox, driven over two pipes.

The worker (:mod:`recorder.sandbox.worker.serve`) is forked from the per-host fork-server template
or spawned as ``worker/main.py`` (:mod:`recorder.sandbox.host.process`; ``isolation["start"]``
says which), with an environment built from scratch (API keys never reach it), in its own
session and scratch directory. It confines itself before running user code
(:mod:`recorder.sandbox.worker.isolation`); the host adds a pids cgroup when it can
(:mod:`recorder.sandbox.host.cgroup`). ``isolation`` records what applied. Sandboxes on the same
large context file fork their workers from one process that loaded it, sharing its memory
(:mod:`recorder.sandbox.host.context_share`).

``execute`` sends the code and waits for the result, serving ``llm`` requests from the cell
meanwhile by calling the LLM handler in the caller's thread. Time spent in the handler does
not count against the cell. A cell that outlives its soft timeout (handled in the worker)
by a grace period, crashes the worker or garbles the protocol gets its worker killed and
replaced: the result says so (``restarted``) and the next cell runs in a fresh namespace.
A failure to (re)start raises :class:`SandboxError`.

Process-global state is limited to the fork-server template and the context templates,
shared by all sandboxes of the process (thread-safe, stopped at exit): no signal handlers,
no ``chdir``, no environment changes in the host. One sandbox belongs to one thread; many
may run in parallel threads.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
import time
import weakref
from typing import Any

from recorder.sandbox.base import ErrorKind, ExecutionResult, LLMHandler, SandboxConfig, SandboxError
from recorder.sandbox.host.cgroup import PidsCgroup
from recorder.sandbox.host.context_share import ContextShare
from recorder.sandbox.host.process import (
    WorkerProcess,
    describe_exit,
    start_worker,
    wants_template_view,
    worker_environment,
)
from recorder.sandbox.protocol import ProtocolError, write_frame
from rlmine.errors import UserError

HARD_GRACE_S = 2.0  # after the soft timeout, before the worker is killed
_LOST = "It was restarted: all variables were lost (scratch files too) and `context` was reloaded."


class _Resources:
    """Everything shutdown must release; also run by a weakref finalizer."""

    def __init__(self) -> None:
        self.worker: WorkerProcess | None = None
        self.cgroup: PidsCgroup | None = None
        self.workdir: str | None = None
        self.owns_workdir = False
        self.share: ContextShare | None = None

    def release(self) -> None:
        if self.worker is not None:
            self.worker.kill()
            self.worker = None
        if self.share is not None:
            self.share.release()
            self.share = None
        if self.cgroup is not None:
            self.cgroup.remove()
            self.cgroup = None
        if self.owns_workdir and self.workdir:
            shutil.rmtree(self.workdir, ignore_errors=True)
            self.owns_workdir = False


class SubprocessSandbox:
    """A :class:`~recorder.sandbox.base.Sandbox` running cells in a confined worker process."""

    def __init__(self, config: SandboxConfig, llm_handler: LLMHandler | None = None) -> None:
        config.validate()
        self._config = config
        self._llm_handler = llm_handler
        self._res = _Resources()
        self._finalizer = weakref.finalize(self, _Resources.release, self._res)
        self._isolation: dict[str, str] = {}
        self._worker_info: dict[str, Any] = {}
        self._start_record: tuple[str, str | None] = ("", None)  # (isolation["start"], fallback reason)
        self._started = False
        self._closed = False
        self._cells = 0  # cells sent to this sandbox, across restarts: error messages name them

    @property
    def isolation(self) -> dict[str, str]:
        """What confinement applied, e.g. ``{"network": "netns", "start": "forkserver", ...}``."""
        return dict(self._isolation)

    @property
    def worker_info(self) -> dict[str, Any]:
        """The current worker's start-up report: context_type, context_len, ready_s, peak_rss_mb,
        context_shared (forked from a template holding the context), pid (as the host sees
        it), start_method ("forkserver" or "spawn") and start_fallback (why a fork was not
        possible, else None)."""
        return dict(self._worker_info)

    @property
    def workdir(self) -> str | None:
        return self._res.workdir

    def __enter__(self) -> SubprocessSandbox:
        self.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self.shutdown()

    def start(self) -> None:
        if self._closed:
            raise SandboxError("the sandbox was shut down", "create a new sandbox")
        if self._started:
            return
        path = self._config.context_path
        if path is not None and not os.path.exists(path):
            raise UserError(f"context not found: {path}", "a path to an existing file or directory")
        if self._config.workdir:
            os.makedirs(self._config.workdir, exist_ok=True)
            self._res.workdir = self._config.workdir
        else:
            self._res.workdir = tempfile.mkdtemp(prefix="rlmine-sandbox-")
            self._res.owns_workdir = True
        self._res.cgroup = PidsCgroup.create(self._config.max_processes)
        if self._config.share_context and self._config.start_method == "forkserver":
            in_view = wants_template_view(self._config.view, self._config.namespaces)
            self._res.share = ContextShare(
                path, self._config.context_format, self._config.start_timeout_s, in_view
            )
        self._started = True
        self._spawn()

    def _settings(self) -> dict[str, Any]:
        c = self._config
        return {
            "context_path": os.path.abspath(c.context_path) if c.context_path else None,
            "context_format": c.context_format,
            "cell_timeout_s": c.cell_timeout_s,
            "memory_limit_mb": c.memory_limit_mb,
            "file_size_limit_mb": c.file_size_limit_mb,
            "max_output_chars": c.max_output_chars,
            "max_processes": c.max_processes,
            "network": c.network,
            "namespaces": c.namespaces,
            "cgroup": self._res.cgroup.path if self._res.cgroup else None,
            "llm": self._llm_handler is not None,
            "workdir": os.path.realpath(self._res.workdir or "."),
            "view": c.view,
            "scratch_limit_mb": c.scratch_limit_mb,
            "tmp_limit_mb": c.tmp_limit_mb,
        }

    def _spawn(self) -> None:
        workdir = self._res.workdir
        assert workdir is not None  # set by start()
        if self._res.cgroup is not None:
            self._res.cgroup.kill_all()
        extra_env = self._config.extra_env
        env = worker_environment(workdir, extra_env)
        worker, fallback = start_worker(
            self._settings(), workdir, env, self._config.start_method, extra_env, self._res.share
        )
        self._res.worker = worker
        self._start_record = (
            worker.start_method if fallback is None else f"spawn (fallback: {fallback})",
            fallback,
        )
        self._await_ready(worker)

    def _await_ready(self, worker: WorkerProcess) -> None:
        try:
            frame, _ = worker.reader.next_frame(self._config.start_timeout_s)
        except (EOFError, ProtocolError):
            frame = {"op": "died"}
        if frame is not None and frame.get("op") == "ready" and "error" not in frame:
            reported = frame.get("isolation")
            start, fallback = self._start_record
            self._isolation = {
                "env": "clean",
                **(reported if isinstance(reported, dict) else {}),
                "start": start,
            }
            self._worker_info = {
                key: frame.get(key)
                for key in ("context_type", "context_len", "ready_s", "peak_rss_mb", "context_shared")
            } | {"pid": worker.pid, "start_method": worker.start_method, "start_fallback": fallback}
            return
        detail = describe_exit(worker.exit_code(0.5), relayed=True)
        crash = worker.crash_lines()
        self._discard_worker()
        if frame is None:
            raise SandboxError(
                f"the sandbox worker was not ready after {self._config.start_timeout_s:g} s",
                "a larger start_timeout_s for a very large context",
            )
        if frame.get("error"):
            raise SandboxError(str(frame["error"]), "check the context file and context_format")
        raise SandboxError(
            f"the sandbox worker failed to start ({detail}){': ' + crash if crash else ''}",
            'namespaces="off" in the sandbox config if this platform forbids Linux namespaces',
        )

    def _discard_worker(self) -> None:
        if self._res.worker is not None:
            self._res.worker.kill()
            self._res.worker = None

    def execute(self, code: str) -> ExecutionResult:
        if self._closed:
            raise SandboxError("the sandbox was shut down", "create a new sandbox")
        restarted = False
        if not self._started:
            self.start()
        elif self._res.worker is None:  # lost when an LLM handler was interrupted
            self._spawn()
            restarted = True
        worker = self._res.worker
        assert worker is not None
        self._cells += 1
        started = time.monotonic()
        outcome = self._died_between_cells(worker) or self._exchange(worker, code)
        if isinstance(outcome, dict):
            return _result(outcome, time.monotonic() - started, restarted)
        message, kind = outcome
        self._discard_worker()
        self._spawn()  # raises SandboxError when the worker cannot come back
        return ExecutionResult(
            stdout="",
            stderr="",
            error=message,
            error_kind=kind,
            submitted=False,
            answer=None,
            duration_s=time.monotonic() - started,
            stdout_bytes=0,
            output_truncated=False,
            restarted=True,
        )

    def _died_between_cells(self, worker: WorkerProcess) -> tuple[str, ErrorKind] | None:
        """A worker that died (or spoke) after the previous cell's result was blamed on that
        cell: something it left running (a thread, a signal) broke the worker."""
        if self._cells <= 1 or not worker.reader.hung_up():
            return None
        detail = describe_exit(worker.exit_code(0.5), "pidns" in self._isolation.get("pid", ""))
        culprit = self._cells - 1
        return (
            f"The sandbox worker died after cell {culprit} had finished ({detail}): something cell "
            f"{culprit} left running broke it, so this cell (cell {self._cells}) did not run. {_LOST}",
            "sandbox",
        )

    def _exchange(self, worker: WorkerProcess, code: str) -> dict[str, Any] | tuple[str, ErrorKind]:
        """Run one cell: its result frame, or why the worker must be replaced."""
        timeout = self._config.cell_timeout_s
        budget = timeout + HARD_GRACE_S + 0.1 * timeout
        try:
            write_frame(worker.cmd_fd, {"op": "exec", "code": code})
            while True:
                frame, waited = worker.reader.next_frame(budget)
                budget -= waited
                if frame is None:
                    return (
                        f"Cell {self._cells} exceeded its {timeout:g} s time limit and did not stop "
                        f"when interrupted, so the worker was killed. {_LOST}",
                        "timeout",
                    )
                if frame["op"] == "result":
                    return frame
                if frame["op"] != "llm":
                    raise ProtocolError(f"unexpected {frame['op']!r} frame")
                self._serve_llm(worker, frame)
        except (EOFError, OSError):
            relayed = "pidns" in self._isolation.get("pid", "")
            detail = describe_exit(worker.exit_code(0.5), relayed)
            crash = worker.crash_lines()
            message = f"The sandbox worker died while running cell {self._cells} ({detail}). {_LOST}"
            return message + (f"\n{crash}" if crash else ""), "sandbox"
        except ProtocolError as exc:
            return f"Cell {self._cells} garbled the sandbox's result pipe ({exc}). {_LOST}", "sandbox"

    def _serve_llm(self, worker: WorkerProcess, frame: dict[str, Any]) -> None:
        prompts, model = frame.get("prompts"), frame.get("model")
        reply: dict[str, Any]
        if not isinstance(prompts, list) or not all(isinstance(p, str) for p in prompts):
            reply = {"op": "llm_error", "message": "malformed llm request"}
        elif model is not None and not isinstance(model, str):
            reply = {"op": "llm_error", "message": "model must be a str or None"}
        elif self._llm_handler is None:
            reply = {"op": "llm_error", "message": "this sandbox has no LM handler"}
        else:
            try:
                responses = self._llm_handler(prompts, model)
            except Exception as exc:
                reply = {"op": "llm_error", "message": f"{type(exc).__name__}: {exc}"}
            except BaseException:
                self._discard_worker()  # the cell is left waiting: start over next time
                raise
            else:
                if isinstance(responses, list) and len(responses) == len(prompts):
                    reply = {"op": "llm_result", "responses": [str(r) for r in responses]}
                else:
                    reply = {
                        "op": "llm_error",
                        "message": "the LM handler returned the wrong number of responses",
                    }
        with contextlib.suppress(OSError):  # a dead worker shows up as EOF on the next read
            write_frame(worker.cmd_fd, reply)

    def shutdown(self) -> None:
        """Kill the worker (and anything it started), remove the scratch dir. Idempotent."""
        self._closed = True
        self._finalizer()


def _result(frame: dict[str, Any], duration_s: float, restarted: bool) -> ExecutionResult:
    kind = frame.get("error_kind")
    error = frame.get("error")

    def cut(name: str) -> int | None:
        value = frame.get(name)
        return value if isinstance(value, int) else None

    return ExecutionResult(
        stdout=str(frame.get("stdout", "")),
        stderr=str(frame.get("stderr", "")),
        error=str(error) if error is not None else None,
        error_kind=kind if kind in ("code", "timeout", "memory") else ("code" if error else None),
        submitted=bool(frame.get("submitted")),
        answer=frame.get("answer"),
        duration_s=duration_s,
        stdout_bytes=int(frame.get("stdout_bytes") or 0),
        output_truncated=bool(frame.get("output_truncated")),
        restarted=restarted,
        stdout_cut=cut("stdout_cut"),
        stderr_cut=cut("stderr_cut"),
    )
