"""LM backends: the LM interface, OpenAI-compatible and LiteLLM clients, fakes, prices, the loopback server.

Build one with :func:`make_lm` (``"sim"``, ``"gpt-4o-mini"``, ``"litellm/…"``); see
:mod:`recorder.lm.registry` for the spec grammar and :mod:`recorder.lm.retry` for
the retry policy every network backend shares.

``ALLOW_MODEL_REQUESTS`` is the switch that makes real model requests impossible (tests set
it off): ``None`` defers to ``$RLMINE_ALLOW_MODEL_REQUESTS``; see :mod:`recorder.lm.guard`.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from recorder.lm.guard import Allow

# True, False or "loopback"; None: read $RLMINE_ALLOW_MODEL_REQUESTS (unset: allowed).
ALLOW_MODEL_REQUESTS: Allow | None = None

# Exports resolve lazily: importing the interface (recorder.lm.base) must not pay
# ~0.6 s for the openai SDK, which only the network backends need.
_HOMES = {
    "LM": "base", "LMError": "base", "LMResponse": "base", "Message": "base",
    "LiteLLMLM": "litellm_backend", "OpenAICompatLM": "openai_backend",
    "Price": "pricing", "PriceTable": "pricing", "load_prices": "pricing",
    "KNOWN_BACKENDS": "registry", "make_lm": "registry", "RetryPolicy": "retry",
    "FunctionLM": "scripted", "ScriptedLM": "scripted", "FaultConfig": "server", "SimServer": "server",
    "ModelRequestsDisabled": "guard", "allow_model_requests": "guard",
}  # fmt: skip

__all__ = [
    "ALLOW_MODEL_REQUESTS",
    "KNOWN_BACKENDS",
    "LM",
    "FaultConfig",
    "FunctionLM",
    "LMError",
    "LMResponse",
    "LiteLLMLM",
    "Message",
    "ModelRequestsDisabled",
    "OpenAICompatLM",
    "Price",
    "PriceTable",
    "RetryPolicy",
    "ScriptedLM",
    "SimServer",
    "allow_model_requests",
    "load_prices",
    "make_lm",
]


def __getattr__(name: str) -> Any:
    if name in _HOMES:
        return getattr(importlib.import_module(f"recorder.lm.{_HOMES[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
