"""The retry policy shared by every network backend (OpenAI-compatible, LiteLLM).

Design: a backend wraps one HTTP attempt in a callable and hands it to
:func:`call_with_retries`. Each failure is classified once (:func:`classify`):
429, 408, 5xx, timeouts, connection errors and malformed 200 bodies are retried
with exponential backoff and *full jitter* (a uniform wait in ``[0, base·2^n]``,
capped), except that a server's ``Retry-After`` / ``retry-after-ms`` wins (capped
at ``backoff_max_s``). Other 4xx errors fail at once. Every attempt's HTTP status
(``None`` when no response came back) is logged so the run records what happened.

The SDKs' own retries must be disabled so that there is exactly one policy.
"""

from __future__ import annotations

import email.utils
import json
import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from recorder.lm.base import LMError
from rlmine.errors import UserError

__all__ = [
    "Failure",
    "MalformedResponseError",
    "RetryLog",
    "RetryPolicy",
    "call_with_retries",
    "classify",
    "parse_retry_after",
]

log = logging.getLogger(__name__)

T = TypeVar("T")

_MAX_REASON_CHARS = 300


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How many times to retry and how long to wait between attempts."""

    max_retries: int = 6
    backoff_base_s: float = 0.5
    backoff_max_s: float = 30.0

    def __post_init__(self) -> None:
        if self.max_retries < 0:
            raise UserError(f"max_retries must be >= 0, got {self.max_retries}", "max_retries=6")
        if self.backoff_base_s < 0 or self.backoff_max_s < 0:
            raise UserError("backoff times must be >= 0", "backoff_base_s=0.5, backoff_max_s=30")

    def delay(self, retry_index: int, retry_after_s: float | None, rng: Callable[[], float]) -> float:
        """Seconds to wait before retry number ``retry_index`` (0-based)."""
        if retry_after_s is not None:
            return min(max(retry_after_s, 0.0), self.backoff_max_s)
        ceiling = min(self.backoff_max_s, self.backoff_base_s * 2.0 ** min(retry_index, 60))
        return rng() * ceiling


@dataclass(frozen=True, slots=True)
class Failure:
    """One failed attempt, classified."""

    retryable: bool
    status: int | None  # HTTP status; None when no response came back
    reason: str  # one line, for logs and error messages
    retry_after_s: float | None = None


@dataclass(slots=True)
class RetryLog:
    """What the attempts of one call looked like."""

    retries: int = 0
    http_status_history: list[int | None] = field(default_factory=list)
    reasons: list[str] = field(default_factory=list)


class MalformedResponseError(Exception):
    """A response that arrived but is not a usable chat completion (broken JSON, no choices)."""

    def __init__(self, message: str, status: int | None = 200) -> None:
        super().__init__(message)
        self.status = status


def one_line(text: str, limit: int = _MAX_REASON_CHARS) -> str:
    flat = " ".join(str(text).split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


def parse_retry_after(headers: Any, now: float | None = None) -> float | None:
    """Seconds a server asked us to wait: ``retry-after-ms``, then ``Retry-After`` (seconds or HTTP date)."""
    if headers is None or not hasattr(headers, "items"):
        return None
    lowered = {str(k).lower(): str(v) for k, v in headers.items()}
    for name, divisor in (("retry-after-ms", 1000.0), ("retry-after", 1.0)):
        value = lowered.get(name)
        if value is None:
            continue
        try:
            seconds = float(value) / divisor
        except ValueError:
            continue
        if seconds == seconds and seconds not in (float("inf"), float("-inf")):  # finite
            return max(seconds, 0.0)
    date_value = lowered.get("retry-after")
    if date_value is None:
        return None
    try:
        parsed = email.utils.parsedate_to_datetime(date_value)
    except (TypeError, ValueError, IndexError):
        return None
    current = time.time() if now is None else now
    return max(parsed.timestamp() - current, 0.0)


def _provider_message(exc: BaseException) -> str:
    body = getattr(exc, "body", None)
    if isinstance(body, dict):
        error = body.get("error", body)
        if isinstance(error, dict) and isinstance(error.get("message"), str):
            return str(error["message"])
        if isinstance(error, str):
            return error
    message = getattr(exc, "message", None)
    return str(message) if message else str(exc) or type(exc).__name__


def classify(exc: BaseException) -> Failure | None:
    """Classify a provider failure; ``None`` means "not a provider failure: let it propagate"."""
    import openai  # here, not at the top: the loopback server uses this module without the SDK

    if isinstance(exc, MalformedResponseError):
        return Failure(True, exc.status, one_line(f"malformed response: {exc}"))
    if isinstance(exc, json.JSONDecodeError):
        return Failure(True, 200, one_line(f"malformed response: {exc}"))
    if isinstance(exc, openai.APITimeoutError | TimeoutError):
        return Failure(True, None, "request timed out")
    if isinstance(exc, openai.APIConnectionError | ConnectionError):
        return Failure(True, None, one_line(f"connection error: {_provider_message(exc)}"))
    status = getattr(exc, "status_code", None)
    if isinstance(status, int):
        retryable = status in (408, 429) or status >= 500
        headers = getattr(getattr(exc, "response", None), "headers", None)
        reason = one_line(f"HTTP {status}: {_provider_message(exc)}")
        return Failure(retryable, status, reason, parse_retry_after(headers) if retryable else None)
    return None


def call_with_retries(
    attempt: Callable[[], tuple[T, int | None]],
    policy: RetryPolicy,
    *,
    what: str,
    classify: Callable[[BaseException], Failure | None] = classify,
    sleep: Callable[[float], None] = time.sleep,
    rng: Callable[[], float] = random.random,
) -> tuple[T, RetryLog]:
    """Run ``attempt`` (returning ``(value, http_status)``) until it succeeds or the policy gives up.

    ``what`` names the call in error messages (e.g. the model). Raises :class:`LMError`.
    """
    record = RetryLog()
    for retry_index in range(policy.max_retries + 1):
        try:
            value, status = attempt()
        except Exception as exc:
            failure = classify(exc)
            if failure is None:
                raise
            record.http_status_history.append(failure.status)
            record.reasons.append(failure.reason)
            attempts = {
                "attempts": retry_index + 1,
                "http_status_history": list(record.http_status_history),
                "last_error": failure.reason,
            }
            if not failure.retryable:
                raise LMError(
                    f"{what}: {failure.reason}",
                    "check the model name, the API key and --api-base",
                    attempts,
                ) from exc
            if retry_index == policy.max_retries:
                raise LMError(
                    f"{what}: gave up after {retry_index + 1} attempts; last error: {failure.reason}",
                    "retry later, or raise --lm-retries / --lm-timeout (max_retries / timeout_s in Python)",
                    attempts,
                ) from exc
            wait = policy.delay(retry_index, failure.retry_after_s, rng)
            log.info("%s: %s; retry %d in %.2fs", what, failure.reason, retry_index + 1, wait)
            sleep(wait)
            record.retries += 1
            continue
        record.http_status_history.append(status)
        return value, record
    raise AssertionError("unreachable: the loop returns or raises")  # pragma: no cover
