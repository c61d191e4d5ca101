"""The dashboard's read queries: pure functions from a DuckDB connection to DataFrames.

Every number the dashboard shows is computed here, in SQL (the store owns all of
rlmine's SQL), so page code only lays results out (no pandas loops) and each
function is unit-tested on a small fixture database. Functions take an open
read-only connection (see :mod:`rlmine.store._dashboard_pages`), so a page runs
all its queries under one short-held connection.

Conventions shared by all queries:

* "Runs" means top-level runs (``parent_run_id IS NULL``); nested child runs of
  imported rlms trajectories are parts of their parent and are shown from it.
* Simulator runs (root model in :data:`SIMULATED_MODELS`, or one of them served over HTTP:
  ``sim@HOST:PORT``) get a
  ``" (simulator)"`` model label and ``kind = 'simulator'``; imported runs
  (engine other than :data:`NATIVE_ENGINE`) an ``" (imported)"`` engine label
  and ``kind = 'imported'``: the pages never show them unmarked.
* Budgets are read from ``runs.params``: ``params.budget.max_iterations`` and
  ``params.budget.max_sub_calls``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import duckdb
import pandas as pd

from rlmine.errors import UserError
from rlmine.trace import SIMULATED_MODELS

NATIVE_ENGINE = "rlmine"
TIME_BUCKETS = ("minute", "hour", "day", "week")
CORRECT_CHOICES = ("yes", "no", "unknown")
# How each verdict reads on a page (the values above stay the filters' and URLs' own).
VERDICT_LABELS = {"yes": "correct", "no": "wrong", "unknown": "not judged"}
ERROR_CHOICES = ("code errors", "no code errors")
# Iteration errors that are the code's doing (a reply without code, or a failed root call, is not).
CODE_ERROR_SQL = "error IS NOT NULL AND coalesce(error_kind, 'code') NOT IN ('parse', 'lm')"
KIND_CHOICES = ("recorded", "simulator", "imported")
RUN_SORT_COLUMNS = (
    "started_at",
    "task",
    "model",
    "status",
    "iterations",
    "llm_calls",
    "tokens",
    "cost",
    "wall_s",
)

# One projection of a run with its labels, reused by every query below.
_RUNS_CTE = """
base AS (
    SELECT r.*,
           coalesce(t.name, r.task_id, '(no task)') AS task,
           coalesce(b.name, r.batch_id) AS batch,
           coalesce(list_contains($sim, split_part(r.root_model, '@', 1)), false) AS is_simulator,
           r.engine <> 'rlmine' AS is_imported,
           coalesce(r.root_model, '-')
               || CASE WHEN list_contains($sim, split_part(r.root_model, '@', 1)) THEN ' (simulator)' ELSE '' END AS model,
           r.engine || CASE WHEN r.engine <> 'rlmine' THEN ' (imported)' ELSE '' END AS engine_label,
           CASE WHEN list_contains($sim, split_part(r.root_model, '@', 1)) THEN 'simulator'
                WHEN r.engine <> 'rlmine' THEN 'imported' ELSE 'recorded' END AS kind,
           CASE WHEN r.tokens_in IS NULL AND r.tokens_out IS NULL THEN NULL
                ELSE coalesce(r.tokens_in, 0) + coalesce(r.tokens_out, 0) END AS tokens,
           TRY_CAST(r.params->'budget'->>'max_iterations' AS INTEGER) AS max_iterations,
           TRY_CAST(r.params->'budget'->>'max_sub_calls' AS INTEGER) AS max_sub_calls
    FROM runs r
    LEFT JOIN tasks t ON t.id = r.task_id
    LEFT JOIN batches b ON b.id = r.batch_id
    WHERE {where}
)
"""


def runs_cte(where: str = "true") -> str:
    """The ``base`` CTE over the runs that satisfy ``where`` (SQL over ``r``, the runs table).

    Filtering inside the CTE, rather than after it, keeps single-run queries
    from joining every run.
    """
    return _RUNS_CTE.format(where=where)


RUNS_CTE = runs_cte()
# Per run, how many iterations the code failed in.
ERRS_CTE = f"errs AS (SELECT run_id, count(*) AS n FROM iterations WHERE {CODE_ERROR_SQL} GROUP BY run_id)"


def fetch_df(con: duckdb.DuckDBPyConnection, sql: str, params: dict[str, Any] | None = None) -> pd.DataFrame:
    """Run ``sql`` with named ``$params`` (plus ``$sim``, the simulator models) into a DataFrame."""
    args: dict[str, Any] = {"sim": list(SIMULATED_MODELS)}
    if params:
        args.update(params)
    # DuckDB rejects named parameters the statement does not use.
    used = {k: v for k, v in args.items() if re.search(rf"\${k}\b", sql)}
    return con.execute(sql, used).df()


# -- overview ----------------------------------------------------------------------


def overview_counts(con: duckdb.DuckDBPyConnection) -> pd.DataFrame:
    """One row of headline numbers over top-level runs (child runs counted apart)."""
    return fetch_df(
        con,
        f"""
        WITH {RUNS_CTE}, {ERRS_CTE}
        SELECT count(*) FILTER (WHERE parent_run_id IS NULL) AS runs,
               count(*) FILTER (WHERE parent_run_id IS NOT NULL) AS child_runs,
               count(DISTINCT task_id) AS tasks,
               count(DISTINCT root_model) AS models,
               count(DISTINCT batch_id) AS batches,
               count(*) FILTER (WHERE parent_run_id IS NULL AND status = 'running') AS running,
               count(*) FILTER (WHERE parent_run_id IS NULL AND status = 'error') AS errors,
               count(*) FILTER (WHERE parent_run_id IS NULL AND coalesce(errs.n, 0) > 0)
                   AS runs_with_code_errors,
               coalesce(sum(errs.n) FILTER (WHERE parent_run_id IS NULL), 0)::BIGINT AS iteration_errors,
               count(*) FILTER (WHERE parent_run_id IS NULL AND correct IS NOT NULL) AS judged,
               count(*) FILTER (WHERE parent_run_id IS NULL AND correct) AS correct,
               avg(CASE WHEN correct THEN 1.0 WHEN NOT correct THEN 0.0 END)
                   FILTER (WHERE parent_run_id IS NULL) AS success_rate,
               count(*) FILTER (WHERE parent_run_id IS NULL AND is_simulator) AS simulator_runs,
               count(*) FILTER (WHERE parent_run_id IS NULL AND is_imported) AS imported_runs,
               coalesce(sum(n_iterations), 0)::BIGINT AS iterations,
               coalesce(sum(n_llm_calls), 0)::BIGINT AS llm_calls,
               coalesce(sum(n_sub_calls), 0)::BIGINT AS sub_calls,
               sum(tokens)::BIGINT AS tokens,
               sum(cost) AS cost
        FROM base LEFT JOIN errs ON errs.run_id = base.id
        """,
    )


def success_by_task_model(con: duckdb.DuckDBPyConnection) -> pd.DataFrame:
    """Per task and root model: runs, judged runs, correct runs, success rate."""
    return fetch_df(
        con,
        f"""
        WITH {RUNS_CTE}
        SELECT task, model, any_value(is_simulator) AS is_simulator,
               count(*) FILTER (WHERE is_imported) AS imported_runs,
               count(*) AS runs,
               count(*) FILTER (WHERE correct IS NOT NULL) AS judged,
               count(*) FILTER (WHERE correct) AS correct,
               avg(CASE WHEN correct THEN 1.0 WHEN NOT correct THEN 0.0 END) AS success_rate
        FROM base WHERE parent_run_id IS NULL
        GROUP BY task, model ORDER BY task, model
        """,
    )


def success_by_model(con: duckdb.DuckDBPyConnection) -> pd.DataFrame:
    """Per root model over all tasks: judged runs, correct runs, success rate (judged models only)."""
    return fetch_df(
        con,
        f"""
        WITH {RUNS_CTE}
        SELECT model, count(*) AS runs,
               count(*) FILTER (WHERE correct IS NOT NULL) AS judged,
               count(*) FILTER (WHERE correct) AS correct,
               avg(CASE WHEN correct THEN 1.0 WHEN NOT correct THEN 0.0 END) AS success_rate
        FROM base WHERE parent_run_id IS NULL
        GROUP BY model HAVING count(*) FILTER (WHERE correct IS NOT NULL) > 0
        ORDER BY success_rate DESC, model
        """,
    )


def run_distribution(con: duckdb.DuckDBPyConnection, limit: int = 20_000) -> pd.DataFrame:
    """Per top-level run (the newest ``limit``): tokens, wall time, iterations and its verdict, to plot."""
    return fetch_df(
        con,
        f"""
        WITH {RUNS_CTE}
        SELECT id, model, task, tokens, wall_s, n_iterations AS iterations,
               CASE WHEN correct THEN 'correct' WHEN NOT correct THEN 'wrong' ELSE 'not judged' END AS verdict
        FROM base WHERE parent_run_id IS NULL
        ORDER BY id DESC LIMIT $limit
        """,
        {"limit": int(limit)},
    )


def pick_time_bucket(con: duckdb.DuckDBPyConnection) -> str:
    """The coarsest bucket that still shows a few bars over the recorded time span."""
    row = con.execute(
        "SELECT epoch(max(started_at)) - epoch(min(started_at)) FROM runs WHERE parent_run_id IS NULL"
    ).fetchone()
    span = float(row[0]) if row and row[0] is not None else 0.0
    if span <= 3 * 3600:
        return "minute"
    if span <= 3 * 86400:
        return "hour"
    if span <= 90 * 86400:
        return "day"
    return "week"


def usage_over_time(con: duckdb.DuckDBPyConnection, bucket: str | None = None) -> pd.DataFrame:
    """Runs, tokens and cost per time bucket and model (``bucket`` None: picked from the span)."""
    chosen = bucket or pick_time_bucket(con)
    if chosen not in TIME_BUCKETS:
        raise UserError(f"unknown time bucket {chosen!r}", f"one of: {', '.join(TIME_BUCKETS)}")
    return fetch_df(
        con,
        f"""
        WITH {RUNS_CTE}
        SELECT date_trunc($bucket, started_at) AS period, model,
               count(*) AS runs,
               coalesce(sum(tokens), 0)::BIGINT AS tokens,
               coalesce(sum(cost), 0.0) AS cost
        FROM base WHERE parent_run_id IS NULL AND started_at IS NOT NULL
        GROUP BY period, model ORDER BY period, model
        """,
        {"bucket": chosen},
    )


def budget_usage(con: duckdb.DuckDBPyConnection) -> pd.DataFrame:
    """Per run with a budget: iterations and sub-calls used vs allowed (fractions of the budget)."""
    return fetch_df(
        con,
        f"""
        WITH {RUNS_CTE}
        SELECT id AS run_id, task, model, status,
               n_iterations AS iterations, max_iterations,
               n_iterations / nullif(max_iterations, 0) AS iterations_used,
               n_sub_calls AS sub_calls, max_sub_calls,
               n_sub_calls / nullif(max_sub_calls, 0) AS sub_calls_used
        FROM base
        WHERE parent_run_id IS NULL AND (max_iterations IS NOT NULL OR max_sub_calls IS NOT NULL)
        ORDER BY task, model, run_id
        """,
    )


def budget_summary(con: duckdb.DuckDBPyConnection) -> pd.DataFrame:
    """Per task and model: mean share of each budget used, and how many runs hit a limit."""
    return fetch_df(
        con,
        f"""
        WITH {RUNS_CTE}
        SELECT task, model, count(*) AS runs,
               avg(n_iterations / nullif(max_iterations, 0)) AS mean_iterations_used,
               count(*) FILTER (WHERE n_iterations >= max_iterations) AS hit_iteration_limit,
               avg(n_sub_calls / nullif(max_sub_calls, 0)) AS mean_sub_calls_used,
               count(*) FILTER (WHERE n_sub_calls >= max_sub_calls) AS hit_sub_call_limit,
               count(*) FILTER (WHERE status = 'budget_exhausted') AS budget_exhausted
        FROM base
        WHERE parent_run_id IS NULL AND (max_iterations IS NOT NULL OR max_sub_calls IS NOT NULL)
        GROUP BY task, model ORDER BY task, model
        """,
    )


def recent_batches(con: duckdb.DuckDBPyConnection, limit: int = 10) -> pd.DataFrame:
    """The latest batches with their progress and outcome, newest first."""
    return fetch_df(
        con,
        f"""
        WITH {RUNS_CTE}
        SELECT coalesce(b.name, base.batch_id) AS batch, any_value(base.task) AS task,
               string_agg(DISTINCT base.model, ', ' ORDER BY base.model) AS models,
               count(*) AS runs,
               count(*) FILTER (WHERE base.status = 'running') AS running,
               count(*) FILTER (WHERE base.status = 'error') AS errors,
               count(*) FILTER (WHERE base.correct) AS correct,
               avg(CASE WHEN base.correct THEN 1.0 WHEN NOT base.correct THEN 0.0 END) AS success_rate,
               sum(base.cost) AS cost,
               min(coalesce(b.created_at, base.started_at)) AS created_at,
               max(base.started_at) AS last_run_at
        FROM base LEFT JOIN batches b ON b.id = base.batch_id
        WHERE base.parent_run_id IS NULL AND base.batch_id IS NOT NULL
        GROUP BY coalesce(b.name, base.batch_id)
        ORDER BY max(coalesce(base.started_at, b.created_at)) DESC NULLS LAST, batch
        LIMIT $limit
        """,
        {"limit": int(limit)},
    )


# -- runs --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RunFilter:
    """What the Runs page filters on; an empty tuple means "any"."""

    tasks: tuple[str, ...] = ()
    models: tuple[str, ...] = ()  # labels as shown, e.g. "sim (simulator)"
    engines: tuple[str, ...] = ()
    statuses: tuple[str, ...] = ()
    kinds: tuple[str, ...] = ()  # KIND_CHOICES
    correct: tuple[str, ...] = ()  # CORRECT_CHOICES
    batches: tuple[str, ...] = ()
    run_ids: tuple[str, ...] = ()
    errors: tuple[str, ...] = ()  # ERROR_CHOICES
    search: str = ""  # text in an iteration's code, reasoning or output (a child run's counts for its parent)
    sort_by: str = "started_at"
    descending: bool = True


def runs_table(
    con: duckdb.DuckDBPyConnection, flt: RunFilter | None = None, limit: int = 5000
) -> pd.DataFrame:
    """Top-level runs matching ``flt``, sorted, with a ``link`` to the run viewer and ``total`` matches."""
    f = flt or RunFilter()
    if f.sort_by not in RUN_SORT_COLUMNS:
        raise UserError(f"cannot sort runs by {f.sort_by!r}", f"one of: {', '.join(RUN_SORT_COLUMNS)}")
    bad = (
        set(f.correct) - set(CORRECT_CHOICES)
        | set(f.kinds) - set(KIND_CHOICES)
        | set(f.errors) - set(ERROR_CHOICES)
    )
    if bad:
        raise UserError(
            f"unknown filter value(s) {sorted(bad)}", f"{CORRECT_CHOICES}, {KIND_CHOICES} or {ERROR_CHOICES}"
        )
    conditions = ["parent_run_id IS NULL"]
    for column, values, name in (
        ("task", f.tasks, "tasks"),
        ("model", f.models, "models"),
        ("engine", f.engines, "engines"),
        ("status", f.statuses, "statuses"),
        ("kind", f.kinds, "kinds"),
        ("batch", f.batches, "batches"),
        ("id", f.run_ids, "run_ids"),
    ):
        if values:
            conditions.append(f"list_contains(${name}, {column})")
    if f.correct:
        conditions.append(
            "list_contains($correct, CASE WHEN correct THEN 'yes' WHEN NOT correct THEN 'no' ELSE 'unknown' END)"
        )
    if len(f.errors) == 1:  # both choices: any run
        conditions.append("code_errors > 0" if f.errors[0] == "code errors" else "code_errors = 0")
    searching = bool(f.search.strip())
    if searching:
        conditions.append("hits.hit_run IS NOT NULL")
    direction = "DESC" if f.descending else "ASC"
    params: dict[str, Any] = {
        "pat": _like_pattern(f.search.strip()),
        "needle": f.search.strip(),
        "tasks": list(f.tasks),
        "models": list(f.models),
        "engines": list(f.engines),
        "statuses": list(f.statuses),
        "kinds": list(f.kinds),
        "batches": list(f.batches),
        "run_ids": list(f.run_ids),
        "correct": list(f.correct),
        "limit": int(limit),
    }
    order = f"{f.sort_by} {direction} NULLS LAST, id {direction}"
    return fetch_df(
        con,
        f"""
        WITH {RUNS_CTE}, {ERRS_CTE},
        kids AS (SELECT parent_run_id AS kid_parent, count(*) AS n FROM runs WHERE parent_run_id IS NOT NULL GROUP BY ALL),
        {_SEARCH_CTES if searching else _NO_SEARCH_CTE},
        listed AS (
            SELECT id, task, model, engine_label AS engine, status, correct,
                   CASE WHEN correct THEN 'correct' WHEN NOT correct THEN 'wrong' ELSE 'not judged' END
                       AS verdict,
                   replace(status, '_', ' ') AS status_badge,
                   coalesce(errs.n, 0) AS code_errors,
                   regexp_replace(left(question, 160), '\\s+', ' ', 'g') AS question_preview,
                   regexp_replace(left(final_answer, 80), '\\s+', ' ', 'g') AS answer_preview,
                   n_iterations AS iterations, n_llm_calls AS llm_calls, n_sub_calls AS sub_calls,
                   tokens, cost, wall_s, started_at, batch, kind, is_simulator, is_imported,
                   coalesce(kids.n, 0) AS child_runs, final_answer, error,
                   hits.hit_field, hits.hit_iter, coalesce(hits.only_nested, false) AS only_nested,
                   'run_viewer?run=' || id
                       || CASE WHEN hits.hit_iter IS NOT NULL AND NOT hits.only_nested
                               THEN '&iter=' || hits.hit_iter ELSE '' END AS link
            FROM base LEFT JOIN kids ON kids.kid_parent = base.id LEFT JOIN errs ON errs.run_id = base.id
                 LEFT JOIN hits ON hits.hit_run = base.id
            WHERE {" AND ".join(conditions)}
        ),
        shown AS (
            SELECT *, count(*) OVER () AS total, row_number() OVER (ORDER BY {order}) AS _rn
            FROM listed ORDER BY {order} LIMIT $limit
        ),
        -- Snippets for the first rows only: a small join lets DuckDB skip most of the iterations' text.
        matched AS (
            SELECT i.run_id, i.idx, i.code, i.reasoning, i.stdout, i.stderr, i.error
            FROM iterations i JOIN (SELECT id, hit_iter FROM shown WHERE _rn <= {SNIPPET_ROWS} AND NOT only_nested) w
                 ON i.run_id = w.id AND i.idx = w.hit_iter
        )
        SELECT * EXCLUDE (_body), {_SNIPPET if searching else "NULL::VARCHAR"} AS snippet FROM (
            SELECT shown.* EXCLUDE (hit_field, hit_iter, only_nested, _rn),
                   CASE WHEN shown.only_nested THEN 'nested run'
                        WHEN shown.hit_iter IS NOT NULL THEN shown.hit_field || ' · iteration ' || shown.hit_iter
                   END AS match,
                   CASE shown.hit_field WHEN 'code' THEN i.code WHEN 'reasoning' THEN i.reasoning
                        WHEN 'output' THEN i.stdout WHEN 'stderr' THEN i.stderr ELSE i.error END AS _body
            FROM shown LEFT JOIN matched i ON i.run_id = shown.id AND i.idx = shown.hit_iter
        )
        ORDER BY {order}
        """,
        params,
    )


SNIPPET_ROWS = 300  # rows of a search's result that get a snippet (far more than a screen shows)

# Each iteration's first field matching $pat (NULL: no match): shared by the runs table's search
# and :func:`search_runs`.
_TAGGED_CTE = """tagged AS (
    SELECT run_id, idx,
           CASE WHEN code ILIKE $pat ESCAPE '\\' THEN 'code'
                WHEN reasoning ILIKE $pat ESCAPE '\\' THEN 'reasoning'
                WHEN stdout ILIKE $pat ESCAPE '\\' THEN 'output'
                WHEN stderr ILIKE $pat ESCAPE '\\' THEN 'stderr'
                WHEN error ILIKE $pat ESCAPE '\\' THEN 'error' END AS field
    FROM iterations
)"""
# A search's matches in one pass over the iterations: per run its first matching iteration and
# field; a nested child run's match counts for its parent (shown as "nested run" when the parent
# itself has none).
_SEARCH_CTES = (
    _TAGGED_CTE
    + """,
per_run AS (
    SELECT run_id, arg_min(field, idx) AS field, min(idx) AS idx FROM tagged WHERE field IS NOT NULL GROUP BY run_id
),
hits AS MATERIALIZED (
    SELECT coalesce(k.parent_run_id, p.run_id) AS hit_run,
           arg_min(p.field, (k.parent_run_id IS NOT NULL, p.idx)) AS hit_field,
           arg_min(p.idx, (k.parent_run_id IS NOT NULL, p.idx)) AS hit_iter,
           bool_and(k.parent_run_id IS NOT NULL) AS only_nested
    FROM per_run p JOIN runs k ON k.id = p.run_id GROUP BY ALL
)"""
)
_NO_SEARCH_CTE = (
    "hits AS (SELECT NULL::VARCHAR AS hit_run, NULL::VARCHAR AS hit_field, NULL::INTEGER AS hit_iter, "
    "NULL::BOOLEAN AS only_nested WHERE false)"
)
# A one-line snippet around the first match, for the rows shown only.
_SNIPPET = """
    regexp_replace(
        CASE WHEN strpos(lower(_body), lower($needle)) > 61 THEN '…' ELSE '' END
        || substr(_body, greatest(strpos(lower(_body), lower($needle)) - 60, 1), length($needle) + 120)
        || CASE WHEN strpos(lower(_body), lower($needle)) + length($needle) + 60 < length(_body)
                THEN '…' ELSE '' END,
        '\\s+', ' ', 'g')"""


def filter_options(con: duckdb.DuckDBPyConnection) -> pd.DataFrame:
    """Distinct values (with run counts) of each filterable column: ``field, value, runs``."""
    return fetch_df(
        con,
        f"""
        WITH {RUNS_CTE}, top AS (SELECT * FROM base WHERE parent_run_id IS NULL)
        SELECT field, value, runs FROM (
            SELECT 'task' AS field, task AS value, count(*) AS runs FROM top GROUP BY ALL
            UNION ALL SELECT 'model', model, count(*) FROM top GROUP BY ALL
            UNION ALL SELECT 'engine', engine_label, count(*) FROM top GROUP BY ALL
            UNION ALL SELECT 'status', status, count(*) FROM top GROUP BY ALL
            UNION ALL SELECT 'kind', kind, count(*) FROM top GROUP BY ALL
            UNION ALL SELECT 'batch', batch, count(*) FROM top WHERE batch IS NOT NULL GROUP BY ALL
        ) ORDER BY field, value
        """,
    )


def _like_pattern(text: str) -> str:
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def search_runs(con: duckdb.DuckDBPyConnection, text: str, limit: int = 100) -> pd.DataFrame:
    """Runs whose code, reasoning or output contains ``text`` (case-insensitive), with a snippet.

    One row per run: the first matching iteration, which field matched, a
    one-line snippet around the match, and how many iterations matched.
    """
    needle = text.strip()
    if not needle:
        raise UserError("empty search text", "a word from the code, reasoning or output")
    # One pass over the text: each iteration's first matching field (NULL: no match), then
    # per run the earliest matching iteration; labels and snippets only for the runs shown.
    return fetch_df(
        con,
        f"""
        WITH {_TAGGED_CTE},
        per_run AS MATERIALIZED (
            SELECT run_id, count(*) AS matches, min(idx) AS idx, arg_min(field, idx) AS field
            FROM tagged WHERE field IS NOT NULL GROUP BY run_id
        ),
        {runs_cte("r.id IN (SELECT run_id FROM per_run)")},
        shown AS (
            SELECT p.*, base.task, base.model, base.engine_label AS engine, base.status, base.correct,
                   base.parent_run_id, base.started_at
            FROM per_run p JOIN base ON base.id = p.run_id
            ORDER BY base.started_at DESC NULLS LAST, p.run_id DESC
            LIMIT $limit
        ),
        bodies AS (
            SELECT s.*, CASE s.field WHEN 'code' THEN i.code WHEN 'reasoning' THEN i.reasoning
                        WHEN 'output' THEN i.stdout WHEN 'stderr' THEN i.stderr ELSE i.error END AS body
            FROM shown s JOIN iterations i ON i.run_id = s.run_id AND i.idx = s.idx
        ),
        located AS (SELECT *, strpos(lower(body), lower($needle)) AS pos FROM bodies)
        SELECT run_id, idx AS iteration, field, matches,
               regexp_replace(
                   CASE WHEN pos > 61 THEN '…' ELSE '' END
                   || substr(body, greatest(pos - 60, 1), length($needle) + 120)
                   || CASE WHEN pos + length($needle) + 60 < length(body) THEN '…' ELSE '' END,
                   '\\s+', ' ', 'g') AS snippet,
               task, model, engine, status, correct, parent_run_id, started_at,
               'run_viewer?run=' || run_id || '&iter=' || idx AS link
        FROM located
        ORDER BY started_at DESC NULLS LAST, run_id DESC
        """,
        {"pat": _like_pattern(needle), "needle": needle, "limit": int(limit)},
    )
