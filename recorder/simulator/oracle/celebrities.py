"""Oracle for the celebrities family: finds names with the family's gazetteers.

Answers "which of these are celebrities", "list the celebrities named (with
counts)", per-prompt listings, or all person names when only "names" are asked.
Every spelling (case, spacing) folds to the canonical name.
"""

from __future__ import annotations

import re
from collections import Counter

from recorder.families.celebrity_data import ARTISTS, CELEBRITIES, CHARACTERS

from .ask import Noise, format_counts, format_labels, format_list, has_any, read_ask

__all__ = ["answer", "score"]

_KIND = {**{n: "character" for n in CHARACTERS}, **{n: "artist" for n in ARTISTS}}
_KIND |= {n: "celebrity" for n in CELEBRITIES}
# Names by their lower-case word tuple: a line is matched by looking its word n-grams up,
# which is linear in the text (a regex alternation of every name is ~50x slower).
_BY_WORDS = {tuple(n.lower().split()): n for n in _KIND}
_MAX_WORDS = max(len(k) for k in _BY_WORDS)
_WORD = re.compile(r"[a-z]+")
_CELEB_WORDS = (
    "celebrit",
    "famous",
    "real people",
    "real person",
    "actor",
    "actress",
    "musician",
    "athlete",
    "public figure",
    "movie star",
    "pop star",
)


def _names(line: str) -> list[str]:
    words = _WORD.findall(line.lower())
    found: list[str] = []
    i = 0
    while i < len(words):
        for size in range(min(_MAX_WORDS, len(words) - i), 0, -1):
            name = _BY_WORDS.get(tuple(words[i : i + size]))
            if name is not None:
                found.append(name)
                i += size
                break
        else:
            i += 1
    return found


def score(prompt: str) -> int:
    """How much the prompt looks like this family's data."""
    return sum(len(_names(line)) for line in prompt[:100_000].splitlines())


def answer(prompt: str, noise: Noise) -> str | None:
    data: list[list[str]] = []
    instruction: list[str] = []
    for line in prompt.splitlines():
        found = _names(line)
        if found and not has_any(line.lower(), ("celebrit", "json", "answer", "reply", "list ")):
            data.append(found)
        else:
            instruction.append(line)
    if not data:
        return None
    ask = read_ask("\n".join(instruction))
    wants_people = has_any(ask.text, _CELEB_WORDS)
    if not wants_people and not has_any(ask.text, ("name", "people", "person", "who")):
        return None
    judged: dict[str, bool] = {}

    def keep(name: str) -> bool:
        if name not in judged:
            truth = _KIND[name] == "celebrity" if wants_people else True
            judged[name] = (not truth) if noise.flip() else truth
        return judged[name]

    if ask.per_item and not ask.count:
        per_line = [[n for n in dict.fromkeys(names) if keep(n)] for names in data]
        if ask.json:
            return format_list(per_line, ask, noise)
        return format_labels([", ".join(x) or "none" for x in per_line], ask, noise, numbered=False)
    mentions = Counter(n for names in data for n in names if keep(n))
    if ask.count:
        counts = {
            n: max(0, c + (noise.rng.choice((-1, 1)) if noise.flip() else 0)) for n, c in mentions.items()
        }
        return format_counts(counts, ask, noise)
    if has_any(ask.text, ("most", "frequent", "often")):
        return format_list([n for n, _ in mentions.most_common()], ask, noise)
    return format_list(list(mentions), ask, noise)
