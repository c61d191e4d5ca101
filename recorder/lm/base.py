"""The LM interface every backend implements (a cross-team contract: keep the names).

An LM takes a list of chat :class:`Message` values and returns one :class:`LMResponse`.
Backends never invent numbers: usage, cost and reasoning are ``None`` when the
provider did not report them. A backend raises :class:`LMError` when it gives up
(retries exhausted, or a provider error that retrying cannot fix).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from rlmine.errors import RlmineRuntimeError

__all__ = ["LM", "LMError", "LMResponse", "Message"]


@dataclass(frozen=True, slots=True)
class Message:
    """One chat message."""

    role: str  # "system" | "user" | "assistant"
    content: str


@dataclass(frozen=True, slots=True)
class LMResponse:
    """One completion, with whatever usage the provider reported."""

    text: str  # the reply text (for the root: reasoning + ```python blocks)
    model: str
    reasoning: str | None = None  # separate reasoning text when the API returns it
    tokens_in: int | None = None  # None when the provider did not report it: never invent
    tokens_out: int | None = None
    cost: float | None = None  # from the price table; None for unknown models
    latency_s: float = 0.0
    # e.g. {"step_labels": [[1, 3, "peek"], ...]} from the simulator; backends add
    # "retries" and "http_status_history".
    metadata: dict[str, Any] = field(default_factory=dict)


@runtime_checkable
class LM(Protocol):
    """Anything that completes a chat: a real provider, the simulator, a test fake."""

    model: str

    def complete(
        self,
        messages: Sequence[Message],
        *,
        temperature: float | None = None,
        seed: int | None = None,
        max_tokens: int | None = None,
    ) -> LMResponse: ...


class LMError(RlmineRuntimeError):
    """Raised after retries are exhausted, or for a non-retryable provider error.

    ``attempts`` describes what was tried — ``attempts`` (count), ``http_status_history``
    (one status per attempt, None where no response came back) and ``last_error`` — so a
    failed call is stored with the same record as a successful one.
    """

    def __init__(self, message: str, hint: str | None = None, attempts: dict[str, Any] | None = None) -> None:
        super().__init__(message, hint)
        self.attempts: dict[str, Any] = dict(attempts or {})
