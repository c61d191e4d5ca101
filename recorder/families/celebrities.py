"""The ``celebrities`` family: which celebrities do image-generation prompts name most?

One prompt per line ("portrait of Keanu Reeves as a samurai, by Greg Rutkowski,
trending on artstation, 8k"). Prompts also name artists, fictional characters,
places and styles, several of them more often than any celebrity, so counting
capitalised names alone gives the wrong answer; telling people apart is work for
``llm_query``. Names come in varied case and spacing ("keanu reeves",
"KEANU REEVES", "Keanu  Reeves"); every variant counts for the celebrity.

Frequencies are Zipf-like over a seeded ranking. The counts are kept while
writing; at the end a few balancing prompts are appended so that the top k are
strictly ordered and rank k leads rank k+1 by a clear margin (the answer is
well defined; the file may exceed the requested size by those few lines).
"""

from __future__ import annotations

import math
import random
from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from .base import Family, ProgressFn, require_param
from .celebrity_data import ARTISTS, CELEBRITIES, CHARACTERS, MODIFIERS, PLACES, ROLES, STYLES
from .streaming import BATCH_LINES, ChunkWriter, fit_lines, make_rng, zipf_weights

__all__ = ["CelebritiesFamily", "name_variants"]

# (template, weight, uses c1, uses c2)
_TEMPLATES: tuple[tuple[str, float, bool, bool], ...] = (
    ("portrait of {c1} {r}, by {a}, {s}, {m}", 8, True, False),
    ("{c1} {r} in {p}, {s}, {m}", 6, True, False),
    ("photo of {c1} {r}, {m}, {m2}, by {a}", 5, True, False),
    ("{c1} and {c2} having dinner in {p}, by {a}, {s}", 2, True, True),
    ("{f} fighting {c1} in {p}, {s}, {m}", 3, True, False),
    ("close-up of {c1} as {f}, {s}, in the style of {a}", 3, True, False),
    ("{c1} {r}, in the style of {a} and {a2}, {s}, {m}", 3, True, False),
    ("a painting of {c1} {r}, {s}, {m} {m2}", 2, True, False),
    ("{f} {r} in {p}, by {a}, {s}, {m}", 6, False, False),
    ("landscape of {p} at sunset, by {a}, {s}, {m}", 4, False, False),
    ("{f} and {f2} in {p}, {s}, {m}", 3, False, False),
    ("a cozy cabin in {p}, by {a} and {a2}, {m}", 2, False, False),
    ("still life of fruit, in the style of {a}, {s}", 1, False, False),
    ("cinematic still of {f}, {s}, {m}, {m2}", 3, False, False),
)
_BALANCE_TEMPLATE = "portrait of {c1} {r}, by {a}, {s}, {m}"


def name_variants(name: str) -> tuple[str, ...]:
    """Spellings of ``name`` used in prompts: canonical, lower, upper, spaced, sloppy."""
    words = name.split()
    sloppy = " ".join([words[0], *(w.lower() for w in words[1:])])
    return (name, name.lower(), name.upper(), "  ".join(words), sloppy)


_VARIANT_WEIGHTS = np.array([0.70, 0.12, 0.08, 0.05, 0.05])


class CelebritiesFamily(Family):
    name = "celebrities"
    description = "Image-generation prompts, one per line; find the k most frequently named celebrities."
    checker = "topk_overlap"
    questions: ClassVar[Mapping[str, str]] = {
        "topk": (
            "Which {k} celebrities are named most often in these image-generation prompts? "
            "Count real people who are famous as actors, musicians or athletes; do not count the "
            "artists whose style is requested, fictional characters or places. "
            "Answer with a list of the {k} names, most frequent first."
        )
    }
    default_kind = "topk"

    def make_instance_params(self, rng: random.Random) -> dict[str, Any]:
        return {"kind": "topk", "k": rng.choice([3, 4, 5, 5, 6, 8, 10])}

    def write_context(
        self,
        path: Path,
        *,
        params: Mapping[str, Any],
        seed: int,
        size_bytes: int,
        on_progress: ProgressFn | None = None,
    ) -> dict[str, Any]:
        k = require_param(self.name, params, "k", int)
        rng = make_rng(self.name, seed)
        gen = _PromptGenerator(rng)
        counts = np.zeros(len(CELEBRITIES), dtype=np.int64)
        n_lines = 0
        with open(path, "wb") as fh, ChunkWriter(fh, on_progress=on_progress) as out:
            while out.bytes_written < size_bytes:
                room = size_bytes - out.bytes_written
                lines, c1, c2 = gen.batch(min(BATCH_LINES, room // 40 + 16))
                keep = fit_lines(lines, room)
                out.write_lines(lines[:keep])
                counts += np.bincount(c1[:keep][c1[:keep] >= 0], minlength=len(CELEBRITIES))
                counts += np.bincount(c2[:keep][c2[:keep] >= 0], minlength=len(CELEBRITIES))
                n_lines += keep
            extra = _balancing_mentions(counts, k)
            balance_lines = gen.balance_lines(extra)
            out.write_lines(balance_lines)
            counts += extra
            n_lines += len(balance_lines)
            total_bytes = out.bytes_written
        order = sorted(range(len(CELEBRITIES)), key=lambda i: (-counts[i], CELEBRITIES[i]))
        expected = [CELEBRITIES[i] for i in order[:k]]
        return {
            "expected": expected,
            "stats": {
                "bytes": total_bytes,
                "lines": n_lines,
                "balancing_lines": len(balance_lines),
                "top_counts": {CELEBRITIES[i]: int(counts[i]) for i in order[: k + 3]},
            },
        }


def _balancing_mentions(counts: np.ndarray, k: int) -> np.ndarray:
    """Extra mentions so ranks 1..k are strictly ordered and rank k clearly leads rank k+1."""
    extra = np.zeros_like(counts)
    order = sorted(range(len(counts)), key=lambda i: -counts[i])
    current = counts.copy()
    for rank in range(k - 1, -1, -1):  # from rank k up to rank 1
        here, below = order[rank], order[rank + 1]
        gap = max(3, math.ceil(0.05 * current[below])) if rank == k - 1 else 1
        deficit = current[below] + gap - current[here]
        if deficit > 0:
            extra[here] += deficit
            current[here] += deficit
    return extra


class _PromptGenerator:
    """Draws prompts in vectorised batches from one seeded generator."""

    def __init__(self, rng: np.random.Generator) -> None:
        self.rng = rng
        n_celeb = len(CELEBRITIES)
        # A seeded ranking: which celebrity is most popular changes with the seed.
        self.celeb_p = zipf_weights(n_celeb, 1.1)[np.argsort(rng.permutation(n_celeb))]
        self.artist_p = zipf_weights(len(ARTISTS), 1.3)[np.argsort(rng.permutation(len(ARTISTS)))]
        self.char_p = zipf_weights(len(CHARACTERS), 1.2)[np.argsort(rng.permutation(len(CHARACTERS)))]
        weights = np.array([t[1] for t in _TEMPLATES])
        self.template_p = weights / weights.sum()
        self.uses_c1 = np.array([t[2] for t in _TEMPLATES])
        self.uses_c2 = np.array([t[3] for t in _TEMPLATES])
        self.variants = [name_variants(n) for n in CELEBRITIES]

    def batch(self, n: int) -> tuple[list[str], np.ndarray, np.ndarray]:
        """``n`` prompts and, per prompt, the celebrity indices named (-1 = none)."""
        rng = self.rng
        t = rng.choice(len(_TEMPLATES), size=n, p=self.template_p)
        c1 = rng.choice(len(CELEBRITIES), size=n, p=self.celeb_p)
        c2 = rng.choice(len(CELEBRITIES), size=n, p=self.celeb_p)
        c2 = np.where(c2 == c1, (c2 + 1) % len(CELEBRITIES), c2)
        v1 = rng.choice(5, size=n, p=_VARIANT_WEIGHTS).tolist()
        v2 = rng.choice(5, size=n, p=_VARIANT_WEIGHTS).tolist()
        a = rng.choice(len(ARTISTS), size=(2, n), p=self.artist_p).tolist()
        f = rng.choice(len(CHARACTERS), size=(2, n), p=self.char_p).tolist()
        p = rng.integers(0, len(PLACES), size=n).tolist()
        r = rng.integers(0, len(ROLES), size=n).tolist()
        s = rng.integers(0, len(STYLES), size=n).tolist()
        m = rng.integers(0, len(MODIFIERS), size=(2, n)).tolist()
        case = rng.choice(4, size=n, p=[0.90, 0.05, 0.04, 0.01]).tolist()
        tl, c1l, c2l, var = t.tolist(), c1.tolist(), c2.tolist(), self.variants
        lines = []
        for i in range(n):
            line = _TEMPLATES[tl[i]][0].format(
                c1=var[c1l[i]][v1[i]],
                c2=var[c2l[i]][v2[i]],
                a=ARTISTS[a[0][i]],
                a2=ARTISTS[a[1][i]],
                f=CHARACTERS[f[0][i]],
                f2=CHARACTERS[f[1][i]],
                p=PLACES[p[i]],
                r=ROLES[r[i]],
                s=STYLES[s[i]],
                m=MODIFIERS[m[0][i]],
                m2=MODIFIERS[m[1][i]],
            )
            if case[i] == 1:
                line = line[0].upper() + line[1:]
            elif case[i] == 2:
                line = line.lower()
            elif case[i] == 3:
                line = line.upper()
            lines.append(line)
        named1 = np.where(self.uses_c1[t], c1, -1)
        named2 = np.where(self.uses_c2[t], c2, -1)
        return lines, named1, named2

    def balance_lines(self, extra: np.ndarray) -> list[str]:
        """One prompt per extra mention, shuffled so the tail does not list names in order."""
        who = np.repeat(np.arange(len(extra)), extra)
        self.rng.shuffle(who)
        lines = []
        for c in who.tolist():
            lines.append(
                _BALANCE_TEMPLATE.format(
                    c1=self.variants[c][int(self.rng.choice(5, p=_VARIANT_WEIGHTS))],
                    r=ROLES[int(self.rng.integers(len(ROLES)))],
                    a=ARTISTS[int(self.rng.choice(len(ARTISTS), p=self.artist_p))],
                    s=STYLES[int(self.rng.integers(len(STYLES)))],
                    m=MODIFIERS[int(self.rng.integers(len(MODIFIERS)))],
                )
            )
        return lines
