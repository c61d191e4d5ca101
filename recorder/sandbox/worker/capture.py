"""Bounded capture of a cell's stdout/stderr (runs inside the worker).

A cell may print a gigabyte; the worker keeps the first ``max_chars // 2`` characters and the
last ``max_chars - max_chars // 2``, counts everything, and drops the middle. A single huge
``write`` costs two slices (no copy of the whole string); many small writes cost an
amortised O(1) each (the tail is compacted once it holds twice its cap).
"""

from __future__ import annotations

import io
import re

_ENCODE_CHUNK = 1 << 22
_SURROGATE = re.compile("[\ud800-\udfff]")


def utf8_length(text: str) -> int:
    """Byte length of ``text`` in UTF-8 without building a full copy of a huge string."""
    if text.isascii():
        return len(text)
    return sum(
        len(text[i : i + _ENCODE_CHUNK].encode("utf-8", "surrogatepass"))
        for i in range(0, len(text), _ENCODE_CHUNK)
    )


def clean_text(text: str) -> str:
    """Replace lone surrogates (which UTF-8 cannot encode: the store would reject them) with U+FFFD."""
    if text.isascii():
        return text
    return _SURROGATE.sub("\ufffd", text)


class CappedWriter(io.TextIOBase):
    """A text stream that keeps a head and a tail of what is written to it."""

    def __init__(self, max_chars: int) -> None:
        super().__init__()
        self._head_cap = max_chars // 2
        self._tail_cap = max_chars - self._head_cap
        self._head: list[str] = []
        self._head_len = 0
        self._tail: list[str] = []
        self._tail_len = 0
        self.chars = 0
        self.bytes = 0

    @property
    def encoding(self) -> str:  # type: ignore[override]
        return "utf-8"

    def writable(self) -> bool:
        return True

    def write(self, text: str) -> int:
        if not isinstance(text, str):
            raise TypeError(f"write() argument must be str, not {type(text).__name__}")
        n = len(text)
        if n == 0:
            return 0
        self.chars += n
        self.bytes += n if text.isascii() else utf8_length(text)
        start = 0
        room = self._head_cap - self._head_len
        if room > 0:
            if n <= room:
                self._head.append(text)
                self._head_len += n
                return n
            self._head.append(text[:room])
            self._head_len += room
            start = room
        rest = n - start
        if rest >= self._tail_cap:
            # Only the last tail_cap characters of this write can survive.
            self._tail = [text[n - self._tail_cap :]] if self._tail_cap else []
            self._tail_len = self._tail_cap
            return n
        self._tail.append(text[start:] if start else text)
        self._tail_len += rest
        if self._tail_len > 2 * self._tail_cap + 4096:
            kept = "".join(self._tail)[-self._tail_cap :]
            self._tail = [kept]
            self._tail_len = len(kept)
        return n

    @property
    def truncated(self) -> bool:
        return self.chars > self._head_cap + self._tail_cap

    def value(self) -> tuple[str, int | None]:
        """The kept text and, when the middle was dropped, the index where it was."""
        head = clean_text("".join(self._head))
        tail = "".join(self._tail)
        if not self.truncated:
            return head + clean_text(tail), None
        tail = clean_text(tail[len(tail) - self._tail_cap :] if self._tail_cap else "")
        return head + tail, len(head)
