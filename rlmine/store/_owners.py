"""Which process owns a ``running`` run, and is it still alive?

A recording process stamps each run it starts with an owner token
``host:pid:start_ticks``. The start time (from ``/proc/<pid>/stat``) tells a
live recorder from an unrelated process that reused the pid. A ``running`` run
whose owner is gone is *stale*: the batch runner re-runs it on ``--resume``.
"""

from __future__ import annotations

import os
import socket
from functools import cache


def _start_ticks(pid: int) -> str | None:
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as handle:
            stat = handle.read()
    except OSError:
        return None
    # Field 22 (starttime) counts from after the parenthesised command name.
    after = stat.rsplit(")", 1)[-1].split()
    return after[19] if len(after) > 19 else None


@cache
def current_owner() -> str:
    pid = os.getpid()
    return f"{socket.gethostname()}:{pid}:{_start_ticks(pid) or '0'}"


def owner_alive(owner: str | None) -> bool:
    """False when the owner is certainly dead; True when alive or on another host."""
    if not owner:
        return False
    try:
        host, pid_text, ticks = owner.rsplit(":", 2)
        pid = int(pid_text)
    except ValueError:
        return False
    if host != socket.gethostname():
        return True  # cannot see other machines' processes: assume alive
    if pid == os.getpid():
        return ticks == (_start_ticks(pid) or "0")
    current = _start_ticks(pid)
    if current is None:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return True  # alive, but no /proc (not Linux): trust the pid
    return current == ticks
