"""Second level of tactics: join code shapes that feed each other in the runs.

The clusters of ``cluster.py`` are code shapes (``counts = {}``, the loop that fills
``counts``, ``sorted(counts.items(), …)``): precise, but finer than what a person calls one
tactic ("count and rank the names"). Shapes that are written as one procedure show it in
the runs: the next statement reads the name the previous one wrote, and it does so nearly
every time either shape occurs. Two clusters are joined when such *def-use links* between
consecutive steps of a run cover at least ``min_share`` of both clusters' steps; tactics are
the connected components of those links (scipy). Links that happen only some of the time
(an exploration print that reads ``rows`` in one run in ten) stay below the share.

Definitions include mutation of an existing name (``counts[k] = …``, ``out.append(…)``):
the loop that fills a dict defines it for the ``sorted`` that follows. The steps' raw code is
read (normalized code renames variables per step, which would hide the links).
Decision 0006 has the measurements.
"""

from __future__ import annotations

import ast
from collections import Counter
from collections.abc import Sequence
from functools import lru_cache

import numpy as np

__all__ = ["defs_uses", "join_by_dataflow"]

# Methods that change the object they are called on: calling one defines that name anew.
_MUTATORS = frozenset(
    {"append", "extend", "update", "add", "insert", "setdefault", "pop", "remove", "clear", "sort"}
)


@lru_cache(maxsize=65536)
def defs_uses(code: str) -> tuple[frozenset[str], frozenset[str]]:
    """Names a step defines (assigns, imports, mutates) and names it reads."""
    try:
        tree = ast.parse(code)
    except SyntaxError:
        return frozenset(), frozenset()
    defined: set[str] = set()
    read: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Name):
            (defined if isinstance(node.ctx, ast.Store | ast.Del) else read).add(node.id)
        elif isinstance(node, ast.Import | ast.ImportFrom):
            defined.update((a.asname or a.name).split(".")[0] for a in node.names)
        elif isinstance(node, ast.Subscript | ast.Attribute) and isinstance(node.ctx, ast.Store):
            if isinstance(node.value, ast.Name):
                defined.add(node.value.id)
        elif (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr in _MUTATORS
            and isinstance(node.func.value, ast.Name)
        ):
            defined.add(node.func.value.id)
    return frozenset(defined), frozenset(read)


def join_by_dataflow(
    step_cluster: Sequence[int],
    step_code: Sequence[str],
    step_run: Sequence[str],
    n_clusters: int,
    min_share: float,
    min_count: int = 3,
) -> np.ndarray:
    """Per cluster 0..n_clusters-1, the index of its tactic (connected components).

    Steps come in run order (``step_run`` groups them); a cluster of -1 (rare) links nothing.
    """
    size = np.bincount([c for c in step_cluster if c >= 0], minlength=n_clusters)
    links: Counter[tuple[int, int]] = Counter()
    for i in range(len(step_cluster) - 1):
        a, b = step_cluster[i], step_cluster[i + 1]
        if a < 0 or b < 0 or a == b or step_run[i] != step_run[i + 1]:
            continue
        if defs_uses(step_code[i])[0] & defs_uses(step_code[i + 1])[1]:
            links[(min(a, b), max(a, b))] += 1
    rows: list[int] = []
    cols: list[int] = []
    for (a, b), count in sorted(links.items()):
        if count >= min_count and count >= min_share * size[a] and count >= min_share * size[b]:
            rows.append(a)
            cols.append(b)
    if n_clusters == 0:
        return np.zeros(0, dtype=np.int64)
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    graph = coo_matrix((np.ones(len(rows)), (rows, cols)), shape=(n_clusters, n_clusters))
    _, component = connected_components(graph, directed=False)
    return np.asarray(component, dtype=np.int64)
