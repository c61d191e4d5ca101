"""The LiteLLM backend (optional extra): Anthropic, Gemini, Bedrock and the other providers.

``litellm`` is imported when an instance is made, never at module import, so the
core install stays small; without it the user gets the install command. LiteLLM's
own retries are off and the shared policy of :mod:`recorder.lm.retry` applies
(LiteLLM's exceptions subclass the OpenAI SDK's, carrying ``status_code`` and the
response headers, so one classifier serves both). Provider keys are read by
LiteLLM from its usual environment variables. Each request first asks
:func:`recorder.lm.guard.check_model_request` (the switch tests turn off).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

from recorder.lm.base import LMResponse, Message
from recorder.lm.guard import check_model_request
from recorder.lm.pricing import PriceTable, load_prices
from recorder.lm.retry import RetryPolicy, call_with_retries
from recorder.lm.wire import WireReply, read_completion, to_lm_response
from rlmine.errors import UserError

__all__ = ["INSTALL_HINT", "LiteLLMLM"]

INSTALL_HINT = "pip install 'rlmine[litellm]'"


def _import_litellm() -> Any:
    try:
        import litellm
    except ImportError:
        raise UserError("the LiteLLM backend needs the optional package 'litellm'", INSTALL_HINT) from None
    return litellm


class LiteLLMLM:
    """A chat model reached through ``litellm.completion`` (``model`` in LiteLLM's own naming)."""

    def __init__(
        self,
        model: str,
        *,
        api_base: str | None = None,
        timeout_s: float = 60,
        max_retries: int = 6,
        backoff_base_s: float = 0.5,
        backoff_max_s: float = 30,
        prices: PriceTable | None = None,
    ) -> None:
        if not model.strip():
            raise UserError("empty LiteLLM model name", "--model litellm/anthropic/claude-3-5-haiku-latest")
        if timeout_s <= 0:
            raise UserError(f"timeout_s must be > 0, got {timeout_s}", "timeout_s=60")
        self._litellm = _import_litellm()
        self.model = model
        self.api_base = api_base
        self._timeout_s = float(timeout_s)
        self._policy = RetryPolicy(max_retries, backoff_base_s, backoff_max_s)
        self._prices = prices if prices is not None else load_prices()

    def _attempt(self, request: dict[str, Any]) -> tuple[WireReply, int | None]:
        # LiteLLM raises on every non-2xx status, so a returned response was a 200.
        return read_completion(self._litellm.completion(**request)), 200

    def complete(
        self,
        messages: Sequence[Message],
        *,
        temperature: float | None = None,
        seed: int | None = None,
        max_tokens: int | None = None,
    ) -> LMResponse:
        request: dict[str, Any] = {
            "model": self.model,
            "messages": [{"role": m.role, "content": m.content} for m in messages],
            "timeout": self._timeout_s,
            "num_retries": 0,  # ours, not LiteLLM's
            "max_retries": 0,  # nor the OpenAI client's underneath it
        }
        optional = (("api_base", self.api_base), ("temperature", temperature), ("seed", seed))
        for name, value in (*optional, ("max_tokens", max_tokens)):
            if value is not None:
                request[name] = value
        check_model_request(self.model, self.api_base)
        started = time.perf_counter()
        reply, record = call_with_retries(lambda: self._attempt(request), self._policy, what=self.model)
        return to_lm_response(
            reply,
            record,
            requested_model=self.model,
            latency_s=time.perf_counter() - started,
            prices=self._prices,
        )
