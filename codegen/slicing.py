"""The backward data-flow slice of a successful run: the code that produced its answer.

Input: the run's REPL cells in execution order (code + whether it failed + the reply
text around it). Output: the top-level statements whose values reach the answer,
in order, with

* the REPL helpers of every engine mapped onto the agent's (``context_0`` →
  ``context``, ``rlm_query`` → ``llm_query``, ``FINAL(x)`` / ``FINAL_VAR("x")`` →
  ``SUBMIT(x)``);
* whatever ended the run turned into one ``SUBMIT(expr)`` statement: a ``SUBMIT``
  call in code, an rlms ``answer = {"content": …, "ready": True}`` (or
  ``answer["ready"] = True``) in code, or ``FINAL_VAR(name)`` / ``FINAL(text)`` in the
  reply text after the iteration's code ran;
* exploration gone: statements whose writes nothing later reads, failed cells (only
  the statements that ran before the failing one are considered), code after the
  submit, and ``print`` calls inside kept statements.

Discovered constants (separators, regexes, chunk sizes, prompt wording) stay as they
were written: they are part of the statements kept.
"""

from __future__ import annotations

import ast
import builtins
import re
from collections.abc import Sequence
from dataclasses import dataclass

from codegen.dataflow import effects
from rlmine.errors import UserError

HELPERS = frozenset({"context", "llm_query", "llm_query_batched", "SUBMIT"})
LLM_HELPERS = frozenset({"llm_query", "llm_query_batched"})
_RENAMES = {"context_0": "context", "rlm_query": "llm_query", "rlm_query_batched": "llm_query_batched"}
_BUILTINS = frozenset(dir(builtins))
_CELL_LINE = re.compile(r'File "<cell \d+>", line (\d+)')
_REPLY_FINAL_VAR = re.compile(r"^\s*FINAL_VAR\(\s*['\"]?([A-Za-z_]\w*)['\"]?\s*\)", re.MULTILINE)
_REPLY_FINAL = re.compile(r"^\s*FINAL\((.*)\)\s*$", re.MULTILINE | re.DOTALL)


class SliceError(UserError):
    """The run's cells cannot be turned into a program (nothing submitted, a name never defined …)."""


@dataclass(frozen=True, slots=True)
class Cell:
    """One executed unit of REPL code (the slicer's input)."""

    code: str
    failed: bool = False
    error: str | None = None
    reply: str = ""  # the reply text outside code fences
    last_in_reply: bool = True  # the last cell of its iteration: the reply's FINAL applies after it


@dataclass(frozen=True, slots=True)
class Slice:
    statements: tuple[str, ...]  # source of each kept top-level statement; the last is SUBMIT(…)
    answer_style: str  # "SUBMIT" | "FINAL_VAR" | "FINAL" | "answer"
    llm_helpers: frozenset[str]  # llm_query / llm_query_batched where the slice calls them
    dropped: int  # top-level statements that ran but do not reach the answer

    @property
    def code(self) -> str:
        return "\n".join(self.statements) + "\n"


class _Normalize(ast.NodeTransformer):
    """Helper names onto the agent's, FINAL/FINAL_VAR onto SUBMIT, prints out."""

    def visit_Name(self, node: ast.Name) -> ast.Name:
        if node.id in _RENAMES:
            return ast.copy_location(ast.Name(_RENAMES[node.id], node.ctx), node)
        return node

    def visit_Call(self, node: ast.Call) -> ast.AST:
        self.generic_visit(node)
        if isinstance(node.func, ast.Name) and node.func.id in ("FINAL", "FINAL_VAR"):
            args = list(node.args)
            first = args[0] if len(args) == 1 else None
            if (
                node.func.id == "FINAL_VAR"
                and isinstance(first, ast.Constant)
                and isinstance(first.value, str)
            ):
                args = [ast.Name(first.value, ast.Load())]
            return ast.copy_location(ast.Call(ast.Name("SUBMIT", ast.Load()), args, node.keywords), node)
        return node


class _DropPrints(ast.NodeTransformer):
    def visit_Expr(self, node: ast.Expr) -> ast.AST | None:
        call = node.value
        if isinstance(call, ast.Call) and isinstance(call.func, ast.Name) and call.func.id == "print":
            return None
        return self.generic_visit(node)

    def generic_visit(self, node: ast.AST) -> ast.AST:
        super().generic_visit(node)
        for name in ("body", "orelse", "finalbody"):
            block = getattr(node, name, None)
            if isinstance(block, list) and not block and name == "body":
                block.append(ast.Pass())
        return node


def _calls(node: ast.AST, name: str) -> bool:
    return any(
        isinstance(n, ast.Call) and isinstance(n.func, ast.Name) and n.func.id == name for n in ast.walk(node)
    )


def _answer_ready(stmt: ast.stmt) -> bool:
    """``answer = {"content": …, "ready": True}`` or ``answer["ready"] = True`` (rlms >= 0.1.2)."""
    if not isinstance(stmt, ast.Assign) or len(stmt.targets) != 1:
        return False
    target, value = stmt.targets[0], stmt.value
    if isinstance(target, ast.Name) and target.id == "answer" and isinstance(value, ast.Dict):
        pairs = {
            k.value: v for k, v in zip(value.keys, value.values, strict=True) if isinstance(k, ast.Constant)
        }
        ready = pairs.get("ready")
        return "content" in pairs and isinstance(ready, ast.Constant) and ready.value is True
    return (
        isinstance(target, ast.Subscript)
        and isinstance(target.value, ast.Name)
        and target.value.id == "answer"
        and isinstance(target.slice, ast.Constant)
        and target.slice.value == "ready"
        and isinstance(value, ast.Constant)
        and value.value is True
    )


def _parse(cell: Cell, index: int) -> list[ast.stmt]:
    """The statements of a cell that ran (for a failed cell: those before the failing one)."""
    try:
        body = _Normalize().visit(ast.parse(cell.code)).body
    except SyntaxError as exc:
        if cell.failed:
            return []  # nothing of it ran
        raise SliceError(
            f"cell {index} does not parse ({exc.msg}, line {exc.lineno})",
            "a run whose cells hold the code as executed (an import may have abbreviated it)",
        ) from exc
    if not cell.failed:
        return list(body)
    found = _CELL_LINE.search(cell.error or "")
    if found is None:
        return []
    line = int(found.group(1))
    return [s for s in body if (s.end_lineno or s.lineno) < line]


def _submit(expr: ast.expr) -> ast.stmt:
    return ast.Expr(ast.Call(ast.Name("SUBMIT", ast.Load()), [expr], []))


def _ran_until_answer(cells: Sequence[Cell]) -> tuple[list[ast.stmt], str]:
    """Every statement that ran, up to and including the one that gave the answer."""
    ran: list[ast.stmt] = []
    for index, cell in enumerate(cells):
        for stmt in _parse(cell, index):
            if not cell.failed and _calls(stmt, "SUBMIT"):
                ran.append(stmt)
                return ran, "SUBMIT"
            ran.append(stmt)
            if not cell.failed and _answer_ready(stmt):
                ran.append(_submit(ast.parse('answer["content"]', mode="eval").body))
                return ran, "answer"
        if cell.last_in_reply and cell.reply:
            var = _REPLY_FINAL_VAR.search(cell.reply)
            if var is not None:
                ran.append(_submit(ast.Name(_RENAMES.get(var.group(1), var.group(1)), ast.Load())))
                return ran, "FINAL_VAR"
            final = _REPLY_FINAL.search(cell.reply)
            if final is not None:
                ran.append(_submit(ast.Constant(final.group(1).strip().strip("\"'"))))
                return ran, "FINAL"
    raise SliceError(
        "the run never gave an answer (no SUBMIT, FINAL or answer['ready'])", "a run that submitted"
    )


def slice_cells(cells: Sequence[Cell]) -> Slice:
    """The backward slice from the answer through ``cells`` (see the module docstring)."""
    ran, style = _ran_until_answer(cells)
    criterion = ran[-1]
    needed = set(effects(criterion).reads)
    kept = [criterion]
    for stmt in reversed(ran[:-1]):
        eff = effects(stmt)
        if eff.writes & needed:
            kept.append(stmt)
            needed = (needed - eff.kills) | eff.reads
    kept.reverse()
    undefined = sorted(needed - HELPERS - _BUILTINS)
    if undefined:
        raise SliceError(
            f"the answer depends on {', '.join(undefined)}, which no cell that ran defines",
            "a run whose cells replay (its failed cells defined what the answer needs)",
        )
    cleaned = [_DropPrints().visit(stmt) for stmt in kept]
    used = {n.id for stmt in cleaned for n in ast.walk(stmt) if isinstance(n, ast.Name)}
    return Slice(
        statements=tuple(ast.unparse(ast.fix_missing_locations(s)) for s in cleaned),
        answer_style=style,
        llm_helpers=frozenset(used & LLM_HELPERS),
        dropped=len(ran) - len(kept),
    )
