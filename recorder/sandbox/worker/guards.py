"""In-process guards installed in the worker before user code runs.

They turn process creation and network access into a clear ``PermissionError`` instead of
a fork bomb or a silent hang. They are Python-level: code that calls libc through ctypes
or uses ``_socket`` directly gets past them, which is why the worker also relies on the
kernel (pids cgroup, RLIMIT_NPROC, PID and network namespaces, see
:mod:`recorder.sandbox.worker.isolation`) wherever the platform allows it.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Callable
from typing import Any

_PROCESS_FUNCTIONS = (
    "fork",
    "forkpty",
    "system",
    "posix_spawn",
    "posix_spawnp",
    "execv",
    "execve",
    "execl",
    "execle",
    "execlp",
    "execlpe",
    "execvp",
    "execvpe",
    "spawnv",
    "spawnve",
    "spawnvp",
    "spawnvpe",
    "spawnl",
    "spawnle",
    "spawnlp",
    "spawnlpe",
    "setsid",
    "setpgid",
    "setpgrp",
)
_SOCKET_METHODS = ("connect", "connect_ex", "sendto", "sendmsg", "bind")


def _denied(what: str, why: str) -> Callable[..., Any]:
    def deny(*_args: Any, **_kwargs: Any) -> Any:
        raise PermissionError(f"{what} is disabled in the rlmine sandbox: {why}")

    deny.__name__ = what.rstrip("()").rsplit(".", 1)[-1]
    return deny


def block_process_creation() -> None:
    """os.fork/exec*/spawn*/system, subprocess and multiprocessing all raise PermissionError."""
    why = "cells cannot start processes; use threads, or llm_query_batched for parallel LLM calls"
    for name in _PROCESS_FUNCTIONS:
        if hasattr(os, name):
            setattr(os, name, _denied(f"os.{name}()", why))
    try:
        import _posixsubprocess  # subprocess and multiprocessing's spawn go through fork_exec
    except ImportError:
        return
    _posixsubprocess.fork_exec = _denied("subprocess", why)


def block_network() -> None:
    """Outgoing connections, datagrams, listening sockets and DNS raise PermissionError."""
    why = "network access is off for this run"
    for name in _SOCKET_METHODS:
        setattr(socket.socket, name, _denied(f"socket.{name}()", why))
    socket.create_connection = _denied("socket.create_connection()", why)
    socket.getaddrinfo = _denied("socket.getaddrinfo()", why)
