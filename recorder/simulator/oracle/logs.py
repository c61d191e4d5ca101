"""Oracle for the incident-logs family: reads log lines with the family's phrase tables.

Each line with a known effect or cause phrase (or a log header) is an item:
service, level, customer-facing or not, root-cause category. Answers labels per
item, counts (in total, per service, per category) or the single most common
value, depending on what the instruction asks.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass
from functools import lru_cache

from recorder.families.log_data import CATEGORIES, CAUSES, CUSTOMER_EFFECTS, INTERNAL_EFFECTS, SERVICES

from .ask import Ask, Noise, format_counts, format_labels, format_list, has_any, read_ask

__all__ = ["answer", "score"]

_SLOT = {
    "n": r"\d+",
    "ms": r"\d+",
    "a": r"\d+",
    "cid": r"\w+",
    "oid": r"\w+",
    "path": r"\w+",
    "dep": r"[\w-]+",
}


def _compile(template: str) -> re.Pattern[str]:
    parts = re.split(r"\{(\w+)\}", template)
    body = "".join(_SLOT[p] if i % 2 else re.escape(p) for i, p in enumerate(parts))
    return re.compile(body, re.I)


_CAUSE_RX = [(cat, _compile(t)) for cat in CATEGORIES for t in CAUSES[cat]]
_EFFECT_RX = [(True, _compile(t)) for t in CUSTOMER_EFFECTS] + [
    (False, _compile(t)) for t in INTERNAL_EFFECTS
]
_HEADER = re.compile(r"\b(DEBUG|INFO|WARN|WARNING|ERROR)\b\s+([a-z][\w-]*)\s+\[req=")
_SERVICE_LEAD = re.compile(r"^\W*(?:\d+[.)]\s*)?\[?([a-z][a-z-]+)\]?\s*[:|\]]\s")
_CUSTOMER_WORDS = ("customer", "user-facing", "user facing", "client-facing", "users", "user ", "visible")
_CATEGORY_WORDS = ("root cause", "root-cause", "category", "categor", "cause")


@dataclass(frozen=True, slots=True)
class _Item:
    service: str | None
    level: str | None
    customer: bool | None  # None: no known effect phrase
    category: str | None

    @property
    def is_error(self) -> bool:
        return self.level == "ERROR" or (
            self.level is None and (self.category is not None or self.customer is not None)
        )


@lru_cache(maxsize=50_000)
def _classify(message: str) -> tuple[bool | None, str | None]:
    customer = next((cf for cf, rx in _EFFECT_RX if rx.search(message)), None)
    category = next((cat for cat, rx in _CAUSE_RX if rx.search(message)), None)
    return customer, category


def _item(line: str) -> _Item | None:
    header = _HEADER.search(line)
    message = line[header.end() :] if header else line
    customer, category = _classify(re.sub(r"\d+|#+", "0", message))  # "#" placeholders of normalised text
    if header is None and customer is None and category is None:
        return None
    service = header.group(2) if header else None
    if service is None:
        lead = _SERVICE_LEAD.match(line)
        service = lead.group(1) if lead and lead.group(1) in SERVICES else None
    level = header.group(1) if header else None
    return _Item(service, level, customer, category)


def score(prompt: str) -> int:
    """Log headers in the head of the prompt, else known messages among its first lines."""
    headers = len(_HEADER.findall(prompt[:100_000]))
    return headers or sum(1 for line in prompt[:20_000].splitlines()[:60] if _item(line) is not None)


def answer(prompt: str, noise: Noise) -> str | None:
    items: list[_Item] = []
    instruction: list[str] = []
    for line in prompt.splitlines():
        item = _item(line)
        if item is None:
            instruction.append(line)
        else:
            items.append(item)
    ask = read_ask("\n".join(instruction))
    errors = [i for i in items if i.is_error]
    if not errors and not ask.count:
        return None
    named = [c for c in CATEGORIES if c in ask.text]
    if has_any(ask.text, ("root cause", "root-cause")) or len(named) >= 3:
        return _categories(errors, ask, noise, named)
    if has_any(ask.text, _CUSTOMER_WORDS):
        return _customer(errors, ask, noise)
    if has_any(ask.text, _CATEGORY_WORDS) or "classify" in ask.text:
        return _categories(errors, ask, noise, named)
    return None


def _noisy_customer(item: _Item, noise: Noise) -> bool:
    truth = bool(item.customer)
    return not truth if noise.flip() else truth


def _noisy_category(item: _Item, noise: Noise) -> str:
    truth = item.category or "unknown"
    return noise.other(truth, CATEGORIES) if noise.flip() else truth


def _customer(errors: list[_Item], ask: Ask, noise: Noise) -> str:
    judged = [(i, _noisy_customer(i, noise)) for i in errors]
    if ask.count or ask.single:
        if ask.group_by("service") or ask.single:
            counts = Counter(i.service or "unknown" for i, cf in judged if cf)
            if ask.single and not ask.count:
                return counts.most_common(1)[0][0] if counts else "none"
            return format_counts(dict(counts), ask, noise)
        return str(sum(1 for _, cf in judged if cf))
    plain = "yes" in ask.text or "internal" not in ask.text
    yes, no = ("yes", "no") if plain else ("customer-facing", "internal")
    labels = [yes if cf else no for _, cf in judged]
    return format_labels(labels, ask, noise, numbered=False)


def _categories(errors: list[_Item], ask: Ask, noise: Noise, named: list[str]) -> str:
    labels = [_noisy_category(i, noise) for i in errors]
    if ask.per_item and not ask.count:
        return format_labels(labels, ask, noise, numbered=False)
    counts = Counter(labels)
    if ask.count and len(named) == 1 and not ask.group_by("category"):
        return str(counts.get(named[0], 0))
    if ask.single and not ask.count:
        return counts.most_common(1)[0][0] if counts else "none"
    if ask.count or ask.group_by("category"):
        return format_counts(dict(counts), ask, noise)
    return format_list(labels, ask, noise) if ask.json else format_labels(labels, ask, noise, numbered=False)
