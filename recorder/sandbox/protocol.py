"""Frames between the host and the worker: a 4-byte big-endian length, then UTF-8 JSON.

Two dedicated pipes carry them (host → worker commands and LLM replies; worker → host
results and LLM requests), so nothing the user code prints can corrupt the protocol.
Used by both sides; standard library only, because the worker imports it at start-up.

Messages (``op``): host → worker ``exec`` {code}, ``llm_result`` {responses},
``llm_error`` {message}; worker → host ``ready`` {isolation, context_type, error?},
``llm`` {prompts, model}, ``result`` {stdout, stderr, ..., see ``runtime.CellOutcome``}.
"""

from __future__ import annotations

import json
import os
import select
import time
from typing import Any

HEADER_BYTES = 4
MAX_FRAME_BYTES = 2**31  # the header cannot say more; a reader sets its own, lower cap
MAX_LLM_REQUEST_BYTES = 32 << 20  # one llm_query_batched request, all prompts together
MAX_ERROR_CHARS = 20_000  # a cell's formatted exception (head and tail kept)
MAX_ANSWER_CHARS = 1_000_000  # a SUBMIT answer, as JSON
_JSON_BYTES_PER_CHAR = 12  # worst case: a character outside the BMP as two \uXXXX escapes


def result_frame_cap(max_output_chars: int) -> int:
    """The largest frame an honest worker sends: a result with both streams at their cap, an
    answer and an error at theirs (or an llm request); anything larger is refused."""
    result = (2 * max_output_chars + MAX_ERROR_CHARS) * _JSON_BYTES_PER_CHAR + MAX_ANSWER_CHARS
    return max(result, MAX_LLM_REQUEST_BYTES) + (64 << 10)


class ProtocolError(Exception):
    """The peer sent something that is not a frame of this protocol."""


def encode_frame(message: dict[str, Any]) -> bytes:
    payload = json.dumps(message, separators=(",", ":")).encode("utf-8")
    return len(payload).to_bytes(HEADER_BYTES, "big") + payload


def write_frame(fd: int, message: dict[str, Any]) -> None:
    """Write a whole frame to a blocking fd (raises OSError, e.g. BrokenPipeError)."""
    write_encoded(fd, encode_frame(message))


def write_encoded(fd: int, frame: bytes) -> None:
    """Write a frame made by :func:`encode_frame` (to check its size first)."""
    data = memoryview(frame)
    while data:
        written = os.write(fd, data)
        data = data[written:]


def _read_exact(fd: int, n: int) -> bytes:
    chunks: list[bytes] = []
    while n:
        chunk = os.read(fd, min(n, 1 << 20))
        if not chunk:
            raise EOFError("pipe closed")
        chunks.append(chunk)
        n -= len(chunk)
    return b"".join(chunks)


def read_frame(fd: int) -> dict[str, Any]:
    """Block until one frame arrives on ``fd`` (raises EOFError when the pipe closes)."""
    size = int.from_bytes(_read_exact(fd, HEADER_BYTES), "big")
    return decode_payload(_read_exact(fd, size))


def decode_payload(payload: bytes) -> dict[str, Any]:
    try:
        message = json.loads(payload)
    except ValueError as exc:
        raise ProtocolError(f"undecodable frame: {exc}") from None
    if not isinstance(message, dict) or not isinstance(message.get("op"), str):
        raise ProtocolError("frame without an 'op'")
    return message


class FrameReader:
    """Non-blocking reader for the host: waits for the next frame with a time budget.

    ``next_frame(budget)`` returns ``(frame, seconds_waited)``; the frame is None when the
    budget ran out. EOFError means the worker closed its end (it exited or crashed). A frame
    whose header announces more than ``max_frame_bytes`` raises ProtocolError before its
    payload is read, so a hostile worker cannot make the host buffer more than the cap.
    """

    def __init__(self, fd: int, max_frame_bytes: int = MAX_FRAME_BYTES) -> None:
        os.set_blocking(fd, False)
        self._fd = fd
        self._max = max_frame_bytes
        self._buffer = bytearray()
        self._poll = select.poll()
        self._poll.register(fd, select.POLLIN | select.POLLHUP | select.POLLERR)

    def _take_frame(self) -> dict[str, Any] | None:
        if len(self._buffer) < HEADER_BYTES:
            return None
        size = int.from_bytes(self._buffer[:HEADER_BYTES], "big")
        if size > self._max:
            raise ProtocolError(f"a frame of {size:,} bytes is over the {self._max:,}-byte cap")
        end = HEADER_BYTES + size
        if len(self._buffer) < end:
            return None
        payload = bytes(self._buffer[HEADER_BYTES:end])
        del self._buffer[:end]
        return decode_payload(payload)

    def hung_up(self) -> bool:
        """True when the worker closed its end or sent something unasked (between cells)."""
        if self._buffer:
            return True
        return any(event for _fd, event in self._poll.poll(0))

    def next_frame(self, budget_s: float) -> tuple[dict[str, Any] | None, float]:
        start = time.monotonic()
        while True:
            frame = self._take_frame()
            if frame is not None:
                return frame, time.monotonic() - start
            remaining = budget_s - (time.monotonic() - start)
            if remaining <= 0:
                return None, time.monotonic() - start
            if not self._poll.poll(max(1, int(remaining * 1000) + 1)):
                continue
            try:
                chunk = os.read(self._fd, 1 << 20)
            except BlockingIOError:
                continue
            if not chunk:
                raise EOFError("worker closed the result pipe")
            self._buffer += chunk
