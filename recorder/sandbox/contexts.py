"""What the host and the worker agree on about a context file: its format, named by its path,
and its version (standard library only: the worker imports it too).

The host keys shared context templates by :func:`file_key`; a context template checks the
same key before and after loading; both resolve ``"auto"`` with :func:`resolve_format`.
"""

from __future__ import annotations

import os

JSON_SUFFIXES = (".json",)
JSONL_SUFFIXES = (".jsonl", ".ndjson")


def file_key(path: str) -> list[int]:
    """What identifies one version of a file: a changed file gets a new key."""
    st = os.stat(path)
    return [st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns]


def resolve_format(path: str, context_format: str) -> str:
    if os.path.isdir(path):
        return "directory"
    if context_format != "auto":
        return context_format
    lower = path.lower()
    if lower.endswith(JSON_SUFFIXES):
        return "json"
    if lower.endswith(JSONL_SUFFIXES):
        return "jsonl"
    return "text"
