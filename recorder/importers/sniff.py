"""Telling which importer fits a file, from its first record, for error messages.

An importer that does not recognise a file says what it found (the top-level
keys of the record) and where to go instead: the importer whose format the
record has, or, when none fits, the section of ``docs/trace-format.md`` that
explains how to bring another engine's traces in. Never a circle of "try the
other importers".
"""

from __future__ import annotations

from typing import Any

_RLMS_TYPES = ("metadata", "run_context", "iteration")
_DSPY_KEYS = ("trajectory", "repl_trajectory")
_SHOWN_KEYS = 8
CONVERT_HINT = (
    'docs/trace-format.md ("Other engines\' files"): write one rlmine-trace JSON object per run, '
    "then `rlmine import jsonl`"
)


def found(record: Any) -> str:
    """What a record is, in a few words: ``a JSON object with keys a, b``."""
    if isinstance(record, dict):
        if not record:
            return "an empty JSON object"
        keys = sorted(str(k) for k in record)
        more = f" (+{len(keys) - _SHOWN_KEYS} more)" if len(keys) > _SHOWN_KEYS else ""
        return f"a JSON object with keys {', '.join(keys[:_SHOWN_KEYS])}{more}"
    if isinstance(record, list):
        return f"a JSON list of {len(record)} items"
    return f"a JSON {type(record).__name__}"


def fitting_importer(record: Any) -> str | None:
    """The importer whose format ``record`` has, or None."""
    if isinstance(record, dict):
        if record.get("format") == "rlmine-trace":
            return "jsonl"
        if record.get("type") in _RLMS_TYPES:
            return "rlms"
        if any(k in record for k in _DSPY_KEYS):
            return "dspy"
    if isinstance(record, list) and record and all(isinstance(i, dict) and "code" in i for i in record):
        return "dspy"  # a bare DSPy trajectory
    return None


def hint_for(record: Any, current: str) -> str:
    """Where to go with a file importer ``current`` did not recognise."""
    fit = fitting_importer(record)
    if fit is not None and fit != current:
        return f"rlmine import {fit} (the record looks like its format)"
    return CONVERT_HINT
