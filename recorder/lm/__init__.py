"""LM backends: the LM interface, OpenAI-compatible and LiteLLM clients, fakes, prices, the loopback server.

Build one with :func:`make_lm` (``"sim"``, ``"gpt-4o-mini"``, ``"litellm/…"``); see
:mod:`recorder.lm.registry` for the spec grammar and :mod:`recorder.lm.retry` for
the retry policy every network backend shares.
"""

from __future__ import annotations

import importlib
from typing import Any

# Exports resolve lazily: importing the interface (recorder.lm.base) must not pay
# ~0.6 s for the openai SDK, which only the network backends need.
_HOMES = {
    "LM": "base", "LMError": "base", "LMResponse": "base", "Message": "base",
    "LiteLLMLM": "litellm_backend", "OpenAICompatLM": "openai_backend",
    "Price": "pricing", "PriceTable": "pricing", "load_prices": "pricing",
    "KNOWN_BACKENDS": "registry", "make_lm": "registry", "RetryPolicy": "retry",
    "FunctionLM": "scripted", "ScriptedLM": "scripted", "FaultConfig": "server", "SimServer": "server",
}  # fmt: skip

__all__ = [
    "KNOWN_BACKENDS",
    "LM",
    "FaultConfig",
    "FunctionLM",
    "LMError",
    "LMResponse",
    "LiteLLMLM",
    "Message",
    "OpenAICompatLM",
    "Price",
    "PriceTable",
    "RetryPolicy",
    "ScriptedLM",
    "SimServer",
    "load_prices",
    "make_lm",
]


def __getattr__(name: str) -> Any:
    if name in _HOMES:
        return getattr(importlib.import_module(f"recorder.lm.{_HOMES[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
