"""Model specs → LM instances: one registry of backends, chosen by the spec's prefix.

- ``sim`` → the offline simulator (``recorder.simulator``, imported only when asked);
  ``role`` picks the simulated root model or the task-aware oracle sub-LM. With an
  ``api_base``, the simulator served there by ``rlmine sim-server`` (models ``sim`` and
  ``sim-sub``), recorded as ``sim@HOST:PORT`` so HTTP runs stay apart from in-process ones.
- ``litellm/<provider model>`` → the LiteLLM backend (optional extra).
- ``openai/<model>`` → the OpenAI-compatible backend, prefix removed (LiteLLM's
  convention: ``openai/`` names the wire format, not part of the model name).
- anything else (``gpt-4o-mini``, ``qwen2.5:7b``, ``meta-llama/Llama-3.1-8B``) → the
  OpenAI-compatible backend as is, at ``api_base``.

Specs the OpenAI wire format cannot serve (``anthropic/…``, a URL, ``sim/…``) are
refused with the registry's choices. Options meant for the simulator (``latency``,
``seed``, …) are passed to it untouched; network backends ignore options set to
None and refuse any other option they do not take.

Each builder imports its backend when it runs: the ``openai`` SDK alone costs a few
hundred milliseconds, and ``make_lm("sim")`` (or a caller passing LM objects) needs none.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from recorder.lm.base import LM
from rlmine.errors import RlmineRuntimeError, UserError

__all__ = ["KNOWN_BACKENDS", "check_api_base", "make_lm"]

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
    if request.api_base is not None:  # the simulator served by `rlmine sim-server`, over HTTP
        unknown = sorted(k for k, v in request.options.items() if v is not None and k not in _NETWORK_OPTIONS)
        if unknown:
            raise UserError(
                f"option(s) {', '.join(unknown)} apply to the in-process simulator, not to one at --api-base",
                "`rlmine sim-server` options for the served simulator, or drop --api-base",
            )
        from recorder.lm.openai_backend import OpenAICompatLM

        netloc = urlsplit(request.api_base).netloc
        return OpenAICompatLM(
            "sim" if request.role == "root" else "sim-sub",
            api_base=request.api_base,
            api_key_env=request.api_key_env,
            label=f"sim@{netloc}",  # stored as the run's model: apart from in-process "sim" runs
            **_network_options(request.options, "OpenAI-compatible"),
        )
    try:  # imported late: the simulator is heavy and only needed when asked for
        simulator = importlib.import_module("recorder.simulator")
        make_simulator_lm = simulator.make_simulator_lm
    except (ImportError, AttributeError) as exc:
        raise RlmineRuntimeError(
            f"the simulator backend cannot be loaded: {exc}", "reinstall rlmine, or use a real --model"
        ) from exc
    # Retry and timeout settings mean nothing to the in-process simulator (no network).
    options = {k: v for k, v in request.options.items() if k not in _NETWORK_OPTIONS}
    lm: LM = make_simulator_lm(role=request.role, **options)
    return lm


def _build_litellm(model: str, request: _Request) -> LM:
    if not model:
        raise UserError("litellm/ needs a model", "--model litellm/anthropic/claude-3-5-haiku-latest")
    from recorder.lm.litellm_backend import LiteLLMLM

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
    from recorder.lm.openai_backend import OpenAICompatLM

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


def check_api_base(url: str) -> None:
    """A UserError unless ``url`` is an http(s) URL with a host (and a valid port)."""
    parts = urlsplit(url.strip())
    try:
        port_ok = parts.port is None or 0 < parts.port < 65536
    except ValueError:
        port_ok = False
    if parts.scheme not in ("http", "https") or not parts.hostname or not port_ok:
        raise UserError(
            f"--api-base {url!r} is not an http(s) URL with a host",
            "--api-base http://127.0.0.1:8000/v1 (the server's OpenAI-compatible root)",
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
    if api_base is not None:
        check_api_base(api_base)
    request = _Request(role, api_base, api_key_env, dict(options))
    for prefix, build in _REGISTRY:
        if _matches(cleaned, prefix):
            return build(cleaned[len(prefix) :], request)
    raise AssertionError("unreachable: the empty prefix matches every spec")  # pragma: no cover
