"""A pids cgroup per sandbox, made by the host when the cgroup filesystem is writable.

``pids.max`` bounds every process and thread of the worker, even those started through
ctypes where the in-process guards cannot see them, and even as root (where RLIMIT_NPROC
does not apply). It also lets the host find and kill every process a cell left behind.

cgroup v1 (a ``pids`` hierarchy) and v2 (the unified hierarchy, with the ``pids``
controller enabled for our own cgroup's children) are supported; anything else — not
root, a read-only ``/sys/fs/cgroup``, v2 without delegation — yields None and the sandbox
falls back to RLIMIT_NPROC and the guards. A host killed with SIGKILL leaves its empty
cgroup directories behind (named ``rlmine-sandbox-<pid>-<n>``).
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import os
import signal
import time

log = logging.getLogger(__name__)
CGROUP_ROOT = "/sys/fs/cgroup"
_counter = itertools.count()


def _own_cgroup_dirs() -> list[str]:
    """Candidate parent directories for our pids cgroups, best first."""
    candidates: list[str] = []
    try:
        with open("/proc/self/cgroup") as handle:
            lines = handle.read().splitlines()
    except OSError:
        return candidates
    for line in lines:
        _hier, controllers, path = line.split(":", 2)
        if "pids" in controllers.split(","):
            candidates.append(os.path.join(CGROUP_ROOT, "pids", path.lstrip("/")))
        elif controllers == "" and os.path.exists(os.path.join(CGROUP_ROOT, "cgroup.controllers")):
            candidates.append(os.path.join(CGROUP_ROOT, path.lstrip("/")))
    return candidates


def _write(path: str, text: str) -> None:
    with open(path, "w") as handle:
        handle.write(text)


class PidsCgroup:
    def __init__(self, path: str) -> None:
        self.path = path

    @classmethod
    def create(cls, max_pids: int) -> PidsCgroup | None:
        if not os.path.isdir(CGROUP_ROOT) or os.geteuid() != 0:
            return None
        for parent in _own_cgroup_dirs():
            if not os.path.exists(os.path.join(parent, "cgroup.procs")):
                continue
            v2 = os.path.exists(os.path.join(parent, "cgroup.controllers"))
            path = os.path.join(parent, f"rlmine-sandbox-{os.getpid()}-{next(_counter)}")
            try:
                if v2:
                    _write(os.path.join(parent, "cgroup.subtree_control"), "+pids")
                os.mkdir(path)
            except OSError:
                continue
            try:
                _write(os.path.join(path, "pids.max"), str(max_pids))
            except OSError:
                with contextlib.suppress(OSError):
                    os.rmdir(path)
                continue
            return cls(path)
        return None

    def pids(self) -> list[int]:
        try:
            with open(os.path.join(self.path, "cgroup.procs")) as handle:
                return [int(line) for line in handle if line.strip()]
        except (OSError, ValueError):
            return []

    def kill_all(self, wait_s: float = 2.0) -> bool:
        """SIGKILL every process in the group; True once it is empty."""
        deadline = time.monotonic() + wait_s
        while True:
            members = self.pids()
            if not members:
                return True
            for pid in members:
                with contextlib.suppress(OSError):
                    os.kill(pid, signal.SIGKILL)
            if time.monotonic() > deadline:
                return False
            time.sleep(0.005)

    def remove(self) -> None:
        if not self.kill_all():
            log.warning("processes remain in %s; leaving the cgroup behind", self.path)
            return
        for _ in range(100):  # rmdir fails (EBUSY) until the last killed task is reaped
            try:
                os.rmdir(self.path)
                return
            except FileNotFoundError:
                return
            except OSError:
                time.sleep(0.01)
        log.warning("could not remove cgroup %s", self.path)
