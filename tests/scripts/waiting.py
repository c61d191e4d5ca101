"""Polling for a condition the tests cannot be told about (a process gone, a file written)."""

from __future__ import annotations

import time
from collections.abc import Callable


def eventually(check: Callable[[], bool], timeout_s: float = 5.0) -> bool:
    """True as soon as ``check()`` is; False when ``timeout_s`` passes first."""
    deadline = time.monotonic() + timeout_s
    while not check():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True
