"""Strategies of the simulated root model on the ``incident-logs`` family.

Every strategy parses entries with one regex (code's job), then differs in how
it judges messages. Sound: ``classify_lines_batched`` (one label per message,
batched), ``per_service_counts`` (the sub-LLM counts per group of messages) and
``dedupe_templates`` (messages normalised to templates, each distinct template
judged once). Flawed: ``count_error_lines`` (no judgement: counts ERROR lines,
or keyword rules for causes) and ``skip_filter`` (forgets the time window or
the service).
"""

from __future__ import annotations

from typing import Any

from ..cell import Cell
from ..plan import Plan, Turn
from ..style import Style
from .common import Strategy, maybe_typo, phrase, plan_stmt, submit_stmt
from .log_steps import (
    FAMILY,
    aggregate_labels,
    batched_labels,
    detect,
    explore,
    label_prompt,
    parse_entries,
    select,
    verify_labels,
    writer,
)

__all__ = ["STRATEGIES", "detect"]


def classify_lines_batched(p: dict[str, Any], st: Style) -> Plan:
    w = writer(p, st)
    turns = explore(w, st)
    test = [
        *parse_entries(w),
        select(w, p),
        w.show("errors / selected", "(len($errors), len($subset))", "measure"),
        label_prompt(w, p),
        w.s(
            '_test = llm_query($instr + "\\n\\n" + "\\n".join(_e[3] for _e in $subset[:8]))', "map_llm", False
        ),
        w.show("test labels", "_test.splitlines()", "peek"),
    ]
    if st.show_plan:
        test.insert(
            0,
            plan_stmt(
                w,
                [
                    "parse entries",
                    "keep the ERRORs asked about",
                    "label each message with the sub-LLM",
                    "count",
                ],
            ),
        )
    turns.append(
        Turn(
            phrase(
                st,
                "Entries have a fixed header, so a regex parses them; whether a message is customer-facing (or its "
                "root cause) is a judgement for the sub-LLM. Testing the labelling on a few messages first.",
                "Plan: regex-parse the entries, filter the relevant ERRORs, label every message with llm_query in batches, then count.",
            ),
            Cell.of(test),
        )
    )
    scale = [
        *batched_labels(w, "$subset", "_x[3]"),
        *aggregate_labels(w, p),
        w.show("totals", "$totals.most_common(5)", "peek"),
    ]
    if st.verify:
        scale.append(verify_labels(w))
    turns.append(
        maybe_typo(
            Turn("The labels come back one per line. Scaling to all selected messages.", Cell.of(scale)),
            st,
            1,
            w["subset"],
        )
    )
    turns.append(Turn("The leader is clear. Submitting.", Cell.of([submit_stmt(w)])))
    return Plan(FAMILY, "classify_lines_batched", True, tuple(turns), (w["answer"],), '"unknown"')


def per_service_counts(p: dict[str, Any], st: Style) -> Plan:
    w = writer(p, st)
    turns = explore(w, st)
    group = [*parse_entries(w), select(w, p)]
    if p["kind"] == "window":
        group += [
            w.s("$chunks = {}\nfor _e in $subset:\n    $chunks.setdefault(_e[2], []).append(_e[3])", "chunk"),
            w.show("messages per service", "{_k: len(_v) for _k, _v in $chunks.items()}", "measure"),
            w.s(
                '$instr = "How many of the following error messages describe a failure that a customer or user '
                'experienced (not a background job)? Answer with a single integer."',
                "map_llm",
            ),
        ]
        scale = [
            w.s(
                "_jobs = [(_svc, _msgs[_i : _i + 150]) for _svc, _msgs in $chunks.items() for _i in range(0, len(_msgs), 150)]",
                "chunk",
            ),
            w.s(
                '$replies = llm_query_batched([$instr + "\\n\\n" + "\\n".join(_m) for _, _m in _jobs])',
                "batch_llm",
            ),
            w.s(
                "$totals = Counter()\nfor (_svc, _), _r in zip(_jobs, $replies):\n"
                '    _n = re.search(r"\\d+", _r)\n    $totals[_svc] += int(_n.group()) if _n else 0',
                "aggregate",
            ),
            w.s('$answer = $totals.most_common(1)[0][0] if $totals else "unknown"', "aggregate"),
        ]
    else:
        group += [
            w.s(
                "$chunks = [[_e[3] for _e in $subset[_i : _i + 150]] for _i in range(0, len($subset), 150)]",
                "chunk",
            ),
            w.show("groups", "len($chunks)", "measure"),
            w.s(
                '$instr = "Count how many of the following error messages fall into each root-cause category '
                '($cat_text). Answer as a JSON object mapping category to count."',
                "map_llm",
            ),
        ]
        scale = [
            w.s(
                '$replies = llm_query_batched([$instr + "\\n\\n" + "\\n".join(_c) for _c in $chunks])',
                "batch_llm",
            ),
            w.s(
                "$totals = Counter()\nfor _r in $replies:\n"
                '    _obj = json.loads(_r[_r.find("{") : _r.rfind("}") + 1] or "{}")\n'
                "    $totals.update({_k: int(_v) for _k, _v in _obj.items() if _k in $cats})",
                "aggregate",
            ),
            w.s('$answer = $totals.most_common(1)[0][0] if $totals else "unknown"', "aggregate"),
        ]
    scale.append(w.show("totals", "$totals.most_common(4)", "peek"))
    turns.append(
        Turn(
            phrase(
                st,
                "I group the relevant ERROR messages and let the sub-LLM count inside each group; code adds the counts up.",
                "Counting is cheaper than labelling every line: one llm_query per group of up to 150 messages.",
            ),
            Cell.of(group),
        )
    )
    turns.append(
        maybe_typo(Turn("Now the counts for every group, in one batch.", Cell.of(scale)), st, 0, w["chunks"])
    )
    turns.append(Turn("Submitting the group with the highest count.", Cell.of([submit_stmt(w)])))
    return Plan(FAMILY, "per_service_counts", True, tuple(turns), (w["answer"],), '"unknown"')


def dedupe_templates(p: dict[str, Any], st: Style) -> Plan:
    w = writer(p, st)
    turns = explore(w, st)
    norm = [
        *parse_entries(w),
        select(w, p),
        w.s('_norm = lambda _m: re.sub(r"\\d+", "#", _m)', "parse"),
        w.s("$sample = sorted({_norm(_e[3]) for _e in $subset})", "aggregate"),
        w.show("distinct message templates", "(len($subset), len($sample))", "measure"),
        w.show("some templates", "$sample[:5]", "peek"),
    ]
    turns.append(
        Turn(
            phrase(
                st,
                "Log messages repeat with different numbers. If I replace digits by # there should be far fewer distinct "
                "templates, and each needs only one judgement.",
                "Many messages differ only by ids and durations; deduplicating them first saves most sub-LLM calls.",
            ),
            Cell.of(norm),
        )
    )
    verdict = "yes" if p["kind"] == "window" else None
    judge = [
        label_prompt(w, p),
        *batched_labels(w, "$sample", "_x"),
        w.s("_by_template = dict(zip($sample, $labels))", "aggregate"),
        w.s("$labels = [_by_template.get(_norm(_e[3]), '?') for _e in $subset]", "aggregate"),
        *aggregate_labels(w, p),
        w.show("totals", "$totals.most_common(5)", "peek"),
    ]
    if st.verify:
        judge.append(verify_labels(w))
    turns.append(
        maybe_typo(
            Turn(
                phrase(
                    st,
                    "Labelling each distinct template once, then mapping the labels back onto every message.",
                    f"One judgement per template{' (customer-facing: ' + verdict + ')' if verdict else ''}, then counts over all messages.",
                ),
                Cell.of(judge),
            ),
            st,
            2,
            w["sample"],
        )
    )
    turns.append(Turn("Submitting.", Cell.of([submit_stmt(w)])))
    return Plan(FAMILY, "dedupe_templates", True, tuple(turns), (w["answer"],), '"unknown"')


_KEYWORDS = (
    '{"database": r"database|sql", "network": r"network|connection", "authentication": r"auth|token", '
    '"memory": r"memory", "disk": r"disk", "configuration": r"config", "third-party": r"vendor|third-party", '
    '"rate-limit": r"rate|limit"}'
)


def count_error_lines(p: dict[str, Any], st: Style) -> Plan:
    w = writer(p, st)
    turns = explore(w, st)
    stmts = [*parse_entries(w), select(w, p)]
    if p["kind"] == "window":
        stmts += [
            w.s("$totals = Counter(_e[2] for _e in $subset)", "aggregate"),
            w.s("$answer = $totals.most_common(1)[0][0]", "aggregate"),
        ]
        why = "Failures are the ERROR lines; counting them per service in the window answers the question."
    else:
        stmts += [
            w.s(f"_rules = {_KEYWORDS}", "filter_regex"),
            w.s(
                "$totals = Counter()\nfor _e in $subset:\n    for _cat, _rx in _rules.items():\n"
                "        if re.search(_rx, _e[3], re.I):\n            $totals[_cat] += 1\n            break",
                "aggregate",
            ),
            w.s('$answer = $totals.most_common(1)[0][0] if $totals else "unknown"', "aggregate"),
        ]
        why = "Keyword rules per category should be enough to classify causes; no need for the sub-LLM."
    stmts.append(w.show("totals", "$totals.most_common(4)", "peek"))
    turns.append(Turn(why, Cell.of(stmts)))
    turns.append(Turn("Submitting the top one.", Cell.of([submit_stmt(w)])))
    return Plan(FAMILY, "count_error_lines", False, tuple(turns), (w["answer"],), '"unknown"')


def skip_filter(p: dict[str, Any], st: Style) -> Plan:
    w = writer(p, st)
    turns = explore(w, st)
    stmts = [*parse_entries(w), select(w, p, skip=True)]
    if p["kind"] != "window":
        stmts.append(
            w.s(
                "import random\nrandom.seed($seed)\n$subset = random.sample($subset, min(len($subset), 400))",
                "sample",
            )
        )
    stmts += [
        label_prompt(w, p),
        *batched_labels(w, "$subset", "_x[3]"),
        *aggregate_labels(w, p),
        w.show("totals", "$totals.most_common(4)", "peek"),
    ]
    turns.append(
        Turn(
            phrase(
                st,
                "Labelling the ERROR messages with the sub-LLM and counting; the failures should concentrate where the incident is.",
                "All ERROR entries, labelled in batches, then counted.",
            ),
            Cell.of(stmts),
        )
    )
    turns.append(Turn("Submitting.", Cell.of([submit_stmt(w)])))
    return Plan(FAMILY, "skip_filter", False, tuple(turns), (w["answer"],), '"unknown"')


STRATEGIES: tuple[Strategy, ...] = (
    Strategy(
        "classify_lines_batched", True, classify_lines_batched, "regex parse, sub-LLM label per message"
    ),
    Strategy("per_service_counts", True, per_service_counts, "sub-LLM counts per group of messages"),
    Strategy("dedupe_templates", True, dedupe_templates, "one sub-LLM judgement per message template"),
    Strategy("count_error_lines", False, count_error_lines, "ERROR lines or keyword rules, no judgement"),
    Strategy("skip_filter", False, skip_filter, "forgets the window or the service"),
)
