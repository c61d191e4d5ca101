"""Time-sortable identifiers (ULIDs) and content hashes."""

from __future__ import annotations

import hashlib

from ulid import ULID


def new_id() -> str:
    """A 26-character ULID: sorts by creation time, unique without coordination."""
    return str(ULID())


def sha256_text(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()
