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
import zlib
from collections.abc import Iterator, Sequence
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


def is_gzip(path: Path) -> bool:
    with open(path, "rb") as handle:
        return handle.read(2) == _GZIP_MAGIC


def _open(path: Path) -> io.BufferedIOBase:
    """The file's decompressed byte stream, with a clear error for a fake ``.gz``."""
    try:
        gz = is_gzip(path)
    except OSError as exc:
        raise SourceError(
            path, f"cannot read the file ({exc.strerror})", hint="checking its permissions"
        ) from exc
    if gz:
        return gzip.open(path, "rb")
    if path.name.endswith(".gz"):
        raise SourceError(
            path,
            "not a gzip file (the name ends in .gz but the data is not gzip)",
            hint="renaming it without .gz, or re-compressing it with gzip",
        )
    return io.BufferedReader(io.FileIO(path, "r"), buffer_size=_BUFFER)


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
                if not raw.strip():
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


def _matches(path: Path, suffixes: Sequence[str]) -> bool:
    name = path.name.lower()
    return not name.startswith(".") and any(name.endswith(s) for s in suffixes)


def discover(paths: Sequence[Path], suffixes: Sequence[str], what: str) -> list[Path | SourceError]:
    """Files to import, in order: named files as given, directories searched recursively.

    A missing path or a directory without matching files becomes a
    :class:`SourceError` in the list (the other paths still import).
    """
    out: list[Path | SourceError] = []
    seen: set[Path] = set()
    pattern = ", ".join(f"*{s}" for s in suffixes)
    for path in paths:
        if path.is_dir():
            found = sorted(p for p in path.rglob("*") if p.is_file() and _matches(p, suffixes))
            if not found:
                out.append(
                    SourceError(
                        path,
                        f"no {what} files ({pattern}) in this directory",
                        hint="another directory, or naming the files directly",
                    )
                )
            for p in found:
                if p.resolve() not in seen:
                    seen.add(p.resolve())
                    out.append(p)
        elif path.is_file():
            if path.resolve() not in seen:
                seen.add(path.resolve())
                out.append(path)
        elif path.exists():
            out.append(SourceError(path, "not a regular file", hint="a file or a directory of files"))
        else:
            out.append(SourceError(path, "no such file or directory", hint="checking the path"))
    return out
