"""Reading source files safely: discovery, gzip, size caps, binary detection, hashing.

Importers never open files themselves: they read through :class:`LineReader`
(JSON lines) or :func:`read_whole` (one JSON document). Both

* accept plain or gzip files (gzip is recognised by its magic bytes, so a
  ``.gz`` name on a plain file is an error, and a gzip without the name is fine);
* refuse anything over a configurable cap *before* holding it in memory: lines
  are read with ``readline(cap + 1)``, so a 2 GB line costs at most ``cap``
  bytes of memory and one clear error;
* refuse binary data (NUL bytes, invalid UTF-8) and empty files;
* hash what they read (sha256 of the *decompressed* bytes), which is the
  source's identity: the same log imported twice, or once plain and once
  gzipped, gets the same run ids.

Every problem is a :class:`SourceError` naming the file and, where there is one,
the line.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import zlib
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from rlmine.errors import UserError

_GZIP_MAGIC = b"\x1f\x8b"
_BUFFER = 1 << 20


def human_bytes(n: int) -> str:
    for unit, size in (("GB", 1 << 30), ("MB", 1 << 20), ("KB", 1 << 10)):
        if n >= size:
            value = n / size
            return f"{value:.0f} {unit}" if value == int(value) else f"{value:.1f} {unit}"
    return f"{n} bytes"


class SourceError(UserError):
    """One source file (or directory) that cannot be imported, and why."""

    def __init__(
        self, path: Path | str, message: str, *, line: int | None = None, hint: str | None = None
    ) -> None:
        where = f"{path}:{line}" if line is not None else str(path)
        super().__init__(f"{where}: {message}", hint)
        self.path = str(path)
        self.line = line
        self.reason = message


@contextmanager
def _open(path: Path) -> Iterator[io.BufferedIOBase]:
    """The file's decompressed byte stream (one open: the magic bytes are peeked, not re-read)."""
    try:
        raw = io.BufferedReader(io.FileIO(path, "r"), buffer_size=_BUFFER)
    except OSError as exc:
        raise SourceError(
            path, f"cannot read the file ({exc.strerror})", hint="checking its permissions"
        ) from exc
    with raw:
        try:
            gz = raw.peek(2)[:2] == _GZIP_MAGIC
        except OSError as exc:  # a directory on some systems, an I/O error
            raise SourceError(
                path, f"cannot read the file ({exc.strerror})", hint="checking its permissions"
            ) from exc
        if gz:
            with gzip.GzipFile(fileobj=raw, mode="rb") as unzipped:
                yield unzipped
            return
        if path.name.endswith(".gz"):
            raise SourceError(
                path,
                "not a gzip file (the name ends in .gz but the data is not gzip)",
                hint="renaming it without .gz, or re-compressing it with gzip",
            )
        yield raw


def _decode_problem(data: bytes) -> str | None:
    if b"\x00" in data:
        return "binary data (NUL bytes), not JSON text"
    return None


class LineReader:
    """Iterate the non-blank lines of a (possibly gzipped) JSON-lines file.

    Yields ``(line_number, raw_bytes)``; ``sha256`` is complete once the
    iteration has finished. Raises :class:`SourceError` for a line over
    ``max_line_bytes``, binary data, a corrupt gzip stream or an empty file.
    """

    def __init__(self, path: Path, max_line_bytes: int) -> None:
        self.path = path
        self.max_line_bytes = max_line_bytes
        self._digest = hashlib.sha256()

    @property
    def sha256(self) -> str:
        return self._digest.hexdigest()

    def __iter__(self) -> Iterator[tuple[int, bytes]]:
        cap = self.max_line_bytes
        number = 0
        yielded = 0
        with _open(self.path) as handle:
            try:
                head = handle.peek(8192)[:8192] if hasattr(handle, "peek") else b""
            except (gzip.BadGzipFile, EOFError, zlib.error, OSError) as exc:
                raise SourceError(
                    self.path,
                    f"corrupt or truncated gzip data ({exc})",
                    hint="re-compressing the original log",
                ) from exc
            problem = _decode_problem(head)
            if problem:
                raise SourceError(self.path, problem, hint="pointing at the JSON-lines log instead")
            while True:
                try:
                    raw = handle.readline(cap + 1)
                except (gzip.BadGzipFile, EOFError, zlib.error, OSError) as exc:
                    raise SourceError(
                        self.path,
                        f"corrupt or truncated gzip data ({exc})",
                        line=number + 1,
                        hint="re-compressing the original log",
                    ) from exc
                if not raw:
                    break
                number += 1
                if len(raw) > cap and not (len(raw) == cap + 1 and raw.endswith(b"\n")):
                    raise SourceError(
                        self.path,
                        f"line is longer than the {human_bytes(cap)} line cap",
                        line=number,
                        hint="--max-line-mb with a larger cap if the line is genuine",
                    )
                self._digest.update(raw)
                if raw.isspace():  # a blank line (isspace, unlike strip, copies nothing)
                    continue
                problem = _decode_problem(raw)
                if problem:
                    raise SourceError(
                        self.path, problem, line=number, hint="pointing at the JSON-lines log instead"
                    )
                yielded += 1
                yield number, raw
        if yielded == 0:
            raise SourceError(
                self.path, "empty file: no trace in it", hint="checking that the run wrote its log"
            )


def read_whole(path: Path, max_bytes: int) -> tuple[bytes, str]:
    """The whole (decompressed) file and its sha256, refusing more than ``max_bytes``."""
    with _open(path) as handle:
        try:
            data = handle.read(max_bytes + 1)
        except (gzip.BadGzipFile, EOFError, zlib.error, OSError) as exc:
            raise SourceError(
                path, f"corrupt or truncated gzip data ({exc})", hint="re-compressing the file"
            ) from exc
    if len(data) > max_bytes:
        raise SourceError(
            path,
            f"file is larger than the {human_bytes(max_bytes)} cap",
            hint="--max-line-mb with a larger cap, or save it as JSON lines",
        )
    if not data.strip():
        raise SourceError(path, "empty file: no trace in it", hint="checking that the run saved its result")
    problem = _decode_problem(data)
    if problem:
        raise SourceError(path, problem, hint="pointing at the saved JSON instead")
    return data, hashlib.sha256(data).hexdigest()


def _matches(name: str, suffixes: Sequence[str]) -> bool:
    lower = name.lower()
    return not lower.startswith(".") and lower.endswith(tuple(suffixes))


def _walk(root: Path, suffixes: Sequence[str]) -> list[tuple[Path, str]]:
    """Matching files under ``root`` in ``sorted(rglob)`` order, each with its resolved path.

    Like ``rglob`` it lists symlinked files but does not descend into symlinked
    directories. A resolved path is derived from its directory's (resolved once),
    so a directory of 10,000 logs costs no per-file ``realpath`` system calls.
    """
    found: list[tuple[tuple[str, ...], Path, str]] = []
    todo: list[tuple[str, str, tuple[str, ...]]] = [(str(root), os.path.realpath(root), ())]
    while todo:
        folder, real, parts = todo.pop()
        try:
            entries = list(os.scandir(folder))
        except OSError:
            continue  # unreadable: like rglob, skip it
        for entry in entries:
            try:
                if entry.is_symlink():
                    if _matches(entry.name, suffixes) and entry.is_file():
                        found.append(((*parts, entry.name), Path(entry.path), os.path.realpath(entry.path)))
                elif entry.is_dir():
                    todo.append((entry.path, os.path.join(real, entry.name), (*parts, entry.name)))
                elif _matches(entry.name, suffixes) and entry.is_file():
                    found.append(((*parts, entry.name), Path(entry.path), os.path.join(real, entry.name)))
            except OSError:
                continue
    found.sort(key=lambda f: f[0])  # Path order: part by part
    return [(path, real) for _, path, real in found]


def discover(paths: Sequence[Path], suffixes: Sequence[str], what: str) -> list[Path | SourceError]:
    """Files to import, in order: named files as given, directories searched recursively.

    A missing path or a directory without matching files becomes a
    :class:`SourceError` in the list (the other paths still import). A file
    reached twice (overlapping paths, symlinks) is imported once.
    """
    out: list[Path | SourceError] = []
    seen: set[str] = set()
    pattern = ", ".join(f"*{s}" for s in suffixes)
    for path in paths:
        if path.is_dir():
            found = _walk(path, suffixes)
            if not found:
                out.append(
                    SourceError(
                        path,
                        f"no {what} files ({pattern}) in this directory",
                        hint="another directory, or naming the files directly",
                    )
                )
            for p, real in found:
                if real not in seen:
                    seen.add(real)
                    out.append(p)
        elif path.is_file():
            real = os.path.realpath(path)
            if real not in seen:
                seen.add(real)
                out.append(path)
        elif path.exists():
            out.append(SourceError(path, "not a regular file", hint="a file or a directory of files"))
        else:
            out.append(SourceError(path, "no such file or directory", hint="checking the path"))
    return out
