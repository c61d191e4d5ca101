"""Numbered, append-only schema migrations.

A migration, once released, is never edited: the schema grows only by adding a
new entry at the end of :data:`MIGRATIONS`. ``schema_migrations`` records which
ones a database has had. ``docs/schema.md`` is generated from these (see
:func:`rlmine.store.schema_doc.render_schema_markdown`) and a test keeps it true.
"""

from __future__ import annotations

from dataclasses import dataclass

import duckdb


@dataclass(frozen=True, slots=True)
class Migration:
    version: int
    name: str
    sql: str


# The long free-text columns (reasoning, code, output, prompts, responses) are
# stored uncompressed: DuckDB's default string compression of them took over
# half the CPU of a bulk insert (bench/store_bench.py, 1M iterations: 26,000 ->
# 54,000 iterations/s) to save ~20% of the file. Short columns (ids, status,
# engine, model) keep it: filters on them scan compressed dictionaries.
_M0001_CORE = """
CREATE TABLE tasks (
    id          VARCHAR PRIMARY KEY,
    name        VARCHAR NOT NULL UNIQUE,
    spec        JSON,
    question    VARCHAR,
    checker     VARCHAR,
    source_path VARCHAR,
    created_at  TIMESTAMP
);
CREATE TABLE instances (
    task_id           VARCHAR NOT NULL,
    id                VARCHAR NOT NULL,
    split             VARCHAR,
    question          VARCHAR,
    expected          JSON,
    context_path      VARCHAR,
    context_generator JSON,
    context_sha256    VARCHAR,
    context_bytes     BIGINT,
    metadata          JSON,
    PRIMARY KEY (task_id, id)
);
CREATE TABLE batches (
    id         VARCHAR PRIMARY KEY,
    name       VARCHAR NOT NULL UNIQUE,
    task_id    VARCHAR,
    params     JSON,
    created_at TIMESTAMP
);
CREATE TABLE runs (
    id                VARCHAR PRIMARY KEY,
    task_id           VARCHAR,
    instance_id       VARCHAR,
    engine            VARCHAR NOT NULL,
    engine_version    VARCHAR,
    root_model        VARCHAR,
    sub_model         VARCHAR,
    params            JSON,
    status            VARCHAR NOT NULL,
    question          VARCHAR,
    context_path      VARCHAR,
    context_generator JSON,
    context_sha256    VARCHAR,
    context_bytes     BIGINT,
    context_kind      VARCHAR,
    final_answer      VARCHAR,
    expected          VARCHAR,
    score             DOUBLE,
    correct           BOOLEAN,
    n_iterations      INTEGER,
    n_llm_calls       INTEGER,
    n_sub_calls       INTEGER,
    tokens_in         BIGINT,
    tokens_out        BIGINT,
    cost              DOUBLE,
    wall_s            DOUBLE,
    started_at        TIMESTAMP,
    finished_at       TIMESTAMP,
    batch_id          VARCHAR,
    slot_key          VARCHAR,
    error             VARCHAR,
    parent_run_id     VARCHAR,
    parent_call_id    VARCHAR,
    source_hash       VARCHAR,
    owner             VARCHAR,
    metadata          JSON
);
CREATE TABLE iterations (
    run_id           VARCHAR NOT NULL,
    idx              INTEGER NOT NULL,
    reasoning        VARCHAR USING COMPRESSION uncompressed,
    code             VARCHAR USING COMPRESSION uncompressed,
    stdout           VARCHAR USING COMPRESSION uncompressed,
    stderr           VARCHAR USING COMPRESSION uncompressed,
    error            VARCHAR,
    error_kind       VARCHAR,
    duration_s       DOUBLE,
    root_tokens_in   BIGINT,
    root_tokens_out  BIGINT,
    root_latency_s   DOUBLE,
    output_truncated BOOLEAN,
    submitted        BOOLEAN,
    started_at       TIMESTAMP,
    metadata         JSON,
    PRIMARY KEY (run_id, idx)
);
CREATE TABLE llm_calls (
    id            VARCHAR PRIMARY KEY,
    run_id        VARCHAR NOT NULL,
    iteration     INTEGER,
    role          VARCHAR NOT NULL,
    model         VARCHAR,
    prompt        VARCHAR USING COMPRESSION uncompressed,
    prompt_sha256 VARCHAR,
    prompt_chars  BIGINT,
    response      VARCHAR USING COMPRESSION uncompressed,
    reasoning     VARCHAR USING COMPRESSION uncompressed,
    tokens_in     BIGINT,
    tokens_out    BIGINT,
    cost          DOUBLE,
    latency_s     DOUBLE,
    started_at    TIMESTAMP,
    error         VARCHAR,
    child_run_id  VARCHAR,
    metadata      JSON
);
CREATE TABLE step_labels (
    run_id     VARCHAR NOT NULL,
    iteration  INTEGER NOT NULL,
    line_start INTEGER NOT NULL,
    line_end   INTEGER NOT NULL,
    tactic     VARCHAR NOT NULL,
    PRIMARY KEY (run_id, iteration, line_start)
);
"""

# One row per fenced code block the model wrote in an iteration (several per reply are
# common, a later one depending on an earlier one). ``iterations.code`` stays their
# joined text; ``ran`` is false for blocks after a failing one that never executed.
_M0002_CODE_BLOCKS = """
CREATE TABLE code_blocks (
    run_id     VARCHAR NOT NULL,
    iteration  INTEGER NOT NULL,
    idx        INTEGER NOT NULL,
    code       VARCHAR USING COMPRESSION uncompressed,
    stdout     VARCHAR USING COMPRESSION uncompressed,
    stderr     VARCHAR USING COMPRESSION uncompressed,
    error      VARCHAR,
    error_kind VARCHAR,
    duration_s DOUBLE,
    ran        BOOLEAN NOT NULL,
    metadata   JSON,
    PRIMARY KEY (run_id, iteration, idx)
);
"""

# Codegen: each `rlmine agent build` is a build; it tries candidates (stored whether
# they pass or fail, with the reason) and emits at most one agent. `rlmine eval`
# stores one row per (system, instance, repeat) and its summary.
_M0003_CODEGEN = """
CREATE TABLE agent_builds (
    id          VARCHAR PRIMARY KEY,
    task_id     VARCHAR,
    run_id      VARCHAR,
    params      JSON,
    outcome     VARCHAR NOT NULL,
    message     VARCHAR,
    agent_id    VARCHAR,
    created_at  TIMESTAMP
);
CREATE TABLE agents (
    id              VARCHAR PRIMARY KEY,
    build_id        VARCHAR,
    task_id         VARCHAR,
    source_runs     JSON,
    tactic_sequence JSON,
    shapes          JSON,
    validation      JSON,
    script          VARCHAR USING COMPRESSION uncompressed,
    script_sha256   VARCHAR NOT NULL,
    rlmine_version  VARCHAR,
    created_at      TIMESTAMP
);
CREATE TABLE agent_candidates (
    build_id     VARCHAR NOT NULL,
    idx          INTEGER NOT NULL,
    shape        VARCHAR,
    group_key    VARCHAR,
    source_runs  JSON,
    code         VARCHAR USING COMPRESSION uncompressed,
    status       VARCHAR NOT NULL,
    failure      VARCHAR,
    n_instances  INTEGER,
    n_correct    INTEGER,
    accuracy     DOUBLE,
    llm_calls    INTEGER,
    tokens_in    BIGINT,
    tokens_out   BIGINT,
    wall_s       DOUBLE,
    details      JSON,
    PRIMARY KEY (build_id, idx)
);
CREATE TABLE evals (
    id                VARCHAR PRIMARY KEY,
    task_id           VARCHAR,
    agent_id          VARCHAR,
    split             VARCHAR,
    runs_per_instance INTEGER,
    summary           JSON,
    created_at        TIMESTAMP
);
CREATE TABLE agent_evals (
    eval_id     VARCHAR NOT NULL,
    system      VARCHAR NOT NULL,
    instance_id VARCHAR NOT NULL,
    repeat      INTEGER NOT NULL,
    agent_id    VARCHAR,
    run_id      VARCHAR,
    answer      VARCHAR,
    correct     BOOLEAN,
    score       DOUBLE,
    llm_calls   INTEGER,
    tokens_in   BIGINT,
    tokens_out  BIGINT,
    cost        DOUBLE,
    wall_s      DOUBLE,
    error       VARCHAR,
    PRIMARY KEY (eval_id, system, instance_id, repeat)
);
"""

# Mining results (the miner's output; issue #12). Every mining run is kept whole: its steps,
# tactics and run sequences carry its id, so a later mining never rewrites an earlier one and
# `mined_steps` reads the latest mining that covered each run. Embeddings are shared by all
# minings, keyed by the normalized step's content hash and the model that made them.
_M0004_MINING = """
CREATE TABLE mining_runs (
    id          VARCHAR PRIMARY KEY,
    task_id     VARCHAR,
    params      JSON,
    model       VARCHAR NOT NULL,
    n_runs      INTEGER NOT NULL,
    n_steps     INTEGER NOT NULL,
    n_distinct  INTEGER NOT NULL,
    n_tactics   INTEGER NOT NULL,
    n_outliers  INTEGER NOT NULL,
    n_unparsed  INTEGER NOT NULL,
    base_rate   DOUBLE,
    consensus   JSON,
    timings     JSON,
    created_at  TIMESTAMP NOT NULL
);
CREATE TABLE steps (
    mining_id  VARCHAR NOT NULL,
    run_id     VARCHAR NOT NULL,
    iteration  INTEGER NOT NULL,
    ordinal    INTEGER NOT NULL,
    line_start INTEGER NOT NULL,
    line_end   INTEGER NOT NULL,
    code       VARCHAR USING COMPRESSION uncompressed,
    normalized VARCHAR USING COMPRESSION uncompressed,
    hash       VARCHAR NOT NULL,
    parsed     BOOLEAN NOT NULL,
    failed     BOOLEAN NOT NULL,
    tactic_id  VARCHAR,
    PRIMARY KEY (mining_id, run_id, iteration, ordinal)
);
CREATE TABLE embeddings (
    hash   VARCHAR NOT NULL,
    model  VARCHAR NOT NULL,
    vector FLOAT[] NOT NULL,
    PRIMARY KEY (hash, model)
);
CREATE TABLE tactics (
    mining_id      VARCHAR NOT NULL,
    id             VARCHAR NOT NULL,
    label          VARCHAR NOT NULL,
    keywords       JSON,
    size           INTEGER NOT NULL,
    n_runs         INTEGER NOT NULL,
    success_rate   DOUBLE,
    lift           DOUBLE,
    median_iterations DOUBLE,
    median_llm_calls  DOUBLE,
    median_tokens     DOUBLE,
    medoid_hash    VARCHAR NOT NULL,
    example        VARCHAR USING COMPRESSION uncompressed,
    members        JSON,
    PRIMARY KEY (mining_id, id)
);
CREATE TABLE run_tactics (
    mining_id VARCHAR NOT NULL,
    run_id    VARCHAR NOT NULL,
    position  INTEGER NOT NULL,
    tactic_id VARCHAR NOT NULL,
    PRIMARY KEY (mining_id, run_id, position)
);
CREATE TABLE patterns (
    mining_id    VARCHAR NOT NULL,
    tactics      VARCHAR[] NOT NULL,
    length       INTEGER NOT NULL,
    support      INTEGER NOT NULL,
    success_rate DOUBLE,
    lift         DOUBLE,
    median_iterations DOUBLE,
    median_llm_calls  DOUBLE,
    median_tokens     DOUBLE
);
CREATE VIEW mined_steps AS
WITH latest AS (
    SELECT run_id, max(mining_id) AS mining_id FROM steps GROUP BY run_id
)
SELECT s.run_id, s.iteration, s.line_start, s.line_end, s.tactic_id, t.label AS tactic_label,
       s.ordinal, s.mining_id
FROM steps s
JOIN latest l ON l.run_id = s.run_id AND l.mining_id = s.mining_id
LEFT JOIN tactics t ON t.mining_id = s.mining_id AND t.id = s.tactic_id;
"""

# Long prompts stored once (see rlmine/store/_prompt_texts.py): sub-call prompts repeat
# chunks of the context across runs (96 simulator runs took 264 MB). The call rows move
# to llm_call_rows, where a prompt of 1024 bytes or more is NULL and `prompt_ref` names
# its text in prompt_texts; the `llm_calls` view has the table's former columns, in
# order, so readers are unchanged. Existing rows are copied (DuckDB cannot alter a
# table that has an index), then the old table is dropped. prompt_texts.text is zstd-
# compressed: each text is written once, and zstd cost less CPU than no compression
# (less to write) while 17 MB of a simulator batch's distinct prompts took 3.7 MB, and
# 27 MB of 8 KB prompts 7.3 MB. DuckDB's default string compression (FSST) took twice
# the CPU on the 8 KB prompts for 20 MB.
_M0005_PROMPT_TEXTS = """
CREATE TABLE prompt_texts (
    sha256 VARCHAR PRIMARY KEY,
    text   VARCHAR NOT NULL USING COMPRESSION zstd
);
CREATE TABLE llm_call_rows (
    id            VARCHAR PRIMARY KEY,
    run_id        VARCHAR NOT NULL,
    iteration     INTEGER,
    role          VARCHAR NOT NULL,
    model         VARCHAR,
    prompt        VARCHAR USING COMPRESSION uncompressed,
    prompt_sha256 VARCHAR,
    prompt_chars  BIGINT,
    response      VARCHAR USING COMPRESSION uncompressed,
    reasoning     VARCHAR USING COMPRESSION uncompressed,
    tokens_in     BIGINT,
    tokens_out    BIGINT,
    cost          DOUBLE,
    latency_s     DOUBLE,
    started_at    TIMESTAMP,
    error         VARCHAR,
    child_run_id  VARCHAR,
    metadata      JSON,
    prompt_ref    VARCHAR
);
INSERT INTO prompt_texts
SELECT sha256(prompt), any_value(prompt) FROM llm_calls WHERE strlen(prompt) >= 1024 GROUP BY 1;
INSERT INTO llm_call_rows
SELECT id, run_id, iteration, role, model,
       CASE WHEN strlen(prompt) >= 1024 THEN NULL ELSE prompt END,
       prompt_sha256, prompt_chars, response, reasoning, tokens_in, tokens_out, cost, latency_s,
       started_at, error, child_run_id, metadata,
       CASE WHEN strlen(prompt) >= 1024 THEN sha256(prompt) END
FROM llm_calls;
DROP TABLE llm_calls;
CREATE VIEW llm_calls AS
SELECT c.id, c.run_id, c.iteration, c.role, c.model, coalesce(c.prompt, t.text) AS prompt,
       c.prompt_sha256, c.prompt_chars, c.response, c.reasoning, c.tokens_in, c.tokens_out, c.cost,
       c.latency_s, c.started_at, c.error, c.child_run_id, c.metadata
FROM llm_call_rows c LEFT JOIN prompt_texts t ON t.sha256 = c.prompt_ref;
"""

# A user's corrections to the tactics of one mining scope (a task, or all runs: task_id NULL),
# kept as inputs of every later mining of that scope: `rlmine tactics merge` joins tactics the
# miner split (decision 0022), `rlmine tactics rename` names one. A merge stores the medoid step
# of each tactic it joined, which is how a later mining finds those tactics again (ids alone
# would not: a tactic merged away has no row in the next mining).
_M0006_TACTIC_EDITS = """
CREATE TABLE tactic_edits (
    id            VARCHAR PRIMARY KEY,
    task_id       VARCHAR,
    kind          VARCHAR NOT NULL,
    tactic_ids    VARCHAR[] NOT NULL,
    medoid_hashes VARCHAR[],
    name          VARCHAR,
    created_at    TIMESTAMP NOT NULL
);
"""

MIGRATIONS: tuple[Migration, ...] = (
    Migration(1, "core trace tables", _M0001_CORE),
    Migration(2, "code blocks", _M0002_CODE_BLOCKS),
    Migration(3, "agents, candidates and evals", _M0003_CODEGEN),
    Migration(4, "mining: steps, embeddings, tactics, sequences", _M0004_MINING),
    Migration(5, "long prompt text stored once", _M0005_PROMPT_TEXTS),
    Migration(6, "tactic edits: merges and names kept across minings", _M0006_TACTIC_EDITS),
)

LATEST_VERSION = MIGRATIONS[-1].version

_BOOKKEEPING = """
CREATE TABLE IF NOT EXISTS schema_migrations (
    version        INTEGER PRIMARY KEY,
    name           VARCHAR NOT NULL,
    applied_at     TIMESTAMP NOT NULL,
    rlmine_version VARCHAR
)
"""


def current_version(con: duckdb.DuckDBPyConnection) -> int:
    """The schema version of an open database (0 for a blank one)."""
    exists = con.execute(
        "SELECT count(*) FROM information_schema.tables WHERE table_name = 'schema_migrations'"
    ).fetchone()
    if not exists or exists[0] == 0:
        return 0
    row = con.execute("SELECT coalesce(max(version), 0) FROM schema_migrations").fetchone()
    return int(row[0]) if row else 0


def foreign_tables(con: duckdb.DuckDBPyConnection) -> list[str]:
    """Tables of a database that rlmine did not make: all of them when it has tables but no
    rlmine ``schema_migrations`` (one with an ``rlmine_version`` column), else none."""
    rows = con.execute(
        "SELECT table_schema, table_name FROM information_schema.tables "
        "WHERE table_catalog = current_database() ORDER BY 1, 2"
    ).fetchall()
    ours = con.execute(
        "SELECT count(*) FROM information_schema.columns WHERE table_catalog = current_database() "
        "AND table_name = 'schema_migrations' AND column_name = 'rlmine_version'"
    ).fetchone()
    if not rows or (ours is not None and ours[0] > 0):
        return []
    return [name if schema == "main" else f"{schema}.{name}" for schema, name in rows]


def apply_migrations(
    con: duckdb.DuckDBPyConnection, rlmine_version: str, upto: int | None = None
) -> list[int]:
    """Apply every pending migration (up to ``upto``), each in its own transaction."""
    con.execute(_BOOKKEEPING)
    have = current_version(con)
    applied: list[int] = []
    for migration in MIGRATIONS:
        if migration.version <= have or (upto is not None and migration.version > upto):
            continue
        con.execute("BEGIN TRANSACTION")
        try:
            con.execute(migration.sql)
            con.execute(
                "INSERT INTO schema_migrations VALUES (?, ?, now()::TIMESTAMP, ?)",
                [migration.version, migration.name, rlmine_version],
            )
            con.execute("COMMIT")
        except Exception:
            con.execute("ROLLBACK")
            raise
        applied.append(migration.version)
    return applied
