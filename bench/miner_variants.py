"""Second-level tactic variants and plan builders, scored against the simulator's labels.

Reproduces the rows of decision 0020 on a *development* seed (never the quality bench's
default): each variant starts from the miner's own code shapes (MiniLM, cut 0.2) and its
def-use second level, then joins tactics by another signal; scores are computed in memory
(no mining is stored per variant), so a sweep costs seconds once the embeddings are cached.

* ``substitution``: PPMI of each tactic's left/right neighbour tactics in the runs, cosine;
  tactics join (connected components) when similar and sharing few runs (alternatives).
* ``roles``: per step, role bits from data flow over the whole run (print-only, import,
  reads ``context``, calls an LLM, its names flow into an LLM call / into SUBMIT / only into
  prints / nowhere); tactics re-clustered on centroid distance mixed with role distance, or
  joined by centroid only among tactics with the same role signature (``gate``).
* ``oracle``: tactics with the same majority label joined (all, or only those that share at
  most a given share of runs): how far any joining of these tactics could go.
* plan builders: the miner's greedy ``consensus_plan`` and an occurrence plan (each k-th
  occurrence of a tactic that a quorum of runs has, ordered by median relative position),
  both applied to the mined sequences and to the ground-truth sequences alike.

    python bench/miner_variants.py --seed 101          # records a dev database once, then sweeps

Prints a table and writes ``bench/results/miner_variants.json``.
"""

from __future__ import annotations

import argparse
import ast
import json
import statistics
import sys
from collections import Counter, defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
from scipy.sparse import coo_matrix  # noqa: E402
from scipy.sparse.csgraph import connected_components  # noqa: E402
from sklearn.cluster import AgglomerativeClustering  # noqa: E402
from sklearn.metrics import adjusted_rand_score, v_measure_score  # noqa: E402

import miner  # noqa: E402
from miner.cluster import ClusterOptions, cluster_vectors, regroup  # noqa: E402
from miner.dataflow import defs_uses, join_by_dataflow  # noqa: E402
from miner.embed import DEFAULT_MODEL  # noqa: E402
from miner.flows import collapse, consensus_plan, dominant_group  # noqa: E402
from recorder import RecordOptions, record  # noqa: E402
from recorder.families import make_task  # noqa: E402
from rlmine.store import Store, cached_embeddings  # noqa: E402

FAMILIES = ("celebrities", "incident-logs", "reviews-aggregate")
TASK_SEED = 9090
LLM_CALLS = frozenset({"llm_query", "llm_query_batched"})
SUBMITS = frozenset({"SUBMIT", "FINAL", "FINAL_VAR"})


@dataclass
class Family:
    name: str
    run: list[str]  # per step, in run order
    cell: list[int]  # its iteration
    code: list[str]
    hashes: list[str]
    cover: list[str | None]  # label of the range holding the step's first line
    first: list[str | None]  # label when the step starts a labelled range (what is scored)
    distinct: list[str]
    vectors: np.ndarray
    correct: dict[str, bool]
    strategy: dict[str, tuple[str | None, bool]]
    label_seqs: dict[str, list[str]]


def _top(votes: Counter[str]) -> str:
    """The most common key; a tie goes to the one that sorts first (not to insertion order,
    which follows time-based run ids)."""
    return min(votes.items(), key=lambda kv: (-kv[1], kv[0]))[0]


def prepare(seed: int, work: Path) -> Path:
    """A dev database: 60 + 12 runs per family, mined once (the embedding cache fills)."""
    db = work / "dev.duckdb"
    if db.exists():
        return db
    for family in FAMILIES:
        make_task(family, work / family, size_bytes=200_000, instances=5, seed=TASK_SEED)
        record(
            work / family / "task.yaml",
            db=db,
            options=RecordOptions(runs=20, seeds=(seed,), concurrency=2, batch=family),
        )
        record(
            work / family / "task.yaml",
            db=db,
            options=RecordOptions(runs=4, seeds=(seed + 1,), concurrency=2, batch=family + "+"),
        )
    store = Store.open(db)
    with store.reader() as con:
        names = [r[0] for r in con.execute("SELECT name FROM tasks ORDER BY name").fetchall()]
    for name in names:
        miner.mine(store, task=name, embedder="minilm")
    return db


def load(store: Store, task: str) -> Family:
    with store.reader() as con:
        (mining,) = con.execute(
            "SELECT m.id FROM mining_runs m JOIN tasks t ON t.id = m.task_id WHERE t.name = ? "
            "ORDER BY m.created_at DESC LIMIT 1",
            [task],
        ).fetchone() or (None,)
        steps = con.execute(
            """
            SELECT s.run_id, s.iteration, s.code, s.hash,
                   (SELECT any_value(l.tactic) FROM step_labels l WHERE l.run_id = s.run_id
                      AND l.iteration = s.iteration AND s.line_start BETWEEN l.line_start AND l.line_end),
                   (SELECT any_value(l.tactic) FROM step_labels l WHERE l.run_id = s.run_id
                      AND l.iteration = s.iteration AND l.line_start = s.line_start)
            FROM steps s WHERE s.mining_id = ? ORDER BY s.run_id, s.iteration, s.ordinal
            """,
            [mining],
        ).fetchall()
        runs = con.execute(
            """
            SELECT r.id, coalesce(r.correct, false), any_value(json_extract_string(c.metadata, '$.strategy')),
                   coalesce(bool_or(json_extract(c.metadata, '$.sound')::BOOLEAN), false)
            FROM runs r JOIN tasks t ON t.id = r.task_id
            LEFT JOIN llm_calls c ON c.run_id = r.id AND c.role = 'root'
            WHERE t.name = ? AND r.parent_run_id IS NULL GROUP BY r.id, r.correct
            """,
            [task],
        ).fetchall()
        labels = con.execute(
            "SELECT run_id, tactic FROM step_labels WHERE run_id IN (SELECT r.id FROM runs r JOIN tasks t "
            "ON t.id = r.task_id WHERE t.name = ?) ORDER BY run_id, iteration, line_start",
            [task],
        ).fetchall()
        distinct = sorted({s[3] for s in steps})
        cached = cached_embeddings(con, distinct, DEFAULT_MODEL)
    seqs: dict[str, list[str]] = defaultdict(list)
    for run, label in labels:
        seqs[run].append(label)
    return Family(
        task,
        [s[0] for s in steps],
        [s[1] for s in steps],
        [s[2] for s in steps],
        [s[3] for s in steps],
        [s[4] for s in steps],
        [s[5] for s in steps],
        distinct,
        np.stack([cached[h] for h in distinct]).astype(np.float32),
        {r[0]: bool(r[1]) for r in runs},
        {r[0]: (r[2], bool(r[3])) for r in runs},
        {r: collapse(s) for r, s in seqs.items()},
    )


# -- variants: each maps a Family to a tactic index per step (-1 = rare) ---------------------


def _collapse_ids(seq: Sequence[int]) -> list[int]:
    return [t for i, t in enumerate(seq) if i == 0 or seq[i - 1] != t]


def _dense(labels: Sequence[int]) -> list[int]:
    seen: dict[int, int] = {}
    return [-1 if x < 0 else seen.setdefault(x, len(seen)) for x in labels]


def baseline(f: Family) -> list[int]:
    """The miner's tactics: code shapes joined by def-use links (decision 0006)."""
    index = {h: i for i, h in enumerate(f.distinct)}
    weight = Counter(f.hashes)
    w = [weight[h] for h in f.distinct]
    shapes = cluster_vectors(f.vectors, w, ClusterOptions())
    shape = [int(shapes.labels[index[h]]) for h in f.hashes]
    group = join_by_dataflow(shape, f.code, f.run, len(shapes.medoids), 0.7)
    joined = regroup(f.vectors, w, shapes, group, ClusterOptions())
    return _dense([int(joined.labels[index[h]]) for h in f.hashes])


def _components(k: int, pairs: list[tuple[int, int]], tactic: list[int]) -> list[int]:
    rows = [a for a, _ in pairs]
    cols = [b for _, b in pairs]
    _, comp = connected_components(
        coo_matrix((np.ones(len(pairs)), (rows, cols)), shape=(k, k)), directed=False
    )
    return [-1 if t < 0 else int(comp[t]) for t in tactic]


def _runs_of(f: Family, tactic: list[int]) -> list[set[str]]:
    out: list[set[str]] = [set() for _ in range(max(tactic) + 1)]
    for run, t in zip(f.run, tactic, strict=True):
        if t >= 0:
            out[t].add(run)
    return out


def _shared(a: set[str], b: set[str]) -> float:
    return len(a & b) / max(1, min(len(a), len(b)))


def substitution(f: Family, tau: float, max_shared: float) -> list[int]:
    tactic = baseline(f)
    k = max(tactic) + 1
    seqs: dict[str, list[int]] = defaultdict(list)
    for run, t in zip(f.run, tactic, strict=True):
        if t >= 0:
            seqs[run].append(t)
    ctx = np.zeros((k, 2 * k + 2))  # left neighbours (k = run start), right neighbours (k = run end)
    for raw in seqs.values():
        seq = _collapse_ids(raw)
        for i, t in enumerate(seq):
            ctx[t, seq[i - 1] if i else k] += 1
            ctx[t, k + 1 + (seq[i + 1] if i + 1 < len(seq) else k)] += 1
    with np.errstate(divide="ignore", invalid="ignore"):
        pmi = np.log(ctx * ctx.sum() / (ctx.sum(1, keepdims=True) * ctx.sum(0, keepdims=True)))
    ppmi = np.nan_to_num(np.maximum(pmi, 0.0), nan=0.0, neginf=0.0)
    unit = ppmi / np.maximum(np.linalg.norm(ppmi, axis=1, keepdims=True), 1e-12)
    sim = unit @ unit.T
    runs = _runs_of(f, tactic)
    pairs = [
        (a, b)
        for a in range(k)
        for b in range(a + 1, k)
        if sim[a, b] >= tau and _shared(runs[a], runs[b]) <= max_shared
    ]
    return _components(k, pairs, tactic)


def same_cell(f: Family, share: float) -> list[int]:
    """Tactics that share a cell in >= ``share`` of both tactics' cells joined (components)."""
    tactic = baseline(f)
    k = max(tactic) + 1
    cells: dict[tuple[str, int], set[int]] = defaultdict(set)
    for run, cell, t in zip(f.run, f.cell, tactic, strict=True):
        if t >= 0:
            cells[(run, cell)].add(t)
    alone: Counter[int] = Counter(t for c in cells.values() for t in c)
    together: Counter[tuple[int, int]] = Counter(
        (a, b) for c in cells.values() for a in c for b in c if a < b
    )
    pairs = [(a, b) for (a, b), n in together.items() if n >= 3 and n >= share * max(alone[a], alone[b])]
    return _components(k, pairs, tactic)


def nearest_members(f: Family, cut: float) -> list[int]:
    """Tactics joined when any member form of one is within ``cut`` (cosine) of one of the other."""
    tactic = baseline(f)
    k = max(tactic) + 1
    index = {h: i for i, h in enumerate(f.distinct)}
    forms: list[set[int]] = [set() for _ in range(k)]
    for h, t in zip(f.hashes, tactic, strict=True):
        if t >= 0:
            forms[t].add(index[h])
    dist = 1 - f.vectors @ f.vectors.T
    pairs = [
        (a, b)
        for a in range(k)
        for b in range(a + 1, k)
        if dist[np.ix_(sorted(forms[a]), sorted(forms[b]))].min() <= cut
    ]
    return _components(k, pairs, tactic)


def _calls(tree: ast.AST) -> set[str]:
    out: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            fn = node.func
            out.add(fn.id if isinstance(fn, ast.Name) else fn.attr if isinstance(fn, ast.Attribute) else "")
    return out


def roles(f: Family) -> np.ndarray:
    """Per step: print-only, import, reads context, calls an LLM, flows to LLM / SUBMIT / prints / nowhere."""
    trees: list[ast.Module | None] = []
    for code in f.code:
        try:
            trees.append(ast.parse(code))
        except SyntaxError:
            trees.append(None)
    calls = [_calls(t) if t else set() for t in trees]
    printing = [
        bool(t and len(t.body) == 1 and isinstance(t.body[0], ast.Expr) and calls[i] & {"print"})
        for i, t in enumerate(trees)
    ]
    du = [defs_uses(c) for c in f.code]
    out = np.zeros((len(f.code), 8))
    for i in range(len(f.code)):
        defs, uses = du[i]
        readers = [j for j in range(i + 1, len(f.code)) if f.run[j] == f.run[i] and defs & du[j][1]]
        out[i] = [
            printing[i],
            f.code[i].lstrip().startswith(("import ", "from ")),
            "context" in uses,
            bool(calls[i] & LLM_CALLS),
            any(calls[j] & LLM_CALLS for j in readers),
            any(calls[j] & SUBMITS for j in readers),
            bool(readers) and all(printing[j] for j in readers),
            bool(defs) and not readers,
        ]
    return out


def _tactic_means(f: Family, tactic: list[int], per_step: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    index = {h: i for i, h in enumerate(f.distinct)}
    k = max(tactic) + 1
    centroid = np.zeros((k, f.vectors.shape[1]))
    role = np.zeros((k, per_step.shape[1]))
    count = np.zeros(k)
    for i, t in enumerate(tactic):
        if t >= 0:
            centroid[t] += f.vectors[index[f.hashes[i]]]
            role[t] += per_step[i]
            count[t] += 1
    centroid /= np.maximum(np.linalg.norm(centroid, axis=1, keepdims=True), 1e-12)
    return centroid, role / np.maximum(count[:, None], 1)


def _recluster(dist: np.ndarray, cut: float, tactic: list[int]) -> list[int]:
    np.fill_diagonal(dist, 0.0)
    labels = AgglomerativeClustering(
        n_clusters=None, metric="precomputed", linkage="average", distance_threshold=cut
    ).fit_predict(np.maximum(dist, 0.0))
    return [-1 if t < 0 else int(labels[t]) for t in tactic]


def roles_mixed(f: Family, alpha: float, cut: float) -> list[int]:
    tactic = baseline(f)
    centroid, role = _tactic_means(f, tactic, roles(f))
    dist = (1 - alpha) * (1 - centroid @ centroid.T) + alpha * np.abs(role[:, None] - role[None]).mean(-1)
    return _recluster(dist, cut, tactic)


def roles_gate(f: Family, cut: float) -> list[int]:
    tactic = baseline(f)
    centroid, role = _tactic_means(f, tactic, roles(f))
    signature = role >= 0.5
    same = (signature[:, None] == signature[None]).all(-1)
    return _recluster(np.where(same, 1 - centroid @ centroid.T, 10.0), cut, tactic)


def _majority(f: Family, tactic: list[int]) -> dict[int, str]:
    votes: dict[int, Counter[str]] = defaultdict(Counter)
    for t, label in zip(tactic, f.cover, strict=True):
        if label is not None:
            votes[t][label] += 1
    return {t: _top(c) for t, c in votes.items()}


def oracle(f: Family, max_shared: float) -> list[int]:
    tactic = baseline(f)
    k = max(tactic) + 1
    label = _majority(f, tactic)
    runs = _runs_of(f, tactic)
    pairs = [
        (a, b)
        for a in range(k)
        for b in range(a + 1, k)
        if label.get(a) == label.get(b) and _shared(runs[a], runs[b]) <= max_shared
    ]
    return _components(k, pairs, tactic)


# -- plans and scores --------------------------------------------------------------------------

Plan = Callable[[Sequence[Sequence[Any]], float], list[Any]]


def occurrence_plan(seqs: Sequence[Sequence[Any]], quorum: float) -> list[Any]:
    """Each k-th occurrence of a tactic that a quorum of runs has, by median relative position."""
    if not seqs:
        return []
    need = max(1, int(-(-quorum * len(seqs) // 1)))
    where: dict[tuple[Any, int], list[float]] = defaultdict(list)
    for seq in seqs:
        seen: Counter[Any] = Counter()
        for i, t in enumerate(seq):
            seen[t] += 1
            where[(t, seen[t])].append(i / max(1, len(seq) - 1))
    kept = sorted(
        (statistics.median(p), str(tok[0]), tok[1], tok[0]) for tok, p in where.items() if len(p) >= need
    )
    return collapse([k[3] for k in kept])


def score(f: Family, tactic: list[int], plan: Plan, quorum: float) -> dict[str, Any]:
    scored = [(label, t) for label, t in zip(f.first, tactic, strict=True) if label is not None]
    truth = [label for label, _ in scored]
    mined = [str(t) if t >= 0 else "rare" for _, t in scored]
    label = _majority(f, tactic)
    seqs: dict[str, list[str]] = defaultdict(list)
    for run, t in zip(f.run, tactic, strict=True):
        if t >= 0:
            seqs[run].append(str(t))
    winners = [collapse(seqs[r]) for r in sorted(seqs) if f.correct.get(r)]
    group = dominant_group(winners, 0.2)
    mined_plan = collapse([label.get(int(t), "?") for t in plan([winners[i] for i in group], quorum)])
    sound = Counter(s for r, (s, ok) in sorted(f.strategy.items()) if ok and s and f.correct[r])
    dominant = _top(sound) if sound else None
    truth_plan = plan(
        [f.label_seqs[r] for r in sorted(f.label_seqs) if f.strategy[r][0] == dominant and f.correct[r]],
        quorum,
    )
    return {
        "ari": adjusted_rand_score(truth, mined),
        "v_measure": v_measure_score(truth, mined),
        "tactics": len(set(tactic) - {-1}),
        "plan_equal": mined_plan == truth_plan,
    }


VARIANTS: list[tuple[str, Callable[[Family], list[int]]]] = [
    ("baseline (shapes + def-use 0.7)", baseline),
    *[
        (
            f"substitution: PPMI cosine >= {tau}, shared runs <= {s}",
            lambda f, tau=tau, s=s: substitution(f, tau, s),
        )
        for tau in (0.3, 0.5, 0.7)
        for s in (0.0, 0.3)
    ],
    *[
        (f"roles mixed: weight {a}, cut {c}", lambda f, a=a, c=c: roles_mixed(f, a, c))
        for a in (0.3, 0.5, 1.0)
        for c in (0.1, 0.2, 0.3)
    ],
    *[
        (f"roles gate: same role signature, cut {c}", lambda f, c=c: roles_gate(f, c))
        for c in (0.25, 0.3, 0.4, 0.5)
    ],
    *[(f"same cell in >= {s} of both tactics' cells", lambda f, s=s: same_cell(f, s)) for s in (0.8, 0.9)],
    *[
        (f"nearest member forms within {c}", lambda f, c=c: nearest_members(f, c))
        for c in (0.2, 0.22, 0.25, 0.3)
    ],
    *[(f"oracle: same label, shared runs <= {s}", lambda f, s=s: oracle(f, s)) for s in (1.0, 0.5, 0.2, 0.0)],
]
PLANS: list[tuple[str, Plan, float]] = [
    (f"{name} plan, quorum {q}", fn, q)
    for name, fn in (("greedy", consensus_plan), ("occurrence", occurrence_plan))
    for q in (0.4, 0.5, 0.6, 0.75)
]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--seed", type=int, default=101, help="development run seed (not the quality bench's)"
    )
    parser.add_argument(
        "--work", type=Path, default=None, help="folder for the dev database (kept for reuse)"
    )
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "miner_variants.json")
    args = parser.parse_args()
    work = args.work or Path("/tmp") / f"rlmine-miner-variants-{args.seed}"
    work.mkdir(parents=True, exist_ok=True)
    store = Store.open(prepare(args.seed, work))
    with store.reader() as con:
        names = [r[0] for r in con.execute("SELECT name FROM tasks ORDER BY name").fetchall()]
    families = [load(store, n) for n in names]
    rows: list[dict[str, Any]] = []
    for name, fn in VARIANTS:
        scores = [score(f, fn(f), consensus_plan, 0.5) for f in families]
        rows.append({"variant": name, "families": scores})
        print(
            f"{name:<52} "
            + "  ".join(f"{s['ari']:.2f}/{s['v_measure']:.2f} k={s['tactics']:<2}" for s in scores)
        )
    print()
    tactics = [baseline(f) for f in families]
    for name, plan, quorum in PLANS:
        scores = [score(f, t, plan, quorum) for f, t in zip(families, tactics, strict=True)]
        rows.append({"variant": name, "families": scores})
        print(f"{name:<52} " + "  ".join("equal " if s["plan_equal"] else "differs" for s in scores))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"seed": args.seed, "tasks": names, "rows": rows}, indent=2) + "\n")
    print(f"\n→ {args.out}")


if __name__ == "__main__":
    main()
