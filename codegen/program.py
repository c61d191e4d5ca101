"""A slice as a function: ``def solve_N(context, question_params)`` returning the answer.

The same source text is executed in the sandbox to validate a candidate and written
into the agent script, so what was validated is what ships. ``SUBMIT(x)`` becomes
``return x`` (a ``SUBMIT`` inside a nested function stays a call: the agent's runtime
and the sandbox both define it). The canonical form (:func:`group_key`) names
variables by order of appearance so that runs that differ only in names group together.
"""

from __future__ import annotations

import ast
import builtins
import hashlib
from collections.abc import Sequence

from codegen.params import PARAMS_NAME
from codegen.slicing import HELPERS
from codegen.unparse import unparse

_NO_ANSWER = "raise RuntimeError('the program ended without an answer')"


class _Returns(ast.NodeTransformer):
    def visit_FunctionDef(self, node: ast.FunctionDef) -> ast.AST:
        return node  # SUBMIT in a nested function is a call to the runtime's SUBMIT

    visit_AsyncFunctionDef = visit_Lambda = visit_ClassDef = visit_FunctionDef  # type: ignore[assignment]

    def visit_Expr(self, node: ast.Expr) -> ast.AST:
        call = node.value
        if (
            isinstance(call, ast.Call)
            and isinstance(call.func, ast.Name)
            and call.func.id == "SUBMIT"
            and len(call.args) == 1
            and not call.keywords
        ):
            return ast.copy_location(ast.Return(call.args[0]), node)
        return node


def program_source(name: str, statements: Sequence[str]) -> str:
    """The function ``name(context, question_params)`` running ``statements``."""
    module = ast.parse("\n".join(statements))
    body = _Returns().visit(module).body
    if not body or not isinstance(body[-1], ast.Return):
        body.append(ast.parse(_NO_ANSWER).body[0])
    fn = ast.FunctionDef(
        name=name,
        args=ast.arguments(
            posonlyargs=[],
            args=[ast.arg("context"), ast.arg(PARAMS_NAME)],
            vararg=None,
            kwonlyargs=[],
            kw_defaults=[],
            kwarg=None,
            defaults=[],
        ),
        body=body,
        decorator_list=[],
        returns=None,
    )
    return unparse(ast.Module([fn], [])) + "\n"


class _Canonical(ast.NodeTransformer):
    def __init__(self) -> None:
        self.names: dict[str, str] = {}

    def _rename(self, name: str) -> str:
        if name in HELPERS or name == PARAMS_NAME or hasattr(builtins, name):
            return name
        return self.names.setdefault(name, f"v{len(self.names)}")

    def visit_Name(self, node: ast.Name) -> ast.AST:
        return ast.Name(self._rename(node.id), node.ctx)

    def visit_arg(self, node: ast.arg) -> ast.AST:
        return ast.arg(self._rename(node.arg))


def group_key(statements: Sequence[str]) -> str:
    """A hash of the statements with variables renamed by first appearance (literals kept)."""
    tree = _Canonical().visit(ast.parse("\n".join(statements)))
    return hashlib.sha256(ast.dump(tree).encode()).hexdigest()[:12]
