"""Building blocks of the incident-logs strategies: question parsing, exploration, parsing, prompts.

Shared by every strategy in :mod:`.incident_logs`; each returns ``Stmt`` values
written through the run's :class:`.common.Writer`, so names and styles vary.
"""

from __future__ import annotations

import re
from typing import Any

from ..cell import Stmt
from ..plan import Turn
from ..style import Style
from .common import Writer, phrase, split_explore

__all__ = [
    "FAMILY",
    "aggregate_labels",
    "batched_labels",
    "detect",
    "explore",
    "label_prompt",
    "parse_entries",
    "select",
    "verify_labels",
    "writer",
]

FAMILY = "incident-logs"
_WINDOW = re.compile(r"between\s+(\d\d:\d\d)\s+and\s+(\d\d:\d\d).*?(\d{4}-\d\d-\d\d)", re.S)
_SERVICE = (
    re.compile(r"\b(?:logged by|from|of)\s+(?:the\s+)?service\s+([a-z][a-z0-9-]*)"),
    re.compile(r"\bservice\s+([a-z][a-z0-9-]*)"),
    re.compile(r"\blogged by\s+(?:the\s+)?([a-z][a-z0-9-]*)"),
)
_CHOICES = re.compile(r"one of:\s*([^.\n]+)")
_DEFAULT_CATEGORIES = (
    "database, network, authentication, memory, disk, configuration, third-party, rate-limit"
)


def detect(question: str) -> dict[str, Any] | None:
    low = question.lower()
    window = _WINDOW.search(question)
    if "customer-facing" in low and window:
        return {"kind": "window", "start": window.group(1), "end": window.group(2), "date": window.group(3)}
    if "root-cause" in low or "root cause" in low:
        service = next((m for rx in _SERVICE if (m := rx.search(question))), None)
        choices = _CHOICES.search(question)
        cats = [c.strip() for c in (choices.group(1) if choices else _DEFAULT_CATEGORIES).split(",")]
        return {"kind": "root_cause", "service": service.group(1) if service else "", "categories": cats}
    return None


_ROLES = (
    "lines",
    "pattern",
    "errors",
    "subset",
    "labels",
    "totals",
    "answer",
    "instr",
    "chunks",
    "replies",
    "batch",
    "sample",
)


def writer(p: dict[str, Any], st: Style) -> Writer:
    cats = p.get("categories", [])
    return Writer(
        st,
        _ROLES,
        seed=st.sample_seed,
        cats=repr(cats),
        cat_text=", ".join(cats),
        **{k: v for k, v in p.items() if k in ("start", "end", "date", "service")},
    )


def explore(w: Writer, st: Style) -> list[Turn]:
    first = [
        w.show("type and size", "(type(context).__name__, len(context))", "measure"),
        w.s("$lines = context.splitlines()", "parse"),
    ]
    optional = [
        Stmt("print(context[:800])", "peek", essential=False),
        w.s(
            "from collections import Counter\n"
            "print(Counter(_l.split()[1] for _l in $lines[:50000] if _l[:4].isdigit()))",
            "probe_format",
            False,
        ),
        w.show(
            "services", "sorted({_l.split()[2] for _l in $lines[:50000] if _l[:4].isdigit()})", "probe_format"
        ),
        w.show(
            "lines that are not entries", "sum(1 for _l in $lines if not _l[:4].isdigit())", "probe_format"
        ),
        w.show("first and last timestamps", "($lines[0][:24], $lines[-1][:24])", "measure"),
        w.s(
            "import random\nrandom.seed($seed)\n"
            'for _l in random.sample([_x for _x in $lines[:50000] if " ERROR " in _x], 6):\n    print(_l)',
            "sample",
            False,
        ),
    ]
    reasoning = (
        phrase(
            w.style,
            "A large log. I start with its size, its line format, levels and services.",
            "Let me explore: what does an entry look like, which levels and services exist, are there multi-line entries?",
            "First the shape of the data: size, a peek, some ERROR samples.",
        ),
        "Some more probing of the format before parsing.",
    )
    return split_explore(st, first, optional, reasoning)


def parse_entries(w: Writer) -> list[Stmt]:
    return [
        w.s("import re\nimport json\nfrom collections import Counter", "parse"),
        w.s(
            '$pattern = re.compile(r"^(\\d{4}-\\d\\d-\\d\\d)T(\\d\\d:\\d\\d)\\S*\\s+(\\w+)\\s+(\\S+)\\s+\\[req=\\w+\\]\\s+(.*)", re.M)',
            "filter_regex",
        ),
        w.s(
            '$errors = [(_d, _hm, _svc, _msg) for _d, _hm, _lvl, _svc, _msg in $pattern.findall(context) if _lvl == "ERROR"]',
            "filter_regex",
        ),
    ]


def select(w: Writer, p: dict[str, Any], *, skip: bool = False) -> Stmt:
    if skip:
        return w.s("$subset = list($errors)", "filter_regex")
    if p["kind"] == "window":
        return w.s(
            '$subset = [_e for _e in $errors if _e[0] == "$date" and "$start" <= _e[1] < "$end"]',
            "filter_regex",
        )
    return w.s('$subset = [_e for _e in $errors if _e[2] == "$service"]', "filter_regex")


def label_prompt(w: Writer, p: dict[str, Any]) -> Stmt:
    if p["kind"] == "window":
        text = (
            "For each log message below, answer yes if it is a customer-facing failure (a request of a "
            "customer or user failed) and no if it is a failure of an internal or background job. "
            "One answer per line, in order."
        )
    else:
        text = (
            "Classify the root cause of each log message below into exactly one of these categories: "
            "$cat_text. One category per line, in order."
        )
    return w.s(f'$instr = "{text}"', "map_llm")


def aggregate_labels(w: Writer, p: dict[str, Any]) -> list[Stmt]:
    if p["kind"] == "window":
        return [
            w.s(
                '$totals = Counter(_e[2] for _e, _lab in zip($subset, $labels) if _lab.startswith("yes"))',
                "aggregate",
            ),
            w.s('$answer = $totals.most_common(1)[0][0] if $totals else "unknown"', "aggregate"),
        ]
    return [
        w.s("$totals = Counter(_lab for _lab in $labels if _lab in $cats)", "aggregate"),
        w.s('$answer = $totals.most_common(1)[0][0] if $totals else "unknown"', "aggregate"),
    ]


_PARSE_LABELS = (
    "$labels = []\n"
    "for _b, _r in zip($chunks, $replies):\n"
    '    _got = [_x.strip().lower().lstrip("0123456789.) ") for _x in _r.splitlines() if _x.strip()]\n'
    '    $labels.extend((_got + ["?"] * len(_b))[: len(_b)])'
)


def batched_labels(w: Writer, items: str, text_of: str) -> list[Stmt]:
    return [
        w.s(f"$batch = max({w.style.number([25, 40, 50])}, len({items}) // 150 + 1)", "chunk"),
        w.s(f"$chunks = [{items}[_i : _i + $batch] for _i in range(0, len({items}), $batch)]", "chunk"),
        w.s(
            f'$replies = llm_query_batched([$instr + "\\n\\n" + "\\n".join({text_of} for _x in _c) for _c in $chunks])',
            "batch_llm",
        ),
        w.s(_PARSE_LABELS, "parse"),
    ]


def verify_labels(w: Writer) -> Stmt:
    return w.show("unparsed labels", 'sum(1 for _lab in $labels if _lab == "?")', "verify")
