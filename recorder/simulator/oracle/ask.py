"""What a sub-LLM prompt asks for, and how to write the answer in the asked format.

The oracle separates a prompt into data lines (recognised items of a family)
and instruction text, then reads the instruction for the *shape* of the answer:
counts or labels, per item or per group, one best value, JSON or plain lines.
Keyword rules, deliberately broad: generated agents phrase prompts their own way.
"""

from __future__ import annotations

import json
import random
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

__all__ = ["Ask", "Noise", "format_counts", "format_labels", "format_list", "has_any", "read_ask"]

_COUNT = re.compile(r"\b(?:how many|counts?|number of|tally|frequency|how often)\b")
_PER_ITEM = (
    "for each",
    "each line",
    "each message",
    "each review",
    "each prompt",
    "each entry",
    "one label per",
    "one answer per",
    "in order",
    "every line",
    "every message",
    "every review",
    "label each",
    "classify each",
    "each of the",
    "for every",
)
_SINGLE = (
    "which one",
    "most common",
    "most frequent",
    "dominant",
    "the main",
    "which category",
    "which service",
)


def has_any(text: str, words: Sequence[str]) -> bool:
    return any(w in text for w in words)


@dataclass(frozen=True, slots=True)
class Ask:
    text: str  # the instruction, lower-cased
    json: bool
    count: bool
    per_item: bool
    single: bool

    def group_by(self, *groups: str) -> str | None:
        """The group a count is asked per ("per service", "by category", "for each sentiment")."""
        for group in groups:
            for lead in ("per ", "by ", "each ", "every ", "for each "):
                if lead + group in self.text:
                    return group
        return None


def read_ask(instruction: str) -> Ask:
    text = " ".join(instruction.lower().split())
    count = _COUNT.search(text) is not None
    per_item = has_any(text, _PER_ITEM) and not re.search(
        r"for (?:each|every) (service|category|sentiment|topic)", text
    )
    return Ask(
        text=text,
        json="json" in text,
        count=count,
        per_item=per_item,
        single=has_any(text, _SINGLE),
    )


class Noise:
    """Seeded mistakes: ``flip()`` is True with probability ``rate``."""

    def __init__(self, rate: float, rng: random.Random) -> None:
        self.rate = rate
        self.rng = rng

    def flip(self) -> bool:
        return self.rate > 0 and self.rng.random() < self.rate

    def other(self, value: str, choices: Sequence[str]) -> str:
        options = [c for c in choices if c != value]
        return self.rng.choice(options) if options else value

    def fence(self, text: str) -> str:
        """Models often wrap JSON in a code fence; do it sometimes."""
        return f"```json\n{text}\n```" if self.rng.random() < 0.15 else text


def format_list(items: Sequence[Any], ask: Ask, noise: Noise) -> str:
    if ask.json:
        return noise.fence(json.dumps(list(items)))
    return "\n".join(str(i) for i in items) if items else "none"


def format_labels(labels: Sequence[str], ask: Ask, noise: Noise, *, numbered: bool) -> str:
    if ask.json and ("object" in ask.text or "dict" in ask.text or "mapping" in ask.text):
        return noise.fence(json.dumps({str(i + 1): lab for i, lab in enumerate(labels)}))
    if ask.json:
        return noise.fence(json.dumps(list(labels)))
    if numbered:
        return "\n".join(f"{i + 1}. {lab}" for i, lab in enumerate(labels))
    return "\n".join(labels)


def format_counts(counts: Mapping[str, int], ask: Ask, noise: Noise) -> str:
    ordered = dict(sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])))
    if ask.json:
        return noise.fence(json.dumps(ordered))
    return "\n".join(f"{k}: {v}" for k, v in ordered.items()) if ordered else "none"
