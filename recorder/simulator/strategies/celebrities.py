"""Strategies of the simulated root model on the ``celebrities`` family.

Sound: ``regex_then_llm_filter`` (capitalised-name candidates, the sub-LLM says
which are celebrities, exact case-insensitive counts), ``chunked_llm_counts``
(every chunk's celebrities counted by the sub-LLM, summed) and
``sample_gazetteer_count`` (the sub-LLM names the celebrities of a random
sample, code counts them everywhere). Flawed: ``capitalized_counts`` (no
sub-LLM: artists and characters crowd the top) and ``head_only`` (judges the
first few pages only).
"""

from __future__ import annotations

import re
from typing import Any

from ..cell import Cell, Stmt
from ..plan import Plan, Turn
from ..style import Style
from .common import Strategy, Writer, maybe_typo, phrase, plan_stmt, split_explore, submit_stmt

__all__ = ["STRATEGIES", "detect"]

FAMILY = "celebrities"
_K = re.compile(r"\b(\d+)\s+(?:most\s+\w+\s+)?celebrit", re.I)


def detect(question: str) -> dict[str, Any] | None:
    if "celebrit" not in question.lower():
        return None
    k = _K.search(question)
    return {"k": int(k.group(1)) if k else 5}


_ROLES = (
    "lines",
    "pattern",
    "cands",
    "gaz",
    "counter",
    "answer",
    "instr",
    "chunks",
    "replies",
    "sample",
    "size",
)


def _writer(p: dict[str, Any], st: Style) -> Writer:
    return Writer(st, _ROLES, k=p["k"], seed=st.sample_seed)


def _explore(w: Writer, st: Style) -> list[Turn]:
    first = [
        w.show("type and size", "(type(context).__name__, len(context))", "measure"),
        w.s("$lines = context.splitlines()", "parse"),
    ]
    optional = [
        Stmt("print(context[:700])", "peek", essential=False),
        w.show("prompts", "len($lines)", "measure"),
        w.s(
            "import random\nrandom.seed($seed)\nfor _l in random.sample($lines, 8):\n    print(repr(_l))",
            "sample",
            False,
        ),
        w.show("all-caps prompts", "sum(1 for _l in $lines[:20000] if _l.isupper())", "probe_format"),
        w.show("lower-case prompts", "sum(1 for _l in $lines[:20000] if _l.islower())", "probe_format"),
    ]
    reasoning = (
        phrase(
            w.style,
            "The context is a big text. Let me see its size and what a few lines look like before deciding anything.",
            "First I look at the format: how long it is, how it is split, a few random prompts.",
            "I should explore the data first. Size, a peek at the start, and some samples.",
        ),
        "More probing: how consistent is the casing of the names?",
    )
    return split_explore(st, first, optional, reasoning)


def _imports(w: Writer) -> Stmt:
    return w.s("import re\nimport json\nfrom collections import Counter", "parse")


def _count_exact(w: Writer, st: Style) -> list[Stmt]:
    """Case- and spacing-insensitive counts of each name in the gazetteer, then the top k."""
    stmts = [
        w.s(
            '_flat = " " + re.sub(r"[^a-z]+", " ", context.lower()) + " "  # one case, single spaces', "parse"
        ),
        w.s("$counter = {}", "aggregate"),
        w.s(
            'for _name in $gaz:\n    $counter[_name] = _flat.count(" " + " ".join(_name.lower().split()) + " ")',
            "aggregate",
        ),
        w.s("ranked = sorted($counter.items(), key=lambda kv: (-kv[1], kv[0]))", "aggregate"),
        w.s("$answer = [name for name, _ in ranked[:$k]]", "aggregate"),
        w.show("top", "ranked[:$k + 3]", "peek"),
    ]
    if st.verify:
        stmts.append(
            w.show(
                "margin k vs k+1", "ranked[$k - 1][1] - ranked[$k][1] if len(ranked) > $k else None", "verify"
            )
        )
    return stmts


def _gaz_from_json(w: Writer) -> Stmt:
    return w.s('$gaz = json.loads(reply[reply.find("["): reply.rfind("]") + 1])', "parse")


def regex_then_llm_filter(p: dict[str, Any], st: Style) -> Plan:
    w = _writer(p, st)
    ncand = st.number([60, 80, 100])
    turns = _explore(w, st)
    test = [
        _imports(w),
        w.s('$pattern = re.compile(r"\\b[A-Z][A-Za-z]+(?:[ ]+[A-Z][A-Za-z]+){1,2}\\b")', "filter_regex"),
        w.s(
            '$sample = Counter(" ".join(m.split()).title() for m in $pattern.findall("\\n".join($lines[:3000])))',
            "filter_regex",
            False,
        ),
        w.show("frequent capitalised names in a sample", "$sample.most_common(20)", "peek"),
    ]
    if st.show_plan:
        test.insert(
            0,
            plan_stmt(
                w,
                [
                    "capitalised names as candidates",
                    "sub-LLM keeps the celebrities",
                    "count every spelling",
                    "top k",
                ],
            ),
        )
    turns.append(
        Turn(
            phrase(
                st,
                'Names appear in several casings. Artists ("by Greg Rutkowski") and characters look just like '
                "celebrities, so code cannot tell them apart. Plan: collect capitalised name candidates with a regex, "
                "let the sub-LLM say which are celebrities, then count every spelling. Testing the regex on a sample.",
                "I will find candidate names with a regex for capitalised words, ask llm_query which candidates are "
                "real celebrities, and count them case-insensitively. Let me try the regex on the first lines.",
            ),
            Cell.of(test),
        )
    )
    scale = [
        w.s(
            '$cands = Counter(" ".join(m.split()).title() for m in $pattern.findall(context))', "filter_regex"
        ),
        w.s(f"_short = [n for n, _ in $cands.most_common({ncand})]", "aggregate"),
        w.s(
            '$instr = "Which of the following names are real celebrities (actors, musicians or athletes)? '
            "Do not include artists, fictional characters, places or art styles. "
            'Reply with a JSON list of the celebrity names only."',
            "map_llm",
        ),
        w.s('reply = llm_query($instr + "\\n\\n" + "\\n".join(_short))', "map_llm"),
        _gaz_from_json(w),
        w.show("celebrities among candidates", "$gaz", "peek"),
    ]
    turn = Turn(
        phrase(
            st,
            "The regex finds the names. Now over the whole text, keep the most frequent candidates and ask the sub-LLM which are celebrities.",
            "Works on the sample. Scaling to the full context and filtering the shortlist with one llm_query.",
        ),
        Cell.of(scale),
    )
    turns.append(maybe_typo(turn, st, 1, w["cands"]))
    count = _count_exact(w, st)
    turns.append(
        Turn(
            phrase(
                st,
                "Counting every celebrity with a case-insensitive, whitespace-tolerant pattern, so KEANU REEVES and "
                "keanu  reeves count too.",
                "Now the exact counts over all spellings, then the top k.",
            ),
            Cell.of(count),
        )
    )
    turns.append(Turn("The ranking looks clear. Submitting.", Cell.of([submit_stmt(w)])))
    return Plan(FAMILY, "regex_then_llm_filter", True, tuple(turns), (w["answer"],), "[]")


def _chunk_stmts(w: Writer, size: int) -> list[Stmt]:
    return [
        w.s(f"$size = max({size}, len(context) // 150)", "chunk"),
        w.s(
            "$chunks = []\n_start = 0\nwhile _start < len(context):\n"
            '    _end = context.find("\\n", _start + $size)\n'
            "    _end = len(context) if _end == -1 else _end + 1\n"
            "    $chunks.append(context[_start:_end])\n    _start = _end",
            "chunk",
        ),
        w.show("chunks", "len($chunks)", "measure"),
    ]


_COUNT_PROMPT = (
    '$instr = "Below are image-generation prompts, one per line. List every real celebrity (actor, musician '
    "or athlete) they name, with how many prompts name them, one 'Name: count' per line. Ignore artists, "
    'fictional characters and places. Names may be in any letter case."'
)
_PARSE_COUNTS = (
    "for _reply in $replies:\n"
    "    for _line in _reply.splitlines():\n"
    '        _name, _sep, _num = _line.rpartition(":")\n'
    "        if _sep and _num.strip().isdigit():\n"
    '            $counter[" ".join(_name.strip(" -*").split()).title()] += int(_num)'
)


def chunked_llm_counts(p: dict[str, Any], st: Style) -> Plan:
    w = _writer(p, st)
    size = st.number([60_000, 100_000, 150_000])
    turns = _explore(w, st)
    test = [
        _imports(w),
        *_chunk_stmts(w, size),
        w.s(_COUNT_PROMPT, "map_llm"),
        w.s('_test = llm_query($instr + "\\n\\n" + $chunks[0])', "map_llm", False),
        w.show("first chunk", "_test[:400]", "peek"),
    ]
    turns.append(
        Turn(
            phrase(
                st,
                "Telling celebrities from artists and characters needs judgement, so I will let the sub-LLM count "
                "celebrities chunk by chunk and add the counts up. First one chunk as a test.",
                "Plan: split into chunks on line boundaries, ask llm_query for 'Name: count' per chunk, sum. Testing one chunk.",
            ),
            Cell.of(test),
        )
    )
    scale = [
        w.s('$replies = llm_query_batched([$instr + "\\n\\n" + _c for _c in $chunks])', "batch_llm"),
        w.s("$counter = Counter()", "aggregate"),
        w.s(_PARSE_COUNTS, "parse"),
        w.s("$answer = [name for name, _ in $counter.most_common($k)]", "aggregate"),
        w.show("top", "$counter.most_common($k + 3)", "peek"),
    ]
    if st.verify:
        scale.append(
            w.show("failed chunks", 'sum(1 for _r in $replies if _r.startswith("Error:"))', "verify")
        )
    turn = Turn("The format parses. Running all chunks in one batch and summing.", Cell.of(scale))
    turns.append(maybe_typo(turn, st, 2, w["replies"]))
    turns.append(Turn("Summed counts give a clear top k. Submitting.", Cell.of([submit_stmt(w)])))
    return Plan(FAMILY, "chunked_llm_counts", True, tuple(turns), (w["answer"],), "[]")


def sample_gazetteer_count(p: dict[str, Any], st: Style) -> Plan:
    w = _writer(p, st)
    n = st.number([500, 700, 900])
    turns = _explore(w, st)
    ask = [
        _imports(w),
        w.s(
            f"import random\nrandom.seed($seed)\n$sample = random.sample($lines, min(len($lines), {n}))",
            "sample",
        ),
        w.s(
            '$instr = "Here are some image-generation prompts. List the real celebrities (actors, musicians, '
            'athletes) they name, one name per line. Do not list artists, fictional characters or places."',
            "map_llm",
        ),
        w.s('reply = llm_query($instr + "\\n\\n" + "\\n".join($sample))', "map_llm"),
        w.s(
            '$gaz = sorted({" ".join(_x.strip(" -*").split()).title() for _x in reply.splitlines() if _x.strip()})',
            "parse",
        ),
        w.show("celebrities in the sample", "$gaz", "peek"),
    ]
    turns.append(
        Turn(
            phrase(
                st,
                "Frequent celebrities must show up in a random sample. I ask the sub-LLM to name the celebrities in a "
                "sample of prompts, then count those names everywhere with code.",
                "A random sample is enough to build the list of celebrities; exact counting is then plain regex work.",
            ),
            Cell.of(ask),
        )
    )
    count = _count_exact(w, st)
    turn = Turn("Counting each name over the full context, any casing and spacing.", Cell.of(count))
    turns.append(maybe_typo(turn, st, 2, w["gaz"]))
    turns.append(Turn("Done; submitting the top k.", Cell.of([submit_stmt(w)])))
    return Plan(FAMILY, "sample_gazetteer_count", True, tuple(turns), (w["answer"],), "[]")


def capitalized_counts(p: dict[str, Any], st: Style) -> Plan:
    w = _writer(p, st)
    turns = _explore(w, st)
    stmts = [
        _imports(w),
        w.s('$pattern = re.compile(r"\\b[A-Z][A-Za-z]+(?:[ ]+[A-Z][A-Za-z]+){1,2}\\b")', "filter_regex"),
        w.s(
            '$counter = Counter(" ".join(m.split()).title() for m in $pattern.findall(context))', "aggregate"
        ),
        w.s(
            'stop = {"Unreal Engine", "Art Nouveau", "Studio Ghibli", "National Geographic", "Kodak Portra", '
            '"Cinema", "Leica", "Pixar"}',
            "filter_regex",
        ),
        w.s("$answer = [n for n, _ in $counter.most_common(100) if n not in stop][:$k]", "aggregate"),
        w.show("top names", "$answer", "peek"),
    ]
    turns.append(
        Turn(
            phrase(
                st,
                "Celebrity names are capitalised, so counting capitalised word pairs should surface them; I drop a few style words.",
                "Quick approach: count capitalised names with a regex and take the most frequent ones.",
            ),
            Cell.of(stmts),
        )
    )
    turns.append(Turn("These are the most frequent names. Submitting.", Cell.of([submit_stmt(w)])))
    return Plan(FAMILY, "capitalized_counts", False, tuple(turns), (w["answer"],), "[]")


def head_only(p: dict[str, Any], st: Style) -> Plan:
    w = _writer(p, st)
    turns = _explore(w, st)
    stmts = [
        _imports(w),
        w.s(_COUNT_PROMPT, "map_llm"),
        w.s('reply = llm_query($instr + "\\n\\n" + context[:8000])', "map_llm"),
        w.s("$counter = Counter()", "aggregate"),
        w.s(_PARSE_COUNTS.replace("for _reply in $replies:", "for _reply in [reply]:"), "parse"),
        w.s("$answer = [name for name, _ in $counter.most_common($k)]", "aggregate"),
        w.show("top in the first pages", "$counter.most_common($k)", "peek"),
    ]
    turns.append(
        Turn(
            phrase(
                st,
                "The prompts look uniformly mixed, so the first pages should be representative. I ask the sub-LLM to "
                "count celebrities there.",
                "Sampling the head of the file is cheaper than reading everything; the distribution should be the same.",
            ),
            Cell.of(stmts),
        )
    )
    turns.append(Turn("Submitting the top names from the head.", Cell.of([submit_stmt(w)])))
    return Plan(FAMILY, "head_only", False, tuple(turns), (w["answer"],), "[]")


STRATEGIES: tuple[Strategy, ...] = (
    Strategy(
        "regex_then_llm_filter", True, regex_then_llm_filter, "regex candidates, sub-LLM filter, exact counts"
    ),
    Strategy("chunked_llm_counts", True, chunked_llm_counts, "sub-LLM counts per chunk, summed"),
    Strategy(
        "sample_gazetteer_count",
        True,
        sample_gazetteer_count,
        "sub-LLM names a sample's celebrities, code counts",
    ),
    Strategy("capitalized_counts", False, capitalized_counts, "capitalised names counted, no judgement"),
    Strategy("head_only", False, head_only, "sub-LLM counts the first pages only"),
)
