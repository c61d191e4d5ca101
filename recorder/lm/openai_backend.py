"""The OpenAI-compatible backend: OpenAI, Groq, Together, OpenRouter, vLLM, Ollama, llama.cpp.

One ``openai.OpenAI`` client per instance, created with the SDK's retries off
(``max_retries=0``) so that :mod:`recorder.lm.retry` is the only retry policy; the
client is thread-safe, so one instance serves many threads (the batch runner and
``llm_query_batched`` share it). Each call goes through ``with_raw_response`` so the
real HTTP status of every attempt is recorded, including a 200 whose body is broken.

API keys: read from the environment variable named by ``api_key_env``. A loopback
``api_base`` (a local vLLM/Ollama or the rlmine simulator server) works without one.
Each request first asks :func:`recorder.lm.guard.check_model_request` (the switch tests
turn off).
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

import openai

from recorder.lm.base import LMResponse, Message
from recorder.lm.guard import check_model_request, is_loopback_url
from recorder.lm.pricing import PriceTable, load_prices
from recorder.lm.retry import MalformedResponseError, RetryPolicy, call_with_retries
from recorder.lm.wire import WireReply, read_completion, to_lm_response
from rlmine.errors import UserError

__all__ = ["LOOPBACK_DUMMY_KEY", "OpenAICompatLM", "is_loopback_url", "resolve_api_key"]

# Sent to loopback servers when no key is set; they do not check it.
LOOPBACK_DUMMY_KEY = "rlmine-loopback-no-key"


def resolve_api_key(api_key_env: str, api_base: str | None) -> str:
    """The key from ``$api_key_env``; a dummy for loopback servers; else a UserError naming the variable."""
    key = os.environ.get(api_key_env)
    if key:
        return key
    if is_loopback_url(api_base):
        return LOOPBACK_DUMMY_KEY
    raise UserError(
        f"environment variable {api_key_env} is not set (needed for {api_base or 'the OpenAI API'})",
        f"export {api_key_env}=... (any value works for a server without auth)",
    )


def _payload(messages: Sequence[Message]) -> list[dict[str, str]]:
    return [{"role": m.role, "content": m.content} for m in messages]


class OpenAICompatLM:
    """A chat model behind any OpenAI-compatible ``/v1/chat/completions`` endpoint."""

    def __init__(
        self,
        model: str,
        *,
        api_base: str | None = None,
        api_key_env: str = "OPENAI_API_KEY",
        timeout_s: float = 60,
        max_retries: int = 6,
        backoff_base_s: float = 0.5,
        backoff_max_s: float = 30,
        prices: PriceTable | None = None,
        label: str | None = None,
    ) -> None:
        """``label``, when given, is the name this model is recorded under (``self.model``);
        requests still name ``model``."""
        if not model.strip():
            raise UserError("empty model name", "--model gpt-4o-mini (or sim)")
        if timeout_s <= 0:
            raise UserError(f"timeout_s must be > 0, got {timeout_s}", "timeout_s=60")
        self.model = label or model
        self._wire_model = model
        self.api_base = api_base
        self._policy = RetryPolicy(max_retries, backoff_base_s, backoff_max_s)
        self._prices = prices if prices is not None else load_prices()
        self._client = openai.OpenAI(
            api_key=resolve_api_key(api_key_env, api_base),
            base_url=api_base,
            timeout=float(timeout_s),
            max_retries=0,  # ours, not the SDK's: see recorder.lm.retry
        )
        self._what = f"{model} at {self._client.base_url}"

    def _attempt(self, request: dict[str, Any]) -> tuple[WireReply, int | None]:
        raw = self._client.chat.completions.with_raw_response.create(**request)
        try:
            parsed = raw.parse()
        except ValueError as exc:  # json.JSONDecodeError: a 200 with a broken body
            raise MalformedResponseError(str(exc), raw.status_code) from exc
        return read_completion(parsed), raw.status_code

    def complete(
        self,
        messages: Sequence[Message],
        *,
        temperature: float | None = None,
        seed: int | None = None,
        max_tokens: int | None = None,
    ) -> LMResponse:
        request: dict[str, Any] = {"model": self._wire_model, "messages": _payload(messages)}
        for name, value in (("temperature", temperature), ("seed", seed), ("max_tokens", max_tokens)):
            if value is not None:
                request[name] = value
        check_model_request(self._wire_model, str(self._client.base_url))
        started = time.perf_counter()
        reply, record = call_with_retries(lambda: self._attempt(request), self._policy, what=self._what)
        response = to_lm_response(
            reply,
            record,
            requested_model=self._wire_model,
            latency_s=time.perf_counter() - started,
            prices=self._prices,
        )
        return response if self.model == self._wire_model else replace(response, model=self.model)

    def close(self) -> None:
        """Close the HTTP connection pool (optional: it is also closed at exit)."""
        self._client.close()
