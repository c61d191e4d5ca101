"""The ``reviews-aggregate`` family: OOLONG-style counting over short review records.

One JSON record per line: ``{"id": ..., "date": "2024-03-05", "user": ..., "text": ...}``,
in no particular date order. Questions: how many reviews of month M express an
overall sentiment S (``sentiment``), or mention topic T (``topic``). Filtering by
date is code; the per-record judgement is semantic (negations, decoy sentences:
see :mod:`.review_data`); the aggregation must be exact. Sentiment mixes drift
from month to month, so one month's share says little about another's.
"""

from __future__ import annotations

import calendar
import random
from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from rlmine.errors import UserError

from .base import Family, ProgressFn, require_param
from .review_data import DECOYS, MONTHS, OPENERS, PRODUCTS, SENTIMENTS, TOPIC_PHRASES, TOPICS, VERDICTS
from .streaming import BATCH_LINES, ChunkWriter, fit_lines, make_rng

__all__ = ["ReviewsFamily"]

_TOPIC_NAMES = tuple(TOPICS)
_FIRST = ("maria", "tom", "li", "sam", "aisha", "jonas", "emma", "raj", "nina", "omar", "lucy", "ken")


def _topic_options(sentiment: str, topic: str) -> list[str]:
    """Topic sentences a review of this sentiment may use (mostly same polarity, some neutral)."""
    own = TOPIC_PHRASES[topic][sentiment]
    return list(own) if sentiment == "neutral" else [*own, *own, *own, *TOPIC_PHRASES[topic]["neutral"]]


_TOPIC_OPTIONS = [[_topic_options(s, t) for t in _TOPIC_NAMES] for s in SENTIMENTS]


class ReviewsFamily(Family):
    name = "reviews-aggregate"
    description = "Product reviews as JSON lines; count a month's reviews by sentiment or topic."
    checker: ClassVar[Mapping[str, Any]] = {"name": "numeric", "tolerance": 1, "rel_tolerance": 0.05}
    context_suffix = ".jsonl"
    questions: ClassVar[Mapping[str, str]] = {
        "sentiment": (
            "How many reviews written in {month_name} {year} express an overall {sentiment} sentiment "
            "about the product? Use each record's date field. Answer with an integer."
        ),
        "topic": (
            "How many reviews written in {month_name} {year} mention {topic_desc}? "
            "Use each record's date field. Answer with an integer."
        ),
    }
    default_kind = "sentiment"
    categories: ClassVar[Mapping[str, tuple[str, ...]]] = {"sentiment": ("sentiment",), "topic": ("topic",)}

    def make_instance_params(self, rng: random.Random) -> dict[str, Any]:
        month = rng.randint(1, 12)
        params: dict[str, Any] = {"year": rng.choice([2022, 2023, 2024]), "month": month}
        params["month_name"] = MONTHS[month - 1]
        if rng.random() < 0.6:
            return {"kind": "sentiment", **params, "sentiment": rng.choice(SENTIMENTS)}
        topic = rng.choice(_TOPIC_NAMES)
        return {"kind": "topic", **params, "topic": topic, "topic_desc": TOPICS[topic]}

    def write_context(
        self,
        path: Path,
        *,
        params: Mapping[str, Any],
        seed: int,
        size_bytes: int,
        on_progress: ProgressFn | None = None,
    ) -> dict[str, Any]:
        kind = str(params.get("kind", self.default_kind))
        year = require_param(self.name, params, "year", int)
        month = require_param(self.name, params, "month", int)
        if not 1 <= month <= 12:
            raise UserError(f"reviews-aggregate: month {month} is not 1..12", "a month number such as 3")
        if kind == "sentiment" and params.get("sentiment") not in SENTIMENTS:
            raise UserError(
                f"reviews-aggregate: unknown sentiment {params.get('sentiment')!r}", "/".join(SENTIMENTS)
            )
        if kind == "topic" and params.get("topic") not in TOPICS:
            raise UserError(f"reviews-aggregate: unknown topic {params.get('topic')!r}", ", ".join(TOPICS))
        self.question_for(params)  # unknown kinds fail here
        rng = make_rng(self.name, seed)
        gen = _ReviewGenerator(rng, year)
        by_sentiment = np.zeros((12, len(SENTIMENTS)), dtype=np.int64)
        by_topic = np.zeros((12, len(TOPICS)), dtype=np.int64)
        records = 0
        with open(path, "wb") as fh, ChunkWriter(fh, on_progress=on_progress) as out:
            while out.bytes_written < size_bytes:
                room = size_bytes - out.bytes_written
                lines, months, sentiments, topics = gen.batch(min(BATCH_LINES, room // 120 + 16), records)
                keep = fit_lines(lines, room)
                out.write_lines(lines[:keep])
                np.add.at(by_sentiment, (months[:keep], sentiments[:keep]), 1)
                for column in topics[:, :keep]:
                    hit = column >= 0
                    np.add.at(by_topic, (months[:keep][hit], column[hit]), 1)
                records += keep
            total = out.bytes_written
        if kind == "sentiment":
            expected = int(by_sentiment[month - 1, SENTIMENTS.index(params["sentiment"])])
        else:
            expected = int(by_topic[month - 1, _TOPIC_NAMES.index(params["topic"])])
        return {
            "expected": expected,
            "stats": {
                "bytes": total,
                "records": records,
                "month_records": int(by_sentiment[month - 1].sum()),
                "month_sentiments": dict(zip(SENTIMENTS, by_sentiment[month - 1].tolist(), strict=True)),
                "month_topics": dict(zip(_TOPIC_NAMES, by_topic[month - 1].tolist(), strict=True)),
            },
        }


class _ReviewGenerator:
    """Draws review records in vectorised batches."""

    def __init__(self, rng: np.random.Generator, year: int) -> None:
        self.rng = rng
        # Sentiment mix drifts per month so no month is typical of another.
        self.mix = rng.dirichlet([5.0, 3.0, 2.0], size=12)
        self.dates = [
            [f"{year}-{m:02d}-{d:02d}" for d in range(1, calendar.monthrange(year, m)[1] + 1)]
            for m in range(1, 13)
        ]
        self.users = [f"{rng.choice(_FIRST)}_{int(n)}" for n in rng.integers(1, 9999, size=3000)]

    def batch(self, n: int, first_id: int) -> tuple[list[str], np.ndarray, np.ndarray, np.ndarray]:
        rng = self.rng
        months = rng.integers(0, 12, size=n)
        cum = np.cumsum(self.mix[months], axis=1)
        sentiments = np.minimum((rng.random(n)[:, None] > cum).sum(axis=1), 2)
        n_topics = rng.choice(3, size=n, p=[0.45, 0.4, 0.15])
        t1 = rng.integers(0, len(TOPICS), size=n)
        t2 = (t1 + rng.integers(1, len(TOPICS), size=n)) % len(TOPICS)
        topics = np.stack([np.where(n_topics >= 1, t1, -1), np.where(n_topics >= 2, t2, -1)])
        picks = rng.integers(0, 1 << 30, size=(6, n)).tolist()
        flags = rng.random(size=(3, n)).tolist()  # opener?, decoy?, verdict first?
        ml, sl, tl1, tl2 = months.tolist(), sentiments.tolist(), topics[0].tolist(), topics[1].tolist()
        lines = []
        for i in range(n):
            s, p = sl[i], picks
            sentiment = SENTIMENTS[s]
            parts = []
            if flags[0][i] < 0.5:
                parts.append(
                    OPENERS[p[0][i] % len(OPENERS)].format(product=PRODUCTS[p[1][i] % len(PRODUCTS)])
                )
            for t, pick in ((tl1[i], p[2][i]), (tl2[i], p[3][i])):
                if t >= 0:
                    options = _TOPIC_OPTIONS[s][t]
                    parts.append(options[pick % len(options)])
            if flags[1][i] < 0.2:
                decoys = DECOYS[sentiment]
                parts.append(decoys[p[4][i] % len(decoys)])
            verdicts = VERDICTS[sentiment]
            verdict = verdicts[p[5][i] % len(verdicts)]
            if flags[2][i] < 0.35:
                parts.insert(0, verdict)
            else:
                parts.append(verdict)
            days = self.dates[ml[i]]
            lines.append(
                f'{{"id": "r{first_id + i:07d}", "date": "{days[p[1][i] % len(days)]}", '
                f'"user": "{self.users[p[0][i] % len(self.users)]}", "text": "{" ".join(parts)}"}}'
            )
        return lines, months, sentiments, topics
