"""Tactic names: distinctive tokens by class-based TF-IDF (c-TF-IDF, as BERTopic does).

Each tactic is one "document": the tokens of its steps' normalized code (each step once
per occurrence) plus, at a lower weight, the words of the reasoning that introduced them.
A token's weight in a tactic is its frequency there times ``log(1 + A / f)``, ``A`` the
average tokens per tactic and ``f`` the token's frequency over all tactics: tokens every
tactic has (``print``, ``len``) fall away. The readable name strings the top tokens through
a small phrase table (``llm_query_batched`` -> "batched llm_query", ...).
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Callable, Sequence

__all__ = ["Namer", "ctfidf_keywords", "llm_name", "readable_name"]

Namer = Callable[[str], str]  # a prompt in, the model's reply out (any LM backend, wrapped)

_WORD = re.compile(r"[a-z]{3,}")
_STOP = frozenset(
    [
        "the",
        "and",
        "for",
        "with",
        "that",
        "this",
        "then",
        "from",
        "what",
        "are",
        "each",
        "into",
        "have",
        "will",
        "let",
        "now",
        "all",
        "its",
        "not",
        "but",
        "use",
        "first",
        "more",
        "some",
        "which",
        "one",
        "lines",
        "line",
        "see",
        "check",
    ]
)
REASONING_WEIGHT = 0.3

_PHRASES: dict[str, str] = {
    "llm_query_batched": "batched llm_query",
    "llm_query": "llm_query",
    "SUBMIT": "submit answer",
    "findall": "regex findall",
    "finditer": "regex finditer",
    "compile": "compile regex",
    "search": "regex search",
    "sub": "regex substitute",
    "splitlines": "split lines",
    "split": "split",
    "most_common": "top counts",
    "Counter": "count",
    "sorted": "sort",
    "loads": "parse JSON",
    "dumps": "JSON dump",
    "sample": "random sample",
    "seed": "seeded sampling",
    "startswith": "prefix filter",
    "isupper": "case probe",
    "islower": "case probe",
    "lower": "lowercase",
    "append": "collect",
    "extend": "collect",
    "join": "join",
    "range": "range loop",
    "len": "size",
    "type": "type",
    "print": "print",
    "sum": "sum",
    "max": "max",
    "min": "min",
    "set": "distinct set",
    "zip": "zip",
    "find": "find offset",
    "strip": "strip",
    "get": "lookup",
    "items": "items",
}


def ctfidf_keywords(
    code_tokens: Sequence[Counter[str]], reasoning_tokens: Sequence[Counter[str]], top: int = 8
) -> list[list[tuple[str, float]]]:
    """Per tactic, the ``top`` tokens by c-TF-IDF weight (descending; ties by token)."""
    docs: list[dict[str, float]] = []
    for code, reasoning in zip(code_tokens, reasoning_tokens, strict=True):
        doc: dict[str, float] = {}
        for tok, n in code.items():
            doc[tok] = doc.get(tok, 0.0) + n
        for tok, n in reasoning.items():
            if tok not in _STOP:
                doc[tok] = doc.get(tok, 0.0) + n * REASONING_WEIGHT
        docs.append(doc)
    total: dict[str, float] = {}
    for doc in docs:
        for tok, weight in doc.items():
            total[tok] = total.get(tok, 0.0) + weight
    avg = sum(total.values()) / max(len(docs), 1)
    out: list[list[tuple[str, float]]] = []
    for doc in docs:
        size = sum(doc.values()) or 1.0
        scored = [(tok, (n / size) * math.log(1.0 + avg / total[tok])) for tok, n in doc.items()]
        scored.sort(key=lambda kv: (-kv[1], kv[0]))
        out.append([(tok, round(w, 6)) for tok, w in scored[:top]])
    return out


def reasoning_words(text: str | None) -> Counter[str]:
    return Counter(_WORD.findall((text or "").lower()))


# Steps with no telling API name are named by their shape (normalized medoid).
_SHAPES: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r"^(import |from )"), "imports"),
    (re.compile(r"^v\d+ = \{\}$"), "empty dict"),
    (re.compile(r"^v\d+ = \[\]$"), "empty list"),
    (re.compile(r"^v\d+ = (STR|\(STR\))$"), "text constant (prompt)"),
    (re.compile(r"^v\d+ = (NUM|-?\d+)$"), "numeric constant"),
)


def readable_name(keywords: Sequence[str], code_vocab: set[str], example: str = "") -> str:
    """A short name from the top code keywords ("batched llm_query · join · collect")."""
    for shape, name in _SHAPES:
        if shape.search(example.strip()):
            return name
    phrases: list[str] = []
    for tok in keywords:
        if tok not in code_vocab:
            continue
        phrase = _PHRASES.get(tok, tok)
        if phrase not in phrases:
            phrases.append(phrase)
        if len(phrases) == 3:
            break
    return " · ".join(phrases) if phrases else "misc"


_PROMPT = """You name recurring tactics found in the Python code that language models write to solve a task.
Name the tactic below in 2 to 6 plain words (a verb phrase such as "count regex matches over lines").
Reply with the name only.

Distinctive tokens: {keywords}
Typical step:
{example}
"""


def llm_name(namer: Namer, keywords: Sequence[str], example: str) -> str | None:
    """A model's short name for a tactic, or None when its reply is not a short name."""
    reply = namer(_PROMPT.format(keywords=", ".join(keywords), example=example.strip()[:800]))
    first = next((line.strip() for line in reply.splitlines() if line.strip()), "")
    name = first.strip(" .\"'`*").lower()
    words = name.split()
    if not 2 <= len(words) <= 8 or len(name) > 60 or any(w in name for w in ("cannot", "sorry", "unable")):
        return None
    return name
