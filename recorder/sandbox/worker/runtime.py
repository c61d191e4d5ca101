"""Running cells inside the worker: the namespace, SUBMIT, llm_query, timeouts, errors.

Each cell is compiled as ``<cell N>`` (its source registered with :mod:`linecache`, so
tracebacks show the user's lines) and executed in one persistent namespace holding
``context``, ``llm_query``, ``llm_query_batched``, ``SUBMIT`` (aliases ``FINAL`` and
``FINAL_VAR``). ``SUBMIT`` stops the cell at once, as DSPy's RLM does: it records the answer
and raises a private ``BaseException`` that the runner catches.

Timeouts are two-stage. Here, a SIGALRM timer raises ``CellTimeout`` (a BaseException, so
``except Exception`` in user code does not swallow it) when the cell's time is up: the
worker survives and keeps the namespace. The timer is paused while ``llm_query`` waits for
the host, so LLM latency does not count. The host keeps a hard deadline a little later for
cells stuck in C code or catching everything; then the worker is killed and restarted.
"""

from __future__ import annotations

import builtins
import json
import linecache
import os
import signal
import sys
import threading
import time
import traceback
from collections.abc import Callable, Iterable
from typing import Any

from recorder.sandbox.protocol import (
    MAX_ANSWER_CHARS,
    MAX_ERROR_CHARS,
    MAX_LLM_REQUEST_BYTES,
    encode_frame,
    read_frame,
    write_encoded,
    write_frame,
)
from recorder.sandbox.worker.capture import CappedWriter, clean_text

MAX_TRACEBACK_FRAMES = 8
_PACKAGE_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))  # recorder/sandbox


class CellTimeout(BaseException):
    """Raised in the cell when its time is up."""


class _Submitted(BaseException):
    """Stops the cell after SUBMIT."""


class CellTimer:
    """A one-shot SIGALRM timer that can be paused while the host serves an LLM call."""

    def __init__(self) -> None:
        self._armed = False
        self._paused = False
        self._remaining = 0.0
        self._started = 0.0
        signal.signal(signal.SIGALRM, self._on_alarm)

    def _on_alarm(self, _signum: int, _frame: object) -> None:
        if self._armed:
            self._armed = False
            raise CellTimeout()

    def _run(self) -> None:
        self._started = time.monotonic()
        self._armed = True
        signal.setitimer(signal.ITIMER_REAL, max(self._remaining, 0.001))

    def arm(self, seconds: float) -> None:
        # A previous cell may have replaced, ignored or blocked SIGALRM: every cell gets its
        # timer afresh. (Once per cell, not after each llm_query: a cell that breaks its own
        # timer meets the host's hard timeout, and the next cell is whole again.)
        signal.signal(signal.SIGALRM, self._on_alarm)
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGALRM})
        self._remaining = seconds
        self._paused = False
        self._run()

    def pause(self) -> None:
        if not self._armed:
            return
        self._armed = False
        signal.setitimer(signal.ITIMER_REAL, 0)
        self._remaining -= time.monotonic() - self._started
        self._paused = True

    def resume(self) -> None:
        if not self._paused:
            return
        self._paused = False
        if self._remaining <= 0:
            raise CellTimeout()
        self._run()

    def disarm(self) -> None:
        self._armed = False
        self._paused = False
        signal.setitimer(signal.ITIMER_REAL, 0)


def to_jsonable(value: Any, depth: int = 0) -> Any:
    """Plain JSON values as they are; containers converted; numpy scalars/arrays unwrapped."""
    if isinstance(value, str):
        return clean_text(value)
    if value is None or isinstance(value, bool | int | float):
        return value
    if depth > 50:
        return str(value)
    if isinstance(value, dict):
        return {clean_text(str(key)): to_jsonable(item, depth + 1) for key, item in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        items = sorted(value, key=repr) if isinstance(value, set | frozenset) else value
        return [to_jsonable(item, depth + 1) for item in items]
    if callable(getattr(value, "tolist", None)):  # numpy arrays and scalars
        try:
            return to_jsonable(value.tolist(), depth + 1)
        except Exception:
            pass
    return clean_text(str(value))


def format_exception(exc: BaseException) -> str:
    """The user's frames (cells), then the frame that raised if it is library code."""
    frames = traceback.extract_tb(exc.__traceback__)
    shown = [frame for frame in frames if frame.filename.startswith("<cell ")]
    if shown and frames and not frames[-1].filename.startswith(("<cell ", _PACKAGE_DIR)):
        shown.append(frames[-1])
    lines = []
    if shown:
        lines = [
            "Traceback (most recent call last):\n",
            *traceback.format_list(shown[-MAX_TRACEBACK_FRAMES:]),
        ]
    lines += traceback.format_exception_only(type(exc), exc)
    text = "".join(lines).rstrip("\n")
    if len(text) > MAX_ERROR_CHARS:  # keep the frame within the host's cap
        half = MAX_ERROR_CHARS // 2
        text = f"{text[:half]}\n[... {len(text) - 2 * half:,} characters cut ...]\n{text[-half:]}"
    return clean_text(text)


class LLMBridge:
    """``llm_query`` in the cell → an ``llm`` frame to the host → its reply."""

    def __init__(self, cmd_fd: int, res_fd: int, available: bool, timer: CellTimer) -> None:
        self._cmd_fd, self._res_fd = cmd_fd, res_fd
        self._available = available
        self._timer = timer
        self.lock = threading.Lock()  # one request in flight: user threads share the pipes

    def query(self, prompts: list[str], model: str | None) -> list[str]:
        if not self._available:
            raise RuntimeError("llm_query is not available: this sandbox was started without an LM handler")
        if not prompts:
            return []
        with self.lock:
            self._timer.pause()
            try:
                request = {"op": "llm", "prompts": [clean_text(p) for p in prompts], "model": model}
                frame = encode_frame(request)
                if len(frame) > MAX_LLM_REQUEST_BYTES:
                    raise ValueError(
                        f"this llm_query request is {len(frame) / (1 << 20):.1f} MB, over the "
                        f"{MAX_LLM_REQUEST_BYTES >> 20} MB one call may carry: send fewer or shorter prompts per call"
                    )
                write_encoded(self._res_fd, frame)
                reply = read_frame(self._cmd_fd)
            finally:
                self._timer.resume()
        if reply.get("op") == "llm_result":
            responses = reply.get("responses")
            if isinstance(responses, list) and len(responses) == len(prompts):
                return [str(response) for response in responses]
        raise RuntimeError(f"llm_query failed: {reply.get('message', 'malformed reply from the host')}")


def _check_model(model: object) -> str | None:
    if model is not None and not isinstance(model, str):
        raise TypeError(f"model must be a str or None, got {type(model).__name__}")
    return model


class CellRunner:
    """Executes cells in one persistent namespace; returns the ``result`` frame of each."""

    def __init__(
        self, context: Any, bridge: LLMBridge, timer: CellTimer, timeout_s: float, max_chars: int
    ) -> None:
        self._bridge, self._timer = bridge, timer
        self._timeout_s, self._max_chars = timeout_s, max_chars
        self._cells = 0
        self._answer: Any = None
        self.namespace: dict[str, Any] = {
            "__name__": "__main__",
            "__builtins__": builtins,
            "context": context,
            "llm_query": self._llm_query,
            "llm_query_batched": self._llm_query_batched,
            "SUBMIT": self._submit,
            "FINAL": self._submit,
            "FINAL_VAR": self._final_var,
        }

    def _llm_query(self, prompt: str, model: str | None = None) -> str:
        if not isinstance(prompt, str):
            raise TypeError(f"llm_query expects a str prompt, got {type(prompt).__name__}")
        return self._bridge.query([prompt], _check_model(model))[0]

    def _llm_query_batched(self, prompts: Iterable[str], model: str | None = None) -> list[str]:
        if isinstance(prompts, str):
            raise TypeError("llm_query_batched expects a list of prompts, got a single str")
        batch = list(prompts)
        for index, prompt in enumerate(batch):
            if not isinstance(prompt, str):
                raise TypeError(f"llm_query_batched: prompt {index} is a {type(prompt).__name__}, not a str")
        return self._bridge.query(batch, _check_model(model))

    def _submit(self, *args: Any, **fields: Any) -> None:
        if len(args) == 1 and not fields:
            value = args[0]
        elif not args and len(fields) == 1:
            value = next(iter(fields.values()))
        elif not args and fields:
            value = fields
        else:
            raise TypeError("SUBMIT takes one answer: SUBMIT(answer)")
        answer = to_jsonable(value)
        size = len(json.dumps(answer))
        if size > MAX_ANSWER_CHARS:
            raise ValueError(
                f"SUBMIT answer is too large ({size} chars > {MAX_ANSWER_CHARS}): submit a summary"
            )
        self._answer = answer
        raise _Submitted()

    def _final_var(self, name: str) -> None:
        if not isinstance(name, str) or name not in self.namespace:
            raise NameError(f"FINAL_VAR: no variable named {name!r}")
        self._submit(self.namespace[name])

    def run(self, code: str) -> dict[str, Any]:
        self._cells += 1
        filename = f"<cell {self._cells}>"
        linecache.cache[filename] = (len(code), None, code.splitlines(True), filename)
        out, err = CappedWriter(self._max_chars), CappedWriter(self._max_chars)
        error: str | None = None
        kind: str | None = None
        submitted = False
        sys.stdout, sys.stderr = out, err
        try:
            try:
                compiled = compile(code, filename, "exec")
                self._timer.arm(self._timeout_s)
                try:
                    exec(compiled, self.namespace)
                finally:
                    self._timer.disarm()
            except _Submitted:
                submitted = True
            except CellTimeout:
                kind = "timeout"
                error = (
                    f"TimeoutError: the cell ran longer than {self._timeout_s:g} s and was interrupted; "
                    "variables assigned before the interruption are kept"
                )
            except MemoryError as exc:
                kind, error = "memory", format_exception(exc) + " (the sandbox's memory limit was reached)"
            except BaseException as exc:  # user code may raise anything, SystemExit included
                kind, error = "code", format_exception(exc)
        finally:
            self._timer.disarm()
            sys.stdout, sys.stderr = sys.__stdout__, sys.__stderr__
        return self._outcome(out, err, error, kind, submitted)

    def _outcome(
        self, out: CappedWriter, err: CappedWriter, error: str | None, kind: str | None, submitted: bool
    ) -> dict[str, Any]:
        stdout, stdout_cut = out.value()
        stderr, stderr_cut = err.value()
        answer, self._answer = (self._answer if submitted else None), None
        return {
            "op": "result",
            "stdout": stdout,
            "stderr": stderr,
            "stdout_cut": stdout_cut,
            "stderr_cut": stderr_cut,
            "stdout_bytes": out.bytes,
            "output_truncated": out.truncated or err.truncated,
            "error": error,
            "error_kind": kind,
            "submitted": submitted,
            "answer": answer,
        }


def serve_forever(runner: CellRunner, bridge: LLMBridge, cmd_fd: int, res_fd: int) -> None:
    """Answer ``exec`` frames until the host closes the command pipe."""
    handlers: dict[str, Callable[[dict[str, Any]], dict[str, Any]]] = {
        "exec": lambda frame: runner.run(str(frame.get("code", ""))),
    }
    while True:
        with bridge.lock:
            try:
                frame = read_frame(cmd_fd)
            except EOFError:
                return
        handler = handlers.get(frame["op"])
        reply = handler(frame) if handler else {"op": "error", "message": f"unknown op {frame['op']!r}"}
        write_frame(res_fd, reply)
