"""``ast.unparse`` without the doubled parentheses Python 3.11 writes around a lone generator argument.

``f((x for x in y))`` is what 3.11 writes for ``f(x for x in y)``: valid, but ruff (UP034)
flags it in the generated script. Names ruff finds ambiguous (``l``, ``O``, ``I``: E741)
get a trailing underscore, ``zip`` says ``strict=False`` (its default: B905), and a lambda
bound to a name keeps its line with a ``noqa``.
"""

from __future__ import annotations

import ast
from typing import Any

_AMBIGUOUS = frozenset({"l", "O", "I"})


class _Unparser(ast._Unparser):  # type: ignore[name-defined,misc]  # the stdlib's own unparser
    def visit_Call(self, node: ast.Call) -> None:
        if len(node.args) == 1 and not node.keywords and isinstance(node.args[0], ast.GeneratorExp):
            self.set_precedence(ast._Precedence.ATOM, node.func)  # type: ignore[attr-defined]
            self.traverse(node.func)
            self.traverse(node.args[0])  # writes its own parentheses
            return
        super().visit_Call(node)


class _Rename(ast.NodeTransformer):
    def __init__(self, taken: set[str]) -> None:
        self.map: dict[str, str] = {}
        for name in sorted(_AMBIGUOUS & taken):
            new = name + "_"
            while new in taken:
                new += "_"
            self.map[name] = new

    def visit_Name(self, node: ast.Name) -> Any:
        return ast.copy_location(ast.Name(self.map.get(node.id, node.id), node.ctx), node)

    def visit_arg(self, node: ast.arg) -> Any:
        node.arg = self.map.get(node.arg, node.arg)
        return node

    def visit_Call(self, node: ast.Call) -> Any:
        self.generic_visit(node)
        func = node.func
        if (
            isinstance(func, ast.Name)
            and func.id == "zip"
            and not any(k.arg == "strict" for k in node.keywords)
        ):
            node.keywords.append(ast.keyword("strict", ast.Constant(False)))  # zip's default, said (B905)
        return node


def unparse(tree: ast.AST) -> str:
    """Source text for ``tree`` (see the module docstring for what differs from ``ast.unparse``)."""
    names = {n.id for n in ast.walk(tree) if isinstance(n, ast.Name)}
    names |= {n.arg for n in ast.walk(tree) if isinstance(n, ast.arg)}
    tree = _Rename(names).visit(tree)
    text: str = _Unparser().visit(ast.fix_missing_locations(tree))
    lines = []
    for line in text.splitlines():
        stripped = line.lstrip()
        head = stripped.split("=", 1)
        if len(head) == 2 and head[0].strip().isidentifier() and head[1].lstrip().startswith("lambda"):
            line += "  # noqa: E731"
        lines.append(line)
    return "\n".join(lines)
