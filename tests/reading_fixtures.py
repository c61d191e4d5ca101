"""A small database for reading runs and finding failures in the dashboard, through the store API.

Runs (all top-level, all known):

* ``BLOCKS_RUN`` — an imported rlms run whose first reply holds three code blocks (the second
  raising, the third printing without a trailing newline), with two batched sub-calls whose
  copied usage is flagged estimated; not judged (imported without a task);
* ``PAGER_RUN`` — a recorded run whose second iteration made 150 sub-LLM calls; correct;
* ``ERRORS_RUN`` — a recorded run whose first iteration raised, then recovered; correct;
* ``PARSE_RUN`` — a recorded run whose only problem was a reply without code (not a code
  error); wrong;
* ``CLEAN_RUN`` — a recorded run without problems; wrong;
* ``LIVE_RUN`` — a run still running, with two iterations so far.

:data:`CODE_ERROR_RUNS` are exactly the runs the "code errors" filter must find.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

from rlmine.store import Store
from rlmine.trace import CodeBlock, Iteration, LLMCall, Run, Trace

T0 = datetime(2025, 6, 1, 12, 0, 0)
BLOCKS_RUN = "r-read-blocks"
PAGER_RUN = "r-read-pager"
ERRORS_RUN = "r-read-errors"
PARSE_RUN = "r-read-parse"
CLEAN_RUN = "r-read-clean"
LIVE_RUN = "r-read-live"
RUNS = (BLOCKS_RUN, PAGER_RUN, ERRORS_RUN, PARSE_RUN, CLEAN_RUN, LIVE_RUN)
CODE_ERROR_RUNS = {BLOCKS_RUN, ERRORS_RUN}
BLOCKS_QUESTION = "Which service logged the most ERROR lines?"
BLOCK_OUTPUTS = ("6\n", "", "['api', 'db']")
INDEX_ERROR = "IndexError: list index out of range"
N_PAGER_CALLS = 150


def _root(
    run_id: str, idx: int, prompt: str, response: str, start: datetime, latency: float | None
) -> LLMCall:
    return LLMCall(
        id=f"{run_id}.r{idx}",
        run_id=run_id,
        iteration=idx,
        role="root",
        model="gpt-4o-mini",
        prompt=prompt,
        response=response,
        tokens_in=900,
        tokens_out=150,
        latency_s=latency,
        started_at=start,
        metadata={"n_messages": 2 + 2 * idx},
    )


def blocks_trace() -> Trace:
    """Shaped like an rlms import: iteration time is the whole turn, root latency unknown."""
    rid = BLOCKS_RUN
    codes = (
        "lines = context.splitlines()\nprint(len(lines))",
        "print(lines[0].split()[9])",
        "svcs = llm_query_batched([l for l in lines[:2]])\nprint(sorted(set(svcs)), end='')",
    )
    traceback = f'Traceback (most recent call last):\n  File "<string>", line 1, in <module>\n{INDEX_ERROR}\n'
    blocks = tuple(
        CodeBlock(
            run_id=rid,
            iteration=0,
            index=k,
            code=code,
            stdout=BLOCK_OUTPUTS[k],
            stderr=traceback if k == 1 else None,
            error=INDEX_ERROR if k == 1 else None,
            error_kind="code" if k == 1 else None,
            duration_s=(0.01, 0.02, 0.5)[k],
        )
        for k, code in enumerate(codes)
    )
    it0 = Iteration(
        run_id=rid,
        index=0,
        reasoning="Three steps at once.",
        code="\n\n".join(codes),
        stdout="".join(BLOCK_OUTPUTS),
        stderr=traceback,
        error=INDEX_ERROR,
        error_kind="code",
        duration_s=7.0,
        started_at=T0,
        blocks=blocks,
    )
    it1 = Iteration(
        run_id=rid,
        index=1,
        reasoning="db has three.\n\nFINAL(db)",
        code="print('db')",
        stdout="db\n",
        duration_s=3.0,
        submitted=True,
        started_at=T0 + timedelta(seconds=7),
        blocks=(
            CodeBlock(run_id=rid, iteration=1, index=0, code="print('db')", stdout="db\n", duration_s=0.01),
        ),
    )
    subs = tuple(
        LLMCall(
            id=f"{rid}.s0.2.{j}",
            run_id=rid,
            iteration=0,
            role="sub",
            model="gpt-4o-mini",
            prompt=f"2025-01-01 10:0{j}:00 line {j}",
            response=svc,
            tokens_in=120,
            tokens_out=8,
            latency_s=0.25,
            metadata={
                "block": 2,
                "batch_size": 2,
                "estimated": ["tokens_in", "tokens_out", "cost", "latency_s"],
            },
        )
        for j, svc in enumerate(("api", "db"))
    )
    roots = (
        LLMCall(
            id=f"{rid}.r0", run_id=rid, iteration=0, role="root", model="frontier-1", prompt=BLOCKS_QUESTION,
            response="Three steps at once. ...", started_at=T0, metadata={"n_messages": 2},
        ),
        LLMCall(
            id=f"{rid}.r1", run_id=rid, iteration=1, role="root", model="frontier-1", prompt="6\n...",
            response="db has three. FINAL(db)", started_at=T0 + timedelta(seconds=7), metadata={"n_messages": 4},
        ),
    )  # fmt: skip
    run = Run(
        id=rid,
        engine="rlms",
        status="submitted",
        question=BLOCKS_QUESTION,
        root_model="frontier-1",
        final_answer="db",
        wall_s=10.0,
        started_at=T0,
        finished_at=T0 + timedelta(seconds=10),
        metadata={"system_prompt_sha256": "ab" * 32},
    )
    return Trace(run=run, iterations=(it0, it1), calls=(*roots, *subs)).with_totals()


def _recorded(
    rid: str,
    cells: list[tuple[str, str, str | None, str | None]],
    *,
    start: datetime,
    status: str = "submitted",
    correct: bool | None = True,
    answer: str | None = "42",
    subs_at: dict[int, int] | None = None,
) -> Trace:
    """A recorded run: cells are (code, stdout, error, error_kind); ``subs_at`` iteration → sub-calls."""
    its, calls = [], []
    clock = start
    for idx, (code, stdout, error, kind) in enumerate(cells):
        calls.append(
            _root(rid, idx, f"turn {idx}: output so far", f"Step {idx}.\n```python\n{code}\n```", clock, 1.5)
        )
        n_subs = (subs_at or {}).get(idx, 0)
        for j in range(n_subs):
            calls.append(
                LLMCall(
                    id=f"{rid}.s{idx}.{j:03d}",
                    run_id=rid,
                    iteration=idx,
                    role="sub",
                    model="gpt-4o-mini",
                    prompt=f"Summarise chunk {j} of the log",
                    response=f"chunk {j}: {j % 7} errors",
                    tokens_in=200,
                    tokens_out=10,
                    latency_s=0.05,
                    started_at=clock + timedelta(seconds=1.5 + 0.01 * j),
                )
            )
        its.append(
            Iteration(
                run_id=rid,
                index=idx,
                reasoning=f"Step {idx}.",
                code=code or None,
                stdout=stdout,
                error=error,
                error_kind=kind,
                duration_s=0.4 + 0.05 * n_subs,
                root_tokens_in=900,
                root_tokens_out=150,
                root_latency_s=1.5,
                submitted=status == "submitted" and idx == len(cells) - 1,
                started_at=clock,
            )
        )
        clock += timedelta(seconds=2 + 0.05 * n_subs)
    run = Run(
        id=rid,
        engine="rlmine",
        status=status,
        question=f"How many incidents? ({rid})",
        root_model="gpt-4o-mini",
        sub_model="gpt-4o-mini",
        final_answer=answer,
        expected="42",
        correct=correct,
        wall_s=(clock - start).total_seconds(),
        started_at=start,
        finished_at=None if status == "running" else clock,
        params={"budget": {"max_iterations": 10, "max_sub_calls": 200}},
    )
    return Trace(run=run, iterations=tuple(its), calls=tuple(calls)).with_totals()


def reading_traces() -> list[Trace]:
    minute = timedelta(minutes=1)
    return [
        blocks_trace(),
        _recorded(
            PAGER_RUN,
            [("print(len(context))", "1000\n", None, None), ("r = llm_query_batched(ps)", "", None, None),
             ("SUBMIT(42)", "", None, None)],
            start=T0 + minute,
            subs_at={1: N_PAGER_CALLS},
        ),
        _recorded(
            ERRORS_RUN,
            [("n = len(context) // 0", "", "ZeroDivisionError: integer division or modulo by zero", "code"),
             ("SUBMIT(42)", "", None, None)],
            start=T0 + 2 * minute,
        ),
        _recorded(
            PARSE_RUN,
            [("", "", "the reply had no code block", "parse"), ("SUBMIT(41)", "", None, None)],
            start=T0 + 3 * minute,
            correct=False,
            answer="41",
        ),
        _recorded(CLEAN_RUN, [("SUBMIT(40)", "", None, None)], start=T0 + 4 * minute, correct=False, answer="40"),
        _recorded(
            LIVE_RUN,
            [("print(1)", "1\n", None, None), ("print(2)", "2\n", None, None)],
            start=T0 + 5 * minute,
            status="running",
            correct=None,
            answer=None,
        ),
    ]  # fmt: skip


def build_reading_db(path: Path) -> Path:
    """Create the reading fixture database at ``path`` (which must not exist yet)."""
    Store.open(path, create=True).save_traces(reading_traces())
    return path
