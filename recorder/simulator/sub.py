"""The simulated sub-LM: the task-aware oracle behind ``llm_query`` (see :mod:`.oracle`)."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

from recorder.lm.base import LMResponse, Message

from .latency import SUB_LATENCY
from .oracle import DEFAULT_NOISE, answer_prompt

__all__ = ["OracleSubLM"]


class OracleSubLM:
    """``LM`` protocol implementation answering from the families' ground truth, with seeded noise."""

    model = "sim"

    def __init__(
        self,
        *,
        seed: int | None = None,
        latency: float | None = None,
        noise: float | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.seed = seed
        self.latency = latency
        self.noise = DEFAULT_NOISE if noise is None else noise
        self._sleep = sleep

    def complete(
        self,
        messages: Sequence[Message],
        *,
        temperature: float | None = None,
        seed: int | None = None,
        max_tokens: int | None = None,
    ) -> LMResponse:
        started = time.perf_counter()
        users = [m.content for m in messages if m.role == "user"]
        prompt = users[-1] if users else (messages[-1].content if messages else "")
        run_seed = seed if seed is not None else (self.seed or 0)
        text, family = answer_prompt(prompt, noise=self.noise, seed=run_seed)
        tokens_in = sum(len(m.content) for m in messages) // 4
        tokens_out = len(text) // 4
        latency_s = time.perf_counter() - started
        if self.latency is not None:
            delay = SUB_LATENCY.delay(tokens_in, tokens_out, self.latency)
            self._sleep(delay)
            latency_s += delay
        return LMResponse(
            text=text,
            model=self.model,
            tokens_in=tokens_in,
            tokens_out=tokens_out,
            cost=None,
            latency_s=latency_s,
            metadata={"oracle_family": family, "simulator": True},
        )
