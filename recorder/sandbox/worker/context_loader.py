"""Load the run's context once, inside the worker, from a file or a directory.

Formats: "text" → str, "json" → the parsed value, "jsonl" → list of parsed lines, a
directory → ``{relative_path: text}``; "auto" picks json/jsonl by extension, else text.

Text files of 16 MB and more are read by :mod:`recorder.sandbox.worker.text_reader`, which fills
the string in place so that a 1 GB context does not need 2 GB at the peak.

A large context file may instead be loaded once by a *context template* (see
:mod:`recorder.sandbox.worker.template`) and shared copy-on-write with the workers it forks: it is
keyed by :func:`file_key` (device, inode, size, mtime and ctime in ns), checked before and
after loading, and handed to each worker as a :class:`SharedContext`.
"""

from __future__ import annotations

import json
import os
from typing import Any

from recorder.sandbox.contexts import file_key, resolve_format
from recorder.sandbox.worker import text_reader


class ContextLoadError(Exception):
    """The context exists but cannot be read in the requested format."""


class SharedContext:
    """A context loaded by a context template; each forked worker takes it once.

    ``take`` leaves the holder empty, so that in the worker the cell namespace holds the
    only reference (``del context`` frees it there, as in a worker that loaded it).
    """

    def __init__(self, value: Any, size: int) -> None:
        self._value: Any = value
        self.size = size

    def take(self) -> tuple[Any, int]:
        value, self._value = self._value, None
        return value, self.size


def load_shared(path: str, context_format: str, key: list[int]) -> SharedContext:
    """Load ``path`` for sharing, if it is still the version ``key`` names."""
    try:
        if file_key(path) != key:
            raise ContextLoadError(f"{path} changed before it was loaded")
        shared = SharedContext(load_context(path, context_format), context_bytes(path))
        if file_key(path) != key:
            raise ContextLoadError(f"{path} changed while it was loaded")
    except OSError as exc:
        raise ContextLoadError(f"cannot load {path}: {exc}") from None
    return shared


def context_bytes(path: str) -> int:
    """Size on disk of a context file or directory (used to size the memory limit)."""
    if not os.path.isdir(path):
        return os.path.getsize(path)
    total = 0
    for root, _dirs, files in os.walk(path):
        for name in files:
            total += os.path.getsize(os.path.join(root, name))
    return total


def load_context(path: str, context_format: str, name: str | None = None) -> Any:
    """Load ``path`` in ``context_format``; errors call it ``name`` (default: ``path``)."""
    kind = resolve_format(path, context_format)
    try:
        if kind == "directory":
            return _load_directory(path)
        if kind == "json":
            with open(path, encoding="utf-8") as handle:
                return json.load(handle)
        if kind == "jsonl":
            return _load_jsonl(path)
        return read_text(path)
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        shown = f"{type(exc).__name__}: {exc}".replace(path, name or path)
        raise ContextLoadError(f"cannot load {name or path} as {kind}: {shown}") from None


def _load_jsonl(path: str) -> list[Any]:
    records: list[Any] = []
    with open(path, encoding="utf-8") as handle:
        for number, line in enumerate(handle, 1):
            if not line.strip():
                continue
            try:
                records.append(json.loads(line))
            except ValueError as exc:
                raise ValueError(f"line {number}: {exc}") from None
    return records


def _load_directory(path: str) -> dict[str, str]:
    files: dict[str, str] = {}
    for root, dirs, names in os.walk(path):
        dirs.sort()
        for name in sorted(names):
            full = os.path.join(root, name)
            files[os.path.relpath(full, path).replace(os.sep, "/")] = read_text(full)
    return files


def read_text(path: str) -> str:
    """The file as a str (UTF-8, invalid bytes replaced); large files are filled in place."""
    with open(path, "rb") as handle:
        size = os.fstat(handle.fileno()).st_size
        if size >= text_reader.CHUNK and text_reader.in_place_supported():
            text, ascii_prefix, partial = text_reader.read_ascii(handle, size)
            return text if text is not None else text_reader.read_utf8(handle, ascii_prefix, partial)
    with open(path, encoding="utf-8", errors="replace") as handle:
        return handle.read()
