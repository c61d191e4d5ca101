"""The host side of ``llm_query`` / ``llm_query_batched``.

The sandbox forwards prompts over its pipe; this handler makes the calls (in
parallel, with bounded concurrency), enforces the sub-call budget, turns a
failure into an ``Error: …`` string in that slot only, and records every call
as an :class:`~rlmine.trace.LLMCall`.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

from recorder.lm.base import LM, LMError, Message
from rlmine.ids import new_id, sha256_text
from rlmine.trace import LLMCall, utcnow

LMResolver = Callable[[str], LM]


class SubCallHandler:
    """Callable as the sandbox's ``LLMHandler``; one per run."""

    def __init__(
        self,
        *,
        run_id: str,
        sub_lm: LM | None,
        max_calls: int,
        max_parallel: int = 8,
        resolver: LMResolver | None = None,
        temperature: float | None = None,
        seed: int | None = None,
    ) -> None:
        self.run_id = run_id
        self.sub_lm = sub_lm
        self.max_calls = max_calls
        self.resolver = resolver
        self.temperature = temperature
        self.seed = seed
        self.iteration = 0
        self.calls: list[LLMCall] = []
        self._lock = threading.Lock()
        self._used = 0
        self._pool = ThreadPoolExecutor(max_workers=max_parallel, thread_name_prefix=f"sub-{run_id[-6:]}")

    @property
    def used(self) -> int:
        return self._used

    def take_calls(self) -> list[LLMCall]:
        with self._lock:
            out, self.calls = self.calls, []
        return out

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)

    def _reserve(self) -> bool:
        with self._lock:
            if self._used >= self.max_calls:
                return False
            self._used += 1
            return True

    def _pick(self, model: str | None) -> LM | None:
        if model and self.resolver is not None and (self.sub_lm is None or model != self.sub_lm.model):
            return self.resolver(model)
        return self.sub_lm

    def _one(self, prompt: str, model: str | None, iteration: int) -> str:
        started = utcnow()
        lm = self._pick(model)
        if lm is None:
            return "Error: no sub-LLM is configured for this run"
        if not self._reserve():
            return f"Error: the sub-LLM call budget ({self.max_calls}) is used up; answer with what you have"
        try:
            resp = lm.complete([Message("user", prompt)], temperature=self.temperature, seed=self.seed)
        except LMError as exc:
            self._record(
                prompt, None, lm.model, iteration, started, error=exc.one_line(), metadata=exc.attempts
            )
            return f"Error: {exc.one_line()}"
        except Exception as exc:  # a backend bug must cost one slot, not the run
            self._record(prompt, None, lm.model, iteration, started, error=f"{type(exc).__name__}: {exc}")
            return f"Error: {type(exc).__name__}: {exc}"
        self._record(
            prompt,
            resp.text,
            resp.model or lm.model,
            iteration,
            started,
            tokens_in=resp.tokens_in,
            tokens_out=resp.tokens_out,
            cost=resp.cost,
            latency_s=resp.latency_s,
            reasoning=resp.reasoning,
            # the backend's retry record (retries, http_status_history) is kept, as for root calls
            metadata={
                **{k: v for k, v in resp.metadata.items() if k != "step_labels"},
                **({"requested_model": model} if model else {}),
            },
        )
        return resp.text

    def _record(
        self,
        prompt: str,
        response: str | None,
        model: str | None,
        iteration: int,
        started: object,
        *,
        error: str | None = None,
        tokens_in: int | None = None,
        tokens_out: int | None = None,
        cost: float | None = None,
        latency_s: float | None = None,
        reasoning: str | None = None,
        metadata: dict[str, object] | None = None,
    ) -> None:
        call = LLMCall(
            id=new_id(),
            run_id=self.run_id,
            iteration=iteration,
            role="sub",
            model=model,
            prompt=prompt,
            response=response,
            prompt_sha256=sha256_text(prompt),
            prompt_chars=len(prompt),
            reasoning=reasoning,
            tokens_in=tokens_in,
            tokens_out=tokens_out,
            cost=cost,
            latency_s=latency_s,
            started_at=started,  # type: ignore[arg-type]
            error=error,
            metadata=dict(metadata or {}),
        )
        with self._lock:
            self.calls.append(call)

    def __call__(self, prompts: list[str], model: str | None) -> list[str]:
        iteration = self.iteration
        if len(prompts) == 1:
            return [self._one(prompts[0], model, iteration)]
        futures = [self._pool.submit(self._one, str(p), model, iteration) for p in prompts]
        return [f.result() for f in futures]
