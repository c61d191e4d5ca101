"""The trace data model shared by every stage: runs, iterations, LLM calls.

These are immutable values. The RLM engine and the importers *return* them; the
store persists them (:mod:`rlmine.store`). Nothing here does I/O.

A :class:`Trace` is one run with everything it produced. Field names match the
columns of the store's tables one to one (see ``docs/architecture.md``).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any, Literal

RunStatus = Literal["running", "submitted", "budget_exhausted", "error", "cancelled"]
RUN_STATUSES: tuple[str, ...] = ("running", "submitted", "budget_exhausted", "error", "cancelled")
TERMINAL_STATUSES: tuple[str, ...] = ("submitted", "budget_exhausted", "error")
Role = Literal["root", "sub"]
ErrorKind = Literal["code", "timeout", "memory", "sandbox", "parse", "lm"]

# Model names that are rlmine's offline simulator, not a real LLM: shown as such everywhere.
SIMULATED_MODELS: tuple[str, ...] = ("sim",)

# Prompts above this size are stored as hash + size only (a root prompt can hold
# a whole conversation; a sub prompt a large chunk of the context).
MAX_STORED_PROMPT_CHARS = 200_000


def utcnow() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


@dataclass(frozen=True, slots=True)
class ContextRef:
    """Where a run's context came from. The text itself is never stored."""

    path: str | None = None
    generator: dict[str, Any] | None = None  # {"family": ..., "params": {...}}
    sha256: str | None = None
    bytes: int | None = None
    kind: str | None = None  # "str", "list", "dict", ...


@dataclass(frozen=True, slots=True)
class LLMCall:
    """One call to a language model: the root LM's turn, or a sub-LM query."""

    id: str
    run_id: str
    iteration: int | None  # the iteration whose turn (root) or code (sub) made the call
    role: Role
    model: str | None
    prompt: str | None  # None when too large: see prompt_sha256 / prompt_chars
    response: str | None
    prompt_sha256: str | None = None
    prompt_chars: int | None = None
    reasoning: str | None = None  # separate reasoning text, when the API returns it
    tokens_in: int | None = None
    tokens_out: int | None = None
    cost: float | None = None
    latency_s: float | None = None
    started_at: datetime | None = None
    error: str | None = None
    child_run_id: str | None = None  # a nested RLM trajectory behind this call
    metadata: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class StepLabel:
    """Ground truth: the tactic a generator meant for lines [line_start, line_end] of a cell.

    Written only by the simulator; hidden from the miner's inputs; used to score it.
    """

    run_id: str
    iteration: int
    line_start: int  # 1-based, inclusive
    line_end: int
    tactic: str


@dataclass(frozen=True, slots=True)
class CodeBlock:
    """One fenced code block of an iteration, with what its execution produced.

    Models often write several blocks per reply, and a later block depends on an
    earlier one; ``Iteration.code`` is their joined text, kept for readers that
    want one cell. ``ran`` is False for a block that never executed (rlmine's
    engine stops at the first failing block); its output fields are then None.
    """

    run_id: str
    iteration: int
    index: int  # 0-based, in the order the model wrote the blocks
    code: str
    stdout: str | None = None  # byte for byte as captured (not truncated for the model)
    stderr: str | None = None
    error: str | None = None
    error_kind: str | None = None  # ErrorKind
    duration_s: float | None = None
    ran: bool = True
    metadata: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Iteration:
    """One turn of the root loop: the model's reply and the execution of its code."""

    run_id: str
    index: int  # 0-based
    reasoning: str | None
    code: str | None  # the executed code (several blocks joined with blank lines)
    stdout: str | None = None  # as shown to the model (truncated per budget)
    stderr: str | None = None
    error: str | None = None  # exception text, if the code failed
    error_kind: str | None = None  # ErrorKind
    duration_s: float | None = None  # execution time of the code
    root_tokens_in: int | None = None
    root_tokens_out: int | None = None
    root_latency_s: float | None = None
    output_truncated: bool = False
    submitted: bool = False
    started_at: datetime | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
    blocks: tuple[CodeBlock, ...] = ()  # table code_blocks; empty when the source had none

    @property
    def block_errors(self) -> tuple[str, ...]:
        """Every block's error, in order (``error`` holds only the one that ended the cell)."""
        return tuple(b.error for b in self.blocks if b.error)


@dataclass(frozen=True, slots=True)
class Run:
    """One RLM run on one question and context, with its outcome and totals."""

    id: str
    engine: str  # "rlmine", "rlms", "dspy", ...
    status: str  # RunStatus
    question: str | None = None
    task_id: str | None = None
    instance_id: str | None = None
    engine_version: str | None = None
    root_model: str | None = None
    sub_model: str | None = None
    params: dict[str, Any] = field(default_factory=dict)
    context: ContextRef = field(default_factory=ContextRef)
    final_answer: str | None = None
    expected: str | None = None
    score: float | None = None
    correct: bool | None = None
    n_iterations: int = 0
    n_llm_calls: int = 0
    n_sub_calls: int = 0
    tokens_in: int | None = None
    tokens_out: int | None = None
    cost: float | None = None
    wall_s: float | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None
    batch_id: str | None = None
    slot_key: str | None = None  # identity of a run within its batch (for resume)
    error: str | None = None
    parent_run_id: str | None = None
    parent_call_id: str | None = None
    source_hash: str | None = None  # content hash of an imported source (idempotency)
    owner: str | None = None  # "host:pid:start" of the recording process, for staleness
    metadata: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Trace:
    """A run together with its iterations, LLM calls and ground-truth labels."""

    run: Run
    iterations: tuple[Iteration, ...] = ()
    calls: tuple[LLMCall, ...] = ()
    labels: tuple[StepLabel, ...] = ()
    children: tuple[Trace, ...] = ()  # nested RLM runs (imported rlms depth > 1)

    def with_totals(self) -> Trace:
        """Recompute the run's counters from its iterations and calls.

        Token and cost totals stay None when no call reported them: unknown is
        not zero.
        """
        tin = [c.tokens_in for c in self.calls if c.tokens_in is not None]
        tout = [c.tokens_out for c in self.calls if c.tokens_out is not None]
        costs = [c.cost for c in self.calls if c.cost is not None]
        run = replace(
            self.run,
            n_iterations=len(self.iterations),
            n_llm_calls=len(self.calls),
            n_sub_calls=sum(1 for c in self.calls if c.role == "sub"),
            tokens_in=sum(tin) if tin else None,
            tokens_out=sum(tout) if tout else None,
            cost=sum(costs) if costs else None,
        )
        return replace(self, run=run)

    def walk(self) -> list[Trace]:
        """This trace and all nested child traces, parents first."""
        out: list[Trace] = [self]
        for child in self.children:
            out.extend(child.walk())
        return out
