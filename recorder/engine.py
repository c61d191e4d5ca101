"""The RLM engine: the root-LM loop over a sandboxed REPL.

Each iteration the root LM replies with reasoning and code; the engine runs the
code in the sandbox (``llm_query`` calls come back to the host through
:class:`~recorder.sublm.SubCallHandler`), and sends the truncated output back
with the remaining budget. A run ends on ``SUBMIT`` (``submitted``), on budget
exhaustion after one last "answer now" turn (``budget_exhausted``), on a dead
sandbox or a failed root call (``error``), or on cancellation (``cancelled``).

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

from recorder.lm.base import LM, LMError, LMResponse, Message
from recorder.parsing import parse_reply
from recorder.prompts import (
    EXHAUSTED,
    NO_CODE_REMINDER,
    budget_line,
    first_user_message,
    system_prompt,
    truncate_middle,
)
from recorder.sandbox.base import ExecutionResult, LLMHandler, Sandbox, SandboxConfig, SandboxError
from recorder.sublm import LMResolver, SubCallHandler
from recorder.tasks import Budget
from recorder.tasks.contexts import context_kind
from rlmine import __version__
from rlmine.errors import UserError
from rlmine.ids import new_id
from rlmine.trace import CodeBlock, ContextRef, Iteration, LLMCall, Run, StepLabel, Trace, utcnow

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


class _Totals:
    def __init__(self) -> None:
        self.tokens = 0
        self.cost = 0.0

    def add(self, tokens_in: int | None, tokens_out: int | None, cost: float | None) -> None:
        self.tokens += (tokens_in or 0) + (tokens_out or 0)
        self.cost += cost or 0.0


def _answer_text(answer: object) -> str:
    if isinstance(answer, str):
        return answer
    return json.dumps(answer, ensure_ascii=False, default=str)


def _feedback(result: ExecutionResult, limit: int) -> tuple[str, str, bool]:
    """(stdout as shown, the whole message body, truncated?) for one execution."""
    hidden = max(result.stdout_bytes - len(result.stdout), 0)  # bytes for characters: "about"
    shown, truncated = truncate_middle(result.stdout, limit, cut_at=result.stdout_cut, hidden=hidden)
    parts = [shown.rstrip("\n")] if shown.strip() else ["(no output)"]
    if result.stderr.strip():
        err, _ = truncate_middle(result.stderr, max(limit // 4, 200), cut_at=result.stderr_cut)
        parts.append("stderr:\n" + err.rstrip("\n"))
    if result.error:
        parts.append(f"Error ({result.error_kind or 'code'}): {truncate_middle(result.error, 2000)[0]}")
    if result.restarted:
        parts.append("REPL restarted: every variable was lost; `context` was reloaded.")
    return shown, "\n".join(parts), truncated or result.output_truncated


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


@dataclass(frozen=True, slots=True)
class _Cell:
    """What running one reply's blocks did: a record per block, ran or not."""

    blocks: tuple[CodeBlock, ...]
    bodies: tuple[str, ...]  # per executed block, the feedback text for the model
    last: ExecutionResult  # the last executed block's result
    truncated: bool
    submitted: bool
    died: bool


def _run_blocks(sandbox: Sandbox, codes: Sequence[str], run_id: str, index: int, limit: int) -> _Cell:
    """Run blocks in order, stopping at the first that submits, fails or kills the sandbox.

    Blocks after the stop are recorded with ``ran=False``: later blocks usually
    depend on the failed one, and a reader must see that they never ran.
    """
    blocks: list[CodeBlock] = []
    bodies: list[str] = []
    truncated = submitted = died = False
    last: ExecutionResult | None = None
    for k, code in enumerate(codes):
        if last is not None and (submitted or died or last.error):
            blocks.append(CodeBlock(run_id=run_id, iteration=index, index=k, code=code, ran=False))
            continue
        last = sandbox.execute(code)
        shown, body, cut = _feedback(last, limit)
        bodies.append(body)
        truncated = truncated or cut
        meta: dict[str, Any] = {}
        if cut:
            meta["output_truncated"] = True
        if last.restarted:
            meta["restarted"] = True
        blocks.append(
            CodeBlock(
                run_id=run_id,
                iteration=index,
                index=k,
                code=code,
                stdout=shown,
                stderr=last.stderr or None,
                error=last.error,
                error_kind=last.error_kind,
                duration_s=last.duration_s,
                metadata=meta,
            )
        )
        submitted = last.submitted
        died = last.error_kind == "sandbox" and not last.restarted
    assert last is not None  # parse_reply yields at least one block here
    return _Cell(tuple(blocks), tuple(bodies), last, truncated, submitted, died)


class _RootTurn:
    """A root call's outcome: the response, or the error that ended the run."""

    def __init__(self, resp: LMResponse | None, call: LLMCall, error: str | None) -> None:
        self.resp, self.call, self.error = resp, call, error


def _root_call(lm: LM, messages: list[Message], run_id: str, index: int, opts: EngineOptions) -> _RootTurn:
    started = utcnow()
    t0 = time.perf_counter()
    # The stored prompt is the newest message only: the whole conversation is the
    # run's iterations, and storing it per turn would grow quadratically.
    total_chars = sum(len(m.content) for m in messages)
    base: dict[str, Any] = {
        "id": new_id(),
        "run_id": run_id,
        "iteration": index,
        "role": "root",
        "model": lm.model,
        "prompt": messages[-1].content,
        "prompt_chars": total_chars,
        "started_at": started,
        "metadata": {"n_messages": len(messages)},
    }
    try:
        resp = lm.complete(messages, temperature=opts.temperature, seed=opts.seed)
    except LMError as exc:
        base["metadata"] = {**base["metadata"], **exc.attempts}  # what was tried, kept with the failure
        call = LLMCall(response=None, latency_s=time.perf_counter() - t0, error=exc.one_line(), **base)
        return _RootTurn(None, call, exc.one_line())
    meta = dict(base.pop("metadata"))
    meta.update({k: v for k, v in resp.metadata.items() if k != "step_labels"})
    call = LLMCall(
        response=resp.text,
        reasoning=resp.reasoning,
        tokens_in=resp.tokens_in,
        tokens_out=resp.tokens_out,
        cost=resp.cost,
        latency_s=resp.latency_s or (time.perf_counter() - t0),
        metadata=meta,
        **{**base, "model": resp.model or lm.model},
    )
    return _RootTurn(resp, call, None)


def _labels(resp: LMResponse | None, run_id: str, index: int) -> list[StepLabel]:
    raw = (resp.metadata.get("step_labels") if resp else None) or []
    out = []
    for item in raw:
        try:
            start, end, tactic = int(item[0]), int(item[1]), str(item[2])
        except (TypeError, ValueError, IndexError):
            continue
        out.append(StepLabel(run_id=run_id, iteration=index, line_start=start, line_end=end, tactic=tactic))
    return out


def run_rlm(
    question: str,
    context: str | Path | None,
    *,
    lm: LM,
    sub_lm: LM | None = None,
    options: EngineOptions | None = None,
    run: Run | None = None,
    observer: RunObserver | None = None,
    cancel: threading.Event | None = None,
) -> Trace:
    """Run one RLM episode on ``question`` over the context file ``context``.

    ``run`` is a template for the stored run (ids, task, batch, params); its
    status, answer and totals are filled in here. Scoring is the caller's job.
    """
    opts = options or EngineOptions()
    budget = opts.budget
    started_at = utcnow()
    t_start = time.perf_counter()
    ctx_path = str(context) if context is not None else None
    if ctx_path is not None and not Path(ctx_path).exists():
        # checked here: the sandbox starts in the background and would fail only after a root call
        raise UserError(f"context not found: {ctx_path}", "a path to an existing file or directory")
    ctx_ref = run.context if run is not None else ContextRef(path=ctx_path)
    base_params = {"budget": budget.to_dict(), "temperature": opts.temperature, "seed": opts.seed}
    run = replace(
        run or Run(id=new_id(), engine="rlmine", status="running"),
        engine="rlmine",
        engine_version=__version__,
        status="running",
        question=question,
        root_model=lm.model,
        sub_model=sub_lm.model if sub_lm else None,
        params={**base_params, **(run.params if run else {})},
        context=ctx_ref,
        started_at=started_at,
    )
    if observer:
        observer.run_started(run)
    handler = SubCallHandler(
        run_id=run.id,
        sub_lm=sub_lm,
        max_calls=budget.max_sub_calls,
        max_parallel=opts.max_parallel_sub,
        resolver=opts.resolver,
        temperature=opts.temperature,
        seed=opts.seed,
    )
    iterations: list[Iteration] = []
    calls: list[LLMCall] = []
    labels: list[StepLabel] = []
    totals = _Totals()
    status, answer, error = "running", None, None
    starter: _BackgroundStart | None = None

    def finish_iteration(it: Iteration, root: LLMCall, its_labels: list[StepLabel]) -> None:
        subs = handler.take_calls()
        for c in (root, *subs):
            totals.add(c.tokens_in, c.tokens_out, c.cost)
        iterations.append(it)
        calls.extend((root, *subs))
        labels.extend(its_labels)
        if observer:
            observer.iteration_finished(it, (root, *subs), its_labels)

    def exhausted_reason() -> str | None:
        elapsed = time.perf_counter() - t_start
        if len(iterations) >= budget.max_iterations:
            return f"all {budget.max_iterations} steps are used"
        if elapsed >= budget.max_wall_s:
            return f"the wall-time limit of {budget.max_wall_s:g} s is reached"
        if budget.max_tokens is not None and totals.tokens >= budget.max_tokens:
            return f"the token budget of {budget.max_tokens:,} is used"
        if budget.max_cost is not None and totals.cost >= budget.max_cost:
            return f"the cost budget of ${budget.max_cost:.2f} is used"
        return None

    try:
        cfg = SandboxConfig(
            context_path=ctx_path,
            cell_timeout_s=budget.cell_timeout_s,
            memory_limit_mb=opts.memory_limit_mb,
            max_output_chars=max(budget.max_output_chars * 4, 20_000),
        )
        starter = _BackgroundStart(opts.sandbox_factory(cfg, handler))
        kind, ctx_chars = _describe_context(ctx_ref, ctx_path)
        messages = [
            Message("system", system_prompt(budget)),
            Message("user", first_user_message(question, kind, ctx_chars)),
        ]
        final_turn = False
        while status == "running":
            if cancel is not None and cancel.is_set():
                status = "cancelled"
                break
            reason = exhausted_reason()
            if reason and not final_turn:
                final_turn = True
                messages.append(Message("user", EXHAUSTED.format(reason=reason)))
            index = len(iterations)
            handler.iteration = index
            it_started = utcnow()
            turn = _root_call(lm, messages, run.id, index, opts)
            if turn.resp is None:
                status, error = "error", f"root LM failed: {turn.error}"
                finish_iteration(
                    Iteration(
                        run_id=run.id,
                        index=index,
                        reasoning=None,
                        code=None,
                        error=turn.error,
                        error_kind="lm",
                        started_at=it_started,
                    ),
                    turn.call,
                    [],
                )
                break
            parsed = parse_reply(turn.resp.text)
            reasoning = (
                turn.resp.reasoning + "\n\n" + parsed.reasoning if turn.resp.reasoning else parsed.reasoning
            )
            base_it: dict[str, Any] = {
                "run_id": run.id,
                "index": index,
                "reasoning": reasoning,
                "started_at": it_started,
                "root_tokens_in": turn.resp.tokens_in,
                "root_tokens_out": turn.resp.tokens_out,
                "root_latency_s": turn.call.latency_s,
            }
            if not parsed.blocks:
                finish_iteration(
                    Iteration(
                        code=None,
                        stdout=None,
                        error="the reply had no code block",
                        error_kind="parse",
                        metadata={"final_turn": final_turn},
                        **base_it,
                    ),
                    turn.call,
                    [],
                )
                if final_turn:
                    status = "budget_exhausted"
                    break
                messages += [Message("assistant", turn.resp.text), Message("user", NO_CODE_REMINDER)]
                continue
            cell = _run_blocks(starter.ready(), parsed.blocks, run.id, index, budget.max_output_chars)
            last = cell.last
            if cell.submitted:
                answer = last.answer
            finish_iteration(
                Iteration(
                    code=parsed.code,
                    stdout="".join(b.stdout or "" for b in cell.blocks),
                    stderr="".join(b.stderr or "" for b in cell.blocks) or None,
                    error=last.error,
                    error_kind=last.error_kind,
                    duration_s=sum(b.duration_s or 0.0 for b in cell.blocks),
                    output_truncated=cell.truncated,
                    submitted=cell.submitted,
                    metadata={
                        "blocks": len(parsed.blocks),
                        "restarted": last.restarted,
                        "final_turn": final_turn,
                    },
                    blocks=cell.blocks,
                    **base_it,
                ),
                turn.call,
                _labels(turn.resp, run.id, index),
            )
            if cell.submitted:
                status = "budget_exhausted" if final_turn else "submitted"
            elif cell.died:
                status, error = "error", f"the sandbox died: {last.error}"
            elif final_turn:
                status = "budget_exhausted"
            else:
                used = len(iterations)
                line = budget_line(
                    used_iterations=used,
                    budget=budget,
                    sub_calls=handler.used,
                    wall_s=time.perf_counter() - t_start,
                )
                messages += [
                    Message("assistant", turn.resp.text),
                    Message("user", "\n".join(cell.bodies) + "\n\n" + line),
                ]
    except SandboxError as exc:
        status, error = "error", f"sandbox: {exc.one_line()}"
    finally:
        handler.close()
        if starter is not None:
            starter.shutdown()
    finished = replace(
        run,
        status=status,
        final_answer=None if answer is None else _answer_text(answer),
        error=error,
        wall_s=time.perf_counter() - t_start,
        finished_at=utcnow(),
    )
    return Trace(
        run=finished, iterations=tuple(iterations), calls=tuple(calls), labels=tuple(labels)
    ).with_totals()


def answer_value(trace: Trace) -> Any:
    """The submitted answer as a value (JSON text decoded), for checkers."""
    text = trace.run.final_answer
    if text is None:
        return None
    try:
        return json.loads(text)
    except ValueError:
        return text
