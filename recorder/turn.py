"""One turn of the RLM loop: a root call, its code run in the sandbox, and what follows from it.

The engine (:mod:`recorder.engine`) drives turns; each turn is three steps, kept apart so
each reads on its own (as DSPy's RLM splits ``forward`` into ``_execute_iteration`` and
``_process_execution_result``):

* :func:`execute_turn` asks the root model, parses its reply and runs the code blocks;
* :func:`iteration_record` turns what happened into the stored :class:`~rlmine.trace.Iteration`
  (and the simulator's step labels);
* :func:`decide_exit` says whether the run ends here, with which status, and
  :func:`follow_up` what the model is told next when it does not.

Nothing here holds state between turns: the conversation and the totals are the engine's.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from recorder.lm.base import LM, LMError, LMResponse, Message
from recorder.parsing import ParsedReply, parse_reply
from recorder.prompts import NO_CODE_REMINDER, truncate_middle
from recorder.sandbox.base import ExecutionResult, Sandbox
from rlmine.ids import new_id
from rlmine.trace import CodeBlock, Iteration, LLMCall, StepLabel, utcnow

__all__ = [
    "BlocksRun",
    "Exit",
    "RootCall",
    "Turn",
    "decide_exit",
    "execute_turn",
    "feedback",
    "follow_up",
    "iteration_record",
    "root_call",
    "run_blocks",
]


def feedback(result: ExecutionResult, limit: int) -> tuple[str, str, bool]:
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


@dataclass(frozen=True, slots=True)
class BlocksRun:
    """What running one reply's blocks did: a record per block, ran or not."""

    blocks: tuple[CodeBlock, ...]
    bodies: tuple[str, ...]  # per executed block, the feedback text for the model
    last: ExecutionResult  # the last executed block's result
    truncated: bool
    submitted: bool
    died: bool


def run_blocks(sandbox: Sandbox, codes: Sequence[str], run_id: str, index: int, limit: int) -> BlocksRun:
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
        shown, body, cut = feedback(last, limit)
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
    if last is None:
        raise ValueError("run_blocks needs at least one block")
    return BlocksRun(tuple(blocks), tuple(bodies), last, truncated, submitted, died)


@dataclass(frozen=True, slots=True)
class RootCall:
    """A root call's outcome: the response (None when it failed), its record, the failure."""

    resp: LMResponse | None
    call: LLMCall
    error: str | None


def root_call(
    lm: LM,
    messages: Sequence[Message],
    run_id: str,
    index: int,
    *,
    temperature: float | None,
    seed: int | None,
) -> RootCall:
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
        resp = lm.complete(list(messages), temperature=temperature, seed=seed)
    except LMError as exc:
        base["metadata"] = {**base["metadata"], **exc.attempts}  # what was tried, kept with the failure
        call = LLMCall(response=None, latency_s=time.perf_counter() - t0, error=exc.one_line(), **base)
        return RootCall(None, call, exc.one_line())
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
    return RootCall(resp, call, None)


@dataclass(frozen=True, slots=True)
class Turn:
    """Everything one turn did. ``parsed`` is None when the root call failed; ``ran`` is None
    when there was no code to run (a failed call, or a reply without a block)."""

    run_id: str
    index: int
    started_at: datetime
    final_turn: bool  # the "budget exhausted, answer now" turn
    root: RootCall
    parsed: ParsedReply | None
    ran: BlocksRun | None

    @property
    def submitted(self) -> bool:
        return self.ran is not None and self.ran.submitted

    @property
    def answer(self) -> object | None:
        """The ``SUBMIT`` argument, when this turn submitted."""
        return self.ran.last.answer if self.ran is not None and self.ran.submitted else None


def execute_turn(
    lm: LM,
    messages: Sequence[Message],
    *,
    run_id: str,
    index: int,
    final_turn: bool,
    sandbox: Callable[[], Sandbox],
    max_output_chars: int,
    temperature: float | None = None,
    seed: int | None = None,
) -> Turn:
    """Ask the root model, parse the reply, run its blocks. ``sandbox()`` is called only when
    there is code to run (it may wait for a sandbox still starting, and raise SandboxError)."""
    started = utcnow()
    root = root_call(lm, messages, run_id, index, temperature=temperature, seed=seed)
    if root.resp is None:
        return Turn(run_id, index, started, final_turn, root, None, None)
    parsed = parse_reply(root.resp.text)
    if not parsed.blocks:
        return Turn(run_id, index, started, final_turn, root, parsed, None)
    ran = run_blocks(sandbox(), parsed.blocks, run_id, index, max_output_chars)
    return Turn(run_id, index, started, final_turn, root, parsed, ran)


def _labels(resp: LMResponse, run_id: str, index: int) -> list[StepLabel]:
    raw = resp.metadata.get("step_labels") or []
    out = []
    for item in raw:
        try:
            start, end, tactic = int(item[0]), int(item[1]), str(item[2])
        except (TypeError, ValueError, IndexError):
            continue
        out.append(StepLabel(run_id=run_id, iteration=index, line_start=start, line_end=end, tactic=tactic))
    return out


def iteration_record(turn: Turn) -> tuple[Iteration, list[StepLabel]]:
    """The stored iteration for ``turn``, and the step labels its reply carried (code only)."""
    resp, parsed = turn.root.resp, turn.parsed
    if resp is None or parsed is None:  # the root call failed: nothing ran
        failed = Iteration(
            run_id=turn.run_id,
            index=turn.index,
            reasoning=None,
            code=None,
            error=turn.root.error,
            error_kind="lm",
            started_at=turn.started_at,
        )
        return failed, []
    common: dict[str, Any] = {
        "run_id": turn.run_id,
        "index": turn.index,
        "reasoning": resp.reasoning + "\n\n" + parsed.reasoning if resp.reasoning else parsed.reasoning,
        "started_at": turn.started_at,
        "root_tokens_in": resp.tokens_in,
        "root_tokens_out": resp.tokens_out,
        "root_latency_s": turn.root.call.latency_s,
    }
    ran = turn.ran
    if ran is None:  # a reply without a code block
        no_code = Iteration(
            code=None,
            stdout=None,
            error="the reply had no code block",
            error_kind="parse",
            metadata={"final_turn": turn.final_turn},
            **common,
        )
        return no_code, []
    last = ran.last
    it = Iteration(
        code=parsed.code,
        stdout="".join(b.stdout or "" for b in ran.blocks),
        stderr="".join(b.stderr or "" for b in ran.blocks) or None,
        error=last.error,
        error_kind=last.error_kind,
        duration_s=sum(b.duration_s or 0.0 for b in ran.blocks),
        output_truncated=ran.truncated,
        submitted=ran.submitted,
        metadata={"blocks": len(parsed.blocks), "restarted": last.restarted, "final_turn": turn.final_turn},
        blocks=ran.blocks,
        **common,
    )
    return it, _labels(resp, turn.run_id, turn.index)


@dataclass(frozen=True, slots=True)
class Exit:
    """How a run ends: its status and, for ``error``, why."""

    status: str  # "submitted" | "budget_exhausted" | "error" | "cancelled"
    error: str | None = None


def decide_exit(turn: Turn) -> Exit | None:
    """The run's end after ``turn``, or None to go on. A submit on the final turn still counts
    as ``budget_exhausted`` (with the answer): the budget ran out before it."""
    if turn.root.resp is None:
        return Exit("error", f"root LM failed: {turn.root.error}")
    ran = turn.ran
    if ran is not None and ran.submitted:
        return Exit("budget_exhausted" if turn.final_turn else "submitted")
    if ran is not None and ran.died:
        return Exit("error", f"the sandbox died: {ran.last.error}")
    if turn.final_turn:
        return Exit("budget_exhausted")
    return None


def follow_up(turn: Turn, budget_text: str) -> list[Message]:
    """The messages that carry ``turn`` into the conversation: the model's reply, then either
    a reminder to write code or what the code did, with ``budget_text`` (the budget line)."""
    if turn.root.resp is None:
        raise ValueError("a failed root call ends the run: there is nothing to follow up")
    reply = Message("assistant", turn.root.resp.text)
    if turn.ran is None:
        return [reply, Message("user", NO_CODE_REMINDER)]
    return [reply, Message("user", "\n".join(turn.ran.bodies) + "\n\n" + budget_text)]
