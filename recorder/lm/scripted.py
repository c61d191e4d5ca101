"""First-class fakes for tests and demos: a scripted LM and a function-backed LM.

:class:`ScriptedLM` answers from a list, in order, and records every message list it
was sent (thread-safe, so it can stand behind ``llm_query_batched``). A list item may
be an exception, which is raised for that call: that is how tests script provider
failures. :class:`FunctionLM` computes each reply with a function of the messages.
Neither invents usage: token counts stay None unless a scripted LMResponse has them.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import Any

from recorder.lm.base import LMError, LMResponse, Message

__all__ = ["FunctionLM", "ScriptedLM"]

Reply = str | LMResponse | BaseException


class ScriptedLM:
    """Replies with ``replies[0]``, then ``replies[1]``, …; raises LMError when they run out."""

    def __init__(self, replies: Sequence[Reply], model: str = "scripted", latency_s: float = 0.0) -> None:
        self.model = model
        self.latency_s = latency_s
        self._replies = list(replies)
        self._lock = threading.Lock()
        self.calls: list[list[Message]] = []
        self.call_options: list[dict[str, Any]] = []  # temperature / seed / max_tokens of each call

    @property
    def remaining(self) -> int:
        with self._lock:
            return len(self._replies) - len(self.calls)

    def complete(
        self,
        messages: Sequence[Message],
        *,
        temperature: float | None = None,
        seed: int | None = None,
        max_tokens: int | None = None,
    ) -> LMResponse:
        started = time.perf_counter()
        with self._lock:
            index = len(self.calls)
            self.calls.append(list(messages))
            self.call_options.append({"temperature": temperature, "seed": seed, "max_tokens": max_tokens})
        if index >= len(self._replies):
            raise LMError(
                f"ScriptedLM {self.model!r} ran out of replies after {len(self._replies)} calls",
                "script more replies for this test",
            )
        if self.latency_s > 0:
            time.sleep(self.latency_s)
        reply = self._replies[index]
        if isinstance(reply, BaseException):
            raise reply
        if isinstance(reply, LMResponse):
            return reply
        return LMResponse(text=reply, model=self.model, latency_s=time.perf_counter() - started)


class FunctionLM:
    """Replies with ``fn(messages, temperature=..., seed=..., max_tokens=...)`` (a str or an LMResponse)."""

    def __init__(self, fn: Callable[..., str | LMResponse], model: str = "function") -> None:
        self.model = model
        self._fn = fn

    def complete(
        self,
        messages: Sequence[Message],
        *,
        temperature: float | None = None,
        seed: int | None = None,
        max_tokens: int | None = None,
    ) -> LMResponse:
        started = time.perf_counter()
        reply = self._fn(list(messages), temperature=temperature, seed=seed, max_tokens=max_tokens)
        latency = time.perf_counter() - started
        if isinstance(reply, LMResponse):
            return reply if reply.latency_s else replace(reply, latency_s=latency)
        if not isinstance(reply, str):
            raise TypeError(
                f"FunctionLM's function returned {type(reply).__name__}, expected str or LMResponse"
            )
        return LMResponse(text=reply, model=self.model, latency_s=latency)
