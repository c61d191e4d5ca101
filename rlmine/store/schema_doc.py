"""Render the database schema as Markdown, from the migrations themselves.

``docs/schema.md`` is this module's output (``python -m rlmine.store.schema_doc >
docs/schema.md``) and a test keeps the two equal, so the document cannot drift
from the schema. The migrations are applied one at a time to an in-memory
DuckDB; after each step the catalogue (``information_schema`` and
``duckdb_constraints()``) is read back, which gives each table and column the
version that introduced it. Nothing here parses SQL text.
"""

from __future__ import annotations

from dataclasses import dataclass

import duckdb

from rlmine.store import _migrations as migrations

# One line per table on what a row is. A table missing here renders as
# "(undocumented)" and the docs test fails, so a new migration brings its note.
TABLE_NOTES: dict[str, str] = {
    "schema_migrations": "One row per migration applied to this database (bookkeeping, made before migration 1).",
    "tasks": "A task: a spec (JSON), a question template and a checker; identified by name.",
    "instances": "One concrete input of a task: question, expected answer, a reference to its context.",
    "batches": "A named group of runs recorded together (for resume and comparison).",
    "runs": "One RLM run on one question and context: outcome, totals, owner (staleness).",
    "iterations": "One turn of a run's root loop: reasoning, executed code and its output.",
    "llm_calls": (
        "One language-model call (root turn or sub-LM query) of a run. A view since v5: `llm_call_rows`"
        " with each long prompt read back from `prompt_texts`; write to `llm_call_rows` through"
        " `rlmine.store._writes`."
    ),
    "prompt_texts": "A prompt of 1 KB or more, stored once however many calls sent it; keyed by its sha256.",
    "llm_call_rows": (
        "The stored rows behind the `llm_calls` view: a prompt of 1 KB or more is NULL here and"
        " `prompt_ref` is the key of its text in `prompt_texts`."
    ),
    "step_labels": "Simulator ground truth: the tactic meant for a line range of an iteration's code.",
    "code_blocks": (
        "One fenced code block of an iteration as executed: its code, output, error, and whether it"
        " ran (`iterations.code` is the blocks' joined text)."
    ),
    "agent_builds": "One `rlmine agent build`: its inputs, and the agent it emitted or why it emitted none.",
    "agents": "A generated agent script with its provenance (source runs, question shapes, validation scores).",
    "agent_candidates": "One candidate of a build: a sliced program, its validation scores or its failure reason.",
    "evals": "One `rlmine eval` of an agent against the RLM on a task's split, with its summary.",
    "agent_evals": "One answer of an eval: the agent or the RLM on one instance (one repeat).",
    "mining_runs": "One run of the miner over a task (or all runs): parameters, model, counts, timings.",
    "steps": "One step (top-level statement) of an iteration's code in one mining, with its tactic (NULL: rare).",
    "embeddings": "Cache: the vector of one normalized step (by content hash) from one embedding model.",
    "tactics": "One tactic found by a mining: name, keywords, size, success rate, lift, medoid example.",
    "run_tactics": "A run's tactic sequence in one mining (repeats collapsed), one row per position.",
    "tactic_edits": (
        "A user's merge or rename of tactics of one mining scope (task, or NULL: all runs), applied by"
        " every later mining of that scope; a merge keeps each joined tactic's medoid step to find it again."
    ),
    "patterns": "A frequent contiguous tactic sequence of a mining: support, success rate, lift, median cost.",
    "mined_steps": "The stable way to read mining results from SQL: each step of the latest mining that "
    "covered its run, with `run_id, iteration, line_start, line_end, tactic_id` (NULL for rare steps).",
}

UNDOCUMENTED = "(undocumented)"


@dataclass(frozen=True, slots=True)
class ColumnInfo:
    name: str
    type: str
    nullable: bool
    default: str | None
    since: int


@dataclass(frozen=True, slots=True)
class TableInfo:
    name: str
    since: int
    columns: tuple[ColumnInfo, ...]
    primary_key: tuple[str, ...]
    unique: tuple[tuple[str, ...], ...]
    view_since: int | None = None  # the version that made it a view (None: a table)


def _tables(con: duckdb.DuckDBPyConnection) -> list[str]:
    """Tables and views; the oid follows creation order, the order a reader meets them in the migrations."""
    rows = con.execute(
        "SELECT table_name, table_oid FROM duckdb_tables() "
        "UNION ALL SELECT view_name, view_oid FROM duckdb_views() WHERE NOT internal ORDER BY 2"
    ).fetchall()
    return [str(r[0]) for r in rows]


def _views(con: duckdb.DuckDBPyConnection) -> set[str]:
    return {
        str(r[0]) for r in con.execute("SELECT view_name FROM duckdb_views() WHERE NOT internal").fetchall()
    }


def _columns(con: duckdb.DuckDBPyConnection, table: str) -> list[tuple[str, str, bool, str | None]]:
    rows = con.execute(
        "SELECT column_name, data_type, is_nullable = 'YES', column_default "
        "FROM information_schema.columns WHERE table_name = ? ORDER BY ordinal_position",
        [table],
    ).fetchall()
    return [(str(n), str(t), bool(nullable), None if d is None else str(d)) for n, t, nullable, d in rows]


def _constraints(con: duckdb.DuckDBPyConnection, table: str, kind: str) -> list[tuple[str, ...]]:
    rows = con.execute(
        "SELECT constraint_column_names FROM duckdb_constraints() "
        "WHERE table_name = ? AND constraint_type = ? ORDER BY constraint_index",
        [table, kind],
    ).fetchall()
    return [tuple(str(c) for c in r[0]) for r in rows]


def describe_schema() -> list[TableInfo]:
    """Every table after all migrations, with the version that added each table and column."""
    con = duckdb.connect(":memory:")
    try:
        table_since: dict[str, int] = {}
        view_since: dict[str, int] = {}
        column_since: dict[tuple[str, str], int] = {}
        for version in [0, *(m.version for m in migrations.MIGRATIONS)]:
            # upto=0 creates only the bookkeeping table.
            migrations.apply_migrations(con, "schema-doc", upto=version)
            for view in _views(con):
                view_since.setdefault(view, version)
            for table in _tables(con):
                table_since.setdefault(table, version)
                for column in _columns(con, table):
                    column_since.setdefault((table, column[0]), version)
        out: list[TableInfo] = []
        for table in _tables(con):
            primary = _constraints(con, table, "PRIMARY KEY")
            columns = tuple(
                ColumnInfo(name, type_, nullable, default, column_since[(table, name)])
                for name, type_, nullable, default in _columns(con, table)
            )
            out.append(
                TableInfo(
                    name=table,
                    since=table_since[table],
                    columns=columns,
                    primary_key=primary[0] if primary else (),
                    unique=tuple(_constraints(con, table, "UNIQUE")),
                    view_since=view_since.get(table),
                )
            )
        return out
    finally:
        con.close()


def _since(version: int) -> str:
    return f"v{version}"  # v0: made by the migration runner before any migration


def _table_markdown(table: TableInfo) -> list[str]:
    lines = [f"## `{table.name}`", "", TABLE_NOTES.get(table.name, UNDOCUMENTED), ""]
    keys = ", ".join(f"`{c}`" for c in table.primary_key) or "none"
    if table.view_since is not None:
        lines.append(f"A view (read-only) since {_since(table.view_since)}. Added in {_since(table.since)}.")
    else:
        lines.append(f"Primary key: {keys}. Added in {_since(table.since)}.")
    for unique in table.unique:
        lines.append(f"Unique: {', '.join(f'`{c}`' for c in unique)}.")
    lines += ["", "| column | type | null | default | since |", "|---|---|---|---|---|"]
    for col in table.columns:
        default = f"`{col.default}`" if col.default is not None else ""
        null = "yes" if col.nullable else "no"
        lines.append(f"| `{col.name}` | {col.type} | {null} | {default} | {_since(col.since)} |")
    return [*lines, ""]


def render_schema_markdown() -> str:
    """The whole schema document (Markdown, ends with one newline)."""
    lines = [
        "# Database schema",
        "",
        "<!-- Generated by `python -m rlmine.store.schema_doc > docs/schema.md`; do not edit by hand. -->",
        "",
        f"Schema version {migrations.LATEST_VERSION}. Migrations (append-only, `rlmine/store/_migrations.py`):",
        "",
    ]
    lines += [f"{m.version}. {m.name}" for m in migrations.MIGRATIONS]
    lines += [
        "",
        "Columns of type JSON hold JSON text. `iterations.idx` is `Iteration.index` in `rlmine/trace.py`;",
        "every other column has the name of its dataclass field. Context text is never stored, only its",
        "reference (`context_path` or `context_generator`), `context_sha256` and `context_bytes`.",
        "",
    ]
    for table in describe_schema():
        lines += _table_markdown(table)
    return "\n".join(lines).rstrip("\n") + "\n"


def main() -> None:
    import sys

    sys.stdout.write(render_schema_markdown())


if __name__ == "__main__":
    main()
