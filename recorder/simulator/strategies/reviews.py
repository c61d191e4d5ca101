"""Strategies of the simulated root model on the ``reviews-aggregate`` family.

All parse the records and filter the month with code. Sound: ``label_batches``
(one label per review), ``count_batches`` (the sub-LLM counts per batch, code
sums) and ``dedupe_json`` (distinct texts judged once, JSON answers, weighted
back). Flawed: ``keyword_lexicon`` (word lists, fooled by negations and decoys)
and ``sample_extrapolate`` (a quarter of the month, times four).
"""

from __future__ import annotations

import re
from typing import Any

from recorder.families.review_data import MONTHS, TOPICS

from ..cell import Cell, Stmt
from ..plan import Bug, Plan, Turn
from ..style import Style
from .common import Strategy, Writer, maybe_typo, phrase, plan_stmt, split_explore, submit_stmt

__all__ = ["STRATEGIES", "detect"]

FAMILY = "reviews-aggregate"
_MONTH = re.compile(r"\b(" + "|".join(MONTHS) + r")\s+(\d{4})\b")
_SENTIMENT = re.compile(r"\b(positive|negative|neutral)\b", re.I)
_MENTION = re.compile(r"\bmention\s+(.+?)\?")


def detect(question: str) -> dict[str, Any] | None:
    low = question.lower()
    month = _MONTH.search(question)
    if "review" not in low or month is None:
        return None
    p: dict[str, Any] = {"ym": f"{month.group(2)}-{MONTHS.index(month.group(1)) + 1:02d}"}
    mention = _MENTION.search(question)
    if mention:
        return {**p, "kind": "topic", "topic_desc": mention.group(1).strip()}
    sentiment = _SENTIMENT.search(question)
    return {**p, "kind": "sentiment", "sentiment": sentiment.group(1).lower() if sentiment else "positive"}


_ROLES = (
    "records",
    "subset",
    "labels",
    "totals",
    "answer",
    "instr",
    "chunks",
    "replies",
    "batch",
    "sample",
    "lines",
)


def _writer(p: dict[str, Any], st: Style) -> Writer:
    target = p.get("sentiment", "yes")
    return Writer(
        st, _ROLES, seed=st.sample_seed, ym=p["ym"], target=target, topic_desc=p.get("topic_desc", "")
    )


_PARSE = "$records = context if isinstance(context, list) else [json.loads(_l) for _l in context.splitlines() if _l.strip()]"


def _explore(w: Writer, st: Style) -> list[Turn]:
    parse = w.s(_PARSE, "parse")
    first = [
        w.s("import json\nimport re\nfrom collections import Counter", "parse"),
        w.show("type and size", "(type(context).__name__, len(context))", "measure"),
        parse,
    ]
    optional = [
        Stmt("print(context[:2] if isinstance(context, list) else context[:400])", "peek", essential=False),
        w.show("fields", "sorted($records[0])", "probe_format"),
        w.show(
            "date range",
            '(min(_r["date"] for _r in $records), max(_r["date"] for _r in $records))',
            "probe_format",
        ),
        w.show("records per month", 'sorted(Counter(_r["date"][:7] for _r in $records).items())', "measure"),
        w.s(
            'import random\nrandom.seed($seed)\nfor _r in random.sample($records, 5):\n    print(_r["date"], _r["text"])',
            "sample",
            False,
        ),
    ]
    reasoning = (
        phrase(
            w.style,
            "Let me look at the records first: their type, fields, date range and a few texts.",
            "First, the format. The context description says it is a list; I check the fields and dates.",
            "Exploring the data before anything else: structure, dates, samples.",
        ),
        "A bit more probing of the fields.",
    )
    turns = split_explore(st, first, optional, reasoning)
    if st.bug_site == 0 and st.take_bug():  # a classic first mistake: treating the JSONL list as one string
        # The exploration may be cut into two turns before the parse statement: take its turn.
        k = next(n for n, turn in enumerate(turns) if parse in turn.cell.stmts)
        head = turns[k]
        i = head.cell.stmts.index(parse)
        wrong = w.s("$lines = context.splitlines()\n$records = [json.loads(_l) for _l in $lines]", "parse")
        stmts = list(head.cell.stmts)
        stmts[i] = wrong
        fix = Cell(head.cell.stmts[i:]).relabel(0, "fix")
        bug = Bug(
            Cell(tuple(stmts)),
            "AttributeError",
            "`context` is already a list of parsed records, not a string. Using it directly.",
            fix,
        )
        turns[k] = Turn(head.reasoning, head.cell, bug)
    return turns


def _select(w: Writer) -> Stmt:
    return w.s('$subset = [_r for _r in $records if _r["date"].startswith("$ym")]', "filter_regex")


def _label_prompt(w: Writer, p: dict[str, Any], *, json_out: bool = False) -> Stmt:
    fmt = "Reply with a JSON list of labels, in order." if json_out else "One label per line, in order."
    if p["kind"] == "sentiment":
        text = f"Label each review below with its overall sentiment: positive, negative or neutral. {fmt}"
    else:
        text = f"For each review below, answer yes if it mentions $topic_desc, otherwise no. {fmt}"
    return w.s(f'$instr = "{text}"', "map_llm")


_PARSE_LABELS = (
    "$labels = []\n"
    "for _b, _r in zip($chunks, $replies):\n"
    '    _got = [_x.strip().lower().lstrip("0123456789.) ") for _x in _r.splitlines() if _x.strip()]\n'
    '    $labels.extend((_got + ["?"] * len(_b))[: len(_b)])'
)


def _batched(w: Writer, items: str, size: int) -> list[Stmt]:
    return [
        w.s(f"$batch = max({size}, len({items}) // 200 + 1)", "chunk"),
        w.s(f"$chunks = [{items}[_i : _i + $batch] for _i in range(0, len({items}), $batch)]", "chunk"),
    ]


def label_batches(p: dict[str, Any], st: Style) -> Plan:
    w = _writer(p, st)
    turns = _explore(w, st)
    test = [
        _select(w),
        w.show("reviews in the month", "len($subset)", "measure"),
        _label_prompt(w, p),
        w.s(
            '_test = llm_query($instr + "\\n\\n" + "\\n".join(_r["text"] for _r in $subset[:6]))',
            "map_llm",
            False,
        ),
        w.show("test", "_test.splitlines()", "peek"),
    ]
    if st.show_plan:
        test.insert(
            0,
            plan_stmt(
                w, ["filter the month by date", "label each review with the sub-LLM", "count the labels"]
            ),
        )
    turns.append(
        Turn(
            phrase(
                st,
                "The month filter is plain code on the date field. Sentiment needs reading (negations such as 'not bad at "
                "all'), so each review gets a label from the sub-LLM. Testing the prompt on six reviews.",
                "Plan: filter by date, label reviews in batches with llm_query_batched, count. Quick test first.",
            ),
            Cell.of(test),
        )
    )
    scale = [
        *_batched(w, "$subset", st.number([20, 25, 30])),
        w.s(
            '$replies = llm_query_batched([$instr + "\\n\\n" + "\\n".join(_r["text"] for _r in _c) for _c in $chunks])',
            "batch_llm",
        ),
        w.s(_PARSE_LABELS, "parse"),
        w.s('$answer = sum(1 for _lab in $labels if _lab.startswith("$target"))', "aggregate"),
        w.show("labels", "Counter($labels).most_common()", "peek"),
    ]
    if st.verify:
        scale.append(w.show("labels vs reviews", "(len($labels), len($subset))", "verify"))
    turns.append(
        maybe_typo(
            Turn("The test labels look right. Labelling the whole month.", Cell.of(scale)), st, 1, w["subset"]
        )
    )
    turns.append(Turn("Submitting the count.", Cell.of([submit_stmt(w)])))
    return Plan(FAMILY, "label_batches", True, tuple(turns), (w["answer"],), "0")


def count_batches(p: dict[str, Any], st: Style) -> Plan:
    w = _writer(p, st)
    turns = _explore(w, st)
    if p["kind"] == "sentiment":
        ask = "How many of the following reviews express an overall $target sentiment? Answer with a single integer."
    else:
        ask = "How many of the following reviews mention $topic_desc? Answer with a single integer."
    stmts = [
        _select(w),
        w.show("reviews in the month", "len($subset)", "measure"),
        *_batched(w, "$subset", st.number([40, 60])),
        w.s(f'$instr = "{ask}"', "map_llm"),
        w.s(
            '$replies = llm_query_batched([$instr + "\\n\\n" + "\\n".join(_r["text"] for _r in _c) for _c in $chunks])',
            "batch_llm",
        ),
        w.s(
            '$totals = [int(re.search(r"\\d+", _r).group()) if re.search(r"\\d+", _r) else 0 for _r in $replies]',
            "parse",
        ),
        w.s("$answer = sum($totals)", "aggregate"),
        w.show("per batch", "$totals", "peek"),
    ]
    turns.append(
        maybe_typo(
            Turn(
                phrase(
                    st,
                    "Fewer calls if the sub-LLM counts within a batch of reviews and I sum the integers.",
                    "I filter the month with code and ask the sub-LLM for one count per batch of reviews.",
                ),
                Cell.of(stmts),
            ),
            st,
            3,
            w["subset"],
        )
    )
    turns.append(Turn("Submitting the sum.", Cell.of([submit_stmt(w)])))
    return Plan(FAMILY, "count_batches", True, tuple(turns), (w["answer"],), "0")


def dedupe_json(p: dict[str, Any], st: Style) -> Plan:
    w = _writer(p, st)
    turns = _explore(w, st)
    stmts = [
        _select(w),
        w.s('$sample = Counter(_r["text"] for _r in $subset)', "aggregate"),
        w.s("_texts = list($sample)", "aggregate"),
        w.show("reviews / distinct texts", "(len($subset), len(_texts))", "measure"),
        _label_prompt(w, p, json_out=True),
        *_batched(w, "_texts", 30),
        w.s(
            '$replies = llm_query_batched([$instr + "\\n\\n" + "\\n".join(_c) for _c in $chunks])',
            "batch_llm",
        ),
        w.s(
            "$labels = {}\nfor _c, _r in zip($chunks, $replies):\n"
            '    _got = json.loads(_r[_r.find("[") : _r.rfind("]") + 1] or "[]")\n'
            "    $labels.update(zip(_c, [str(_x).lower() for _x in _got]))",
            "parse",
        ),
        w.s(
            '$answer = sum(_n for _t, _n in $sample.items() if $labels.get(_t, "").startswith("$target"))',
            "aggregate",
        ),
        w.show("answer", "$answer", "peek"),
    ]
    if st.verify:
        stmts.append(
            w.show("texts without a label", "sum(1 for _t in _texts if _t not in $labels)", "verify")
        )
    turns.append(
        maybe_typo(
            Turn(
                phrase(
                    st,
                    "Many reviews repeat word for word. I judge each distinct text once (JSON answers) and weight by how often it occurs.",
                    "Deduplicate texts first, label the distinct ones in JSON, then count with multiplicity.",
                ),
                Cell.of(stmts),
            ),
            st,
            1,
            w["subset"],
        )
    )
    turns.append(Turn("Submitting.", Cell.of([submit_stmt(w)])))
    return Plan(FAMILY, "dedupe_json", True, tuple(turns), (w["answer"],), "0")


_LEXICON = {
    "positive": r"\b(love|great|recommend|excellent|good|best|happy|worth|quick)\b",
    "negative": r"\b(not|never|broke|disappoint\w*|regret|returned|useless|slow)\b",
}


def keyword_lexicon(p: dict[str, Any], st: Style) -> Plan:
    w = _writer(p, st)
    turns = _explore(w, st)
    stmts = [_select(w)]
    if p["kind"] == "sentiment":
        stmts += [
            w.s(
                f'_pos = re.compile(r"{_LEXICON["positive"]}", re.I)\n_neg = re.compile(r"{_LEXICON["negative"]}", re.I)',
                "filter_regex",
            ),
            w.s(
                '$labels = ["negative" if _neg.search(_r["text"]) else "positive" if _pos.search(_r["text"]) else "neutral" '
                "for _r in $subset]",
                "aggregate",
            ),
            w.s('$answer = $labels.count("$target")', "aggregate"),
        ]
    else:
        words = {
            "delivery": "deliver|ship|courier|arriv",
            "battery": "battery|charg",
            "support": "support|service|help",
            "price": "price|expensive|cheap|money",
            "packaging": "box|packag|plastic",
            "noise": "noise|noisy|loud|quiet|sound",
        }
        topic = next((t for t, d in TOPICS.items() if d == p["topic_desc"]), "delivery")
        stmts += [
            w.s(f'_rx = re.compile(r"{words[topic]}", re.I)', "filter_regex"),
            w.s('$answer = sum(1 for _r in $subset if _rx.search(_r["text"]))', "aggregate"),
        ]
    stmts.append(w.show("answer", "$answer", "peek"))
    turns.append(
        Turn(
            phrase(
                st,
                "A keyword lexicon should do: reviews are short and the vocabulary is simple.",
                "No need for the sub-LLM: a few regexes capture the wording of these reviews.",
            ),
            Cell.of(stmts),
        )
    )
    turns.append(Turn("Submitting.", Cell.of([submit_stmt(w)])))
    return Plan(FAMILY, "keyword_lexicon", False, tuple(turns), (w["answer"],), "0")


def sample_extrapolate(p: dict[str, Any], st: Style) -> Plan:
    w = _writer(p, st)
    turns = _explore(w, st)
    stmts = [
        _select(w),
        w.s("$lines = $subset[::4]", "sample"),
        _label_prompt(w, p),
        *_batched(w, "$lines", 25),
        w.s(
            '$replies = llm_query_batched([$instr + "\\n\\n" + "\\n".join(_r["text"] for _r in _c) for _c in $chunks])',
            "batch_llm",
        ),
        w.s(_PARSE_LABELS, "parse"),
        w.s(
            '$answer = round(sum(1 for _lab in $labels if _lab.startswith("$target")) * len($subset) / max(1, len($lines)))',
            "aggregate",
        ),
        w.show("estimate", "$answer", "peek"),
    ]
    turns.append(
        Turn(
            phrase(
                st,
                "Labelling every review is expensive; a quarter of the month, scaled up, estimates the count well enough.",
                "I label every fourth review and extrapolate.",
            ),
            Cell.of(stmts),
        )
    )
    turns.append(Turn("Submitting the estimate.", Cell.of([submit_stmt(w)])))
    return Plan(FAMILY, "sample_extrapolate", False, tuple(turns), (w["answer"],), "0")


STRATEGIES: tuple[Strategy, ...] = (
    Strategy("label_batches", True, label_batches, "sub-LLM labels each review, batched"),
    Strategy("count_batches", True, count_batches, "sub-LLM counts per batch, summed"),
    Strategy("dedupe_json", True, dedupe_json, "distinct texts judged once, JSON, weighted"),
    Strategy("keyword_lexicon", False, keyword_lexicon, "word lists, no judgement"),
    Strategy("sample_extrapolate", False, sample_extrapolate, "a quarter of the month, times four"),
)
