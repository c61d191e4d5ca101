"""Oracle for the reviews-aggregate family: looks review sentences up in the phrase tables.

A line holding at least one verdict or topic sentence is a review; its
sentiment is its verdict's, its topics those of its topic sentences. Answers
labels per review, counts (total or per sentiment/topic), or yes/no per review
for a topic, depending on what the instruction asks.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass

from recorder.families.review_data import (
    DECOYS,
    OPENERS,
    PRODUCTS,
    SENTIMENTS,
    TOPIC_PHRASES,
    VERDICTS,
)

from .ask import Ask, Noise, format_counts, format_labels, has_any, read_ask

__all__ = ["answer", "score"]

_SENTENCE = re.compile(r"[A-Z][^.!?\"\n]*[.!?]")


def _table() -> dict[str, tuple[str | None, str | None]]:
    """sentence -> (sentiment or None, topic or None); openers and decoys carry neither."""
    table: dict[str, tuple[str | None, str | None]] = {}
    for sentiment, sentences in VERDICTS.items():
        table.update({s: (sentiment, None) for s in sentences})
    for topic, by_sentiment in TOPIC_PHRASES.items():
        for sentences in by_sentiment.values():
            table.update({s: (None, topic) for s in sentences})
    for sentences in DECOYS.values():
        table.update({s: (None, None) for s in sentences})
    for opener in OPENERS:
        table.update({opener.format(product=p): (None, None) for p in PRODUCTS})
    return table


_TABLE = _table()
_TOPIC_WORDS: dict[str, tuple[str, ...]] = {
    "delivery": ("deliver", "shipping", "shipment", "courier", "arriv", "dispatch"),
    "battery": ("battery", "charg"),
    "support": ("customer service", "support", "help desk", "helpdesk"),
    "price": ("price", "value for money", "expensive", "cost", "pricing"),
    "packaging": ("packag", "box", "wrapping"),
    "noise": ("noise", "noisy", "quiet", "loud"),
}
_SENTIMENT_WORDS = ("sentiment", "positive", "negative", "neutral", "tone", "opinion", "happy", "satisf")


@dataclass(frozen=True, slots=True)
class _Review:
    sentiment: str
    topics: frozenset[str]


def _review(line: str) -> _Review | None:
    sentiment: str | None = None
    topics: set[str] = set()
    known = False
    for sentence in _SENTENCE.findall(line):
        if sentence in _TABLE:
            known = True
            s, t = _TABLE[sentence]
            sentiment = sentiment or s
            if t:
                topics.add(t)
    if not known or (sentiment is None and not topics):
        return None
    return _Review(sentiment or "neutral", frozenset(topics))


def score(prompt: str) -> int:
    return sum(1 for s in _SENTENCE.findall(prompt[:200_000]) if s in _TABLE)


def answer(prompt: str, noise: Noise) -> str | None:
    reviews: list[_Review] = []
    instruction: list[str] = []
    for line in prompt.splitlines():
        review = _review(line)
        if review is None:
            instruction.append(line)
        else:
            reviews.append(review)
    if not reviews:
        return None
    ask = read_ask("\n".join(instruction))
    topic = next((t for t, words in _TOPIC_WORDS.items() if has_any(ask.text, words)), None)
    asks_topic = topic is not None and has_any(
        ask.text, ("mention", "about", "topic", "discuss", "talk", "refer")
    )
    if asks_topic and topic is not None:
        return _topic(reviews, topic, ask, noise)
    if has_any(ask.text, _SENTIMENT_WORDS):
        return _sentiment(reviews, ask, noise)
    if topic is not None:
        return _topic(reviews, topic, ask, noise)
    return None


def _sentiment(reviews: list[_Review], ask: Ask, noise: Noise) -> str:
    labels = [noise.other(r.sentiment, SENTIMENTS) if noise.flip() else r.sentiment for r in reviews]
    wanted = [s for s in SENTIMENTS if s in ask.text]
    if ask.count and not ask.per_item:
        if len(wanted) == 1 and not ask.group_by("sentiment"):
            return str(labels.count(wanted[0]))
        return format_counts(dict(Counter(labels)), ask, noise)
    return format_labels(labels, ask, noise, numbered=False)


def _topic(reviews: list[_Review], topic: str, ask: Ask, noise: Noise) -> str:
    hits = [(topic in r.topics) != noise.flip() for r in reviews]
    if ask.count and not ask.per_item:
        return str(sum(hits))
    return format_labels(["yes" if h else "no" for h in hits], ask, noise, numbered=False)
