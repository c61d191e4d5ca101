"""Long prompt text stored once, content-addressed (migration 4).

Sub-call prompts repeat chunks of the context across the runs of a batch, so a
prompt of :data:`MIN_SHARED_BYTES` or more is written once to ``prompt_texts``
(keyed by its sha256) and the call row in ``llm_call_rows`` keeps only that key
(``prompt_ref``) with ``prompt`` NULL. The ``llm_calls`` view puts the text back,
with exactly the table's former columns, so every reader is unchanged. Shorter
prompts stay inline: a key costs 64 bytes and a join probe.

Writers never name the view (DuckDB cannot insert into one): :mod:`rlmine.store._writes`
sends call rows through :func:`insert_calls` and deletes through :func:`delete_calls`.
"""

from __future__ import annotations

from contextlib import suppress

import duckdb

from rlmine.store._schema import SCHEMAS

# Prompts of this many UTF-8 bytes or more go to prompt_texts. Migration 4 moved existing
# rows with the same number written out (a released migration never changes); a later
# change here only affects new rows, and the view reads both kinds.
MIN_SHARED_BYTES = 1024

BASE_TABLE = "llm_call_rows"

_LONG = f"strlen(prompt) >= {MIN_SHARED_BYTES}"


def _select_list() -> str:
    """The staged columns as ``llm_call_rows`` takes them: long prompts replaced by their key."""
    cols = [
        "CASE WHEN k.key IS NULL THEN s.prompt END" if c == "prompt" else f"s.{c}"
        for c in SCHEMAS["llm_calls"].names
    ]
    return ", ".join([*cols, "k.key"])


_COLUMNS = ", ".join(SCHEMAS["llm_calls"].names)
_SELECT = _select_list()


def insert_calls(con: duckdb.DuckDBPyConnection, staged: str, *, replace: bool) -> None:
    """Insert the call rows of the registered relation ``staged`` (columns of ``SCHEMAS['llm_calls']``).

    New texts are added (one per distinct key; a text already stored is left alone), then
    the rows go in with their long prompts swapped for keys. Each long prompt is hashed
    once, into a temporary table of keys: hashing is most of the cost of this path.
    """
    keys = f"{staged}_keys"
    con.execute(
        f"CREATE OR REPLACE TEMP TABLE {keys} AS SELECT id, sha256(prompt) AS key FROM {staged} WHERE {_LONG}"
    )
    try:
        verb = "INSERT OR REPLACE" if replace else "INSERT"
        (n_long,) = con.execute(f"SELECT count(*) FROM {keys}").fetchall()[0]
        if not n_long:  # no text to share (e.g. rlms imports, whose root prompts are not kept)
            # prompt_ref named too: OR REPLACE updates only the columns it is given
            con.execute(
                f"{verb} INTO {BASE_TABLE} ({_COLUMNS}, prompt_ref) SELECT {_COLUMNS}, NULL FROM {staged}"
            )
            return
        con.execute(
            f"INSERT OR IGNORE INTO prompt_texts (sha256, text) "
            f"SELECT k.key, any_value(s.prompt) FROM {staged} s JOIN {keys} k ON k.id = s.id GROUP BY k.key"
        )
        con.execute(
            f"{verb} INTO {BASE_TABLE} ({_COLUMNS}, prompt_ref) "
            f"SELECT {_SELECT} FROM {staged} s LEFT JOIN {keys} k ON k.id = s.id"
        )
    finally:
        # An aborted transaction refuses this too; the table then dies with the connection.
        with suppress(duckdb.Error):
            con.execute(f"DROP TABLE IF EXISTS {keys}")


def delete_calls(con: duckdb.DuckDBPyConnection, run_ids: list[str]) -> None:
    """Delete the calls of ``run_ids``, and the texts that no other call refers to any more."""
    refs = [
        r[0]
        for r in con.execute(
            f"SELECT DISTINCT prompt_ref FROM {BASE_TABLE} "
            "WHERE prompt_ref IS NOT NULL AND run_id IN (SELECT unnest(?::VARCHAR[]))",
            [run_ids],
        ).fetchall()
    ]
    con.execute(f"DELETE FROM {BASE_TABLE} WHERE run_id IN (SELECT unnest(?::VARCHAR[]))", [run_ids])
    if refs:
        con.execute(
            "DELETE FROM prompt_texts WHERE sha256 IN (SELECT unnest(?::VARCHAR[])) "
            f"AND sha256 NOT IN (SELECT prompt_ref FROM {BASE_TABLE} "
            "WHERE prompt_ref IN (SELECT unnest(?::VARCHAR[])))",
            [refs, refs],
        )
