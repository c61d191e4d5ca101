"""Names read and written by one Python statement, for the backward slice.

A statement *reads* a name when its value can flow in from earlier code (an
upward-exposed load: a loop variable read inside its own loop is not one) and
*writes* it when it binds or may change it. Writes come in two strengths:

* **kills** — a plain top-level binding (``x = …``, ``import x``, ``def x``): the
  earlier value of ``x`` is dead afterwards;
* **touches** — a conditional binding (inside ``if``/``for``/``try``) or a
  mutation through a method call, a subscript, an attribute or ``+=``: the earlier
  value still matters, so the statement both reads and writes the name.

Method calls are assumed to mutate their receiver unless the method is known to be
pure (:data:`PURE_METHODS`): keeping a statement too many is safe, dropping one
that mattered is not.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass

# Methods of str, bytes, list, dict, set, Counter and re objects that never change their
# receiver, and common module functions (json.loads, re.compile, random.sample …) that leave
# the module as it was. ``random.seed`` is not here: it changes what ``random.sample`` returns.
PURE_METHODS = frozenset(
    """capitalize casefold center count decode encode endswith expandtabs find format format_map index
    isalnum isalpha isascii isdecimal isdigit isidentifier islower isnumeric isprintable isspace istitle
    isupper join ljust lower lstrip partition removeprefix removesuffix replace rfind rindex rjust
    rpartition rsplit rstrip split splitlines startswith strip swapcase title translate upper zfill
    copy get items keys values most_common elements total difference intersection issubset issuperset
    isdisjoint symmetric_difference union match search findall finditer fullmatch sub subn group groups
    groupdict span start end isoformat strftime hex tolist
    loads dumps compile escape sample choice randint randrange sqrt floor ceil log exp fromisoformat
    strptime fromtimestamp date time now today path exists isfile isdir basename dirname splitext
    array mean median quantile percentile argmax argmin""".split()  # noqa: SIM905 (a word list reads better)
)


@dataclass(frozen=True, slots=True)
class Effects:
    reads: frozenset[str]
    kills: frozenset[str]
    touches: frozenset[str]

    @property
    def writes(self) -> frozenset[str]:
        return self.kills | self.touches


def _target_names(target: ast.expr) -> tuple[set[str], set[str]]:
    """(names bound, names mutated) by an assignment target."""
    if isinstance(target, ast.Name):
        return {target.id}, set()
    if isinstance(target, ast.Tuple | ast.List):
        bound: set[str] = set()
        mutated: set[str] = set()
        for elt in target.elts:
            b, m = _target_names(elt.value if isinstance(elt, ast.Starred) else elt)
            bound |= b
            mutated |= m
        return bound, mutated
    if isinstance(target, ast.Attribute | ast.Subscript):
        base: ast.expr = target
        while isinstance(base, ast.Attribute | ast.Subscript):
            base = base.value
        return set(), ({base.id} if isinstance(base, ast.Name) else set())
    return set(), set()


class _Scanner(ast.NodeVisitor):
    """Walks one statement in execution order, collecting exposed reads and writes."""

    def __init__(self) -> None:
        self.bound: set[str] = set()
        self.reads: set[str] = set()
        self.bind: set[str] = set()
        self.mutate: set[str] = set()

    def _read(self, name: str) -> None:
        if name not in self.bound:
            self.reads.add(name)

    def _mutate(self, name: str) -> None:
        """A change to an object bound before this statement: it reads and writes the name."""
        if name not in self.bound:
            self.reads.add(name)
            self.mutate.add(name)

    def _bind_target(self, target: ast.expr) -> None:
        bound, mutated = _target_names(target)
        # A subscript or attribute target evaluates its base and index: visit them as loads.
        if isinstance(target, ast.Attribute | ast.Subscript):
            self.visit(target.value)
            if isinstance(target, ast.Subscript):
                self.visit(target.slice)
        elif isinstance(target, ast.Tuple | ast.List):
            for elt in target.elts:
                inner = elt.value if isinstance(elt, ast.Starred) else elt
                if isinstance(inner, ast.Attribute | ast.Subscript):
                    self._bind_target(inner)
        for name in mutated:
            self._mutate(name)
        self.bind |= bound
        self.bound |= bound

    # -- expressions -------------------------------------------------------------
    def visit_Name(self, node: ast.Name) -> None:
        if isinstance(node.ctx, ast.Load):
            self._read(node.id)

    def visit_Call(self, node: ast.Call) -> None:
        func = node.func
        if isinstance(func, ast.Attribute) and func.attr not in PURE_METHODS:
            base: ast.expr = func.value
            while isinstance(base, ast.Attribute | ast.Subscript):
                base = base.value
            if isinstance(base, ast.Name):
                self._mutate(base.id)
        self.generic_visit(node)

    def _scope(self, params: set[str], body: list[ast.AST]) -> None:
        """A nested scope (function, lambda, comprehension): its free names are reads here."""
        inner = _Scanner()
        inner.bound = set(params)
        for item in body:
            inner.visit(item)
        for name in inner.reads:
            self._read(name)
        # A nested scope mutating an outer object still changes it.
        for name in inner.mutate - inner.bind - params:
            self._mutate(name)

    def _comprehension(self, node: ast.ListComp | ast.SetComp | ast.GeneratorExp | ast.DictComp) -> None:
        gens = node.generators
        self.visit(gens[0].iter)  # the first iterable is evaluated in the enclosing scope
        inner = _Scanner()
        for i, gen in enumerate(gens):
            if i:
                inner.visit(gen.iter)
            inner._bind_target(gen.target)
            for cond in gen.ifs:
                inner.visit(cond)
        elts: list[ast.expr] = [node.key, node.value] if isinstance(node, ast.DictComp) else [node.elt]
        for elt in elts:
            inner.visit(elt)
        for name in inner.reads:
            self._read(name)
        for name in inner.mutate - inner.bind:
            self._mutate(name)

    visit_ListComp = visit_SetComp = visit_GeneratorExp = visit_DictComp = _comprehension

    def visit_Lambda(self, node: ast.Lambda) -> None:
        self._scope(_params(node.args), [node.body])

    # -- statements --------------------------------------------------------------
    def visit_Assign(self, node: ast.Assign) -> None:
        self.visit(node.value)
        for target in node.targets:
            self._bind_target(target)

    def visit_AnnAssign(self, node: ast.AnnAssign) -> None:
        if node.value is not None:
            self.visit(node.value)
            self._bind_target(node.target)

    def visit_AugAssign(self, node: ast.AugAssign) -> None:
        self.visit(node.value)
        bound, mutated = _target_names(node.target)
        for name in bound | mutated:
            self._mutate(name)
        if isinstance(node.target, ast.Attribute | ast.Subscript):
            self._bind_target(node.target)

    def visit_For(self, node: ast.For | ast.AsyncFor) -> None:
        self.visit(node.iter)
        self._bind_target(node.target)
        for stmt in [*node.body, *node.orelse]:
            self.visit(stmt)

    visit_AsyncFor = visit_For

    def visit_With(self, node: ast.With | ast.AsyncWith) -> None:
        for item in node.items:
            self.visit(item.context_expr)
            if item.optional_vars is not None:
                self._bind_target(item.optional_vars)
        for stmt in node.body:
            self.visit(stmt)

    visit_AsyncWith = visit_With

    def visit_ExceptHandler(self, node: ast.ExceptHandler) -> None:
        if node.type is not None:
            self.visit(node.type)
        if node.name:
            self.bind.add(node.name)
            self.bound.add(node.name)
        for stmt in node.body:
            self.visit(stmt)

    def visit_Import(self, node: ast.Import | ast.ImportFrom) -> None:
        for alias in node.names:
            name = alias.asname or alias.name.split(".")[0]
            if name != "*":
                self.bind.add(name)
                self.bound.add(name)

    visit_ImportFrom = visit_Import

    def visit_FunctionDef(self, node: ast.FunctionDef | ast.AsyncFunctionDef) -> None:
        for expr in [*node.decorator_list, *node.args.defaults, *node.args.kw_defaults]:
            if expr is not None:
                self.visit(expr)
        self._scope(_params(node.args) | {node.name}, list(node.body))
        self.bind.add(node.name)
        self.bound.add(node.name)

    visit_AsyncFunctionDef = visit_FunctionDef

    def visit_ClassDef(self, node: ast.ClassDef) -> None:
        for expr in [*node.bases, *node.decorator_list]:
            self.visit(expr)
        self._scope({node.name}, list(node.body))
        self.bind.add(node.name)
        self.bound.add(node.name)

    def visit_Global(self, node: ast.Global) -> None:
        return None

    def visit_Nonlocal(self, node: ast.Nonlocal) -> None:
        return None


def _params(args: ast.arguments) -> set[str]:
    names = {a.arg for a in [*args.posonlyargs, *args.args, *args.kwonlyargs]}
    if args.vararg:
        names.add(args.vararg.arg)
    if args.kwarg:
        names.add(args.kwarg.arg)
    return names


_UNCONDITIONAL = (
    ast.Assign, ast.AnnAssign, ast.Import, ast.ImportFrom, ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef,
)  # fmt: skip


def effects(stmt: ast.stmt) -> Effects:
    """What a top-level statement reads, kills and touches."""
    scan = _Scanner()
    scan.visit(stmt)
    kills = (scan.bind - scan.mutate) if isinstance(stmt, _UNCONDITIONAL) else set()
    touches = (scan.bind | scan.mutate) - kills
    return Effects(frozenset(scan.reads), frozenset(kills), frozenset(touches))
