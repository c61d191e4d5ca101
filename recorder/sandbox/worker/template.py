"""The fork-server template ("zygote"): a process that forks ready-to-confine workers.

Started once per host process by :mod:`recorder.sandbox.host.forkserver` as
``python -s -P worker/main.py --fork-server FD``, with the worker's base environment (no host
secrets), ``/`` as cwd, in its own session. It imports every worker-side module up front,
freezes the GC (so children do not dirty the shared pages) and then serves one
``SOCK_SEQPACKET`` Unix socket, single-threaded:

* ``fork`` {settings, env, workdir} with four fds (SCM_RIGHTS): the worker's command-pipe
  read end, result-pipe write end, log file and an *exit-status pipe* write end. The
  template forks; the child (:mod:`recorder.sandbox.worker.forked_child`) becomes exactly what a
  spawned worker is before ``serve`` and runs the same ``serve`` — confinement, context
  load and privilege drop all happen in the child, as in a spawned worker. Reply:
  ``forked`` {pid}.
* ``context`` {path, format, key}: fork a *context template* — a template like this one,
  reached through a new socket sent back with the reply (``forked`` {pid} + 1 fd), that
  first loads that context file (if it is still the version ``key`` names) and then
  answers ``ready``, or ``error`` and exits. Workers it forks take the loaded context
  instead of loading it: their pages are shared copy-on-write.
* ``release`` {pid}: SIGKILL the worker's process group and the worker. No reply (so the
  host may send it from any thread without waiting); the exit-status pipe says when it ended.

Reaping: SIGCHLD wakes the loop (``signal.set_wakeup_fd``); each known child is checked with
``waitid(..., WNOWAIT)``, which reads its exit status *without* reaping it. The status goes
to the worker's exit-status pipe (4 bytes, a ``Popen.returncode``-style int) and the pipe
is closed. The zombie keeps its pid reserved until the host releases it, so a ``release``
can never signal an unrelated process that reused the pid. A worker that exits after
``release`` (and a context template, whenever it exits) is reaped at once.

Lifetime: every child gets ``PR_SET_PDEATHSIG`` = SIGKILL, so no worker outlives its
template. When the host closes its end of a template's socket (or exits, or is killed),
that template kills every child's process group and exits. Templates run no user code and
never read the host's environment.
"""

from __future__ import annotations

import contextlib
import gc
import importlib
import json
import os
import select
import signal
import socket
import sys
import traceback
from dataclasses import dataclass
from typing import Any

from recorder.sandbox.worker import forked_child, fsview, isolation
from recorder.sandbox.worker.context_loader import ContextLoadError, SharedContext, load_shared

MAX_MESSAGE_BYTES = 1 << 17
FORK_FDS = 4  # cmd read end, result write end, log, exit-status write end
EXTRA_FDS = ("cgroup", "context")  # optional, named in the request's "extra_fds", in this order


@dataclass
class _Child:
    status_fd: int | None  # closed once the exit status is written
    exited: bool = False
    released: bool = False


def encode_status(code: int) -> bytes:
    return code.to_bytes(4, "big", signed=True)


def _returncode(result: os.waitid_result) -> int:
    killed = result.si_code in (os.CLD_KILLED, os.CLD_DUMPED)
    return -result.si_status if killed else result.si_status


def _kill_group(pid: int) -> None:
    for kill in (os.killpg, os.kill):
        with contextlib.suppress(OSError):
            kill(pid, signal.SIGKILL)


class Template:
    """The template's state: its socket, its children by pid, and its shared context if any."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.pid = os.getpid()
        self.children: dict[int, _Child] = {}
        self.shared: SharedContext | None = None
        self.in_view = False  # this template's root is the sandbox's view (fsview.enter_template_view)

    def reply(self, message: dict[str, Any], fds: list[int] | None = None) -> None:
        data = json.dumps(message).encode("utf-8")
        with contextlib.suppress(OSError):  # a host that went away shows up as EOF on the next recv
            if fds:
                socket.send_fds(self.sock, [data], fds)
            else:
                self.sock.send(data)

    def fork(self, request: dict[str, Any], fds: list[int]) -> None:
        try:
            if self.in_view:
                settings = dict(request["settings"])
                fsview.add_template_mount_point(str(settings["workdir"]))
                request = {**request, "settings": {**settings, "in_view": True}}
            pid = os.fork()
        except (OSError, KeyError, TypeError, ValueError) as exc:
            for fd in fds:
                os.close(fd)
            self.reply({"op": "error", "message": f"fork failed: {exc}"})
            return
        if pid == 0:
            code = 70
            try:
                code = forked_child.become_worker(request, fds, self.sock, self.pid, self.shared)
                sys.stdout.flush()
            except BaseException:
                with contextlib.suppress(BaseException):  # into the worker's log, for the host
                    traceback.print_exc()
                    sys.stderr.flush()
            finally:
                os._exit(code)
        for fd in fds[:3] + fds[FORK_FDS:]:
            os.close(fd)
        self.children[pid] = _Child(status_fd=fds[3])
        self.reply({"op": "forked", "pid": pid})
        self.check_children()  # in case it already died

    def start_context_template(self, request: dict[str, Any]) -> None:
        """Fork a child template (one that loads a context, or enters the view, or both);
        reply with its pid and a socket to it."""
        if self.shared is not None:
            self.reply({"op": "error", "message": "a context template cannot start another"})
            return
        host_end, own_end = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        try:
            pid = os.fork()
        except OSError as exc:
            host_end.close()
            own_end.close()
            self.reply({"op": "error", "message": f"fork failed: {exc}"})
            return
        if pid == 0:
            code = 70
            try:
                host_end.detach()  # its fd is closed with the other inherited ones
                forked_child.become_context_template(self.sock, self.pid, own_end.fileno())
                code = run_template(own_end.detach(), request)
            except BaseException:
                with contextlib.suppress(BaseException):
                    traceback.print_exc()
                    sys.stderr.flush()
            finally:
                os._exit(code)
        own_end.close()
        self.children[pid] = _Child(status_fd=None, released=True)  # reaped as soon as it ends
        self.reply({"op": "forked", "pid": pid}, [host_end.fileno()])
        host_end.close()

    def load_shared(self, request: dict[str, Any]) -> str | None:
        """Load the context a context template was started for; the error, if any."""
        try:
            self.shared = load_shared(str(request["path"]), str(request["format"]), list(request["key"]))
        except ContextLoadError as exc:
            return str(exc)
        return None

    def release(self, pid: int) -> None:
        child = self.children.get(pid)
        if child is not None:
            _kill_group(pid)  # safe: an unreaped child (even a zombie) keeps its pid reserved
            child.released = True
            if child.exited:
                self._reap(pid)

    def _reap(self, pid: int) -> None:
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pid, 0)
        child = self.children.pop(pid)
        if child.status_fd is not None:
            os.close(child.status_fd)

    def check_children(self) -> None:
        """Report the exit status of every child that ended; reap the released ones."""
        for pid, child in list(self.children.items()):
            if child.exited:
                continue
            result: os.waitid_result | None = None
            try:
                result = os.waitid(os.P_PID, pid, os.WEXITED | os.WNOHANG | os.WNOWAIT)
            except ChildProcessError:  # not waitable (cannot happen to our own child): report EOF
                child.exited = True
            else:
                child.exited = result is not None and result.si_pid == pid
            if child.exited and child.status_fd is not None:
                if result is not None:
                    with contextlib.suppress(OSError):  # the host may have closed its end
                        os.write(child.status_fd, encode_status(_returncode(result)))
                os.close(child.status_fd)
                child.status_fd = None
            if child.exited and child.released:
                self._reap(pid)

    def kill_all(self) -> None:
        for pid in list(self.children):
            _kill_group(pid)
            self._reap(pid)

    def handle(self, data: bytes, fds: list[int]) -> None:
        """Serve one request. Only fork requests (the ones carrying fds) get a reply."""
        try:
            request = json.loads(data)
            op = request.get("op")
        except (ValueError, AttributeError):
            op, request = None, {}
        extra = request.get("extra_fds", [])
        if op == "fork" and len(fds) == FORK_FDS + len(extra) and set(extra) <= set(EXTRA_FDS):
            self.fork(request, fds)
            return
        for fd in fds:
            os.close(fd)
        if op == "release" and isinstance(request.get("pid"), int):
            self.release(request["pid"])
        elif op == "context" and not fds:
            self.start_context_template(request)
        elif op in ("fork", "context") or fds:
            self.reply({"op": "error", "message": f"malformed {op} request"})


def run_template(sock_fd: int, context_request: dict[str, Any] | None = None) -> int:
    """A template's main loop; returns when the host closes the socket.

    With ``context_request`` (a child template), the context is loaded first when it names
    one, then the template enters the view when asked (``view``); a failure is replied
    instead of ``ready`` and ends the template.
    """
    sock = socket.socket(fileno=sock_fd)
    template = Template(sock)
    if context_request is not None:
        error = template.load_shared(context_request) if context_request.get("path") else None
        if error is None and context_request.get("view"):
            try:
                fsview.enter_template_view()
                template.in_view = True
            except OSError as exc:
                # A context template still shares its context: its workers build their own view.
                if not context_request.get("path"):
                    error = f"cannot enter the view: {exc}"
        if error is not None:
            template.reply({"op": "error", "message": error})
            return 2
    wake_r, wake_w = os.pipe()
    os.set_blocking(wake_w, False)
    signal.set_wakeup_fd(wake_w)
    signal.signal(signal.SIGCHLD, lambda _signum, _frame: None)
    isolation.preload()
    fsview.preload()
    with contextlib.suppress(ImportError):
        importlib.import_module("_posixsubprocess")  # an extension module the guards patch in each worker
    gc.freeze()  # imports (and a shared context) are shared with the children, untouched by their GC
    template.reply({"op": "ready", "pid": template.pid})
    poller = select.poll()
    poller.register(sock.fileno(), select.POLLIN)
    poller.register(wake_r, select.POLLIN)
    while True:
        ready = {fd for fd, _event in poller.poll()}
        if wake_r in ready:
            os.read(wake_r, 4096)
            template.check_children()
        if sock.fileno() not in ready:
            continue
        try:
            data, fds, flags, _addr = socket.recv_fds(sock, MAX_MESSAGE_BYTES, FORK_FDS + len(EXTRA_FDS))
        except ConnectionError:
            data, fds, flags = b"", [], 0
        if not data:
            template.kill_all()
            return 0
        if flags & (socket.MSG_TRUNC | socket.MSG_CTRUNC):
            for fd in fds:
                os.close(fd)
            template.reply({"op": "error", "message": "request too large"})
            continue
        template.handle(data, fds)
