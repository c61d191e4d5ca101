"""Queries for reading single runs: the run viewer and the side-by-side comparison.

Same contract as :mod:`rlmine.store._dashboard_queries` (pure, a connection in, DataFrames
out, SQL in DuckDB). A run that does not exist yields empty frames, never an
exception, so a page can say so in plain words.

Timing model of an iteration (see :func:`run_timeline`): the root LM's latency,
then the code's execution. ``llm_query`` calls happen *inside* the code's
execution, so sub-call time is carved out of the code's duration (capped by it,
since batched sub-calls run in parallel) rather than added to it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import duckdb
import pandas as pd

from rlmine.store._dashboard_queries import fetch_df, runs_cte

# Compare view clips outputs: it is for lining runs up, the viewer shows them whole.
COMPARE_OUTPUT_CHARS = 2000


def run_summary(con: duckdb.DuckDBPyConnection, run_id: str) -> pd.DataFrame:
    """One row describing the run (labels, budget, parent link); empty if no such run."""
    return fetch_df(
        con,
        f"""
        WITH {runs_cte("r.id = $run")}
        SELECT base.id, base.task, base.model, base.engine_label AS engine, base.kind,
               base.is_simulator, base.is_imported, base.root_model, base.sub_model, base.status,
               base.question, base.final_answer, base.expected, base.score, base.correct,
               base.n_iterations AS iterations, base.n_llm_calls AS llm_calls,
               base.n_sub_calls AS sub_calls, base.tokens_in, base.tokens_out, base.tokens,
               base.cost, base.wall_s, base.started_at, base.finished_at, base.batch, base.error,
               base.max_iterations, base.max_sub_calls, base.instance_id,
               base.metadata->>'$.system_prompt_sha256' AS system_prompt_sha256,
               base.parent_run_id, base.parent_call_id, pc.iteration AS parent_iteration,
               (SELECT count(*) FROM runs k WHERE k.parent_run_id = $run) AS child_runs,
               (SELECT count(*) FROM llm_calls e WHERE e.run_id = $run AND (e.metadata->'$.estimated') IS NOT NULL)
                   AS estimated_calls
        FROM base
        -- run_id in the join lets DuckDB skip llm_calls row groups of other runs
        LEFT JOIN llm_calls pc ON pc.run_id = base.parent_run_id AND pc.id = base.parent_call_id
        """,
        {"run": run_id},
    )


def run_iterations(con: duckdb.DuckDBPyConnection, run_id: str) -> pd.DataFrame:
    """The run's iterations in order, each with totals of the sub-LLM calls its code made."""
    return fetch_df(
        con,
        """
        WITH subs AS (
            SELECT iteration, count(*) AS n_sub_calls, sum(latency_s) AS sub_latency_s,
                   sum(tokens_in) AS sub_tokens_in, sum(tokens_out) AS sub_tokens_out,
                   count(*) FILTER (WHERE error IS NOT NULL) AS sub_errors,
                   count(*) FILTER (WHERE child_run_id IS NOT NULL) AS child_runs
            FROM llm_calls WHERE run_id = $run AND role = 'sub' GROUP BY iteration
        )
        SELECT i.idx AS iteration, i.reasoning, i.code, i.stdout, i.stderr, i.error, i.error_kind,
               i.duration_s, i.root_tokens_in, i.root_tokens_out, i.root_latency_s,
               coalesce(i.output_truncated, false) AS output_truncated,
               coalesce(i.submitted, false) AS submitted, i.started_at,
               coalesce(s.n_sub_calls, 0) AS n_sub_calls, s.sub_latency_s, s.sub_tokens_in,
               s.sub_tokens_out, coalesce(s.sub_errors, 0) AS sub_errors,
               coalesce(s.child_runs, 0) AS child_runs
        FROM iterations i LEFT JOIN subs s ON s.iteration = i.idx
        WHERE i.run_id = $run ORDER BY i.idx
        """,
        {"run": run_id},
    )


def sub_calls(con: duckdb.DuckDBPyConnection, run_id: str) -> pd.DataFrame:
    """The run's sub-LLM calls (prompt, response, tokens, latency, nested child run), in order."""
    return fetch_df(
        con,
        """
        SELECT c.id, c.iteration, c.model
                   || CASE WHEN list_contains($sim, split_part(c.model, '@', 1)) THEN ' (simulator)' ELSE '' END AS model,
               c.prompt, c.prompt_chars, c.response, c.reasoning, c.tokens_in, c.tokens_out, c.cost,
               c.latency_s, c.error, c.child_run_id, k.status AS child_status,
               k.n_iterations AS child_iterations,
               coalesce(json_array_length(c.metadata->'$.estimated') > 0, false) AS estimated,
               regexp_replace(left(c.prompt, 80), '\\s+', ' ', 'g') AS prompt_preview
        FROM llm_calls c LEFT JOIN runs k ON k.id = c.child_run_id
        WHERE c.run_id = $run AND c.role = 'sub'
        ORDER BY c.iteration NULLS LAST, c.started_at NULLS LAST, c.id
        """,
        {"run": run_id},
    )


def run_timeline(con: duckdb.DuckDBPyConnection, run_id: str) -> pd.DataFrame:
    """Where time and tokens went, per iteration and phase (long form for a stacked bar).

    Phases: ``root LM`` (the root model's latency and tokens), ``sub-LLM calls``
    (their latency, capped by the code's duration, and their tokens) and
    ``code`` (the rest of the execution time).
    """
    return fetch_df(
        con,
        """
        WITH subs AS (
            SELECT iteration, sum(latency_s) AS latency, sum(coalesce(tokens_in, 0) + coalesce(tokens_out, 0)) AS tokens
            FROM llm_calls WHERE run_id = $run AND role = 'sub' GROUP BY iteration
        ),
        it AS (
            SELECT i.idx, i.root_latency_s, i.duration_s,
                   coalesce(i.root_tokens_in, 0) + coalesce(i.root_tokens_out, 0) AS root_tokens,
                   CASE WHEN i.duration_s IS NULL THEN s.latency ELSE least(coalesce(s.latency, 0), i.duration_s) END
                       AS sub_s,
                   coalesce(s.tokens, 0) AS sub_tokens
            FROM iterations i LEFT JOIN subs s ON s.iteration = i.idx WHERE i.run_id = $run
        )
        SELECT iteration, phase, seconds, tokens FROM (
            SELECT idx AS iteration, 0 AS ord, 'root LM' AS phase, coalesce(root_latency_s, 0.0) AS seconds,
                   root_tokens AS tokens FROM it
            UNION ALL
            SELECT idx, 1, 'code', greatest(coalesce(duration_s, 0.0) - coalesce(sub_s, 0.0), 0.0), 0 FROM it
            UNION ALL
            SELECT idx, 2, 'sub-LLM calls', coalesce(sub_s, 0.0), sub_tokens FROM it
        ) ORDER BY iteration, ord
        """,
        {"run": run_id},
    )


def _of_run(
    con: duckdb.DuckDBPyConnection, run_id: str, columns: str, table: str, order: str
) -> pd.DataFrame:
    """``columns`` of ``table``'s rows of one run, in ``order``."""
    return fetch_df(
        con, f"SELECT {columns} FROM {table} WHERE run_id = $run ORDER BY {order}", {"run": run_id}
    )


def code_blocks(con: duckdb.DuckDBPyConnection, run_id: str) -> pd.DataFrame:
    """The run's code blocks, each with its own output and error, in the order the model wrote them."""
    columns = "iteration, idx AS block, code, stdout, stderr, error, error_kind, duration_s, ran"
    return _of_run(con, run_id, columns, "code_blocks", "iteration, idx")


def root_messages(con: duckdb.DuckDBPyConnection, run_id: str) -> pd.DataFrame:
    """The root model's turns in order: the newest message it was sent (the stored prompt) and its reply.

    Together they rebuild the conversation after the system prompt: each turn's
    prompt is the user message that followed the previous reply. A prompt stored
    only as a hash (too long) has ``prompt`` null and its ``prompt_sha256``.
    """
    return fetch_df(
        con,
        """
        SELECT iteration, prompt, prompt_sha256, prompt_chars, response, error,
               TRY_CAST(metadata->>'$.n_messages' AS INTEGER) AS n_messages
        FROM llm_calls WHERE run_id = $run AND role = 'root'
        ORDER BY iteration NULLS FIRST, started_at NULLS LAST, id
        """,
        {"run": run_id},
    )


def run_time_axis(con: duckdb.DuckDBPyConnection, run_id: str) -> pd.DataFrame:
    """Where the run's time went, on one time axis (seconds since the run started).

    Per iteration a ``root LM`` span then a ``code`` span, and each sub-LLM call
    whose start is known. Engines record time differently: rlmine stores the
    root call's latency and the code's duration; an rlms import the whole turn
    (``iteration_time``) and each block's time, so there the root model's share
    is the turn minus its blocks. An iteration without a start time follows the
    one before it. ``unplaced`` counts sub-calls with no start time (not drawn).
    """
    return fetch_df(
        con,
        """
        WITH blocks AS (
            SELECT iteration, sum(duration_s) AS code_s FROM code_blocks WHERE run_id = $run GROUP BY iteration
        ),
        it AS (
            SELECT i.idx, i.started_at, i.error IS NOT NULL AS failed,
                   CASE WHEN i.root_latency_s IS NOT NULL THEN i.root_latency_s
                        ELSE greatest(coalesce(i.duration_s, 0) - coalesce(b.code_s, 0), 0) END AS root_s,
                   CASE WHEN i.root_latency_s IS NOT NULL THEN coalesce(i.duration_s, 0)
                        ELSE coalesce(b.code_s, 0) END AS code_s
            FROM iterations i LEFT JOIN blocks b ON b.iteration = i.idx WHERE i.run_id = $run
        ),
        origin AS (
            SELECT coalesce((SELECT started_at FROM runs WHERE id = $run), min(started_at)) AS t0 FROM it
        ),
        placed AS (
            SELECT it.*, coalesce(
                       epoch(it.started_at) - epoch(origin.t0),
                       coalesce(sum(root_s + code_s) OVER (ORDER BY idx ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING), 0)
                   ) AS start_s
            FROM it, origin
        ),
        subs AS (
            SELECT c.iteration, epoch(c.started_at) - epoch(origin.t0) AS start_s, coalesce(c.latency_s, 0) AS seconds,
                   c.error IS NOT NULL AS failed
            FROM llm_calls c, origin WHERE c.run_id = $run AND c.role = 'sub' AND c.started_at IS NOT NULL
        ),
        unplaced AS (
            SELECT count(*) AS n FROM llm_calls WHERE run_id = $run AND role = 'sub' AND started_at IS NULL
        )
        SELECT iteration, phase, start_s, seconds, failed, (SELECT n FROM unplaced) AS unplaced FROM (
            SELECT idx AS iteration, 0 AS ord, 'root LM' AS phase, start_s, root_s AS seconds, failed FROM placed
            UNION ALL
            SELECT idx, 1, 'code', start_s + root_s, code_s, failed FROM placed
            UNION ALL
            SELECT iteration, 2, 'sub-LLM calls', start_s, seconds, failed FROM subs
        ) ORDER BY iteration, ord, start_s
        """,
        {"run": run_id},
    )


def child_runs(con: duckdb.DuckDBPyConnection, run_id: str) -> pd.DataFrame:
    """Nested runs (imported rlms sub-trajectories) under ``run_id``, with the calling iteration."""
    return fetch_df(
        con,
        f"""
        WITH {runs_cte("r.parent_run_id = $run")}
        SELECT base.id, pc.iteration AS parent_iteration, base.parent_call_id, base.model, base.status,
               base.n_iterations AS iterations, base.correct, base.final_answer,
               'run_viewer?run=' || base.id AS link
        FROM base LEFT JOIN llm_calls pc ON pc.run_id = $run AND pc.id = base.parent_call_id
        ORDER BY pc.iteration NULLS LAST, base.id
        """,
        {"run": run_id},
    )


def step_labels(con: duckdb.DuckDBPyConnection, run_id: str) -> pd.DataFrame:
    """The simulator's ground-truth tactic labels of the run's code lines (empty for real runs)."""
    return _of_run(
        con, run_id, "iteration, line_start, line_end, tactic", "step_labels", "iteration, line_start"
    )


def compare_summary(con: duckdb.DuckDBPyConnection, run_ids: Sequence[str]) -> pd.DataFrame:
    """One row per run, in the order given (unknown ids are left out)."""
    return fetch_df(
        con,
        f"""
        WITH {runs_cte("list_contains($ids, r.id)")}, wanted AS (SELECT unnest($ids) AS id, generate_subscripts($ids, 1) AS pos)
        SELECT base.id, base.final_answer AS answer, base.expected, base.correct, base.status,
               base.task, base.model, base.engine_label AS engine,
               base.n_iterations AS iterations, base.n_llm_calls AS llm_calls, base.tokens, base.cost,
               base.wall_s, base.question, wanted.pos
        FROM wanted JOIN base ON base.id = wanted.id
        ORDER BY wanted.pos
        """,
        {"ids": list(run_ids)},
    )


def aligned_iterations(con: duckdb.DuckDBPyConnection, run_ids: Sequence[str]) -> pd.DataFrame:
    """Iterations of several runs keyed by an alignment ``step`` (the iteration index for now).

    Every (step, run) pair appears, with nulls where a run has no such step, so
    a page can lay the runs out side by side row by row.
    """
    args: dict[str, Any] = {"ids": list(run_ids), "clip": COMPARE_OUTPUT_CHARS}
    return fetch_df(
        con,
        """
        WITH wanted AS (SELECT unnest($ids) AS run_id, generate_subscripts($ids, 1) AS pos),
        its AS (
            SELECT i.run_id, i.idx AS step, i.reasoning, i.code,
                   left(coalesce(i.stdout, '') || coalesce(i.stderr, ''), $clip) AS output,
                   length(coalesce(i.stdout, '') || coalesce(i.stderr, '')) > $clip AS output_clipped,
                   i.error, coalesce(i.submitted, false) AS submitted, i.duration_s, i.root_latency_s
            FROM iterations i JOIN wanted USING (run_id)
        ),
        subs AS (
            SELECT run_id, iteration AS step, count(*) AS n_sub_calls
            FROM llm_calls JOIN wanted USING (run_id) WHERE role = 'sub' GROUP BY ALL
        ),
        steps AS (SELECT DISTINCT step FROM its)
        SELECT steps.step, wanted.run_id, wanted.pos, its.reasoning, its.code, its.output,
               its.output_clipped, its.error, its.submitted, its.duration_s, its.root_latency_s,
               coalesce(subs.n_sub_calls, 0) AS n_sub_calls, its.step IS NOT NULL AS present
        FROM steps CROSS JOIN wanted
        LEFT JOIN its ON its.step = steps.step AND its.run_id = wanted.run_id
        LEFT JOIN subs ON subs.step = steps.step AND subs.run_id = wanted.run_id
        ORDER BY steps.step, wanted.pos
        """,
        args,
    )
