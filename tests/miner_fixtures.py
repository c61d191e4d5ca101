"""Synthetic runs for miner tests: two approaches written with varying names and numbers.

Approach "regex" (mostly correct): peek, split lines, filter with a regex, count, submit.
Approach "llm" (mostly wrong): peek, chunk, ask llm_query_batched, sum the replies, submit.
Written here (not simulator output) so the tests know exactly what each step is.
"""

from __future__ import annotations

from pathlib import Path

from rlmine.store import Store
from rlmine.store._catalog import upsert_task
from rlmine.trace import Iteration, LLMCall, Run, StepLabel, Trace

NAMES = ("lines", "rows", "entries", "raw", "items", "data")
COUNTS = ("counts", "tally", "freq", "hits_by", "per_key", "agg")


def _regex_cells(i: int) -> list[tuple[str, list[tuple[int, int, str]]]]:
    lines, counts = NAMES[i % len(NAMES)], COUNTS[(i // 2) % len(COUNTS)]
    word = ("ERROR", "WARN", "FATAL")[i % 3]
    peek = f"print(context[:{300 + 100 * (i % 5)}])\nprint(len(context))"
    parse = (
        f"{lines} = context.splitlines()\n"
        f'bad = [l for l in {lines} if re.search(r"\\b{word}\\b", l)]\n'
        f"print(len(bad))"
    )
    count = (
        f"{counts} = Counter(l.split()[2] for l in bad)\n"
        f"top = {counts}.most_common({3 + i % 3})\n"
        f'print("top:", top)'
    )
    return [
        (peek, [(1, 1, "peek"), (2, 2, "measure")]),
        (parse, [(1, 1, "parse"), (2, 2, "filter_regex"), (3, 3, "measure")]),
        (count, [(1, 1, "aggregate"), (2, 2, "aggregate"), (3, 3, "peek")]),
        ("SUBMIT(top[0][0])" if i % 2 else "FINAL_VAR(top[0][0])", [(1, 1, "submit")]),
    ]


def _llm_cells(i: int) -> list[tuple[str, list[tuple[int, int, str]]]]:
    size = (10000, 20000, 50000)[i % 3]
    chunks = ("chunks", "parts", "pieces")[i % 3]
    peek = f"print(context[:{200 + 100 * (i % 4)}])"
    chunk = (
        f"{chunks} = [context[k:k + {size}] for k in range(0, len(context), {size})]\nprint(len({chunks}))"
    )
    ask = (
        f'replies = llm_query_batched(["Count the errors in this log:\\n" + c for c in {chunks}])\n'
        "total = sum(int(r.strip() or 0) for r in replies)"
    )
    return [
        (peek, [(1, 1, "peek")]),
        (chunk, [(1, 1, "chunk"), (2, 2, "measure")]),
        (ask, [(1, 1, "batch_llm"), (2, 2, "aggregate")]),
        ("SUBMIT(total)", [(1, 1, "submit")]),
    ]


def make_trace(run_id: str, i: int, *, task_id: str | None, approach: str) -> Trace:
    cells = _regex_cells(i) if approach == "regex" else _llm_cells(i)
    correct = (i % 7 != 0) if approach == "regex" else (i % 5 == 0)
    iterations = tuple(
        Iteration(
            run_id=run_id, index=k, reasoning=f"step {k} of the {approach} approach", code=code, stdout="ok"
        )
        for k, (code, _) in enumerate(cells)
    )
    labels = tuple(
        StepLabel(run_id, k, a, b, tactic) for k, (_, spans) in enumerate(cells) for a, b, tactic in spans
    )
    calls = tuple(
        LLMCall(
            id=f"{run_id}-c{k}",
            run_id=run_id,
            iteration=k,
            role="root",
            model="sim",
            prompt="Question: which service?",
            response="```python\n...\n```",
            metadata={"strategy": approach, "sound": approach == "regex"},
        )
        for k in range(len(cells))
    )
    run = Run(
        id=run_id,
        engine="rlmine",
        status="submitted",
        task_id=task_id,
        question="Which service logs the most errors?",
        final_answer="x",
        correct=correct,
    )
    return Trace(run=run, iterations=iterations, calls=calls, labels=labels).with_totals()


def make_db(path: Path, *, runs: int = 24, task: str = "logs", start: int = 0) -> Store:
    """A database with ``runs`` runs of task ``task``: two thirds regex, one third llm."""
    store = Store.open(path, create=True)
    with store.writer() as con:
        task_id = upsert_task(con, name=task, question="Which service logs the most errors?")
    add_runs(store, task_id, range(start, start + runs))
    return store


def add_runs(store: Store, task_id: str, indices: range) -> None:
    traces = [
        make_trace(f"R{i:04d}", i, task_id=task_id, approach="llm" if i % 3 == 2 else "regex")
        for i in indices
    ]
    store.save_traces(traces)
