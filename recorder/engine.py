"""The RLM engine: the root-LM loop over a sandboxed REPL.

Each iteration the root LM replies with reasoning and code; the engine runs the
code in the sandbox (``llm_query`` calls come back to the host through
:class:`~recorder.sublm.SubCallHandler`), and sends the truncated output back
with the remaining budget. A run ends on ``SUBMIT`` (``submitted``), on budget
exhaustion after one last "answer now" turn (``budget_exhausted``), on a dead
sandbox or a failed root call (``error``), or on cancellation (``cancelled``).

The loop is short: :func:`run_rlm` sets the run up, :func:`_turns` drives the turns,
and each turn's three steps (run it, record it, decide the exit) live in
:mod:`recorder.turn`.

The engine returns a :class:`~rlmine.trace.Trace`; it never writes to the
database or the terminal. For durability the caller may pass a
:class:`RunObserver`, told of each finished iteration as it ends.

The sandbox starts in a helper thread while the first root call is in flight
(that call needs no sandbox): a worker's start-up, which is CPU-bound and slow
when dozens start at once, hides behind the model's latency. A cell whose
worker died but was restarted is a recoverable error (the model is told
``REPL restarted``); only a sandbox that cannot go on ends the run.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Protocol

from recorder.lm.base import LM, Message
from recorder.prompts import EXHAUSTED, budget_line, first_user_message, system_prompt
from recorder.sandbox.base import LLMHandler, Sandbox, SandboxConfig, SandboxError
from recorder.sublm import LMResolver, SubCallHandler
from recorder.tasks import Budget
from recorder.tasks.contexts import context_kind
from recorder.turn import Exit, decide_exit, execute_turn, follow_up, iteration_record
from rlmine import __version__
from rlmine.errors import UserError
from rlmine.ids import new_id
from rlmine.trace import ContextRef, Iteration, LLMCall, Run, StepLabel, Trace, utcnow

SandboxFactory = Callable[[SandboxConfig, LLMHandler], Sandbox]


class RunObserver(Protocol):
    def run_started(self, run: Run) -> None: ...

    def iteration_finished(
        self, iteration: Iteration, calls: Sequence[LLMCall], labels: Sequence[StepLabel]
    ) -> None: ...


def default_sandbox_factory(config: SandboxConfig, handler: LLMHandler) -> Sandbox:
    from recorder.sandbox.host.sandbox import SubprocessSandbox

    return SubprocessSandbox(config, handler)


@dataclass(frozen=True)
class EngineOptions:
    """How to run: budgets, sampling and plumbing (grouped so signatures stay short)."""

    budget: Budget = field(default_factory=Budget)
    temperature: float | None = None
    seed: int | None = None
    max_parallel_sub: int = 8
    memory_limit_mb: int = 4096
    sandbox_factory: SandboxFactory = default_sandbox_factory
    resolver: LMResolver | None = None  # model name in llm_query(..., model=) -> LM


class _Recording:
    """What the run has produced so far: iterations, calls, labels and running totals.

    Adding an iteration also takes the sub-calls its cells made and tells the observer,
    so a crash after this point loses nothing of it.
    """

    def __init__(
        self, handler: SubCallHandler, observer: RunObserver | None, budget: Budget, t_start: float
    ) -> None:
        self.handler, self.observer, self.budget = handler, observer, budget
        self.t_start = t_start
        self.iterations: list[Iteration] = []
        self.calls: list[LLMCall] = []
        self.labels: list[StepLabel] = []
        self.tokens = 0
        self.cost = 0.0

    def add(self, it: Iteration, root: LLMCall, labels: list[StepLabel]) -> None:
        its_calls = (root, *self.handler.take_calls())
        for c in its_calls:
            self.tokens += (c.tokens_in or 0) + (c.tokens_out or 0)
            self.cost += c.cost or 0.0
        self.iterations.append(it)
        self.calls.extend(its_calls)
        self.labels.extend(labels)
        if self.observer:
            self.observer.iteration_finished(it, its_calls, labels)

    def elapsed(self) -> float:
        return time.perf_counter() - self.t_start

    def exhausted_reason(self) -> str | None:
        budget = self.budget
        if len(self.iterations) >= budget.max_iterations:
            return f"all {budget.max_iterations} steps are used"
        if self.elapsed() >= budget.max_wall_s:
            return f"the wall-time limit of {budget.max_wall_s:g} s is reached"
        if budget.max_tokens is not None and self.tokens >= budget.max_tokens:
            return f"the token budget of {budget.max_tokens:,} is used"
        if budget.max_cost is not None and self.cost >= budget.max_cost:
            return f"the cost budget of ${budget.max_cost:.2f} is used"
        return None

    def budget_text(self) -> str:
        return budget_line(
            used_iterations=len(self.iterations),
            budget=self.budget,
            sub_calls=self.handler.used,
            wall_s=self.elapsed(),
        )

    def trace(self, run: Run) -> Trace:
        return Trace(
            run=run, iterations=tuple(self.iterations), calls=tuple(self.calls), labels=tuple(self.labels)
        ).with_totals()


def _answer_text(answer: object) -> str:
    if isinstance(answer, str):
        return answer
    return json.dumps(answer, ensure_ascii=False, default=str)


class _BackgroundStart:
    """Starts a sandbox in a thread; :meth:`ready` waits for it (and re-raises its failure)."""

    def __init__(self, sandbox: Sandbox) -> None:
        self.sandbox = sandbox
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._start, name="sandbox-start", daemon=True)
        self._thread.start()

    def _start(self) -> None:
        try:
            self.sandbox.start()
        except BaseException as exc:  # handed to the run's thread by ready()
            self._error = exc

    def ready(self) -> Sandbox:
        self._thread.join()
        if self._error is not None:
            raise self._error
        return self.sandbox

    def shutdown(self) -> None:
        self._thread.join()  # never shut down a sandbox that is still starting
        self.sandbox.shutdown()


def _describe_context(ctx_ref: ContextRef, ctx_path: str | None) -> tuple[str, int | None]:
    """(Python type, size) of the context for the first message, without the sandbox."""
    path = Path(ctx_path) if ctx_path else None
    kind = ctx_ref.kind or (context_kind(path) if path is not None and path.exists() else "str")
    size = ctx_ref.bytes
    if size is None and path is not None and path.is_file():
        size = path.stat().st_size
    return kind, size


def _resolve_lms(lm: LM | str, sub_lm: LM | str | None) -> tuple[LM, LM | None]:
    """LM objects as given; model specs built by the registry (imported only then, so that
    callers passing objects never load a provider SDK). A spec root without a sub-LM gets
    the same spec as its sub-LM, as ``rlmine record`` does."""
    if sub_lm is None and isinstance(lm, str):
        sub_lm = lm
    if not isinstance(lm, str) and not isinstance(sub_lm, str):
        return lm, sub_lm
    from recorder.lm.registry import make_lm

    root = make_lm(lm, role="root") if isinstance(lm, str) else lm
    sub = make_lm(sub_lm, role="sub") if isinstance(sub_lm, str) else sub_lm
    return root, sub


def _started_run(
    template: Run | None, question: str, ctx_path: str | None, lm: LM, sub_lm: LM | None, opts: EngineOptions
) -> Run:
    """The stored run as it starts: the caller's template with the engine's facts filled in."""
    base_params = {"budget": opts.budget.to_dict(), "temperature": opts.temperature, "seed": opts.seed}
    return replace(
        template or Run(id=new_id(), engine="rlmine", status="running"),
        engine="rlmine",
        engine_version=__version__,
        status="running",
        question=question,
        root_model=lm.model,
        sub_model=sub_lm.model if sub_lm else None,
        params={**base_params, **(template.params if template else {})},
        context=template.context if template is not None else ContextRef(path=ctx_path),
        started_at=utcnow(),
    )


def run_rlm(
    question: str,
    context: str | Path | None,
    *,
    lm: LM | str,
    sub_lm: LM | str | None = None,
    options: EngineOptions | None = None,
    run: Run | None = None,
    observer: RunObserver | None = None,
    cancel: threading.Event | None = None,
) -> Trace:
    """Run one RLM episode on ``question`` over the context file ``context``.

    ``lm`` and ``sub_lm`` are LM objects or model specs (``"sim"``, ``"gpt-4o-mini"``:
    see :func:`recorder.lm.make_lm`; for an ``api_base`` or other settings build the LM
    with ``make_lm``). A spec ``lm`` without ``sub_lm`` serves as both; an LM object
    without one leaves ``llm_query`` unconfigured. ``run`` is a template for the stored
    run (ids, task, batch, params); its status, answer and totals are filled in here.
    Scoring is the caller's job.
    """
    t_start = time.perf_counter()
    opts = options or EngineOptions()
    root_lm, sub = _resolve_lms(lm, sub_lm)
    ctx_path = str(context) if context is not None else None
    if ctx_path is not None and not Path(ctx_path).exists():
        # checked here: the sandbox starts in the background and would fail only after a root call
        raise UserError(f"context not found: {ctx_path}", "a path to an existing file or directory")
    run = _started_run(run, question, ctx_path, root_lm, sub, opts)
    if observer:
        observer.run_started(run)
    handler = SubCallHandler(
        run_id=run.id,
        sub_lm=sub,
        max_calls=opts.budget.max_sub_calls,
        max_parallel=opts.max_parallel_sub,
        resolver=opts.resolver,
        temperature=opts.temperature,
        seed=opts.seed,
    )
    rec = _Recording(handler, observer, opts.budget, t_start)
    starter: _BackgroundStart | None = None
    try:
        starter = _BackgroundStart(opts.sandbox_factory(_sandbox_config(ctx_path, opts), handler))
        messages = _first_messages(question, run.context, ctx_path, opts.budget)
        end, answer = _turns(root_lm, messages, run.id, rec, starter.ready, opts, cancel)
    except SandboxError as exc:  # terminal: the sandbox cannot go on (a failed cell is a result)
        end, answer = Exit("error", f"sandbox: {exc.one_line()}"), None
    finally:
        handler.close()
        if starter is not None:
            starter.shutdown()
    finished = replace(
        run,
        status=end.status,
        final_answer=None if answer is None else _answer_text(answer),
        error=end.error,
        wall_s=rec.elapsed(),
        finished_at=utcnow(),
    )
    return rec.trace(finished)


def _turns(
    lm: LM,
    messages: list[Message],
    run_id: str,
    rec: _Recording,
    sandbox: Callable[[], Sandbox],
    opts: EngineOptions,
    cancel: threading.Event | None,
) -> tuple[Exit, object | None]:
    """Turn after turn until one ends the run: (how it ended, the submitted answer or None).

    When the budget runs out, one last turn asks for the answer (``final_turn``).
    """
    final_turn = False
    while True:
        if cancel is not None and cancel.is_set():
            return Exit("cancelled"), None
        reason = rec.exhausted_reason()
        if reason and not final_turn:
            final_turn = True
            messages.append(Message("user", EXHAUSTED.format(reason=reason)))
        rec.handler.iteration = index = len(rec.iterations)
        turn = execute_turn(
            lm,
            messages,
            run_id=run_id,
            index=index,
            final_turn=final_turn,
            sandbox=sandbox,
            max_output_chars=opts.budget.max_output_chars,
            temperature=opts.temperature,
            seed=opts.seed,
        )
        it, labels = iteration_record(turn)
        rec.add(it, turn.root.call, labels)
        end = decide_exit(turn)
        if end is not None:
            return end, turn.answer
        messages += follow_up(turn, rec.budget_text())


def _sandbox_config(ctx_path: str | None, opts: EngineOptions) -> SandboxConfig:
    budget = opts.budget
    return SandboxConfig(
        context_path=ctx_path,
        cell_timeout_s=budget.cell_timeout_s,
        memory_limit_mb=opts.memory_limit_mb,
        max_output_chars=max(budget.max_output_chars * 4, 20_000),
    )


def _first_messages(
    question: str, ctx_ref: ContextRef, ctx_path: str | None, budget: Budget
) -> list[Message]:
    kind, ctx_chars = _describe_context(ctx_ref, ctx_path)
    return [
        Message("system", system_prompt(budget)),
        Message("user", first_user_message(question, kind, ctx_chars)),
    ]


def answer_value(trace: Trace) -> Any:
    """The submitted answer as a value (JSON text decoded), for checkers."""
    text = trace.run.final_answer
    if text is None:
        return None
    try:
        return json.loads(text)
    except ValueError:
        return text
