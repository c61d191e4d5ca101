"""The first steps of a process forked by the fork-server template (runs in the child).

A child first cuts its ties to the template's loop: default SIGCHLD, no wakeup fd, the
template's socket detached, a session of its own, death with the template
(``PR_SET_PDEATHSIG``), and every inherited fd closed but the ones it owns. Then it
becomes either

* a *worker*: stdio on /dev/null and its log, the scratch dir as cwd, the worker
  environment, and the same :func:`~recorder.sandbox.worker.serve.serve` a spawned worker runs —
  so confinement, context load and privilege drop are unchanged; or
* a *context template*: a template of its own (same loop) that loads one context file
  first, so the workers it forks share that context's pages copy-on-write.
"""

from __future__ import annotations

import os
import signal
import socket
import sys
from typing import Any

from recorder.sandbox.worker import isolation
from recorder.sandbox.worker.context_loader import SharedContext
from recorder.sandbox.worker.serve import serve

_WORKER_PATH = os.path.join(os.path.dirname(os.path.abspath(__file__)), "main.py")


def close_all_but(keep: set[int]) -> None:
    low = 0
    for fd in sorted(keep):
        if fd > low:  # os.closerange(0, 0) closes every fd on CPython 3.11 (close_range(0, ~0))
            os.closerange(low, fd)
        low = fd + 1
    os.closerange(low, os.sysconf("SC_OPEN_MAX"))


def _leave_template(template_sock: socket.socket, template_pid: int) -> None:
    signal.set_wakeup_fd(-1)
    signal.signal(signal.SIGCHLD, signal.SIG_DFL)
    template_sock.detach()  # closed with the other inherited fds; no finalizer left to close it again
    os.setsid()
    isolation.die_with_parent(template_pid)


def become_worker(
    request: dict[str, Any],
    fds: list[int],
    template_sock: socket.socket,
    template_pid: int,
    shared: SharedContext | None,
) -> int:
    """Turn into a freshly started worker, then serve cells; returns the exit status.

    ``fds`` beyond the first four are the ones ``request["extra_fds"]`` names (the pids
    cgroup's ``cgroup.procs``, the context file): the worker uses and closes them before
    any user code runs."""
    _leave_template(template_sock, template_pid)
    cmd_fd, res_fd, log_fd, _status_fd = fds[:4]
    extra = dict(zip(request.get("extra_fds", []), fds[4:], strict=True))
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    os.dup2(log_fd, 1)
    os.dup2(log_fd, 2)
    close_all_but({0, 1, 2, cmd_fd, res_fd, *extra.values()})  # the socket, status pipes, other workers' fds
    settings = {**dict(request["settings"]), "cmd_fd": cmd_fd, "res_fd": res_fd, "fds": extra}
    if not settings.get("in_view"):  # in a template view the scratch folder is mounted first
        os.chdir(str(request["workdir"]))
    os.environ.clear()
    os.environ.update({str(k): str(v) for k, v in dict(request["env"]).items()})
    sys.argv = [_WORKER_PATH]
    return serve(settings, shared)


def become_context_template(template_sock: socket.socket, template_pid: int, own_fd: int) -> None:
    """Keep only ``own_fd`` (the new template's socket) and stdio; the caller runs the loop."""
    _leave_template(template_sock, template_pid)
    close_all_but({0, 1, 2, own_fd})
