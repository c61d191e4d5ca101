"""The item cascade: per-item sub-LLM prompts answered by a distilled model, the LLM asked only when unsure.

Runs often send the sub-LLM *itemized* prompts: an instruction, a blank line, then one
item per line, answered with one label per item (a line each, or a JSON list). For
such an instruction the build distils a TF-IDF + logistic-regression model from the
recorded answers (:mod:`codegen.distill`, scikit-learn); this module applies it in pure
Python. For each batch of prompts, :class:`Cascade`

1. answers a prompt sent before in the same run from its cache (temperature 0);
2. splits an itemized prompt whose instruction has a model into items and labels
   each item the model is confident about (probability at or above the threshold
   calibrated at build time);
3. sends the distinct uncertain items to the LLM under the *same* instruction, in
   chunks no larger than the program's own, with every non-itemized prompt, in one
   parallel batch;
4. puts each prompt's answer back together in the format its instruction asked for.
   A reply that does not give one known label per item sends the original prompts as
   they were, so the program never sees an answer it could not have got from the LLM.

Only the standard library: the text between the ``runtime`` markers below is copied
into every generated agent, and codegen's validation imports this module, so what was
validated is what ships. Arithmetic runs in a fixed order: same input, same output.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from collections.abc import Callable, Iterable, Sequence
from typing import Any

# --- runtime begin ---
ITEM_TOKEN = re.compile(r"(?u)\b[^\W\d_]{2,}\b")  # letters only: ids and numbers vary between equal items
_ENUMERATION = re.compile(r"^\s*(?:[-*•]\s+|\(?\d{1,4}[.):]\s*)")
_FORMAT_SENTENCE = re.compile(
    r"\b(json|per line|one (?:label|answer|category|word|line) (?:per|for)|in order|reply with|respond with)\b",
    re.I,
)


def split_prompt(prompt: str) -> tuple[str, list[str]] | None:
    """(instruction, items) of an itemized prompt: instruction, blank line, one item per line."""
    head, sep, tail = prompt.partition("\n\n")
    items = tail.rstrip("\n").split("\n")
    if not sep or not head.strip() or not tail.strip() or any(not item.strip() for item in items):
        return None
    return head, items


def instruction_key(instruction: str) -> str:
    """The question asked about each item: the instruction without its output-format sentences."""
    sentences = re.split(r"(?<=[.!?])\s+", instruction.strip())
    kept = [s for s in sentences if not _FORMAT_SENTENCE.search(s)] or sentences
    return " ".join(" ".join(kept).lower().split())


def reply_format(instruction: str) -> str:
    return "json" if "json" in instruction.lower() else "lines"


def parse_reply(text: str, n: int, fmt: str) -> list[str] | None:
    """One label per item, or None when the reply does not have exactly ``n`` of them."""
    if fmt == "json":
        start, end = text.find("["), text.rfind("]")
        if start < 0 or end <= start:
            return None
        try:
            values = json.loads(text[start : end + 1])
        except ValueError:
            return None
        if not isinstance(values, list) or len(values) != n or not all(isinstance(v, str) for v in values):
            return None
        return [v.strip() for v in values]
    labels = [_ENUMERATION.sub("", line).strip() for line in text.splitlines() if line.strip()]
    return labels if len(labels) == n and all(labels) else None


def format_reply(labels: Sequence[str], fmt: str) -> str:
    return json.dumps(list(labels), ensure_ascii=False) if fmt == "json" else "\n".join(labels)


class ItemModel:
    """A distilled classifier: TF-IDF (sublinear tf, l2) then logistic regression, as exported."""

    def __init__(self, spec: dict[str, Any]) -> None:
        self.labels: list[str] = list(spec["labels"])
        self.intercept: list[float] = list(spec["intercept"])
        self.terms: dict[str, list[float]] = spec["terms"]  # term -> [idf, coef per class (one if binary)]
        self.ngrams: int = int(spec["ngrams"])
        self.threshold: float = float(spec["threshold"])
        self.known = {label.lower() for label in self.labels}
        self._seen: dict[str, tuple[str, float]] = {}

    def _features(self, text: str) -> list[tuple[str, float]]:
        words = ITEM_TOKEN.findall(text.lower())
        counts: dict[str, int] = {}
        for n in range(1, self.ngrams + 1):
            for i in range(len(words) - n + 1):
                gram = " ".join(words[i : i + n])
                if gram in self.terms:
                    counts[gram] = counts.get(gram, 0) + 1
        weighted = [(g, (1.0 + math.log(c)) * self.terms[g][0]) for g, c in sorted(counts.items())]
        norm = math.sqrt(sum(w * w for _, w in weighted))
        return [(g, w / norm) for g, w in weighted] if norm > 0 else []

    def predict(self, text: str) -> tuple[str, float]:
        """(label, probability) for one item."""
        if text in self._seen:
            return self._seen[text]
        scores = list(self.intercept)
        for gram, value in self._features(text):
            row = self.terms[gram]
            for j in range(len(scores)):
                scores[j] += row[1 + j] * value
        if len(scores) == 1:  # binary: one logit for labels[1]
            p = 1.0 / (1.0 + math.exp(-max(-60.0, min(60.0, scores[0]))))
            probs = [1.0 - p, p]
        else:
            top = max(scores)
            exps = [math.exp(s - top) for s in scores]
            total = sum(exps)
            probs = [e / total for e in exps]
        best = max(range(len(probs)), key=lambda j: (probs[j], -j))
        self._seen[text] = (self.labels[best], probs[best])
        return self._seen[text]


def _digest(prompt: str) -> str:
    return hashlib.sha256(prompt.encode("utf-8", "surrogatepass")).hexdigest()


class Cascade:
    """Answers a batch of sub-LLM prompts: cache, distilled models, then the LLM (``send``)."""

    def __init__(
        self,
        models: dict[str, dict[str, Any]],
        send: Callable[[list[str]], list[str]],
        *,
        enabled: bool = True,
    ) -> None:
        self.models = {key: ItemModel(spec) for key, spec in models.items()} if enabled else {}
        self.send = send
        self.cache: dict[str, str] = {}
        self.stats = {"items_local": 0, "items_sent": 0, "prompts_cached": 0}

    def answer(self, prompts: Sequence[str]) -> list[str]:
        out: list[str | None] = [None] * len(prompts)
        plans: dict[int, tuple[str, str, list[str | None], list[str]]] = {}
        direct: dict[str, list[int]] = {}  # prompt sent as it is -> its positions
        for i, prompt in enumerate(prompts):
            cached = self.cache.get(_digest(prompt))
            if cached is not None:
                out[i] = cached
                self.stats["prompts_cached"] += 1
                continue
            plan = self._plan(prompt)
            if plan is None:
                direct.setdefault(prompt, []).append(i)
            else:
                plans[i] = plan
        asked = self._unsure_chunks(plans.values())
        batch = list(direct) + [instruction + "\n\n" + "\n".join(part) for instruction, part in asked]
        replies = self.send(batch) if batch else []
        for prompt, reply in zip(direct, replies[: len(direct)], strict=True):
            self.cache[_digest(prompt)] = reply
            for i in direct[prompt]:
                out[i] = reply
        learned, failed = self._read(asked, replies[len(direct) :])
        # The LLM did not answer those items one by one: their prompts go as the program wrote them.
        fallback = [i for i, plan in plans.items() if any((plan[0], item) in failed for item in plan[3])]
        if fallback:
            again = list(dict.fromkeys(prompts[i] for i in fallback))
            for prompt, reply in zip(again, self.send(again), strict=True):
                self.cache[_digest(prompt)] = reply
            for i in fallback:
                out[i] = self.cache[_digest(prompts[i])]
                del plans[i]
        for i, (instruction, fmt, labels, items) in plans.items():
            self.stats["items_local"] += sum(label is not None for label in labels)
            full = [label if label is not None else learned[(instruction, item)] for label, item in zip(labels, items, strict=True)]  # fmt: skip
            out[i] = self.cache[_digest(prompts[i])] = format_reply(full, fmt)
        return [text if text is not None else "" for text in out]

    def _plan(self, prompt: str) -> tuple[str, str, list[str | None], list[str]] | None:
        """(instruction, reply format, label or None where unsure, items); None: not for a model."""
        parsed = split_prompt(prompt)
        model = self.models.get(instruction_key(parsed[0])) if parsed else None
        if parsed is None or model is None:
            return None
        instruction, items = parsed
        labels: list[str | None] = []
        for item in items:
            label, probability = model.predict(item)
            labels.append(label if probability >= model.threshold else None)
        return instruction, reply_format(instruction), labels, items

    @staticmethod
    def _unsure_chunks(
        plans: Iterable[tuple[str, str, list[str | None], list[str]]],
    ) -> list[tuple[str, list[str]]]:
        """Distinct uncertain items per instruction, in order, in chunks no larger than the program's."""
        unsure: dict[str, dict[str, None]] = {}
        size: dict[str, int] = {}
        for instruction, _, labels, items in plans:
            size[instruction] = max(size.get(instruction, 1), len(items))
            for label, item in zip(labels, items, strict=True):
                if label is None:
                    unsure.setdefault(instruction, {})[item] = None
        out: list[tuple[str, list[str]]] = []
        for instruction, distinct in unsure.items():
            pending, n = list(distinct), size[instruction]
            out += [(instruction, pending[k : k + n]) for k in range(0, len(pending), n)]
        return out

    def _read(
        self, asked: list[tuple[str, list[str]]], replies: Sequence[str]
    ) -> tuple[dict[tuple[str, str], str], set[tuple[str, str]]]:
        """Labels the LLM gave per (instruction, item); and the items whose reply was not per item."""
        learned: dict[tuple[str, str], str] = {}
        failed: set[tuple[str, str]] = set()
        for (instruction, part), reply in zip(asked, replies, strict=True):
            got = parse_reply(reply, len(part), reply_format(instruction))
            known = self.models[instruction_key(instruction)].known
            if got is None or any(label.lower() not in known for label in got):
                failed.update((instruction, item) for item in part)
                continue
            learned.update(((instruction, item), label) for item, label in zip(part, got, strict=True))
            self.stats["items_sent"] += len(part)
        return learned, failed


# --- runtime end ---


def runtime_source() -> str:
    """The text copied into generated agents (between the markers of this file)."""
    with open(__file__, encoding="utf-8") as handle:
        text = handle.read()
    begin, end = "# --- runtime begin ---\n", "# --- runtime end ---\n"
    return text[text.index(begin) + len(begin) : text.index(end)].strip("\n") + "\n"
