"""The instance-specific parts of a run's code become parameters read from the question.

A task's instances differ by their template parameters (``k``, ``service``, a date…).
A run on one instance wrote those values into its code as literals (``most_common(4)``,
``"2023-12"``). The agent must read them from the question it is given instead:

* a :class:`QuestionShape` is the question with each parameter value that appears in
  it replaced by a slot; it becomes a regex with one named group per slot;
* a parameter that does not appear in the question but is a known function of one
  that does (a month number from a month name, an int from digits) is *derived*,
  checked on every instance of the task;
* :func:`parameterize` rewrites the literals of the slice that equal a parameter's
  value (or contain it, in a string) into reads of ``question_params[...]`` — except
  in a string that also holds *another* instance's value of the same parameter: that
  string lists the choices (``"positive, negative or neutral"``), it is not this
  instance's value.
"""

from __future__ import annotations

import ast
import calendar
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

PARAMS_NAME = "question_params"
_MONTHS = {name.lower(): i for i, name in enumerate(calendar.month_name) if name}


def _month_number(value: Any) -> int | None:
    return _MONTHS.get(str(value).strip().lower())


def _as_int(value: Any) -> int | None:
    text = str(value).strip()
    return int(text) if text.isdigit() else None


# Derivations the generated agent also knows (by the same names): keep the two in step.
DERIVATIONS: dict[str, Callable[[Any], Any]] = {"month_number": _month_number, "int": _as_int}


@dataclass(frozen=True, slots=True)
class QuestionShape:
    """A question with slots; ``pattern`` recovers the slot values from a new question."""

    template: str  # the question with {name} for each slot
    pattern: str  # full-match regex, one named group per slot
    slots: tuple[tuple[str, str], ...]  # (name, "int" | "str"), in order of first appearance
    derived: tuple[tuple[str, str, str], ...] = ()  # (name, derivation, source slot)

    @property
    def key(self) -> str:
        return self.template

    def to_dict(self) -> dict[str, Any]:
        return {
            "template": self.template,
            "pattern": self.pattern,
            "slots": [list(s) for s in self.slots],
            "derived": [list(d) for d in self.derived],
        }


@dataclass(frozen=True, slots=True)
class Parameters:
    shape: QuestionShape
    values: dict[str, Any] = field(default_factory=dict)  # slot and derived values of this instance


def _scalar(value: Any) -> bool:
    return isinstance(value, str | int) and not isinstance(value, bool) and str(value) != ""


def _spans(question: str, params: Mapping[str, Any]) -> list[tuple[int, int, str]]:
    """Non-overlapping (start, end, name) of each parameter value in the question, longest first."""
    taken: list[tuple[int, int, str]] = []
    for name, value in sorted(params.items(), key=lambda kv: (-len(str(kv[1])), kv[0])):
        if not _scalar(value):
            continue
        text = str(value)
        for m in re.finditer(rf"(?<![\w]){re.escape(text)}(?![\w])", question):
            if all(m.end() <= s or m.start() >= e for s, e, _ in taken):
                taken.append((m.start(), m.end(), name))
    return sorted(taken)


def question_shape(
    question: str, params: Mapping[str, Any], others: Sequence[Mapping[str, Any]] = ()
) -> Parameters:
    """The shape of ``question`` given its instance's ``params``; ``others``: every instance's params."""
    spans = _spans(question, params)
    template, pattern, pos = [], ["^"], 0
    seen: dict[str, str] = {}
    for start, end, name in spans:
        static = question[pos:start]
        template.append(static.replace("{", "{{").replace("}", "}}"))
        pattern.append(re.escape(static))
        template.append("{" + name + "}")
        if name in seen:
            pattern.append(f"(?P={name})")
        else:
            kind = "int" if isinstance(params[name], int) else "str"
            seen[name] = kind
            pattern.append(rf"(?P<{name}>-?\d+)" if kind == "int" else rf"(?P<{name}>.+?)")
        pos = end
    template.append(question[pos:].replace("{", "{{").replace("}", "}}"))
    pattern += [re.escape(question[pos:]), "$"]
    values: dict[str, Any] = {name: params[name] for name in seen}
    derived: list[tuple[str, str, str]] = []
    for name, value in sorted(params.items()):
        if name in seen or not _scalar(value):
            continue
        found = _derivation(name, value, seen, params, others)
        if found is not None:
            derived.append((name, *found))
            values[name] = value
    # Without slots the code does not depend on the question: any question will do.
    regex = "".join(pattern) if seen else "^.*$"
    shape = QuestionShape("".join(template), regex, tuple(seen.items()), tuple(derived))
    return Parameters(shape, values)


def _derivation(
    name: str,
    value: Any,
    slots: Mapping[str, str],
    params: Mapping[str, Any],
    others: Sequence[Mapping[str, Any]],
) -> tuple[str, str] | None:
    for source in slots:
        for label, fn in DERIVATIONS.items():
            if fn(params[source]) != value:
                continue
            pairs = [o for o in others if source in o and name in o]
            if all(fn(o[source]) == o[name] for o in pairs):
                return label, source
    return None


def extract(shape: QuestionShape, question: str) -> dict[str, Any] | None:
    """Slot and derived values of ``question``, or None when it does not have this shape."""
    m = re.match(shape.pattern, question, re.DOTALL)
    if m is None:
        return None
    values: dict[str, Any] = {}
    for name, kind in shape.slots:
        raw = m.group(name)
        values[name] = int(raw) if kind == "int" else raw
    for name, how, source in shape.derived:
        values[name] = DERIVATIONS[how](values[source])
    return values


class _Literals(ast.NodeTransformer):
    """Literals equal to (or containing) a parameter's value → reads of ``question_params``."""

    def __init__(self, values: Mapping[str, Any], others: Mapping[str, set[str]] | None = None) -> None:
        self.others = others or {}
        self.ints = {v: k for k, v in sorted(values.items(), reverse=True) if isinstance(v, int)}
        self.strs = {v: k for k, v in sorted(values.items(), reverse=True) if isinstance(v, str)}
        self.forms = self._forms(values)
        self.replaced: set[str] = set()

    @staticmethod
    def _forms(values: Mapping[str, Any]) -> list[tuple[str, str, str | None]]:
        """(text, name, format spec) to look for inside strings, longest first."""
        out: list[tuple[str, str, str | None]] = []
        for name, value in values.items():
            if isinstance(value, str) and len(value) >= 3:
                out.append((value, name, None))
            elif isinstance(value, int) and not isinstance(value, bool):
                if len(str(value)) >= 2:
                    out.append((str(value), name, None))
                if 0 <= value < 10:
                    out.append((f"{value:02d}", name, "02d"))
        return sorted(out, key=lambda f: (-len(f[0]), f[1]))

    def _read(self, name: str) -> ast.expr:
        self.replaced.add(name)
        return ast.Subscript(ast.Name(PARAMS_NAME, ast.Load()), ast.Constant(name), ast.Load())

    def visit_Subscript(self, node: ast.Subscript) -> ast.AST:
        # An index (x[2], row["k"]) is a position or a key, never a parameter; a slice bound
        # may be one (ranked[:k]).
        node.value = self.visit(node.value)
        if isinstance(node.slice, ast.Slice):
            node.slice = self.visit(node.slice)
        return node

    def visit_JoinedStr(self, node: ast.JoinedStr) -> ast.AST:
        return node

    def visit_Constant(self, node: ast.Constant) -> ast.AST:
        value = node.value
        if isinstance(value, bool):
            return node
        if isinstance(value, int) and value in self.ints and value not in (0, 1):
            return self._read(self.ints[value])
        if isinstance(value, str):
            if value in self.strs:
                return self._read(self.strs[value])
            return self._inside(value) or node
        return node

    def _inside(self, text: str) -> ast.expr | None:
        pieces: list[ast.expr] = []
        pos, hit = 0, False
        pattern = "|".join(rf"(?<![\w]){re.escape(f[0])}(?![\w])" for f in self.forms)
        if not pattern:
            return None
        lookup = {f[0]: f for f in self.forms}
        listed = {name for name, alts in self.others.items() if any(_has_word(text, alt) for alt in alts)}
        for m in re.finditer(pattern, text):
            _, name, spec = lookup[m.group(0)]
            if name in listed:
                continue
            if spec is None and m.group(0).isdigit() and len(m.group(0)) == 2 and _date_like(text, m):
                spec = "02d"  # a month or hour in a date: 12 here, 06 in another instance
            if m.start() > pos:
                pieces.append(ast.Constant(text[pos : m.start()]))
            fmt = ast.JoinedStr([ast.Constant(spec)]) if spec else None
            pieces.append(ast.FormattedValue(self._read(name), -1, fmt))
            pos, hit = m.end(), True
        if not hit:
            return None
        if pos < len(text):
            pieces.append(ast.Constant(text[pos:]))
        return ast.JoinedStr(pieces)


def _has_word(text: str, word: str) -> bool:
    return len(word) >= 3 and re.search(rf"(?<![\w]){re.escape(word)}(?![\w])", text) is not None


def _date_like(text: str, m: re.Match[str]) -> bool:
    before = text[m.start() - 1] if m.start() else ""
    after = text[m.end()] if m.end() < len(text) else ""
    return before in ("-", "/", ":") or after in ("-", "/", ":")


def parameterize(
    statements: Sequence[str], values: Mapping[str, Any], others: Sequence[Mapping[str, Any]] = ()
) -> tuple[list[str], set[str]]:
    """The statements with parameter literals replaced; and the parameters actually used.

    ``others``: every instance's parameters, to tell a listing of choices from a value.
    """
    if not values:
        return list(statements), set()
    alternatives: dict[str, set[str]] = {}
    for params in others:
        for name, value in params.items():
            if name in values and isinstance(value, str) and value != values[name]:
                alternatives.setdefault(name, set()).add(value)
    rewriter = _Literals(values, alternatives)
    out = []
    for source in statements:
        tree = rewriter.visit(ast.parse(source))
        out.append(ast.unparse(ast.fix_missing_locations(tree)))
    return out, rewriter.replaced
