"""Configuration resolved at the edge (CLI, dashboard), never at import time."""

from __future__ import annotations

import os
from pathlib import Path

DEFAULT_DB = Path("traces") / "rlmine.duckdb"
DB_ENV = "RLMINE_DB"


def resolve_db_path(explicit: str | os.PathLike[str] | None = None) -> Path:
    """``--db`` if given, else ``$RLMINE_DB``, else ``traces/rlmine.duckdb``."""
    if explicit:
        return Path(explicit).expanduser()
    env = os.environ.get(DB_ENV)
    if env:
        return Path(env).expanduser()
    return DEFAULT_DB
