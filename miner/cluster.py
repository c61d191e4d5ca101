"""Tactics: cluster distinct step vectors, find medoids, keep ids stable across minings.

Agglomerative clustering (scikit-learn, cosine distance, average linkage) cut at a distance
threshold: the number of tactics is found, not given, and the same input (in the same
order: distinct steps sorted by hash) gives the same clusters. Above ``max_direct``
distinct steps the clustering runs on the most frequent ones and the rest join the
nearest cluster centroid within the threshold (memory stays bounded: agglomerative
clustering is quadratic). Clusters covering fewer than ``min_size`` steps are *rare*
(label -1): visible as outliers, not promoted to tactics. Decision 0006 has the numbers.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

__all__ = ["ClusterOptions", "Clusters", "cluster_vectors", "match_ids", "member_hashes", "regroup"]


@dataclass(frozen=True, slots=True)
class ClusterOptions:
    threshold: float = 0.2  # cosine distance at which clusters stop merging (decision 0006)
    min_size: int = 3  # steps (not distinct forms) a cluster needs to be a tactic
    min_share: float = 0.002  # ... or this share of all steps, if larger
    max_direct: int = 4000  # distinct steps clustered directly; the rest are assigned
    match_threshold: float = 0.35  # cosine distance under which a medoid keeps an old tactic id
    # Join shapes whose def-use links cover this share of both (dataflow.py); None: shapes only.
    dataflow_share: float | None = 0.7


@dataclass(frozen=True, slots=True)
class Clusters:
    labels: np.ndarray  # per distinct step: cluster index 0..k-1, or -1 (rare)
    medoids: list[int]  # per cluster: index of its medoid among the distinct steps
    sizes: list[int]  # per cluster: weighted size (steps)


def _agglomerative(vectors: np.ndarray, threshold: float) -> np.ndarray:
    if len(vectors) == 1:
        return np.zeros(1, dtype=np.int64)
    from sklearn.cluster import AgglomerativeClustering

    model = AgglomerativeClustering(
        n_clusters=None, metric="cosine", linkage="average", distance_threshold=threshold
    )
    return np.asarray(model.fit_predict(vectors), dtype=np.int64)


def cluster_vectors(
    vectors: np.ndarray, weights: Sequence[int], options: ClusterOptions | None = None
) -> Clusters:
    """Cluster unit ``vectors`` (one per distinct step, ``weights`` = its step count)."""
    opts = options or ClusterOptions()
    n = len(vectors)
    w = np.asarray(weights, dtype=np.float64)
    if n == 0:
        return Clusters(np.zeros(0, dtype=np.int64), [], [])
    if n <= opts.max_direct:
        raw = _agglomerative(vectors, opts.threshold)
    else:
        # Most frequent first; ties by position (the caller orders by hash): deterministic.
        order = np.lexsort((np.arange(n), -w))
        core = np.sort(order[: opts.max_direct])
        core_labels = _agglomerative(vectors[core], opts.threshold)
        k = int(core_labels.max()) + 1
        centroids = np.zeros((k, vectors.shape[1]), dtype=np.float64)
        np.add.at(centroids, core_labels, vectors[core] * w[core, None])
        centroids /= np.maximum(np.linalg.norm(centroids, axis=1, keepdims=True), 1e-12)
        raw = np.full(n, -1, dtype=np.int64)
        raw[core] = core_labels
        rest = np.setdiff1d(np.arange(n), core)
        for lo in range(0, len(rest), 8192):
            part = rest[lo : lo + 8192]
            sims = vectors[part] @ centroids.T
            best = sims.argmax(axis=1)
            ok = 1.0 - sims[np.arange(len(part)), best] <= opts.threshold
            raw[part] = np.where(ok, best, -1)
    return _finish(vectors, w, raw, opts)


def regroup(
    vectors: np.ndarray,
    weights: Sequence[int],
    clusters: Clusters,
    group_of: np.ndarray,
    options: ClusterOptions | None = None,
) -> Clusters:
    """Clusters joined as ``group_of`` (per cluster, its group) says; medoids found anew."""
    raw = np.where(clusters.labels >= 0, group_of[np.maximum(clusters.labels, 0)], -1)
    return _finish(vectors, np.asarray(weights, dtype=np.float64), raw, options or ClusterOptions())


def _finish(vectors: np.ndarray, w: np.ndarray, raw: np.ndarray, opts: ClusterOptions) -> Clusters:
    floor = max(opts.min_size, int(np.ceil(opts.min_share * w.sum())))
    found: list[tuple[float, int, int, np.ndarray]] = []
    for label in np.unique(raw[raw >= 0]):
        members = np.flatnonzero(raw == label)
        size = float(w[members].sum())
        if size < floor:
            continue
        centroid = (vectors[members] * w[members, None]).sum(axis=0)
        medoid = int(members[np.argmax(vectors[members] @ centroid)])
        found.append((size, medoid, int(label), members))
    # Largest first, then by medoid position: numbering does not depend on sklearn's labels.
    found.sort(key=lambda t: (-t[0], t[1]))
    labels = np.full(len(vectors), -1, dtype=np.int64)
    for index, (_, _, _, members) in enumerate(found):
        labels[members] = index
    return Clusters(labels, [f[1] for f in found], [int(f[0]) for f in found])


def member_hashes(clusters: Clusters, distinct: Sequence[str]) -> list[set[str]]:
    """Per cluster, the hashes of its distinct steps (what ``match_ids`` checks old medoids against)."""
    out: list[set[str]] = [set() for _ in clusters.medoids]
    for i, label in enumerate(clusters.labels):
        if label >= 0:
            out[int(label)].add(distinct[i])
    return out


def match_ids(
    new_medoids: np.ndarray,
    new_member_hashes: Sequence[set[str]],
    old_ids: Sequence[str],
    old_medoids: np.ndarray,
    old_medoid_hashes: Sequence[str],
    threshold: float,
) -> list[str | None]:
    """For each new cluster, the old tactic id it continues (one-to-one), or None.

    An old tactic whose medoid step is a member of a new cluster matches it outright;
    otherwise medoids closer than ``threshold`` (cosine distance) match, closest first
    (Hungarian assignment over the distance matrix).
    """
    out: list[str | None] = [None] * len(new_medoids)
    if len(old_ids) == 0 or len(new_medoids) == 0:
        return out
    from scipy.optimize import linear_sum_assignment

    dist = 1.0 - new_medoids @ old_medoids.T
    for i, members in enumerate(new_member_hashes):
        for j, h in enumerate(old_medoid_hashes):
            if h in members:
                dist[i, j] = -1.0  # the old medoid itself is in this cluster
    rows, cols = linear_sum_assignment(dist)
    for i, j in zip(rows, cols, strict=True):
        if dist[i, j] <= threshold:
            out[int(i)] = old_ids[int(j)]
    return out
