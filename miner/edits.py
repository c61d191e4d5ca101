"""A user's tactic edits applied to one mining's clusters (decision 0022). Pure: no I/O.

The miner's tactics are code shapes joined by data flow; the intent a person sees ("peek at the
data") can span shapes that neither look alike nor feed each other (decision 0020). A *merge*
says which tactics are one: it holds each tactic's id and medoid step, and every later mining
finds those tactics again the way tactic ids are kept (:func:`miner.cluster.match_ids`: the
cluster holding the old medoid, else the nearest medoid within the match threshold), joins
them, and gives the result the first id. Merges apply in the order they were made, so a merge
of a merged tactic works as it did when it was made.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from miner.cluster import ClusterOptions, Clusters, match_ids, member_hashes, regroup

__all__ = ["Merge", "apply_merges", "force_ids"]


@dataclass(frozen=True, slots=True)
class Merge:
    edit_id: str
    tactic_ids: tuple[str, ...]  # the id kept first, then the tactics joined into it
    medoid_hashes: tuple[str, ...]  # each tactic's medoid step when the merge was made


def apply_merges(
    vectors: np.ndarray,
    weights: Sequence[int],
    distinct: Sequence[str],
    clusters: Clusters,
    merges: Sequence[Merge],
    medoid_vectors: Mapping[str, np.ndarray],
    options: ClusterOptions,
) -> tuple[Clusters, dict[int, str], list[str]]:
    """Join the clusters each merge names; return them, the id each merged cluster must keep, notes.

    ``medoid_vectors`` has the vector of every merge medoid this mining can know (a medoid
    without one can still be found as a member of a cluster, by its hash).
    """
    anchors: list[tuple[int, str]] = []  # (a distinct step of the kept cluster, the id it keeps)
    notes: list[str] = []
    dim = vectors.shape[1] if vectors.ndim == 2 else 0
    for merge in merges:
        k = len(clusters.medoids)
        if k == 0:
            break
        old = np.stack(
            [medoid_vectors.get(h, np.zeros(dim, dtype=np.float32)) for h in merge.medoid_hashes]
        ).astype(np.float32)
        matched = match_ids(
            vectors[clusters.medoids],
            member_hashes(clusters, distinct),
            list(merge.tactic_ids),
            old,
            list(merge.medoid_hashes),
            options.match_threshold,
        )
        hit = [c for c, tid in enumerate(matched) if tid is not None]
        if not hit:
            notes.append(
                f"edit {merge.edit_id} (merge {' + '.join(merge.tactic_ids)}) found none of its tactics"
            )
            continue
        kept = next((c for c in hit if matched[c] == merge.tactic_ids[0]), hit[0])
        anchors.append((clusters.medoids[kept], merge.tactic_ids[0]))
        if len(hit) > 1:
            group_of = np.arange(k)
            group_of[hit] = kept
            clusters = regroup(vectors, weights, clusters, group_of, options)
    forced: dict[int, str] = {}
    for anchor, tactic_id in anchors:  # a later merge of the same cluster decides its id
        label = int(clusters.labels[anchor])
        if label >= 0:
            forced = {c: t for c, t in forced.items() if t != tactic_id}
            forced[label] = tactic_id
    return clusters, forced, notes


def force_ids(ids: list[str | None], forced: Mapping[int, str]) -> list[str | None]:
    """``ids`` (per cluster, matched or None) with the merged clusters' ids imposed, one owner each."""
    out = list(ids)
    for cluster, tactic_id in forced.items():
        out = [None if (t == tactic_id and c != cluster) else t for c, t in enumerate(out)]
        out[cluster] = tactic_id
    return out
