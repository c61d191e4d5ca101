"""LM backends: the LM interface, OpenAI-compatible and LiteLLM clients, fakes, prices, the loopback server.

Build one with :func:`make_lm` (``"sim"``, ``"gpt-4o-mini"``, ``"litellm/…"``); see
:mod:`recorder.lm.registry` for the spec grammar and :mod:`recorder.lm.retry` for
the retry policy every network backend shares.
"""

from recorder.lm.base import LM, LMError, LMResponse, Message
from recorder.lm.litellm_backend import LiteLLMLM
from recorder.lm.openai_backend import OpenAICompatLM
from recorder.lm.pricing import Price, PriceTable, load_prices
from recorder.lm.registry import KNOWN_BACKENDS, make_lm
from recorder.lm.retry import RetryPolicy
from recorder.lm.scripted import FunctionLM, ScriptedLM
from recorder.lm.server import FaultConfig, SimServer

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
