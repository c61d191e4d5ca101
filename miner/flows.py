"""Sequences and flows: what order tactics come in, and which orders go with success.

Pure functions over per-run tactic sequences (repeats collapsed). Directly-follows counts
are computed by SQL over the stored sequences (``rlmine.store.directly_follows``); here
are the frequent contiguous sequences, success rate / lift / median cost of any group of
runs, and the consensus plan.

The *consensus plan* is the plan of the dominant approach among successful runs: the
successful runs are grouped by the set of tactics they use (average-linkage clustering on
Jaccard distance), the largest group is taken, and the plan is built greedily: at each
point, among the tactics that at least half of the group still has ahead of it, the one
that comes soonest (median position) is appended. Exploration that only some runs do
falls out; the steps the approach needs stay, in order.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass

__all__ = [
    "Outcome",
    "Pattern",
    "collapse",
    "consensus_plan",
    "dominant_group",
    "frequent_sequences",
    "group_stats",
]


@dataclass(frozen=True, slots=True)
class Outcome:
    correct: bool | None
    iterations: float | None
    llm_calls: float | None
    tokens: float | None


@dataclass(frozen=True, slots=True)
class Pattern:
    tactics: tuple[str, ...]
    support: int  # runs that contain the sequence contiguously
    success_rate: float | None
    lift: float | None
    median_iterations: float | None
    median_llm_calls: float | None
    median_tokens: float | None


def collapse(seq: Sequence[str]) -> list[str]:
    """Repeats in a row collapsed: A A B A -> A B A."""
    out: list[str] = []
    for item in seq:
        if not out or out[-1] != item:
            out.append(item)
    return out


def _median(values: Sequence[float | None]) -> float | None:
    known = [float(v) for v in values if v is not None]
    return float(statistics.median(known)) if known else None


def base_rate(outcomes: Sequence[Outcome]) -> float | None:
    known = [o.correct for o in outcomes if o.correct is not None]
    return sum(known) / len(known) if known else None


def group_stats(
    outcomes: Sequence[Outcome], base: float | None
) -> tuple[float | None, float | None, float | None, float | None, float | None]:
    """(success rate, lift over ``base``, median iterations, LLM calls, tokens) of some runs."""
    rate = base_rate(outcomes)
    lift = rate / base if rate is not None and base else None
    return (
        rate,
        lift,
        _median([o.iterations for o in outcomes]),
        _median([o.llm_calls for o in outcomes]),
        _median([o.tokens for o in outcomes]),
    )


def frequent_sequences(
    sequences: Sequence[Sequence[str]],
    outcomes: Sequence[Outcome],
    *,
    min_support: int = 2,
    min_length: int = 2,
    max_length: int = 6,
) -> list[Pattern]:
    """Contiguous sub-sequences found in at least ``min_support`` runs, most supported first."""
    holders: dict[tuple[str, ...], set[int]] = {}
    for run, seq in enumerate(sequences):
        for n in range(min_length, max_length + 1):
            for i in range(len(seq) - n + 1):
                holders.setdefault(tuple(seq[i : i + n]), set()).add(run)
    base = base_rate(outcomes)
    out: list[Pattern] = []
    for tactics, runs in holders.items():
        if len(runs) < min_support:
            continue
        out.append(Pattern(tactics, len(runs), *group_stats([outcomes[r] for r in sorted(runs)], base)))
    out.sort(key=lambda p: (-p.support, -len(p.tactics), p.tactics))
    return out


def dominant_group(
    sequences: Sequence[Sequence[str]],
    threshold: float = 0.5,
    costs: Sequence[Outcome] | None = None,
) -> list[int]:
    """Indices of the largest group of runs using similar sets of tactics.

    Runs with the same set of tactics are clustered once (their count weighs the group), and
    Jaccard distances come from one matrix product, so thousands of runs take a moment.
    Groups of equal size: the cheaper one (median iterations, LLM calls, tokens of ``costs``,
    one per sequence) wins, then the one whose tactic sets sort first, so the pick depends on
    the runs' content, never on their ids or order.
    """
    if len(sequences) <= 2:
        return list(range(len(sequences)))
    import numpy as np
    from sklearn.cluster import AgglomerativeClustering

    keys = [frozenset(s) for s in sequences]
    distinct = sorted(set(keys), key=lambda k: sorted(k))
    if len(distinct) == 1:
        return list(range(len(sequences)))
    vocab = {t: i for i, t in enumerate(sorted(set().union(*distinct)))}
    member = np.zeros((len(distinct), len(vocab)), dtype=np.float32)
    for row, key in enumerate(distinct):
        member[row, [vocab[t] for t in key]] = 1.0
    inter = member @ member.T
    sizes = member.sum(axis=1)
    union = sizes[:, None] + sizes[None, :] - inter
    dist = 1.0 - np.divide(inter, union, out=np.ones_like(inter), where=union > 0)
    np.fill_diagonal(dist, 0.0)
    labels = AgglomerativeClustering(
        n_clusters=None, metric="precomputed", linkage="average", distance_threshold=threshold
    ).fit_predict(dist)
    label_of = {key: int(lab) for key, lab in zip(distinct, labels, strict=True)}
    members: dict[int, list[int]] = {}
    for i, k in enumerate(keys):
        members.setdefault(label_of[k], []).append(i)

    def rank(lab: int) -> tuple[object, ...]:
        runs = members[lab]
        cost = _group_cost([costs[i] for i in runs]) if costs is not None else ()
        content = sorted(sorted(k) for k in {keys[i] for i in runs})
        return (-len(runs), cost, content)

    return members[min(members, key=rank)]


def _group_cost(outcomes: Sequence[Outcome]) -> tuple[float, float, float]:
    """Median iterations, LLM calls and tokens (unknown counts last)."""

    def med(values: list[float | None]) -> float:
        found = _median(values)
        return math.inf if found is None else found

    return (
        med([o.iterations for o in outcomes]),
        med([o.llm_calls for o in outcomes]),
        med([o.tokens for o in outcomes]),
    )


def consensus_plan(sequences: Sequence[Sequence[str]], quorum: float = 0.5) -> list[str]:
    """The in-order plan that at least ``quorum`` of ``sequences`` follow (see module doc)."""
    if not sequences:
        return []
    need = max(1, int(-(-quorum * len(sequences) // 1)))
    cursors = [0] * len(sequences)
    plan: list[str] = []
    for _ in range(max(len(s) for s in sequences)):
        ahead: dict[str, list[int]] = {}
        for run, seq in enumerate(sequences):
            seen: set[str] = set()
            for pos in range(cursors[run], len(seq)):
                tactic = seq[pos]
                if tactic not in seen:
                    seen.add(tactic)
                    ahead.setdefault(tactic, []).append(pos - cursors[run])
        eligible = [(statistics.median(d), t) for t, d in ahead.items() if len(d) >= need]
        if not eligible:
            break
        _, chosen = min(eligible)
        plan.append(chosen)
        for run, seq in enumerate(sequences):
            # A run that skips the step stays where it is.
            if chosen in seq[cursors[run] :]:
                cursors[run] = list(seq).index(chosen, cursors[run]) + 1
    return collapse(plan)
