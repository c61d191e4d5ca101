"""Resolving an instance's context to a path on disk, and describing it for the store.

Three sources (see :class:`recorder.tasks.spec.ContextSource`):

- ``file`` / ``dir``: a path relative to the task file, used in place.
- ``generator``: a task family writes the context on first use into
  ``<task_dir>/.rlmine-cache/<family>-<key><suffix>``, where ``key`` hashes
  (generator, params, seed, size). The family writes to a temporary name in
  the same folder which is then renamed, so a reader never sees half a file
  and two processes materializing the same context at once both end up with
  the same complete file (generation is deterministic).

Hashing a 1 GB context takes seconds, so a file's sha256 is cached in a
sidecar ``<file>.sha256`` keyed by its size and mtime. A directory's hash
(over its files' names and hashes) is cached the same way inside the task's
cache folder, never inside the directory itself: the sandbox loads every file
of a directory context, so a sidecar there would change the context.
"""

from __future__ import annotations

import hashlib
import importlib
import json
import os
import secrets
import shutil
from dataclasses import replace
from pathlib import Path
from typing import Any

from recorder.tasks.spec import ContextSource
from rlmine.errors import RlmineRuntimeError, UserError
from rlmine.trace import ContextRef

__all__ = ["CACHE_DIR_NAME", "context_kind", "context_ref", "file_sha256", "generator_key", "resolve_context"]

CACHE_DIR_NAME = ".rlmine-cache"
_CHUNK = 1 << 20


def resolve_context(source: ContextSource, base_dir: Path) -> Path:
    """The context's path; generator contexts are materialized on first use."""
    if source.kind == "generator":
        return _materialize(source, base_dir / CACHE_DIR_NAME)
    path = base_dir / (source.path or "")
    if source.kind == "dir":
        if not path.is_dir():
            raise UserError(f"context directory {path} does not exist", "fix the instance's context path")
    elif not path.is_file():
        what = "is a directory" if path.is_dir() else "does not exist"
        raise UserError(
            f"context file {path} {what}", "fix the instance's context path (relative to the task file)"
        )
    return path


def generator_key(source: ContextSource, family_version: object = None) -> str:
    """A short content key for a generated context: same inputs, same file."""
    payload = {
        "generator": source.generator,
        "params": source.params,
        "seed": source.seed,
        "size_bytes": source.size_bytes,
        "version": family_version,
    }
    blob = json.dumps(payload, sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:16]


def _load_family(name: str) -> Any:
    # Imported by name: the families package is optional at validation time (see loader).
    try:
        families = importlib.import_module("recorder.families")
    except ImportError as exc:
        raise RlmineRuntimeError(
            f"task families are unavailable ({exc}); cannot generate context {name!r}",
            "check the rlmine installation",
        ) from exc
    return families.get_family(name)


def _materialize(source: ContextSource, cache_dir: Path) -> Path:
    name = source.generator or ""
    family = _load_family(name)
    size_bytes = source.size_bytes
    if size_bytes is None:  # validated while recorder.families was unavailable: read it now
        if source.size is None:
            raise UserError(
                f"generator context {name!r} has no size", "add size: 1MB to the instance's context"
            )
        size_bytes = int(importlib.import_module("recorder.families").parse_size(source.size))
    source = replace(source, size_bytes=size_bytes)
    suffix = str(getattr(family, "context_suffix", ".txt"))
    final = cache_dir / f"{name}-{generator_key(source, getattr(family, 'version', None))}{suffix}"
    if final.exists():
        return final
    cache_dir.mkdir(parents=True, exist_ok=True)
    tmp = cache_dir / f".{final.stem}.{os.getpid()}-{secrets.token_hex(4)}.tmp{suffix}"
    try:
        family.write_context(tmp, params=dict(source.params), seed=source.seed, size_bytes=size_bytes)
        if not tmp.exists():
            raise RlmineRuntimeError(
                f"family {name!r} wrote nothing to {tmp}", "report this as a bug in the family"
            )
        os.replace(tmp, final)
    finally:
        if tmp.is_dir():
            shutil.rmtree(tmp, ignore_errors=True)
        else:
            tmp.unlink(missing_ok=True)
    return final


def file_sha256(path: Path) -> str:
    """sha256 of a file, cached in ``<path>.sha256`` while its size and mtime are unchanged."""
    stat = path.stat()
    sidecar = path.with_name(path.name + ".sha256")
    stamp = {"size": stat.st_size, "mtime_ns": stat.st_mtime_ns}
    cached = _read_sidecar(sidecar, stamp)
    if cached is not None:
        return cached
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        while block := fh.read(_CHUNK):
            digest.update(block)
    value = digest.hexdigest()
    _write_sidecar(sidecar, {**stamp, "sha256": value})
    return value


def _dir_sha256(path: Path, cache_dir: Path) -> tuple[str, int]:
    """A directory's hash (names and contents of its files, sorted) and total bytes."""
    files = sorted(p for p in path.rglob("*") if p.is_file())
    listing = [(p.relative_to(path).as_posix(), p.stat().st_size, p.stat().st_mtime_ns) for p in files]
    total = sum(size for _, size, _ in listing)
    sidecar = cache_dir / f"dir-{hashlib.sha256(str(path.resolve()).encode()).hexdigest()[:16]}.sha256"
    stamp = {"listing": [list(item) for item in listing]}
    cached = _read_sidecar(sidecar, stamp)
    if cached is not None:
        return cached, total
    digest = hashlib.sha256()
    for p, (rel, _, _) in zip(files, listing, strict=True):
        digest.update(rel.encode() + b"\0")
        with p.open("rb") as fh:
            while block := fh.read(_CHUNK):
                digest.update(block)
        digest.update(b"\0")
    value = digest.hexdigest()
    _write_sidecar(sidecar, {**stamp, "sha256": value})
    return value, total


def _read_sidecar(sidecar: Path, stamp: dict[str, Any]) -> str | None:
    try:
        data = json.loads(sidecar.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict) or any(data.get(k) != v for k, v in stamp.items()):
        return None
    value = data.get("sha256")
    return value if isinstance(value, str) and len(value) == 64 else None


def _write_sidecar(sidecar: Path, data: dict[str, Any]) -> None:
    # Best effort: a read-only context folder only costs a re-hash next time.
    tmp = sidecar.with_name(f".{sidecar.name}.{os.getpid()}-{secrets.token_hex(4)}.tmp")
    try:
        sidecar.parent.mkdir(parents=True, exist_ok=True)
        tmp.write_text(json.dumps(data), encoding="utf-8")
        os.replace(tmp, sidecar)
    except OSError:
        tmp.unlink(missing_ok=True)


def context_kind(path: Path) -> str:
    """The Python type the sandbox will load this context as (str, list, dict)."""
    if path.is_dir():
        return "dict"
    suffix = path.suffix.lower()
    if suffix == ".jsonl":
        return "list"
    if suffix == ".json":
        with path.open("rb") as fh:
            head = fh.read(4096).lstrip()
        return {b"[": "list", b"{": "dict"}.get(head[:1], "json")
    return "str"


def context_ref(source: ContextSource, base_dir: Path) -> ContextRef:
    """Everything the store records about a context: path, generator, sha256, bytes, kind."""
    path = resolve_context(source, base_dir)
    if path.is_dir():
        sha, size = _dir_sha256(path, base_dir / CACHE_DIR_NAME)
    else:
        sha, size = file_sha256(path), path.stat().st_size
    generator = None
    if source.kind == "generator":
        generator = {
            "family": source.generator,
            "params": dict(source.params),
            "seed": source.seed,
            "size_bytes": source.size_bytes,
        }
    return ContextRef(path=str(path), generator=generator, sha256=sha, bytes=size, kind=context_kind(path))
