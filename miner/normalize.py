"""A canonical form of a step, so that the same tactic written twice reads the same.

What changes: variables (and function arguments) are renamed ``v1, v2, …`` in order of
first use within the step; string literals become ``STR`` (``RE`` when passed to ``re``,
kept when they are short separators such as ``"\\n"`` or ``", "``); numbers become ``NUM``
unless small integers (-1..10: slice ends, ``most_common(5)``, indices carry meaning);
f-strings and labels of ``print`` calls collapse to the printed expressions, so the three
print styles real models use read alike; comments and layout disappear (``ast.unparse``).

What stays: builtins, ``context``, the REPL API (``llm_query``, ``llm_query_batched``) and
every attribute or imported name (``re.findall``, ``Counter``, ``splitlines``,
``json.loads``). The endings of every engine (``SUBMIT``, rlms ``FINAL``/``FINAL_VAR``)
all read ``SUBMIT``. Code that does not parse gets the same treatment by regular
expressions over its tokens.
"""

from __future__ import annotations

import ast
import builtins
import re

__all__ = ["KEPT_NAMES", "normalize", "normalize_text", "tokens"]

SUBMIT_NAMES = frozenset({"SUBMIT", "FINAL", "FINAL_VAR"})
KEPT_NAMES = frozenset(
    {
        *dir(builtins),
        "context",
        "llm_query",
        "llm_query_batched",
        "SUBMIT",
        # modules and APIs commonly used without an import in the same step
        "re",
        "json",
        "math",
        "random",
        "collections",
        "itertools",
        "functools",
        "statistics",
        "string",
        "datetime",
        "textwrap",
        "Counter",
        "defaultdict",
        "OrderedDict",
        "np",
        "pd",
        "numpy",
        "pandas",
    }
)
_RE_FUNCS = frozenset({"compile", "findall", "finditer", "search", "match", "fullmatch", "sub", "split"})
_SEPARATOR = re.compile(r"^[\s,;:|/\-_.=>#*\[\](){}'\"]{0,4}$")
_SMALL_INT = range(-1, 11)
_PLACEHOLDERS = frozenset({"STR", "NUM", "RE"})


class _Canonical(ast.NodeTransformer):
    def __init__(self) -> None:
        self.names: dict[str, str] = {}
        self.imported: set[str] = set()

    def _rename(self, name: str) -> str:
        if name in SUBMIT_NAMES:
            return "SUBMIT"
        if name in KEPT_NAMES or name in self.imported or name in _PLACEHOLDERS:
            return name
        if name not in self.names:
            self.names[name] = f"v{len(self.names) + 1}"
        return self.names[name]

    def visit_Import(self, node: ast.Import) -> ast.AST:
        for alias in node.names:
            self.imported.add((alias.asname or alias.name).split(".")[0])
        return node

    def visit_ImportFrom(self, node: ast.ImportFrom) -> ast.AST:
        for alias in node.names:
            self.imported.add(alias.asname or alias.name)
        return node

    def visit_Name(self, node: ast.Name) -> ast.AST:
        return ast.copy_location(ast.Name(id=self._rename(node.id), ctx=node.ctx), node)

    def visit_arg(self, node: ast.arg) -> ast.AST:
        node.arg = self._rename(node.arg)
        node.annotation = None
        return node

    def visit_FunctionDef(self, node: ast.FunctionDef) -> ast.AST:
        node.name = self._rename(node.name)
        node.returns = None
        if node.body and isinstance(node.body[0], ast.Expr) and isinstance(node.body[0].value, ast.Constant):
            node.body = node.body[1:] or [ast.Pass()]  # a docstring is a comment
        self.generic_visit(node)
        return node

    def visit_Constant(self, node: ast.Constant) -> ast.AST:
        value = node.value
        if isinstance(value, bool) or value is None:
            return node
        if isinstance(value, int):
            return node if value in _SMALL_INT else _placeholder("NUM", node)
        if isinstance(value, float | complex):
            return _placeholder("NUM", node)
        if isinstance(value, str):
            return node if _SEPARATOR.match(value) else _placeholder("STR", node)
        return _placeholder("STR", node)

    def visit_JoinedStr(self, node: ast.JoinedStr) -> ast.AST:
        # f"label = {expr!r}" -> (STR, expr): the printed values, not the layout.
        parts: list[ast.expr] = [_placeholder("STR", node)]
        for value in node.values:
            if isinstance(value, ast.FormattedValue):
                parts.append(self.visit(value.value))
        return ast.copy_location(ast.Tuple(elts=parts, ctx=ast.Load()), node)

    def visit_Call(self, node: ast.Call) -> ast.AST:
        func = node.func
        if isinstance(func, ast.Name) and func.id == "print":
            node.args = [a for a in node.args if not _is_label(a)]
            node.args = [_unwrap_label_tuple(self.visit(a)) for a in node.args]
            node.keywords = [self.visit(k) for k in node.keywords if k.arg not in ("sep", "end")]
            return node
        is_re = isinstance(func, ast.Attribute) and isinstance(func.value, ast.Name) and func.value.id == "re"
        if is_re and isinstance(func, ast.Attribute) and func.attr in _RE_FUNCS and node.args:
            first = node.args[0]
            if isinstance(first, ast.Constant) and isinstance(first.value, str):
                node.args[0] = _placeholder("RE", first)
        self.generic_visit(node)
        return node


def _is_label(node: ast.expr) -> bool:
    return isinstance(node, ast.Constant) and isinstance(node.value, str)


def _unwrap_label_tuple(node: ast.AST) -> ast.expr:
    # print(f"...{x}...") became print((STR, x)): keep only the printed expressions.
    if isinstance(node, ast.Tuple):
        rest = [e for e in node.elts if not (isinstance(e, ast.Name) and e.id == "STR")]
        if len(rest) == 1:
            return rest[0]
        if rest:
            return ast.Tuple(elts=rest, ctx=ast.Load())
    assert isinstance(node, ast.expr)
    return node


def _placeholder(kind: str, node: ast.AST) -> ast.Name:
    return ast.copy_location(ast.Name(id=kind, ctx=ast.Load()), node)


def normalize(code: str) -> tuple[str, bool]:
    """``(canonical text, parsed)``; unparseable code goes through :func:`normalize_text`."""
    try:
        tree = ast.parse(code)
    except (SyntaxError, ValueError):
        return normalize_text(code), False
    tree = _Canonical().visit(tree)
    return ast.unparse(tree), True  # unparse needs no line numbers on the new nodes


_STRING = re.compile(
    r"(?s)('''.*?'''|\"\"\".*?\"\"\"|[rbfuRBFU]{0,2}'(?:\\.|[^'\\\n])*'|[rbfuRBFU]{0,2}\"(?:\\.|[^\"\\\n])*\")"
)
_COMMENT = re.compile(r"#[^\n]*")
_NUMBER = re.compile(r"\b\d+(?:\.\d+)?\b")
_IDENT = re.compile(r"(?<![\w.])[A-Za-z_]\w*")
_KEYWORDS = frozenset(
    [
        "and",
        "as",
        "assert",
        "async",
        "await",
        "break",
        "class",
        "continue",
        "def",
        "del",
        "elif",
        "else",
        "except",
        "finally",
        "for",
        "from",
        "global",
        "if",
        "import",
        "in",
        "is",
        "lambda",
        "nonlocal",
        "not",
        "or",
        "pass",
        "raise",
        "return",
        "try",
        "while",
        "with",
        "yield",
    ]
)


def normalize_text(code: str) -> str:
    """The canonical form by regular expressions, for code that does not parse."""
    text = _STRING.sub(lambda m: m.group(0) if _SEPARATOR.match(m.group(0)[1:-1]) else "STR", code)
    text = _COMMENT.sub("", text)
    text = _NUMBER.sub(
        lambda m: m.group(0) if m.group(0).isdigit() and int(m.group(0)) <= 10 else "NUM", text
    )
    names: dict[str, str] = {}

    def rename(m: re.Match[str]) -> str:
        word = m.group(0)
        if word in SUBMIT_NAMES:
            return "SUBMIT"
        if word in KEPT_NAMES or word in _KEYWORDS or word in ("STR", "NUM"):
            return word
        return names.setdefault(word, f"v{len(names) + 1}")

    text = _IDENT.sub(rename, text)
    return "\n".join(" ".join(line.split()) for line in text.splitlines() if line.strip())


_TOKEN = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_PLACEHOLDER = re.compile(r"^(v\d+|STR|NUM|RE)$")


def tokens(normalized: str) -> list[str]:
    """Identifier tokens of a canonical form, placeholders and keywords left out (for labels)."""
    return [t for t in _TOKEN.findall(normalized) if not _PLACEHOLDER.match(t) and t not in _KEYWORDS]
