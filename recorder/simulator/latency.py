"""Simulated latency: time to first token plus prefill and decoding time, scaled.

``scale`` multiplies the whole delay (1.0 ~ a hosted mid-size model; 0.01 for
quick demos). ``None`` means no simulated latency at all.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["ROOT_LATENCY", "SUB_LATENCY", "LatencyModel"]


@dataclass(frozen=True, slots=True)
class LatencyModel:
    ttft_s: float
    prefill_tokens_per_s: float
    decode_tokens_per_s: float

    def delay(self, tokens_in: int, tokens_out: int, scale: float) -> float:
        seconds = self.ttft_s + tokens_in / self.prefill_tokens_per_s + tokens_out / self.decode_tokens_per_s
        return max(0.0, scale * seconds)


ROOT_LATENCY = LatencyModel(ttft_s=0.6, prefill_tokens_per_s=20_000, decode_tokens_per_s=60)
SUB_LATENCY = LatencyModel(ttft_s=0.3, prefill_tokens_per_s=40_000, decode_tokens_per_s=120)
