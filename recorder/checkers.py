"""Answer checkers: a registry that scores a run's final answer against the expected one.

A task names its checker (``exact``, ``contains``, ``set_f1``, ``topk_overlap``,
``numeric``, or ``python:module:function``), optionally with parameters
(``{name: numeric, tolerance: 0.01}``). :func:`get_checker` turns that spec into
a :class:`Checker`; ``check(answer, expected)`` returns a :class:`CheckResult`
whose ``score`` lies in [0, 1].

Answers reach a checker as whatever ``SUBMIT`` was given (str, int, float,
list, dict) or as text a model typed, so the first half of this module cleans
text (code fences, surrounding quotes), parses structured answers (JSON, then
Python literals, then one item per line or comma), and normalizes scalars so
that ``"Taylor Swift."`` equals ``"taylor  swift"`` and ``"42"`` equals ``42.0``.
A ``None`` or empty answer scores 0 everywhere. Pure logic, no I/O apart from
importing a ``python:`` checker's module.
"""

from __future__ import annotations

import ast
import difflib
import importlib
import json
import math
import re
import string
from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields
from typing import Any, ClassVar, Protocol, runtime_checkable

from rlmine.errors import UserError

__all__ = [
    "CHECKERS",
    "CheckResult",
    "Checker",
    "MalformedAnswer",
    "checker_name",
    "get_checker",
    "normalize",
    "parse_structured",
]

_FENCE = re.compile(r"^```[\w+-]*\s*\n?(.*?)\n?```$", re.DOTALL)
_QUOTES = {('"', '"'), ("'", "'"), ("`", "`"), ("“", "”"), ("‘", "’")}
_TRIM = string.punctuation + "“”‘’«»…–—" + string.whitespace
_NUMBER = re.compile(r"[-+]?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?(?:[eE][-+]?\d+)?|[-+]?\.\d+")
_FULL_NUMBER = re.compile(r"^\s*(" + _NUMBER.pattern + r")\s*$")
_LIST_MARKER = re.compile(r"^\s*(?:[-*•]|\d+[.)]|\(\d+\))\s+")


class MalformedAnswer(ValueError):
    """The answer looked structured (started with a bracket) but did not parse."""


def clean_text(text: str) -> str:
    """Strip whitespace, one enclosing code fence, and matching surrounding quotes."""
    out = text.strip()
    fence = _FENCE.match(out)
    if fence:
        out = fence.group(1).strip()
    while len(out) >= 2 and (out[0], out[-1]) in _QUOTES:
        out = out[1:-1].strip()
    return out


def is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def parse_number(value: Any, *, first: bool = False) -> float | None:
    """A number from a number or a string; ``first`` takes the first number found in text.

    Thousands separators are accepted (``"1,234"``). Returns None when there is none.
    """
    if is_number(value):
        return float(value)
    if isinstance(value, list | tuple) and len(value) == 1:
        return parse_number(value[0], first=first)
    if not isinstance(value, str):
        return None
    text = clean_text(value)
    match = _NUMBER.search(text) if first else _FULL_NUMBER.match(text)
    if match is None:
        return None
    token = match.group(0) if first else match.group(1)
    try:
        return float(token.replace(",", ""))
    except ValueError:  # pragma: no cover - the regex only admits float syntax
        return None


def normalize(value: Any) -> str:
    """Case-folded, whitespace-collapsed, punctuation-trimmed text; numbers made canonical."""
    if value is None:
        return ""
    if is_number(value):
        return _number_text(float(value))
    text = clean_text(value) if isinstance(value, str) else json.dumps(value, sort_keys=True, default=str)
    text = " ".join(text.casefold().split()).strip(_TRIM)
    number = parse_number(text)
    return _number_text(number) if number is not None else text


def _number_text(number: float) -> str:
    return str(int(number)) if number.is_integer() and abs(number) < 1e16 else repr(number)


def parse_structured(answer: Any) -> list[Any] | dict[Any, Any]:
    """The answer as a list or dict.

    Lists, tuples and sets pass through; a string is read as JSON, then as a
    Python literal, then split into items (one per line, or comma-separated).
    A string that starts with ``[``/``{``/``(`` but parses as neither raises
    :class:`MalformedAnswer`: guessing items out of broken syntax would hide
    the model's mistake.
    """
    if isinstance(answer, dict):
        return answer
    if isinstance(answer, list | tuple | set | frozenset):
        return list(answer)
    if answer is None:
        return []
    if not isinstance(answer, str):
        return [answer]
    text = clean_text(answer)
    if not text:
        return []
    parsed = _parse_literal(text)
    if isinstance(parsed, dict):
        return parsed
    if isinstance(parsed, list | tuple | set | frozenset):
        return list(parsed)
    if text[0] in "[{(":
        raise MalformedAnswer(f"could not parse the answer as a list or mapping: {text[:80]!r}")
    lines = [line for line in text.splitlines() if line.strip()]
    parts = lines if len(lines) > 1 else re.split(r"[,;]", text)
    return [_LIST_MARKER.sub("", part).strip() for part in parts if part.strip()]


def _parse_literal(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        pass
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        return None


def answer_items(answer: Any) -> list[str]:
    """Normalized items of a list-like answer, in order, without duplicates.

    A mapping contributes its keys (``{"Taylor Swift": 120, ...}``); an item
    that is a pair such as ``("Taylor Swift", 120)`` — what ``Counter.most_common``
    returns — contributes its first element.
    """
    structured = parse_structured(answer)
    raw = list(structured.keys()) if isinstance(structured, dict) else structured
    seen: dict[str, None] = {}
    for item in raw:
        if isinstance(item, list | tuple) and len(item) == 2 and not isinstance(item[0], list | tuple):
            item = item[0]
        key = normalize(item)
        if key:
            seen.setdefault(key, None)
    return list(seen)


def normalize_structure(value: Any) -> Any:
    """Normalize every scalar inside nested lists and dicts (for exact comparison)."""
    if isinstance(value, dict):
        return {normalize(k): normalize_structure(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [normalize_structure(v) for v in value]
    return normalize(value)


def answer_text(answer: Any) -> str:
    """The answer as normalized text (structured answers joined with spaces)."""
    if isinstance(answer, dict):
        return " ".join(f"{normalize(k)} {normalize(v)}" for k, v in answer.items())
    if isinstance(answer, list | tuple | set | frozenset):
        return " ".join(normalize(item) for item in answer)
    return normalize(answer)


# --------------------------------------------------------------------------- checkers

_EPS = 1e-9


@dataclass(frozen=True, slots=True)
class CheckResult:
    """A checked answer: ``score`` in [0, 1], ``correct`` by the checker's rule, and why."""

    score: float
    correct: bool
    detail: str | None = None

    def __post_init__(self) -> None:
        if not (0.0 <= self.score <= 1.0):
            raise ValueError(f"CheckResult.score must lie in [0, 1], got {self.score!r}")


@runtime_checkable
class Checker(Protocol):
    """Scores one answer against one expected value."""

    def check(self, answer: Any, expected: Any) -> CheckResult: ...


def _precheck(answer: Any, expected: Any) -> CheckResult | None:
    """The verdict shared by every checker when there is nothing to compare."""
    if expected is None:
        return CheckResult(0.0, False, "no expected answer to compare with")
    if answer is None or (isinstance(answer, str) and not clean_text(answer)):
        return CheckResult(0.0, False, "empty answer")
    if isinstance(answer, list | tuple | dict | set) and not answer and expected not in ([], {}, ()):
        return CheckResult(0.0, False, "empty answer")
    return None


def _verdict(ok: bool, detail: str) -> CheckResult:
    return CheckResult(1.0 if ok else 0.0, ok, None if ok else detail)


def _short(items: Any, limit: int = 5) -> str:
    items = list(items)
    shown = ", ".join(repr(i) for i in items[:limit])
    return shown + (f", … ({len(items) - limit} more)" if len(items) > limit else "")


def _check_fraction(name: str, value: Any) -> None:
    if not is_number(value) or not (0.0 <= float(value) <= 1.0):
        raise UserError(f"checker parameter {name} must be a number in [0, 1], got {value!r}", f"{name}: 0.8")


@dataclass(frozen=True, slots=True)
class ExactChecker:
    """Normalized equality; numbers compare numerically; lists in order, mappings by key."""

    name: ClassVar[str] = "exact"

    def check(self, answer: Any, expected: Any) -> CheckResult:
        early = _precheck(answer, expected)
        if early is not None:
            return early
        if isinstance(expected, list | tuple | dict):
            try:
                parsed = parse_structured(answer)
            except MalformedAnswer as exc:
                return CheckResult(0.0, False, str(exc))
            ok = normalize_structure(parsed) == normalize_structure(expected)
            return _verdict(ok, f"expected {expected!r}, got {parsed!r}")
        if isinstance(answer, list | tuple) and len(answer) == 1:
            answer = answer[0]
        a_num, e_num = parse_number(answer), parse_number(expected)
        if a_num is not None and e_num is not None:
            ok = math.isclose(a_num, e_num, rel_tol=1e-9, abs_tol=1e-12)
        else:
            ok = normalize(answer) == normalize(expected)
        return _verdict(ok, f"expected {normalize(expected)!r}, got {normalize(answer)!r}")


@dataclass(frozen=True, slots=True)
class ContainsChecker:
    """Every expected string (or each item of an expected list) occurs in the answer."""

    name: ClassVar[str] = "contains"

    def check(self, answer: Any, expected: Any) -> CheckResult:
        early = _precheck(answer, expected)
        if early is not None:
            return early
        needles = (
            [normalize(e) for e in expected] if isinstance(expected, list | tuple) else [normalize(expected)]
        )
        needles = [n for n in needles if n]
        if not needles:
            return CheckResult(0.0, False, "the expected value is empty: nothing to look for")
        haystack = answer_text(answer)
        missing = [n for n in needles if n not in haystack]
        score = 1.0 - len(missing) / len(needles)
        return CheckResult(score, not missing, f"not found: {_short(missing)}" if missing else None)


@dataclass(frozen=True, slots=True)
class SetF1Checker:
    """F1 between the answer's items and the expected items; correct when F1 >= threshold."""

    name: ClassVar[str] = "set_f1"
    threshold: float = 1.0

    def __post_init__(self) -> None:
        _check_fraction("threshold", self.threshold)

    def check(self, answer: Any, expected: Any) -> CheckResult:
        early = _precheck(answer, expected)
        if early is not None:
            return early
        try:
            got = set(answer_items(answer))
        except MalformedAnswer as exc:
            return CheckResult(0.0, False, str(exc))
        want = set(answer_items(expected))
        if not want and not got:
            return CheckResult(1.0, True)
        hits = len(got & want)
        if hits == 0:
            return CheckResult(0.0, False, f"no expected item found; missing {_short(sorted(want))}")
        precision, recall = hits / len(got), hits / len(want)
        f1 = 2 * precision * recall / (precision + recall)
        missing, extra = sorted(want - got), sorted(got - want)
        detail = "; ".join(
            part
            for part in (
                f"missing {_short(missing)}" if missing else "",
                f"extra {_short(extra)}" if extra else "",
            )
            if part
        )
        return CheckResult(f1, f1 >= self.threshold - _EPS, detail or None)


@dataclass(frozen=True, slots=True)
class TopKOverlapChecker:
    """Share of the expected top k found in the answer's first k items.

    ``k`` defaults to the number of expected items; the denominator never
    exceeds that number. ``ordered`` counts only items at the same position.
    """

    name: ClassVar[str] = "topk_overlap"
    k: int | None = None
    threshold: float = 1.0
    ordered: bool = False

    def __post_init__(self) -> None:
        _check_fraction("threshold", self.threshold)
        if self.k is not None and (not isinstance(self.k, int) or isinstance(self.k, bool) or self.k < 1):
            raise UserError(f"checker parameter k must be a positive integer, got {self.k!r}", "k: 5")
        if not isinstance(self.ordered, bool):
            raise UserError(f"checker parameter ordered must be true or false, got {self.ordered!r}")

    def check(self, answer: Any, expected: Any) -> CheckResult:
        early = _precheck(answer, expected)
        if early is not None:
            return early
        try:
            got = answer_items(answer)
        except MalformedAnswer as exc:
            return CheckResult(0.0, False, str(exc))
        want = answer_items(expected)
        k = self.k if self.k is not None else len(want)
        got, want = got[:k], want[:k]
        if not want:
            return _verdict(not got, "nothing was expected")
        if self.ordered:
            hits = sum(1 for a, e in zip(got, want, strict=False) if a == e)
        else:
            hits = len(set(got) & set(want))
        score = hits / len(want)
        missing = [w for w in want if w not in got]
        return CheckResult(
            score, score >= self.threshold - _EPS, f"missing {_short(missing)}" if missing else None
        )


@dataclass(frozen=True, slots=True)
class NumericChecker:
    """|answer - expected| within ``tolerance`` (absolute) or ``rel_tolerance`` (relative).

    A text answer contributes its first number ("42 reviews" -> 42).
    """

    name: ClassVar[str] = "numeric"
    tolerance: float = 0.0
    rel_tolerance: float | None = None

    def __post_init__(self) -> None:
        for label, value in (("tolerance", self.tolerance), ("rel_tolerance", self.rel_tolerance)):
            if value is not None and (not is_number(value) or value < 0 or math.isnan(value)):
                raise UserError(
                    f"checker parameter {label} must be a number >= 0, got {value!r}", f"{label}: 0.01"
                )

    def expected_problem(self, expected: Any) -> str | None:
        if expected is not None and parse_number(expected) is None:
            return f"expected value {expected!r} is not a number (checker numeric)"
        return None

    def check(self, answer: Any, expected: Any) -> CheckResult:
        early = _precheck(answer, expected)
        if early is not None:
            return early
        want = parse_number(expected)
        if want is None:
            raise UserError(self.expected_problem(expected) or "", "give the task a numeric expected value")
        got = parse_number(answer, first=True)
        if got is None:
            return CheckResult(0.0, False, f"no number in the answer {str(answer)[:80]!r}")
        diff = abs(got - want)
        ok = diff <= self.tolerance + _EPS * max(1.0, abs(want))
        if self.rel_tolerance is not None:
            ok = ok or diff <= self.rel_tolerance * abs(want)
        return _verdict(ok, f"expected {_number_text(want)}, got {_number_text(got)} (off by {diff:g})")


@dataclass(frozen=True, slots=True)
class PythonChecker:
    """``python:module:function``: ``function(answer, expected, **params)``.

    The function returns a bool, a number in [0, 1] (correct when it is 1), or
    a :class:`CheckResult`; it is not called for an empty answer (score 0) but
    does get ``expected=None``. An exception inside it scores that answer 0 with
    the exception as detail, so one odd answer does not stop a batch.
    """

    name: ClassVar[str] = "python"
    target: str
    function: Callable[..., Any]
    params: Mapping[str, Any]

    @classmethod
    def load(cls, target: str, params: Mapping[str, Any]) -> PythonChecker:
        parts = target.split(":")
        if len(parts) != 3 or not parts[1] or not parts[2]:
            raise UserError(f"bad python checker {target!r}", "write it as python:package.module:function")
        _, module_name, attr = parts
        try:
            module = importlib.import_module(module_name)
        except Exception as exc:  # an import runs arbitrary code: any failure is the user's to fix
            raise UserError(
                f"cannot import checker module {module_name!r}: {type(exc).__name__}: {exc}",
                "make the module importable (install it or add its folder to PYTHONPATH)",
            ) from exc
        function = getattr(module, attr, None)
        if not callable(function):
            raise UserError(
                f"module {module_name!r} has no function {attr!r}",
                f"define {attr}(answer, expected) in {module_name}",
            )
        return cls(target, function, dict(params))

    def check(self, answer: Any, expected: Any) -> CheckResult:
        if answer is None or (isinstance(answer, str) and not clean_text(answer)):
            return CheckResult(0.0, False, "empty answer")
        try:
            value = self.function(answer, expected, **self.params)
        except Exception as exc:
            return CheckResult(0.0, False, f"{self.target} raised {type(exc).__name__}: {exc}")
        if isinstance(value, CheckResult):
            return value
        if isinstance(value, bool):
            return CheckResult(1.0 if value else 0.0, value)
        if is_number(value) and not math.isnan(value):
            score = min(1.0, max(0.0, float(value)))
            return CheckResult(score, score >= 1.0 - _EPS)
        raise UserError(
            f"checker {self.target} returned {type(value).__name__}",
            "return a bool, a number in [0, 1] or a recorder.checkers.CheckResult",
        )


CHECKERS: dict[
    str, type[ExactChecker | ContainsChecker | SetF1Checker | TopKOverlapChecker | NumericChecker]
] = {
    cls.name: cls for cls in (ExactChecker, ContainsChecker, SetF1Checker, TopKOverlapChecker, NumericChecker)
}


def _choices() -> str:
    return ", ".join(CHECKERS) + ", or python:module:function"


def checker_name(spec: str | Mapping[str, Any]) -> str:
    """The name a spec refers to, for display ("numeric", "python:m:f")."""
    if isinstance(spec, Mapping):
        return str(spec.get("name", "?"))
    return str(spec).strip()


def get_checker(spec: str | Mapping[str, Any]) -> Checker:
    """Build the checker a task names: ``"exact"``, ``{"name": "numeric", "tolerance": 1}``, ``"python:m:f"``."""
    if isinstance(spec, Mapping):
        name = spec.get("name")
        if not isinstance(name, str) or not name.strip():
            raise UserError(
                "a checker mapping needs a name",
                f"write e.g. {{name: numeric, tolerance: 0.5}}; choices: {_choices()}",
            )
        params = {str(k): v for k, v in spec.items() if k != "name"}
    elif isinstance(spec, str):
        name, params = spec, {}
    else:
        raise UserError(
            f"a checker must be a name or a mapping, got {type(spec).__name__}", f"one of: {_choices()}"
        )
    name = name.strip()
    if name.startswith("python:"):
        return PythonChecker.load(name, params)
    cls = CHECKERS.get(name)
    if cls is None:
        close = difflib.get_close_matches(name, list(CHECKERS), n=1)
        guess = f" (did you mean {close[0]!r}?)" if close else ""
        raise UserError(f"unknown checker {name!r}{guess}", f"one of: {_choices()}")
    allowed = [f.name for f in fields(cls)]
    unknown = sorted(set(params) - set(allowed))
    if unknown:
        takes = f"it takes {', '.join(allowed)}" if allowed else "it takes no parameters"
        raise UserError(f"checker {name!r} has no parameter {unknown[0]!r}", f"drop it: {takes}")
    return cls(**params)
