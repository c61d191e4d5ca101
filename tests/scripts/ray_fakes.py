"""LM factories for the Ray executor tests. They run inside Ray worker processes, so the
tests ship this module (and :mod:`recorder_fakes`) to the workers by value."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from typing import Any

from recorder_fakes import counting_root, turn_number

from recorder.lm.base import LMResponse, Message
from recorder.lm.scripted import FunctionLM


def _echo_sub(spec: str) -> FunctionLM:
    return FunctionLM(lambda messages, **_kw: "sub:" + messages[-1].content, model=spec)


def dying_factory(kill_seed: int, at_turn: int = 1, steps: int = 3) -> Callable[..., FunctionLM]:
    """Counting roots; the run with seed ``kill_seed`` kills its whole worker process
    (``os._exit``) on root call ``at_turn``, after its earlier iterations were streamed."""

    def factory(spec: str, *, role: str = "root", **_: Any) -> FunctionLM:
        if role == "sub":
            return _echo_sub(spec)
        base = counting_root(steps, model=spec)

        def reply(messages: list[Message], *, seed: int | None = None, **kw: Any) -> LMResponse:
            if seed == kill_seed and turn_number(messages) == at_turn:
                time.sleep(0.5)  # the earlier iterations reach the driver first
                os._exit(1)
            return base.complete(messages, seed=seed, **kw)

        return FunctionLM(reply, model=spec)

    return factory


def key_probe_factory(secrets: dict[str, str]) -> Callable[..., FunctionLM]:
    """A root that submits "seen" when its own process has every ``secrets`` variable set."""

    def factory(spec: str, *, role: str = "root", **_: Any) -> FunctionLM:
        if role == "sub":
            return _echo_sub(spec)
        seen = all(os.environ.get(name) == value for name, value in secrets.items())
        answer = "seen" if seen else "missing"
        return FunctionLM(lambda _m, **_kw: f'```python\nSUBMIT("{answer}")\n```', model=spec)

    return factory
