"""Model specs → LM instances: one registry of backends, chosen by the spec's prefix.

- ``sim`` → the offline simulator (``recorder.simulator``, imported only when asked);
  ``role`` picks the simulated root model or the task-aware oracle sub-LM.
- ``litellm/<provider model>`` → the LiteLLM backend (optional extra).
- ``openai/<model>`` → the OpenAI-compatible backend, prefix removed (LiteLLM's
  convention: ``openai/`` names the wire format, not part of the model name).
- anything else (``gpt-4o-mini``, ``qwen2.5:7b``, ``meta-llama/Llama-3.1-8B``) → the
  OpenAI-compatible backend as is, at ``api_base``.

Specs the OpenAI wire format cannot serve (``anthropic/…``, a URL, ``sim/…``) are
refused with the registry's choices. Options meant for the simulator (``latency``,
``seed``, …) are passed to it untouched; network backends ignore options set to
None and refuse any other option they do not take.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from recorder.lm.base import LM
from recorder.lm.litellm_backend import LiteLLMLM
from recorder.lm.openai_backend import OpenAICompatLM
from rlmine.errors import RlmineRuntimeError, UserError

__all__ = ["KNOWN_BACKENDS", "make_lm"]

KNOWN_BACKENDS: Mapping[str, str] = {
    "sim": "the offline simulator (deterministic, seeded; no API key)",
    "litellm/": "LiteLLM, e.g. litellm/anthropic/claude-3-5-haiku-latest (extra: pip install 'rlmine[litellm]')",
    "openai/": "OpenAI-compatible endpoint, prefix removed, e.g. openai/gpt-4o-mini",
    "": "any other name: OpenAI-compatible endpoint at --api-base, e.g. gpt-4o-mini, qwen2.5:7b",
}

# Provider prefixes whose native APIs are not OpenAI-compatible: they need LiteLLM.
_LITELLM_ONLY = ("anthropic", "gemini", "vertex_ai", "bedrock", "cohere", "azure", "sagemaker")
_NETWORK_OPTIONS = ("timeout_s", "max_retries", "backoff_base_s", "backoff_max_s", "prices")


@dataclass(frozen=True, slots=True)
class _Request:
    role: str
    api_base: str | None
    api_key_env: str
    options: dict[str, Any]


def _choices() -> str:
    return "; ".join(f"{prefix or '<model>'} ({text})" for prefix, text in KNOWN_BACKENDS.items())


def _network_options(options: dict[str, Any], backend: str) -> dict[str, Any]:
    given = {k: v for k, v in options.items() if v is not None}
    unknown = sorted(set(given) - set(_NETWORK_OPTIONS))
    if unknown:
        raise UserError(
            f"option(s) {', '.join(unknown)} do not apply to the {backend} backend",
            f"use only {', '.join(_NETWORK_OPTIONS)} (or --model sim for simulator options)",
        )
    return given


def _build_sim(model: str, request: _Request) -> LM:
    if model:
        raise UserError(f"unknown simulator spec 'sim{model}'", "--model sim")
    try:  # imported late: the simulator is heavy and only needed when asked for
        simulator = importlib.import_module("recorder.simulator")
        make_simulator_lm = simulator.make_simulator_lm
    except (ImportError, AttributeError) as exc:
        raise RlmineRuntimeError(
            f"the simulator backend cannot be loaded: {exc}", "reinstall rlmine, or use a real --model"
        ) from exc
    lm: LM = make_simulator_lm(role=request.role, **request.options)
    return lm


def _build_litellm(model: str, request: _Request) -> LM:
    if not model:
        raise UserError("litellm/ needs a model", "--model litellm/anthropic/claude-3-5-haiku-latest")
    return LiteLLMLM(model, api_base=request.api_base, **_network_options(request.options, "LiteLLM"))


def _build_openai(model: str, request: _Request) -> LM:
    head = model.split("/", 1)[0].lower() if "/" in model else ""
    if head in _LITELLM_ONLY:
        raise UserError(
            f"model {model!r} is not served by the OpenAI-compatible backend",
            f"--model litellm/{model} (registry: {_choices()})",
        )
    if "://" in model:
        raise UserError(f"model {model!r} looks like a URL", "--api-base URL --model NAME")
    if not model.strip():
        raise UserError("empty model name", f"one of: {_choices()}")
    return OpenAICompatLM(
        model,
        api_base=request.api_base,
        api_key_env=request.api_key_env,
        **_network_options(request.options, "OpenAI-compatible"),
    )


# Checked in order; the first prefix that matches wins ("" matches everything).
_REGISTRY: tuple[tuple[str, Callable[[str, _Request], LM]], ...] = (
    ("sim", _build_sim),
    ("litellm/", _build_litellm),
    ("openai/", _build_openai),
    ("", _build_openai),
)


def _matches(spec: str, prefix: str) -> bool:
    if prefix == "sim":  # "sim" alone, or a malformed variant of it ("sim/x", "sim:x")
        return spec == "sim" or spec[:4] in ("sim/", "sim:")
    return spec.startswith(prefix)


def make_lm(
    spec: str,
    *,
    role: str = "root",
    api_base: str | None = None,
    api_key_env: str = "OPENAI_API_KEY",
    **options: Any,
) -> LM:
    """Build the LM named by ``spec`` (see the module docstring for the grammar)."""
    if role not in ("root", "sub"):
        raise UserError(f"unknown LM role {role!r}", "role='root' or role='sub'")
    cleaned = spec.strip()
    if not cleaned:
        raise UserError("empty model spec", f"one of: {_choices()}")
    request = _Request(role, api_base, api_key_env, dict(options))
    for prefix, build in _REGISTRY:
        if _matches(cleaned, prefix):
            return build(cleaned[len(prefix) :], request)
    raise AssertionError("unreachable: the empty prefix matches every spec")  # pragma: no cover
