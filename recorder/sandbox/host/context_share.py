"""Share one loaded copy of a large context among the workers of many sandboxes.

Thirty-two runs over the same 1 GB file would otherwise load it 32 times (32 GB, and a
second of CPU each). Instead, the first sandbox that needs it asks the fork-server template
for a *context template* (:mod:`recorder.sandbox.worker.template`): a template process that loads the
file once; every worker forked from it starts with the context already in memory, its pages
shared copy-on-write (the GC is frozen there, so untouched objects stay shared).

* Only regular files of at least ``SHARE_MIN_BYTES`` are shared: smaller ones load in
  milliseconds, and a template per small context would cost more than it saves.
* Identity is :func:`~recorder.sandbox.contexts.file_key` — device, inode, size,
  mtime and ctime (ns) — taken at each worker start: a file that changed gets a new
  template, so a restarted worker sees the file as it is now, as a spawned one would. The
  context template checks the key again before and after loading. (No content hash: it
  would cost a read of the whole file at every start.)
* Each sandbox holds a lease (:class:`ContextShare`) on the template of its context while
  it lives; a template nobody leases is stopped after ``LINGER_S`` (the next run of a batch
  usually picks it up before then).
* Memory limits are unchanged: a worker's RLIMIT_AS is sized from its mapped memory, which
  includes the shared context, exactly as in a worker that loaded it.
* Anything that goes wrong (the template cannot start, the file cannot be loaded, the
  template died) falls back to a worker that loads the context itself.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
from dataclasses import dataclass, field

from recorder.sandbox.contexts import file_key, resolve_format
from recorder.sandbox.host.forkserver import ForkServer, ForkServerError

log = logging.getLogger(__name__)

SHARE_MIN_BYTES = 16 << 20
LINGER_S = 10.0

Key = tuple[str, str, tuple[int, ...], bool]  # (real path, format, file_key, in the view)


@dataclass(eq=False)
class _Entry:
    users: int = 0
    server: ForkServer | None = None
    error: str | None = None
    loading: threading.Lock = field(default_factory=threading.Lock)
    timer: threading.Timer | None = None


class _Registry:
    """The context templates of this process, by key. Re-entrant: finalizers release leases."""

    def __init__(self) -> None:
        self._lock = threading.RLock()
        self._entries: dict[Key, _Entry] = {}

    def acquire(self, key: Key, main: ForkServer, timeout_s: float) -> _Entry:
        with self._lock:
            entry = self._entries.get(key)
            if entry is None or entry.error or (entry.server is not None and not entry.server.alive):
                entry = self._entries[key] = _Entry()
            entry.users += 1
            if entry.timer is not None:
                entry.timer.cancel()
                entry.timer = None
        with entry.loading:  # one load per key; the other sandboxes wait for it
            if entry.server is None and entry.error is None:
                path, context_format, identity, view = key
                try:
                    entry.server = main.start_context_template(
                        path, context_format, list(identity), timeout_s, view
                    )
                except ForkServerError as exc:
                    entry.error = str(exc)
        if entry.error is not None:
            self.release(key, entry)
            raise ForkServerError(entry.error)
        return entry

    def release(self, key: Key, entry: _Entry) -> None:
        with self._lock:
            entry.users -= 1
            if entry.users > 0:
                return
            if entry.server is not None and entry.server.alive and self._entries.get(key) is entry:
                entry.timer = threading.Timer(LINGER_S, self._expire, (key, entry))
                entry.timer.daemon = True
                entry.timer.start()
            else:
                self._drop(key, entry)

    def _expire(self, key: Key, entry: _Entry) -> None:
        with self._lock:
            if entry.users == 0:
                self._drop(key, entry)

    def _drop(self, key: Key, entry: _Entry) -> None:
        if self._entries.get(key) is entry:
            del self._entries[key]
        if entry.server is not None:
            entry.server.stop()  # it kills its (no longer used) workers and exits

    def count(self) -> int:
        with self._lock:
            return sum(1 for entry in self._entries.values() if entry.server is not None)

    def stop_all(self) -> None:
        with self._lock:
            for key, entry in list(self._entries.items()):
                if entry.timer is not None:
                    entry.timer.cancel()
                self._drop(key, entry)

    def forget_inherited(self) -> None:
        """In a forked copy of the host: the context templates belong to the parent."""
        self._lock = threading.RLock()
        for entry in self._entries.values():
            if entry.server is not None:
                entry.server.disown()
        self._entries = {}


REGISTRY = _Registry()
_fork_hook = threading.Lock()
_fork_hook_installed = False


def _install_fork_hook() -> None:
    global _fork_hook_installed
    with _fork_hook:
        if not _fork_hook_installed:
            os.register_at_fork(after_in_child=REGISTRY.forget_inherited)
            _fork_hook_installed = True


def share_key(path: str | None, context_format: str, view: bool = False) -> Key | None:
    """The key to share this context under, or None when it is not worth sharing. ``view``:
    the template enters the view after loading (its workers are forked inside it)."""
    if not path:
        return None
    try:
        if not os.path.isfile(path):
            return None
        identity = tuple(file_key(path))
    except OSError:
        return None
    if identity[2] < SHARE_MIN_BYTES:
        return None
    # The format as the worker would resolve it (by the name it was given); the file by its real path.
    return os.path.realpath(path), resolve_format(path, context_format), identity, view


class ContextShare:
    """One sandbox's lease on the context template of its context, renewed at each start."""

    def __init__(self, path: str | None, context_format: str, timeout_s: float, view: bool = False) -> None:
        self._path, self._format, self._timeout_s, self._view = path, context_format, timeout_s, view
        self._lease: tuple[Key, _Entry] | None = None

    @property
    def shared(self) -> bool:
        return self._lease is not None

    def template_for(self, main: ForkServer) -> ForkServer | None:
        """The context template to fork the next worker from; None: the main template."""
        key = share_key(self._path, self._format, self._view)
        if self._lease is not None:
            held_key, entry = self._lease
            if held_key == key and entry.server is not None and entry.server.alive:
                return entry.server
            self.release()
        if key is None:
            return None
        _install_fork_hook()
        try:
            entry = REGISTRY.acquire(key, main, self._timeout_s)
        except ForkServerError as exc:
            log.info("context %s not shared: %s", self._path, exc)
            return None
        self._lease = (key, entry)
        return entry.server

    def release(self) -> None:
        lease, self._lease = self._lease, None
        if lease is not None:
            with contextlib.suppress(Exception):  # also runs from GC finalizers
                REGISTRY.release(*lease)
