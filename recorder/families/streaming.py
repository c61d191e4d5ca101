"""Streaming helpers shared by the generators: seeded RNGs and a chunked writer.

Generators build lines in batches (numpy draws the random choices for a whole
batch at once, which is what makes ~50 MB/s possible in Python), cut the last
batch so the file ends at the requested size, and hand the lines to a
:class:`ChunkWriter` that writes ~1 MB at a time. Nothing ever holds the whole
context: memory stays flat whatever the size.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from itertools import accumulate
from types import TracebackType
from typing import BinaryIO

import numpy as np

__all__ = ["BATCH_LINES", "ChunkWriter", "derive_seed", "fit_lines", "make_rng", "zipf_weights"]

BATCH_LINES = 4096
ProgressFn = Callable[[int], None]


def derive_seed(*parts: object) -> int:
    """A stable 63-bit seed from any printable parts (same parts, same seed, any platform)."""
    digest = hashlib.sha256(":".join(str(p) for p in parts).encode()).digest()
    return int.from_bytes(digest[:8], "big") >> 1


def make_rng(*parts: object) -> np.random.Generator:
    """A numpy generator seeded from ``parts`` (PCG64: stable streams across runs)."""
    return np.random.default_rng(derive_seed(*parts))


def zipf_weights(n: int, exponent: float) -> np.ndarray:
    """Normalised weights 1/rank**exponent for ranks 1..n."""
    weights: np.ndarray = 1.0 / np.arange(1, n + 1, dtype=np.float64) ** exponent
    normalised: np.ndarray = weights / weights.sum()
    return normalised


def fit_lines(lines: Sequence[str], room: int) -> int:
    """How many of ``lines`` (each written with a trailing newline) fit in ``room`` bytes.

    Lines are ASCII, so characters are bytes. At least one line is kept, so a
    generator always makes progress.
    """
    total = 0
    for i, size in enumerate(accumulate(len(line) + 1 for line in lines)):
        total = size
        if total > room:
            return max(i, 1)
    return len(lines)


class ChunkWriter:
    """Writes lines to a binary file in ~1 MB chunks and counts the bytes written."""

    def __init__(
        self, fh: BinaryIO, *, chunk_bytes: int = 1 << 20, on_progress: ProgressFn | None = None
    ) -> None:
        self._fh = fh
        self._chunk_bytes = chunk_bytes
        self._pending: list[bytes] = []
        self._pending_bytes = 0
        self._flushed = 0
        self._on_progress = on_progress

    @property
    def bytes_written(self) -> int:
        """Bytes accepted so far (flushed or pending)."""
        return self._flushed + self._pending_bytes

    def write_lines(self, lines: Sequence[str]) -> None:
        if not lines:
            return
        data = ("\n".join(lines) + "\n").encode("utf-8")
        self._pending.append(data)
        self._pending_bytes += len(data)
        if self._pending_bytes >= self._chunk_bytes:
            self.flush()

    def flush(self) -> None:
        if self._pending:
            self._fh.write(b"".join(self._pending))
            self._flushed += self._pending_bytes
            self._pending.clear()
            self._pending_bytes = 0
            if self._on_progress is not None:
                self._on_progress(self._flushed)

    def __enter__(self) -> ChunkWriter:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.flush()
