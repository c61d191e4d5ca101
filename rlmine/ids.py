"""Time-sortable identifiers (ULIDs) and content hashes."""

from __future__ import annotations

import hashlib

from ulid import ULID


def new_id() -> str:
    """A 26-character ULID: sorts by creation time, unique without coordination."""
    return str(ULID())


def sha256_text(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


def sha256_file(path: str, chunk_size: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(chunk_size):
            digest.update(chunk)
    return digest.hexdigest()
