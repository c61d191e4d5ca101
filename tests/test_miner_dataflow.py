"""Second-level tactics: code shapes joined by def-use links between consecutive steps."""

from __future__ import annotations

import numpy as np

from miner.cluster import ClusterOptions, Clusters, regroup
from miner.dataflow import defs_uses, join_by_dataflow


def test_defs_include_assignment_imports_and_mutation() -> None:
    assert defs_uses("counts = {}")[0] == {"counts"}
    assert defs_uses("import json\nfrom collections import Counter as C")[0] == {"json", "C"}
    fill = "for name in known:\n    counts[name] = flat.count(name)"
    defined, read = defs_uses(fill)
    assert {"counts", "name"} <= defined and {"known", "flat", "counts"} <= read
    assert "hits" in defs_uses("hits.append(1)")[0]
    assert defs_uses("not python (") == (frozenset(), frozenset())


def _runs(n: int, with_print_every: int) -> tuple[list[int], list[str], list[str]]:
    # Shapes 0 -> 1 -> 2 always feed each other; shape 3 (a print of `ranked`) follows only
    # some of the time; shape 4 reads nothing the step before wrote.
    clusters: list[int] = []
    codes: list[str] = []
    runs: list[str] = []
    for r in range(n):
        cell = [
            (4, "print(len(context))"),
            (0, "counts = {}"),
            (1, "for k in rows:\n    counts[k] = counts.get(k, 0) + 1"),
            (2, "ranked = sorted(counts.items())"),
        ]
        if r % with_print_every == 0:
            cell.append((3, "print(ranked[:5])"))
        for c, code in cell:
            clusters.append(c)
            codes.append(code)
            runs.append(f"run{r}")
    return clusters, codes, runs


def test_shapes_that_always_feed_each_other_become_one_tactic() -> None:
    clusters, codes, runs = _runs(20, with_print_every=4)
    group = join_by_dataflow(clusters, codes, runs, 5, min_share=0.7)
    assert group[0] == group[1] == group[2]
    assert len({group[0], group[3], group[4]}) == 3  # occasional readers and strangers stay apart
    # When the print follows every time, it is part of the procedure too.
    clusters, codes, runs = _runs(20, with_print_every=1)
    group = join_by_dataflow(clusters, codes, runs, 5, min_share=0.7)
    assert group[2] == group[3] and group[4] != group[0]


def test_links_do_not_cross_runs_and_rare_steps_link_nothing() -> None:
    clusters = [0, 1, -1, 0, 1]
    codes = ["x = 1", "y = x", "z = y", "x = 1", "y = x"]
    # Each run ends where the next begins: 0 -> 1 never happens inside a run.
    group = join_by_dataflow(clusters, codes, ["a", "b", "b", "c", "d"], 2, min_share=0.5, min_count=1)
    assert group[0] != group[1]
    group = join_by_dataflow(clusters, codes, ["a", "a", "b", "c", "c"], 2, min_share=0.5, min_count=1)
    assert group[0] == group[1]


def test_regroup_joins_clusters_and_keeps_rare_steps_rare() -> None:
    vectors = np.eye(4, dtype=np.float32)
    before = Clusters(np.array([0, 1, 2, -1]), [0, 1, 2], [5, 4, 3])
    after = regroup(vectors, [5, 4, 3, 1], before, np.array([0, 0, 1]), ClusterOptions(min_size=3))
    assert list(after.labels) == [0, 0, 1, -1]
    assert after.sizes == [9, 3]
    assert after.medoids[0] == 0  # the heavier member is the medoid of the joined tactic
