"""Distil the recorded per-item sub-LLM answers into small classifiers the agent ships with.

Input: the (prompt, response) pairs of recorded sub-calls — the LLM's own answers,
never the simulator's ground truth. Every itemized prompt (:func:`codegen.cascade.split_prompt`)
whose reply gives one label per item yields (item, label) examples, pooled by the
question asked about each item (:func:`codegen.cascade.instruction_key`). Per question,
scikit-learn fits TF-IDF (word uni- and bigrams, letters only, sublinear tf) and a
logistic regression. The confidence threshold is *calibrated*, not chosen: items are
cross-validated in folds grouped by item text, and the threshold is the lowest at which
the held-out confident predictions agree with the LLM at least ``target_agreement`` of
the time. A question where no threshold gets there has no model (the LLM answers it).
The fitted parameters are exported as plain numbers for :class:`codegen.cascade.ItemModel`.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from codegen.cascade import ITEM_TOKEN, instruction_key, parse_reply, reply_format, split_prompt

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DistillOptions:
    min_examples: int = 60  # per question: fewer and the calibration means little
    max_classes: int = 30  # more distinct labels than this is free text, not a classification
    target_agreement: float = 0.995  # held-out agreement with the LLM where the model answers
    folds: int = 5
    ngrams: int = 2
    c: float = 20.0


@dataclass(frozen=True, slots=True)
class DistillReport:
    """What became of one question: its model's calibration, or why it has none."""

    question: str
    examples: int
    classes: int
    threshold: float | None
    coverage: float  # held-out share of items the model answers at that threshold
    agreement: float  # held-out agreement with the LLM on those items
    reason: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "question": self.question[:200], "examples": self.examples, "classes": self.classes,
            "threshold": self.threshold, "coverage": round(self.coverage, 4),
            "agreement": round(self.agreement, 4), "reason": self.reason,
        }  # fmt: skip


def harvest(calls: Iterable[tuple[str, str]]) -> dict[str, list[tuple[str, str]]]:
    """Question -> (item, label) examples from the itemized calls answered item by item."""
    out: dict[str, list[tuple[str, str]]] = {}
    for prompt, response in calls:
        parsed = split_prompt(prompt)
        if parsed is None:
            continue
        instruction, items = parsed
        labels = parse_reply(response, len(items), reply_format(instruction))
        if labels is not None:
            out.setdefault(instruction_key(instruction), []).extend(zip(items, labels, strict=True))
    return out


def _pipeline(options: DistillOptions) -> Any:
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline

    return make_pipeline(
        TfidfVectorizer(
            lowercase=True,
            token_pattern=ITEM_TOKEN.pattern,
            ngram_range=(1, options.ngrams),
            sublinear_tf=True,
        ),
        LogisticRegression(C=options.c, max_iter=2000),
    )


def _held_out(items: list[str], labels: list[str], classes: list[str], options: DistillOptions) -> Any:
    """Cross-validated (max probability, predicted index) per example, folds grouped by item text."""
    import numpy as np
    from sklearn.model_selection import GroupKFold

    groups = np.unique(np.array(items), return_inverse=True)[1]
    index = {c: k for k, c in enumerate(classes)}
    probs = np.zeros((len(items), len(classes)))
    for train, test in GroupKFold(n_splits=options.folds).split(items, labels, groups):
        train_labels = [labels[k] for k in train]
        if len(set(train_labels)) < 2:
            continue  # leaves those rows at probability 0: never confident, as they should be
        model = _pipeline(options).fit([items[k] for k in train], train_labels)
        cols = [index[c] for c in model.classes_]
        probs[np.ix_(test, cols)] = model.predict_proba([items[k] for k in test])
    return probs.max(axis=1), probs.argmax(axis=1)


def _calibrate(confidence: Any, correct: Any, target: float) -> tuple[float | None, float, float]:
    """Lowest threshold whose confident held-out predictions agree >= target: (t, coverage, agreement)."""
    import numpy as np

    order = np.argsort(-confidence, kind="stable")
    agree = np.cumsum(correct[order]) / np.arange(1, len(order) + 1)
    best: tuple[float | None, float, float] = (None, 0.0, 0.0)
    for k in range(len(order)):
        t = float(confidence[order[k]])
        if k + 1 < len(order) and float(confidence[order[k + 1]]) == t:
            continue  # a threshold takes every item at that confidence
        if t < 0.5:
            break
        if agree[k] >= target:
            best = (t, (k + 1) / len(order), float(agree[k]))
    return best


def _export(pipeline: Any, threshold: float, options: DistillOptions) -> dict[str, Any]:
    vectorizer, classifier = pipeline.steps[0][1], pipeline.steps[1][1]
    coef = classifier.coef_
    terms = {
        term: [round(float(vectorizer.idf_[j]), 6), *(round(float(c), 6) for c in coef[:, j])]
        for term, j in sorted(vectorizer.vocabulary_.items())
    }
    return {
        "labels": [str(c) for c in classifier.classes_],
        "intercept": [round(float(b), 6) for b in classifier.intercept_],
        "terms": terms,
        "ngrams": options.ngrams,
        "threshold": round(threshold, 6),
    }


def distil(
    calls: Iterable[tuple[str, str]], options: DistillOptions | None = None
) -> tuple[dict[str, dict[str, Any]], list[DistillReport]]:
    """(question -> exported model, one report per question seen)."""
    import numpy as np

    opts = options or DistillOptions()
    models: dict[str, dict[str, Any]] = {}
    reports: list[DistillReport] = []
    for question, examples in sorted(harvest(calls).items()):
        items = [item for item, _ in examples]
        labels = [label for _, label in examples]
        counts: dict[str, int] = {}
        for label in labels:
            counts[label] = counts.get(label, 0) + 1
        classes = sorted(counts)

        def refuse(reason: str, q: str = question, n: int = len(examples), k: int = len(classes)) -> None:
            reports.append(DistillReport(q, n, k, None, 0.0, 0.0, reason))

        if len(examples) < opts.min_examples:
            refuse(f"{len(examples)} examples, fewer than {opts.min_examples}")
            continue
        if not 2 <= len(classes) <= opts.max_classes:
            refuse(f"{len(classes)} distinct labels: not a classification")
            continue
        if len(set(items)) < opts.folds:
            refuse("too few distinct items to cross-validate")
            continue
        confidence, predicted = _held_out(items, labels, classes, opts)
        correct = np.array([classes[p] == y for p, y in zip(predicted, labels, strict=True)], dtype=float)
        threshold, coverage, agreement = _calibrate(confidence, correct, opts.target_agreement)
        if threshold is None:
            refuse(f"no threshold reaches {opts.target_agreement:.1%} held-out agreement with the LLM")
            continue
        models[question] = _export(_pipeline(opts).fit(items, labels), threshold, opts)
        reports.append(DistillReport(question, len(examples), len(classes), threshold, coverage, agreement))
    return models, reports
