"""The task-aware oracle behind the simulator's sub-LM (``make_lm("sim", role="sub")``).

``answer_prompt`` recognises which family's data a prompt carries (by content,
not by who wrote the prompt), then answers from that family's ground-truth
tables in the format the instruction asks. Mistakes are injected at a seeded
``noise`` rate (per judged item, seeded by the prompt's hash), so identical
prompts get identical answers. Prompts it cannot place get an honest refusal.
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Callable

from . import celebrities, logs, reviews
from .ask import Noise

__all__ = ["DEFAULT_NOISE", "UNKNOWN_ANSWER", "answer_prompt"]

DEFAULT_NOISE = 0.002
UNKNOWN_ANSWER = "I cannot tell from this text."

_HANDLERS: dict[str, tuple[Callable[[str], int], Callable[[str, Noise], str | None]]] = {
    "celebrities": (celebrities.score, celebrities.answer),
    "incident-logs": (logs.score, logs.answer),
    "reviews-aggregate": (reviews.score, reviews.answer),
}


def answer_prompt(prompt: str, *, noise: float = DEFAULT_NOISE, seed: int = 0) -> tuple[str, str | None]:
    """(answer, family recognised or None) for one sub-LM prompt."""
    digest = hashlib.sha256(f"{seed}:{prompt}".encode()).digest()
    rng = random.Random(int.from_bytes(digest[:8], "big"))
    scores = {name: score(prompt) for name, (score, _) in _HANDLERS.items()}
    for name in sorted(scores, key=lambda n: -scores[n]):
        if scores[name] <= 0:
            break
        reply = _HANDLERS[name][1](prompt, Noise(noise, rng))
        if reply is not None:
            return reply, name
    return UNKNOWN_ANSWER, None
