"""A scripted sandbox: the first-class fake beside the scripted LMs (``recorder.lm.scripted``).

:class:`ScriptedSandbox` implements the :class:`~recorder.sandbox.base.Sandbox` lifecycle
without a process: each ``execute`` replays the next scripted cell result, or, given a
mapping, the result scripted for that exact code. It records every code it was sent, the
config and ``llm_query`` handler the engine built it with, and whether it was started and
shut down. Use it wherever the behaviour under test is the engine's, not the worker's::

    box = ScriptedSandbox(["30 lines\\n", cell_result(submit=30)])
    trace = run_rlm("How many lines?", "log.txt", lm=ScriptedLM([...]),
                    options=EngineOptions(sandbox_factory=box.factory))
    assert box.executed == [...]

A script item is one of:

* a ``str``: the output of a cell that ran cleanly;
* an :class:`ExecutionResult` (build one with :func:`cell_result`): returned as is;
* an exception: raised by ``execute`` — a :class:`SandboxError` is the terminal kind (the
  sandbox cannot go on), exactly as a real sandbox reports it;
* a function ``(code, llm_handler) -> str | ExecutionResult``: computes the result, and may
  call the handler as the worker's ``llm_query`` would (``handler(["prompt"], None)``), so
  sub-calls are made and recorded for real.

Running out of script (or, with a mapping, code nobody scripted) raises SandboxError
naming the fix, as :class:`~recorder.lm.scripted.ScriptedLM` raises LMError.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from types import TracebackType
from typing import Final

from recorder.sandbox.base import ErrorKind, ExecutionResult, LLMHandler, SandboxConfig, SandboxError

__all__ = ["CellScript", "ScriptedSandbox", "cell_result"]

CellScript = str | ExecutionResult | BaseException | Callable[[str, LLMHandler], "str | ExecutionResult"]


class _NoSubmit:
    def __repr__(self) -> str:
        return "NO_SUBMIT"


NO_SUBMIT: Final = _NoSubmit()  # SUBMIT(None) is an answer; this is "did not submit"


def cell_result(
    stdout: str = "",
    *,
    stderr: str = "",
    error: str | None = None,
    error_kind: ErrorKind | None = None,
    submit: object = NO_SUBMIT,
    restarted: bool = False,
    duration_s: float = 0.001,
    output_truncated: bool = False,
    stdout_cut: int | None = None,
) -> ExecutionResult:
    """An :class:`ExecutionResult` with the fields a test cares about and honest defaults:
    ``error`` without ``error_kind`` is a code error; ``submit=value`` is ``SUBMIT(value)``."""
    return ExecutionResult(
        stdout=stdout,
        stderr=stderr,
        error=error,
        error_kind=error_kind or ("code" if error is not None else None),
        submitted=submit is not NO_SUBMIT,
        answer=None if submit is NO_SUBMIT else submit,
        duration_s=duration_s,
        stdout_bytes=len(stdout.encode()),
        output_truncated=output_truncated,
        restarted=restarted,
        stdout_cut=stdout_cut,
    )


def _no_llm(prompts: list[str], model: str | None) -> list[str]:
    raise RuntimeError("this ScriptedSandbox was made without an llm_query handler (use .factory)")


class ScriptedSandbox:
    """Replays ``cells`` in order (a sequence) or by code (a mapping); see the module docstring.

    ``start_error``, when given, is raised by :meth:`start` (a sandbox that cannot start).
    """

    def __init__(
        self,
        cells: Sequence[CellScript] | Mapping[str, CellScript],
        *,
        start_error: BaseException | None = None,
        handler: LLMHandler | None = None,
    ) -> None:
        self._by_code = dict(cells) if isinstance(cells, Mapping) else None
        self._queue: list[CellScript] = [] if isinstance(cells, Mapping) else list(cells)
        self._start_error = start_error
        self.handler: LLMHandler = handler or _no_llm
        self.config: SandboxConfig | None = None
        self.executed: list[str] = []  # every code sent to execute, in order
        self.started = False
        self.shut_down = False

    def factory(self, config: SandboxConfig, handler: LLMHandler) -> ScriptedSandbox:
        """A :data:`recorder.engine.SandboxFactory` that hands out this sandbox."""
        self.config, self.handler = config, handler
        return self

    @property
    def remaining(self) -> int:
        """Scripted results not used yet (a sequence script; 0 for a mapping)."""
        return max(len(self._queue) - len(self.executed), 0)

    def start(self) -> None:
        if self._start_error is not None:
            raise self._start_error
        self.started = True

    def execute(self, code: str) -> ExecutionResult:
        if not self.started or self.shut_down:
            raise SandboxError("execute() on a ScriptedSandbox that is not running", "start() it first")
        index = len(self.executed)
        self.executed.append(code)
        item = self._next(code, index)
        if isinstance(item, BaseException):
            raise item
        if callable(item):
            item = item(code, self.handler)
        return cell_result(item) if isinstance(item, str) else item

    def _next(self, code: str, index: int) -> CellScript:
        if self._by_code is not None:
            if code not in self._by_code:
                raise SandboxError(
                    f"ScriptedSandbox has no result for the code {code[:80]!r}",
                    "script a result for this exact code",
                )
            return self._by_code[code]
        if index >= len(self._queue):
            raise SandboxError(
                f"ScriptedSandbox ran out of cells after {len(self._queue)}", "script more cells"
            )
        return self._queue[index]

    def shutdown(self) -> None:
        self.shut_down = True

    def __enter__(self) -> ScriptedSandbox:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.shutdown()
