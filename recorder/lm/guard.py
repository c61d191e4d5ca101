"""The switch that makes real model requests impossible (as pydantic-ai's ``ALLOW_MODEL_REQUESTS``).

One setting, three values: ``True`` (any endpoint), ``False`` (none) or ``"loopback"`` (only
servers on a loopback address: ``rlmine sim-server``, a local vLLM or Ollama). It is read from

1. ``recorder.lm.ALLOW_MODEL_REQUESTS`` when set (``None``, the default, means "not set"), else
2. the environment variable ``RLMINE_ALLOW_MODEL_REQUESTS`` (``0``/``false``/``no``/``off``,
   ``loopback``, or ``1``/``true``/``yes``/``on``), which subprocesses inherit, else ``True``.

The test suite turns it off (``tests/conftest.py``); tests that talk to the loopback server
opt in to ``"loopback"``. Every network backend calls :func:`check_model_request` before each
request. A blocked request raises :class:`ModelRequestsDisabled`, a :class:`UserError`, which
no retry loop or engine turns into a recorded failure: a test that reaches for a real model
fails loudly. Fakes (``ScriptedLM``, ``FunctionLM``) and the in-process simulator send no
requests and are never blocked.
"""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Literal
from urllib.parse import urlsplit

from rlmine.errors import UserError

__all__ = [
    "ENV",
    "Allow",
    "ModelRequestsDisabled",
    "allow_model_requests",
    "check_model_request",
    "is_loopback_url",
    "model_requests_allowed",
]

ENV = "RLMINE_ALLOW_MODEL_REQUESTS"
Allow = bool | Literal["loopback"]

_WORDS: dict[str, Allow] = {
    "0": False,
    "false": False,
    "no": False,
    "off": False,
    "1": True,
    "true": True,
    "yes": True,
    "on": True,
    "loopback": "loopback",
}


class ModelRequestsDisabled(UserError):
    """A real model request while the switch forbids it."""


def is_loopback_url(url: str | None) -> bool:
    """True for http(s) URLs whose host is localhost or a loopback address."""
    if not url:
        return False
    host = (urlsplit(url).hostname or "").lower()
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def model_requests_allowed() -> Allow:
    """The setting now: the package attribute when set, else the environment, else True."""
    import recorder.lm as package  # the attribute users set lives on the package

    flag: Allow | None = getattr(package, "ALLOW_MODEL_REQUESTS", None)
    if flag is not None:
        return flag
    raw = os.environ.get(ENV)
    if raw is None or not raw.strip():
        return True
    value = _WORDS.get(raw.strip().lower())
    if value is None:
        raise UserError(f"{ENV}={raw!r} is not a setting", f"{ENV}=0, {ENV}=loopback or {ENV}=1")
    return value


def check_model_request(model: str, url: str | None) -> None:
    """Raise ModelRequestsDisabled unless a request for ``model`` to ``url`` is allowed now."""
    allowed = model_requests_allowed()
    if allowed is True or (allowed == "loopback" and is_loopback_url(url)):
        return
    where = url or "the provider's API"
    scope = (
        "real model requests are disabled" if allowed is False else "only loopback model requests are allowed"
    )
    raise ModelRequestsDisabled(
        f"{scope} ({ENV} / recorder.lm.ALLOW_MODEL_REQUESTS), refused: {model} at {where}",
        "a fake LM (ScriptedLM, FunctionLM) or --model sim; to allow it, set "
        f"{ENV}=1 (or {ENV}=loopback for a local server)",
    )


@contextmanager
def allow_model_requests(allow: Allow) -> Iterator[None]:
    """Set ``recorder.lm.ALLOW_MODEL_REQUESTS`` for the block (this process only), then restore it."""
    import recorder.lm as package

    before = getattr(package, "ALLOW_MODEL_REQUESTS", None)
    package.ALLOW_MODEL_REQUESTS = allow
    try:
        yield
    finally:
        package.ALLOW_MODEL_REQUESTS = before
