"""Split an iteration's code into steps: the units that get a tactic.

A step is a top-level statement of the cell, with 1-based inclusive line numbers of
``iterations.code``. Optionally (``SplitOptions(merge_setup=True)``) a run of *setup*
statements (imports, ``x = []``-style initialisations, ``random.seed(…)``) joins the
statement that follows; measured against the simulator's ground truth this merges steps
of different purpose more often than it helps, so it is off by default
(``docs/decisions/0006-miner-steps-and-clusters.md``).

Code that does not parse (imported traces contain prose, REPL prompts, truncated cells)
falls back to *line groups*: blocks separated by blank lines, continuation lines (indented
or inside open brackets) kept with their block. Such steps are marked ``parsed=False`` and
counted by the pipeline, never dropped.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass

__all__ = ["SplitOptions", "Step", "split_code", "split_lines"]


@dataclass(frozen=True, slots=True)
class SplitOptions:
    merge_setup: bool = False  # join a run of setup statements to the next statement (measured: worse)


@dataclass(frozen=True, slots=True)
class Step:
    """One step of one iteration (lines are 1-based, inclusive, of ``iterations.code``)."""

    run_id: str
    iteration: int
    ordinal: int
    line_start: int
    line_end: int
    code: str
    parsed: bool
    failed: bool  # the iteration's cell raised
    reasoning: str = ""  # the reasoning of the reply that wrote the cell (shared by its steps)


_SETUP_CALLS = frozenset({"seed"})


def _is_setup(node: ast.stmt) -> bool:
    if isinstance(node, ast.Import | ast.ImportFrom):
        return True
    if isinstance(node, ast.Assign | ast.AnnAssign):
        value = node.value
        if value is None:
            return True
        if isinstance(value, ast.Constant):
            return True
        if isinstance(value, ast.List | ast.Dict | ast.Set | ast.Tuple) and not _has_children(value):
            return True
        if isinstance(value, ast.Call) and not value.args and not value.keywords:
            return True  # Counter(), defaultdict-free set(): an empty container
    if isinstance(node, ast.Expr) and isinstance(node.value, ast.Call):
        func = node.value.func
        return isinstance(func, ast.Attribute) and func.attr in _SETUP_CALLS
    return False


def _has_children(node: ast.expr) -> bool:
    if isinstance(node, ast.Dict):
        return bool(node.keys)
    if isinstance(node, ast.List | ast.Set | ast.Tuple):
        return bool(node.elts)
    return True


def _statement_spans(tree: ast.Module) -> list[tuple[int, int, bool]]:
    spans: list[tuple[int, int, bool]] = []
    for node in tree.body:
        start = node.lineno
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef) and node.decorator_list:
            start = min(d.lineno for d in node.decorator_list)
        end = node.end_lineno or node.lineno
        spans.append((start, end, _is_setup(node)))
    return spans


def _merge(spans: list[tuple[int, int, bool]]) -> list[tuple[int, int]]:
    out: list[tuple[int, int]] = []
    pending: int | None = None
    for start, end, setup in spans:
        if setup:
            pending = start if pending is None else pending
            continue
        out.append((pending if pending is not None else start, end))
        pending = None
    if pending is not None:  # trailing setup: its own step, or the tail of the last one
        out.append((pending, spans[-1][1]))
    return out


def split_lines(code: str) -> list[tuple[int, int]]:
    """Line groups of code that does not parse: blank-line separated, continuations kept."""
    groups: list[tuple[int, int]] = []
    start: int | None = None
    depth = 0
    lines = code.split("\n")
    for number, line in enumerate(lines, start=1):
        stripped = line.strip()
        if not stripped:
            if start is not None and depth <= 0:
                groups.append((start, number - 1))
                start = None
            continue
        continuation = line[:1] in (" ", "\t") or depth > 0
        if start is None:
            start = number
        elif not continuation and depth <= 0 and not _is_block_start(lines, number):
            groups.append((start, number - 1))
            start = number
        depth += sum(stripped.count(c) for c in "([{") - sum(stripped.count(c) for c in ")]}")
        depth = max(depth, 0)
    if start is not None:
        groups.append((start, len(lines)))
    return [(a, _last_nonblank(lines, a, b)) for a, b in groups]


def _is_block_start(lines: list[str], number: int) -> bool:
    # `else:` / `except …:` / `elif …:` continue the block above.
    head = lines[number - 1].lstrip().split(" ", 1)[0].rstrip(":")
    return head in {"else", "elif", "except", "finally"}


def _last_nonblank(lines: list[str], start: int, end: int) -> int:
    while end > start and not lines[end - 1].strip():
        end -= 1
    return end


def split_code(code: str, options: SplitOptions | None = None) -> tuple[list[tuple[int, int, str]], bool]:
    """``([(line_start, line_end, text), …], parsed)`` for one cell's code."""
    opts = options or SplitOptions()
    lines = code.split("\n")
    try:
        tree = ast.parse(code)
    except (SyntaxError, ValueError):
        spans, parsed = split_lines(code), False
    else:
        raw = _statement_spans(tree)
        spans = _merge(raw) if opts.merge_setup else [(a, b) for a, b, _ in raw]
        parsed = True
    out = [(a, b, "\n".join(lines[a - 1 : b])) for a, b in spans if b >= a]
    return out, parsed
