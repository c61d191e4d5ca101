"""``miner.mine(db, task=...)``: the whole pipeline, stage by stage, stored as one mining run.

split (steps.py) -> normalize (normalize.py) -> embed each distinct form once, cached in
the database (embed.py) -> cluster into code shapes (cluster.py) -> join shapes that feed
each other into tactics (dataflow.py) -> stable ids (cluster.py) -> name them
(label.py) -> per-run sequences, frequent sequences, success lift, consensus plan
(flows.py) -> one write transaction. Each stage is a swappable function or object; the
embedder is injected (a tiny deterministic one serves the tests).

The database is held only for short units of work (a read of the code, a read and a write
of the embedding cache, the final write), so mining waits for a recorder's flush and a
recorder waits for mining only for those moments.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from miner.cluster import ClusterOptions, Clusters, cluster_vectors, match_ids, member_hashes, regroup
from miner.dataflow import join_by_dataflow
from miner.edits import Merge, apply_merges, force_ids
from miner.embed import Embedder, get_embedder
from miner.flows import (
    Outcome,
    base_rate,
    collapse,
    consensus_plan,
    dominant_group,
    frequent_sequences,
    group_stats,
)
from miner.label import Namer, ctfidf_keywords, llm_name, readable_name, reasoning_words
from miner.normalize import normalize, tokens
from miner.result import MiningResult, Tactic
from miner.rows import mining_tables
from miner.steps import SplitOptions, Step, split_code
from rlmine.errors import UserError
from rlmine.ids import new_id
from rlmine.store import (
    Store,
    cached_embeddings,
    code_cells,
    next_tactic_number,
    previous_tactics,
    save_embeddings,
    save_mining,
    tactic_edits,
    task_id_for,
)

__all__ = ["MineOptions", "MiningResult", "Tactic", "mine"]

log = logging.getLogger(__name__)
Progress = Callable[[str, int, int], None]  # (phase, done, total)


@dataclass(frozen=True, slots=True)
class MineOptions:
    split: SplitOptions = field(default_factory=SplitOptions)
    cluster: ClusterOptions = field(default_factory=ClusterOptions)
    min_support: int = 2  # runs a frequent sequence needs
    max_pattern_length: int = 6
    group_distance: float = 0.2  # Jaccard distance within which successful runs share an approach
    quorum: float = 0.5  # share of the dominant group a consensus step needs

    @staticmethod
    def from_params(params: dict[str, Any]) -> MineOptions:
        """The options a stored mining recorded (``mining_runs.params``); unknown keys are ignored."""

        def pick(cls: Any, data: Any) -> dict[str, Any]:
            known = cls.__dataclass_fields__
            return {k: v for k, v in (data or {}).items() if k in known}

        top = pick(MineOptions, params)
        top["split"] = SplitOptions(**pick(SplitOptions, params.get("split")))
        top["cluster"] = ClusterOptions(**pick(ClusterOptions, params.get("cluster")))
        return MineOptions(**top)


def _hash(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:32]


def _split_all(cells: pd.DataFrame, options: SplitOptions) -> tuple[list[Step], list[str], int]:
    steps: list[Step] = []
    normalized: list[str] = []
    unparsed_cells = 0
    canonical: dict[str, str] = {}  # runs repeat the same statements: normalize each text once
    for row in cells.to_dict("records"):
        pieces, parsed = split_code(str(row["code"]), options)
        unparsed_cells += not parsed
        failed = isinstance(row["error"], str)
        why = row["reasoning"] if isinstance(row["reasoning"], str) else ""
        for ordinal, (start, end, text) in enumerate(pieces):
            canon = canonical.get(text)
            if canon is None:
                canon = canonical[text] = normalize(text)[0]
            steps.append(
                Step(
                    str(row["run_id"]), int(row["iteration"]), ordinal, start, end, text, parsed, failed, why
                )
            )
            normalized.append(canon)
    return steps, normalized, unparsed_cells


def _embed(
    store: Store, embedder: Embedder, hashes: list[str], texts: list[str], progress: Progress | None
) -> tuple[np.ndarray, int]:
    with store.reader() as con:
        cached = cached_embeddings(con, hashes, embedder.name)
    missing = [i for i, h in enumerate(hashes) if h not in cached]
    done = len(hashes) - len(missing)
    if progress:
        progress("embed", done, len(hashes))

    def tick(n: int) -> None:
        nonlocal done
        done += n
        if progress:
            progress("embed", done, len(hashes))

    if missing:
        fresh = embedder.encode([texts[i] for i in missing], on_progress=tick)
        with store.writer() as con:
            save_embeddings(con, embedder.name, [hashes[i] for i in missing], fresh)
        for i, vec in zip(missing, fresh, strict=True):
            cached[hashes[i]] = vec
    return np.stack([cached[h] for h in hashes]).astype(np.float32), len(missing)


def _check_input(cells: pd.DataFrame, task: str | None) -> list[str]:
    scope = f"task {task!r}" if task else "the database"
    if cells.empty:
        raise UserError(
            f"no runs with code to mine in {scope}",
            "`rlmine demo`, `rlmine record` or `rlmine import` first, or another --task",
        )
    n_runs = cells["run_id"].nunique()
    if n_runs == 1:
        raise UserError(
            f"only one run with code in {scope}: tactics are what recurs across runs",
            "recording more runs (`rlmine record TASK --runs 20`) before mining",
        )
    notes: list[str] = []
    per_run = cells.groupby("run_id")["code"].apply(lambda s: "\n\x00".join(s))
    if per_run.nunique() == 1:
        notes.append(
            f"all {n_runs} runs wrote identical code: every tactic occurs once per run and "
            "success lift cannot separate them"
        )
    return notes


def mine(
    db: Store | str | Path,
    *,
    task: str | None = None,
    embedder: Embedder | str = "minilm",
    options: MineOptions | None = None,
    progress: Progress | None = None,
    namer: Namer | None = None,
    id_hints: Sequence[tuple[str, str]] = (),
) -> MiningResult:
    """Mine the runs of ``task`` (all runs when None); store and return the mining.

    ``namer`` (a prompt -> reply function over any LM) names the tactics; a reply that is not
    a short name keeps the c-TF-IDF name. The scope's tactic edits (``rlmine tactics merge`` /
    ``rename``) apply to every mining. ``id_hints`` are (tactic id, medoid hash) pairs a tactic
    may continue besides the previous mining's: the tactics of a merge just taken back.
    """
    opts = options or MineOptions()
    store = db if isinstance(db, Store) else Store.open(db)
    emb = get_embedder(embedder) if isinstance(embedder, str) else embedder
    timings: dict[str, float] = {}
    t0 = time.perf_counter()
    with store.reader() as con:
        task_id = task_id_for(con, task) if task else None
        cells = code_cells(con, task_id=task_id)
        edits = tactic_edits(con, task_id)
    notes = _check_input(cells, task)
    timings["read"] = time.perf_counter() - t0

    t = time.perf_counter()
    steps, normalized, unparsed_cells = _split_all(cells, opts.split)
    timings["parse_normalize"] = time.perf_counter() - t
    if unparsed_cells:
        notes.append(f"{unparsed_cells} cells did not parse as Python: split into line groups")

    t = time.perf_counter()
    step_hash = [_hash(n) for n in normalized]
    distinct = sorted(set(step_hash))
    index_of = {h: i for i, h in enumerate(distinct)}
    text_of = dict(zip(step_hash, normalized, strict=True))
    vectors, n_embedded = _embed(store, emb, distinct, [text_of[h] for h in distinct], progress)
    timings["embed"] = time.perf_counter() - t

    t = time.perf_counter()
    weights = Counter(step_hash)
    clusters = cluster_vectors(vectors, [weights[h] for h in distinct], opts.cluster)
    if opts.cluster.dataflow_share is not None and clusters.medoids:
        shape_of_step = [int(clusters.labels[index_of[h]]) for h in step_hash]
        group_of = join_by_dataflow(
            shape_of_step,
            [s.code for s in steps],
            [s.run_id for s in steps],
            len(clusters.medoids),
            opts.cluster.dataflow_share,
        )
        clusters = regroup(vectors, [weights[h] for h in distinct], clusters, group_of, opts.cluster)
    merges = [
        Merge(str(e["id"]), tuple(e["tactic_ids"]), tuple(e["medoid_hashes"]))
        for e in edits.to_dict("records")
        if e["kind"] == "merge"
    ]
    forced: dict[int, str] = {}
    if merges:
        wanted = {h for m in merges for h in m.medoid_hashes}
        known = {h: vectors[index_of[h]] for h in wanted if h in index_of}
        with store.reader() as con:
            known.update(cached_embeddings(con, sorted(wanted - set(known)), emb.name))
        clusters, forced, edit_notes = apply_merges(
            vectors, [weights[h] for h in distinct], distinct, clusters, merges, known, opts.cluster
        )
        notes.extend(edit_notes)
    ids = _tactic_ids(
        store, emb.name, task_id, clusters, distinct, vectors, opts, forced=forced, hints=id_hints
    )
    timings["cluster"] = time.perf_counter() - t

    t = time.perf_counter()
    tactic_of_step = [
        ids[int(clusters.labels[index_of[h]])] if clusters.labels[index_of[h]] >= 0 else None
        for h in step_hash
    ]
    outcome = _outcomes(cells)
    sequences = _sequences(steps, tactic_of_step)
    base = base_rate(list(outcome.values()))
    tactics = _tactics(
        ids, clusters.medoids, distinct, text_of, steps, step_hash, tactic_of_step, outcome, base
    )
    if namer is not None:
        tactics = [replace(t, label=llm_name(namer, t.keywords, t.example) or t.label) for t in tactics]
    names = {e["tactic_ids"][0]: str(e["name"]) for e in edits.to_dict("records") if e["kind"] == "rename"}
    tactics = [replace(t, label=names.get(t.id, t.label)) for t in tactics]
    runs_in_order = sorted(outcome)
    seqs = [sequences.get(r, []) for r in runs_in_order]
    outs = [outcome[r] for r in runs_in_order]
    patterns = frequent_sequences(
        seqs, outs, min_support=opts.min_support, max_length=opts.max_pattern_length
    )
    won = [(s, o) for s, o in zip(seqs, outs, strict=True) if o.correct and s]
    winners = [s for s, _ in won]
    group = dominant_group(winners, opts.group_distance, [o for _, o in won])
    consensus = consensus_plan([winners[i] for i in group], opts.quorum)
    timings["sequences"] = time.perf_counter() - t

    mining_id = new_id()
    n_outliers = sum(1 for x in tactic_of_step if x is None)
    result = MiningResult(
        mining_id=mining_id,
        task_id=task_id,
        model=emb.name,
        n_runs=len(outcome),
        n_steps=len(steps),
        n_distinct=len(distinct),
        n_outliers=n_outliers,
        n_unparsed=sum(1 for s in steps if not s.parsed),
        n_embedded=n_embedded,
        base_rate=base,
        tactics=tactics,
        patterns=patterns,
        consensus=consensus,
        sequences=sequences,
        timings=timings,
        notes=notes,
        edits=[str(e) for e in edits["id"]],
    )
    t = time.perf_counter()
    tables = mining_tables(
        result,
        opts,
        steps,
        normalized,
        step_hash,
        tactic_of_step,
        tactics_medoid_hashes=[distinct[m] for m in clusters.medoids],
    )
    with store.writer() as con:
        save_mining(con, tables)
    timings["write"] = time.perf_counter() - t
    log.info("mined %d steps of %d runs into %d tactics", len(steps), len(outcome), len(tactics))
    return result


def _tactic_ids(
    store: Store,
    model: str,
    task_id: str | None,
    clusters: Clusters,
    distinct: list[str],
    vectors: np.ndarray,
    opts: MineOptions,
    *,
    forced: Mapping[int, str],
    hints: Sequence[tuple[str, str]],
) -> list[str]:
    """An id per cluster: the previous mining's id when it is the same tactic, else a new ``T<n>``.

    ``forced`` ids (merged clusters) win; ``hints`` are more (id, medoid hash) pairs to continue.
    """
    medoids = clusters.medoids
    with store.reader() as con:
        old = previous_tactics(con, task_id)[["id", "medoid_hash"]]
        extra = [(i, h) for i, h in hints if i not in set(old["id"])]
        if extra:
            old = pd.concat([old, pd.DataFrame(extra, columns=["id", "medoid_hash"])], ignore_index=True)
        old_vectors = cached_embeddings(con, old["medoid_hash"].tolist(), model) if len(old) else {}
        next_number = next_tactic_number(con)
    old = old[old["medoid_hash"].isin(old_vectors)] if len(old) else old
    matched: list[str | None] = [None] * len(medoids)
    if len(old):
        matched = match_ids(
            vectors[medoids],
            member_hashes(clusters, distinct),
            old["id"].tolist(),
            np.stack([old_vectors[h] for h in old["medoid_hash"]]),
            old["medoid_hash"].tolist(),
            opts.cluster.match_threshold,
        )
    out: list[str] = []
    for found in force_ids(matched, forced):
        if found is None:
            found = f"T{next_number}"
            next_number += 1
        out.append(found)
    return out


def _outcomes(cells: pd.DataFrame) -> dict[str, Outcome]:
    first = cells.drop_duplicates("run_id")
    out: dict[str, Outcome] = {}
    for row in first.to_dict("records"):
        correct = None if _missing(row["correct"]) else bool(row["correct"])
        out[str(row["run_id"])] = Outcome(
            correct, _number(row["n_iterations"]), _number(row["n_llm_calls"]), _number(row["tokens"])
        )
    return out


def _missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and np.isnan(value)) or value is pd.NA


def _number(value: Any) -> float | None:
    return None if _missing(value) else float(value)


def _sequences(steps: list[Step], tactic_of_step: list[str | None]) -> dict[str, list[str]]:
    raw: dict[str, list[str]] = defaultdict(list)
    for step, tactic in zip(steps, tactic_of_step, strict=True):
        if tactic is not None:  # steps come ordered by run, iteration, ordinal
            raw[step.run_id].append(tactic)
    return {run: collapse(seq) for run, seq in raw.items()}


def _tactics(
    ids: list[str],
    medoids: list[int],
    distinct: list[str],
    text_of: dict[str, str],
    steps: list[Step],
    step_hash: list[str],
    tactic_of_step: list[str | None],
    outcome: dict[str, Outcome],
    base: float | None,
) -> list[Tactic]:
    code_tok: dict[str, Counter[str]] = {i: Counter() for i in ids}
    reason_tok: dict[str, Counter[str]] = {i: Counter() for i in ids}
    runs: dict[str, set[str]] = {i: set() for i in ids}
    size: Counter[str] = Counter()
    example_code: dict[str, str] = {}
    member_forms: dict[str, list[str]] = {i: [] for i in ids}
    medoid_hash = {ids[k]: distinct[m] for k, m in enumerate(medoids)}
    for step, h, tactic in zip(steps, step_hash, tactic_of_step, strict=True):
        if tactic is None:
            continue
        size[tactic] += 1
        runs[tactic].add(step.run_id)
        code_tok[tactic].update(tokens(text_of[h]))
        reason_tok[tactic].update(reasoning_words(step.reasoning))
        if h == medoid_hash[tactic] and tactic not in example_code:
            example_code[tactic] = step.code
        if step.code not in member_forms[tactic] and len(member_forms[tactic]) < 5:
            member_forms[tactic].append(step.code)
    keywords = ctfidf_keywords([code_tok[i] for i in ids], [reason_tok[i] for i in ids])
    out: list[Tactic] = []
    for tactic, kws in zip(ids, keywords, strict=True):
        words = [w for w, _ in kws]
        stats = group_stats([outcome[r] for r in sorted(runs[tactic])], base)
        out.append(
            Tactic(
                id=tactic,
                label=readable_name(words, set(code_tok[tactic]), text_of[medoid_hash[tactic]]),
                keywords=words,
                size=size[tactic],
                n_runs=len(runs[tactic]),
                success_rate=stats[0],
                lift=stats[1],
                median_iterations=stats[2],
                median_llm_calls=stats[3],
                median_tokens=stats[4],
                example=example_code.get(tactic, text_of[medoid_hash[tactic]]),
                members=member_forms[tactic],
            )
        )
    return out
