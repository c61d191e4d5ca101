"""The host side of the fork server: one template process per host, forking sandbox workers.

Starting a worker the plain way (``python worker/main.py``) costs ~50 ms of CPU, most of it
imports; 32 sandboxes starting at once on two cores take a second. The template
(:mod:`recorder.sandbox.worker.template`) pays that once and forks a worker per request in about a
millisecond; each child then confines itself exactly as a spawned worker does.

* One template per host process, started lazily by the first sandbox that asks for one
  (:func:`fork_worker`), shared by every sandbox and thread (requests are serialised by a
  lock; a fork takes ~1 ms), stopped at interpreter exit (``atexit``) or when the host
  dies (the template sees EOF on its socket and kills its workers). A process forked from
  the host drops its copy of the socket and starts its own template when it needs one.
* A template that dies is replaced on the next request; every worker it had dies with it
  (``PR_SET_PDEATHSIG``), and their sandboxes restart them as after any worker crash. One
  that fails to start is not retried for ``RETRY_AFTER_S``: callers fall back to spawning.
* Per worker, the host makes the two protocol pipes, the log file and an exit-status pipe,
  and passes them with SCM_RIGHTS; the reply is the worker's pid. The template reports the
  worker's exit status on that pipe (:class:`ForkedProcess.exit_code`) and kills the
  worker's process group on request (:meth:`ForkedProcess.kill`): the worker is the
  template's child, and its pid stays reserved until that request (see the zygote's doc),
  so the host never signals a pid that might have been reused. Only ``fork`` has a reply
  (read under a lock); ``release`` is a bare message, safe from any thread or finalizer.
"""

from __future__ import annotations

import atexit
import contextlib
import json
import logging
import os
import select
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from typing import IO, Any

log = logging.getLogger(__name__)

WORKER_PATH = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "worker", "main.py")

MAX_MESSAGE_BYTES = 1 << 17  # as zygote.MAX_MESSAGE_BYTES (not imported: the zygote is worker-side)
LAUNCH_TIMEOUT_S = 20.0
REQUEST_TIMEOUT_S = 20.0  # a template that does not answer by then is wedged: it is killed
RETRY_AFTER_S = 30.0
KILL_WAIT_S = 5.0


def start_worker_script(
    script: str, args: list[str], *, cwd: str, env: dict[str, str], pass_fds: tuple[int, ...]
) -> tuple[subprocess.Popen[bytes], IO[bytes]]:
    """``python -s -P SCRIPT ARGS`` (the worker's ``main.py``) in its own session, so a Ctrl-C
    meant for the host does not reach it; stdout and stderr go to a temporary log the caller
    then owns. Raises Popen's OSError."""
    log = tempfile.TemporaryFile()  # noqa: SIM115 - handed to the caller
    try:
        proc = subprocess.Popen(
            [sys.executable, "-s", "-P", script, *args],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=log,
            cwd=cwd,
            env=env,
            pass_fds=pass_fds,
            start_new_session=True,
        )
    except OSError:
        log.close()
        raise
    return proc, log


class ForkServerError(Exception):
    """The fork server cannot give a worker now (it failed to start, died, or refused)."""


class ForkServer:
    """A running template process and the host's end of its socket.

    The per-host template has a ``proc`` (the host's child) and a log; a context template
    (see :mod:`recorder.sandbox.host.context_share`) is the template's child instead: it has a
    ``parent``, which kills it when it must go, and it is reaped there.
    """

    def __init__(
        self,
        sock: socket.socket,
        pid: int,
        proc: subprocess.Popen[bytes] | None = None,
        log_file: IO[bytes] | None = None,
        parent: ForkServer | None = None,
    ) -> None:
        self._sock, self.pid, self._proc, self._log, self._parent = sock, pid, proc, log_file, parent
        self._lock = threading.Lock()
        self._dead: str | None = None
        self.owner_pid = os.getpid()
        self._view: ForkServer | None = None  # the child template whose root is the view
        self._view_lock = threading.Lock()
        self._view_failed_at: float | None = None

    @property
    def alive(self) -> bool:
        if self._dead is not None:
            return False
        if self._proc is not None:
            return self._proc.poll() is None
        poller = select.poll()  # a context template: it is gone when its socket hangs up
        poller.register(self._sock.fileno(), select.POLLHUP)
        return not any(event & (select.POLLHUP | select.POLLERR) for _fd, event in poller.poll(0))

    @classmethod
    def launch(cls, env: dict[str, str], timeout_s: float = LAUNCH_TIMEOUT_S) -> ForkServer:
        """Start a template and wait for its ``ready``; raises ForkServerError."""
        host_end, template_end = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        try:
            proc, log_file = start_worker_script(
                WORKER_PATH,
                ["--fork-server", str(template_end.fileno())],
                cwd="/",
                env=env,
                pass_fds=(template_end.fileno(),),
            )
        except OSError as exc:
            host_end.close()
            raise ForkServerError(f"cannot start the fork server: {exc}") from exc
        finally:
            template_end.close()
        server = cls(host_end, proc.pid, proc=proc, log_file=log_file)
        error = server._await_ready(timeout_s)
        if error is not None:
            detail = server._log_tail()
            server.stop()
            raise ForkServerError(f"the fork server did not start{': ' + detail if detail else ''}")
        return server

    def _await_ready(self, timeout_s: float) -> str | None:
        """Wait for the template's first message: None once ``ready``, else what went wrong."""
        self._sock.settimeout(timeout_s)
        try:
            reply = self._sock.recv(MAX_MESSAGE_BYTES)
            answer = json.loads(reply) if reply else {"message": "it exited"}
        except (OSError, ValueError) as exc:
            answer = {"message": f"{type(exc).__name__}: {exc}"}
        self._sock.settimeout(REQUEST_TIMEOUT_S)
        return None if answer.get("op") == "ready" else str(answer.get("message"))

    def _log_tail(self) -> str:
        with contextlib.suppress(OSError, ValueError, AttributeError):
            assert self._log is not None
            self._log.seek(0)
            lines = self._log.read()[-2000:].decode("utf-8", "replace").strip().splitlines()
            return lines[-1] if lines else ""
        return ""

    def _request(self, message: dict[str, Any], fds: list[int]) -> tuple[dict[str, Any], list[int]]:
        """Send one request and read its reply (and the fds that came with it)."""
        data = json.dumps(message).encode("utf-8")
        if len(data) > MAX_MESSAGE_BYTES:
            raise ForkServerError(f"the fork request is too large ({len(data)} bytes)")
        with self._lock:
            if self._dead is not None:
                raise ForkServerError(self._dead)
            try:
                socket.send_fds(self._sock, [data], fds)
                reply, got_fds, _flags, _addr = socket.recv_fds(self._sock, MAX_MESSAGE_BYTES, 1)
            except OSError as exc:  # includes the timeout of a wedged template
                reply, got_fds, why = b"", [], f"{type(exc).__name__}: {exc}"
            else:
                why = "it closed its socket"
            if not reply:
                self._abandon(f"the fork server died ({why})")
                raise ForkServerError(self._dead or why)
        try:
            answer: dict[str, Any] = json.loads(reply)
        except ValueError as exc:
            answer = {"op": "error", "message": f"unreadable reply: {exc}"}
        if answer.get("op") == "error" or not isinstance(answer.get("pid"), int):
            for fd in got_fds:
                os.close(fd)
            raise ForkServerError(f"the fork server refused: {answer.get('message', 'no pid')}")
        return answer, got_fds

    def fork(self, request: dict[str, Any], fds: list[int]) -> int:
        """Fork a worker with these fds (cmd read, result write, log, status write); its pid."""
        answer, _ = self._request({"op": "fork", **request}, fds)
        return int(answer["pid"])

    def start_context_template(
        self, path: str | None, context_format: str, key: list[int], timeout_s: float, view: bool = False
    ) -> ForkServer:
        """Fork a child template that has loaded this context file (``path`` None: none) and,
        with ``view``, made the sandbox's view its root; raises ForkServerError."""
        request = {"op": "context", "path": path, "format": context_format, "key": key, "view": view}
        answer, fds = self._request(request, [])
        if len(fds) != 1:
            for fd in fds:
                os.close(fd)
            raise ForkServerError("the fork server sent no socket for the context template")
        child = ForkServer(socket.socket(fileno=fds[0]), int(answer["pid"]), parent=self)
        error = child._await_ready(timeout_s)
        if error is not None:
            child._abandon(f"the context template did not start: {error}")
            raise ForkServerError(child._dead or error)
        return child

    @property
    def view_template_pid(self) -> int | None:
        """The pid of the child template whose root is the view, if it runs."""
        view = self._view
        return view.pid if view is not None and view.alive else None

    def view_template(self, timeout_s: float = LAUNCH_TIMEOUT_S) -> ForkServer | None:
        """The child template whose root is the view (started on first use, replaced when it
        died); None when it cannot start (not root...): workers then build their own view."""
        with self._view_lock:
            if self._view is not None and self._view.alive:
                return self._view
            if self._view_failed_at is not None and time.monotonic() - self._view_failed_at < RETRY_AFTER_S:
                return None
            try:
                self._view = self.start_context_template(None, "text", [], timeout_s, view=True)
            except ForkServerError as exc:
                log.info("no template view, workers build their own: %s", exc)
                self._view, self._view_failed_at = None, time.monotonic()
            return self._view

    def release(self, pid: int) -> None:
        """Ask the template to kill the worker's process group; best effort, no reply.

        Takes no lock and waits for nothing: a single SEQPACKET message is atomic, and a
        sandbox's GC finalizer may run this in a thread that is inside :meth:`fork`.
        """
        if self._dead is not None:
            return  # a dead template took its workers along
        with contextlib.suppress(OSError):
            self._sock.send(json.dumps({"op": "release", "pid": pid}).encode("utf-8"))

    def _abandon(self, why: str) -> None:
        """Give up on this template: kill it (its workers die with it), close the socket."""
        self._dead = why
        log.warning("sandbox fork server %d: %s", self.pid, why)
        if self._proc is not None:
            with contextlib.suppress(OSError):
                self._proc.kill()
        elif self._parent is not None:
            self._parent.release(self.pid)
            self._sock.close()

    def stop(self) -> None:
        """Close the socket: the template kills its workers and exits. Reap it if it is ours."""
        self._dead = self._dead or "stopped"
        if self._view is not None:
            self._view.stop()
        self._sock.close()
        if self._proc is not None:
            try:
                self._proc.wait(KILL_WAIT_S)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()
        if self._log is not None:
            self._log.close()

    def disown(self) -> None:
        """In a forked copy of the host: drop the inherited socket, leave the template alone."""
        self._dead = "inherited from the parent process"
        self._view_lock = threading.Lock()  # another thread may have held it at the fork
        if self._view is not None:
            self._view.disown()
        with contextlib.suppress(OSError):
            os.close(self._sock.detach())


class ForkedProcess:
    """A worker forked by the template, as the host sees it: pid, exit status, kill."""

    def __init__(self, server: ForkServer, pid: int, status_fd: int) -> None:
        self.server, self.pid, self._status_fd = server, pid, status_fd
        self._code: int | None = None
        self._ended = False

    def exit_code(self, wait_s: float) -> int | None:
        """The exit status (``Popen.returncode`` style), or None if unknown by then."""
        if self._ended or self._status_fd < 0:
            return self._code
        poller = select.poll()
        poller.register(self._status_fd, select.POLLIN | select.POLLHUP)
        if not poller.poll(max(0, int(wait_s * 1000))):
            return None
        data = os.read(self._status_fd, 4)
        self._ended = True  # a status, or EOF: the template died and took the worker along
        self._code = int.from_bytes(data, "big", signed=True) if len(data) == 4 else None
        return self._code

    def kill(self) -> None:
        """Kill the worker's process group and wait (a few seconds at most) for it to end."""
        if self._status_fd < 0:
            return  # already killed: its pid may belong to a newer worker by now
        self.server.release(self.pid)
        if self.server.alive:
            self.exit_code(KILL_WAIT_S)
        with contextlib.suppress(OSError):
            os.close(self._status_fd)
        self._status_fd = -1


_shared: ForkServer | None = None
_shared_lock = threading.Lock()
_last_failure: tuple[str, float] | None = None
_hooks_installed = False


def stop_shared_server() -> None:
    """Stop this process's template (its workers die) and forget a failed start. Run at exit."""
    global _shared, _last_failure
    with _shared_lock:
        if _shared is not None and _shared.owner_pid == os.getpid():
            _shared.stop()
        _shared = None
        _last_failure = None


def running_server() -> ForkServer | None:
    """This process's template if one is running (for diagnostics and benchmarks)."""
    server = _shared
    return server if server is not None and server.alive and server.owner_pid == os.getpid() else None


def _forget_inherited() -> None:
    global _shared, _shared_lock
    _shared_lock = threading.Lock()  # another thread may have held it at the fork
    if _shared is not None:
        _shared.disown()
    _shared = None


def shared_server(env: dict[str, str]) -> ForkServer:
    """This process's template, started (with ``env``) if there is none or it died."""
    global _shared, _last_failure, _hooks_installed
    with _shared_lock:
        if _shared is not None and _shared.alive and _shared.owner_pid == os.getpid():
            return _shared
        if _shared is not None:
            _shared.stop()
            _shared = None
        if _last_failure is not None and time.monotonic() - _last_failure[1] < RETRY_AFTER_S:
            raise ForkServerError(_last_failure[0])
        try:
            _shared = ForkServer.launch(env)
        except ForkServerError as exc:
            _last_failure = (str(exc), time.monotonic())
            log.warning("sandbox fork server unavailable, spawning workers instead: %s", exc)
            raise
        _last_failure = None
        if not _hooks_installed:
            atexit.register(stop_shared_server)
            os.register_at_fork(after_in_child=_forget_inherited)
            _hooks_installed = True
        return _shared


def fork_worker(
    request: dict[str, Any],
    fds: list[int],
    status_read_fd: int,
    template_env: dict[str, str],
    context_template: Callable[[ForkServer], ForkServer | None] | None = None,
    template_view: bool = False,
) -> ForkedProcess:
    """Fork one worker (see :meth:`ForkServer.fork`); a template found dead is replaced once.

    ``status_read_fd`` is the read end of the exit-status pipe whose write end is ``fds[3]``;
    the returned :class:`ForkedProcess` owns it. ``context_template`` may name a context
    template (given the main one) to fork from instead, else ``template_view`` asks for the
    template whose root is the view; if that fails, the worker is forked from the main
    template and loads the context (and builds its view) itself. Raises ForkServerError.
    """
    server = shared_server(template_env)
    via = context_template(server) if context_template is not None else None
    if via is None and template_view:
        via = server.view_template()
    if via is not None:
        with contextlib.suppress(ForkServerError):
            return ForkedProcess(via, via.fork(request, fds), status_read_fd)
    try:
        pid = server.fork(request, fds)
    except ForkServerError:
        if server.alive:
            raise  # a refusal (e.g. fork failed): the caller falls back to spawning
        server = shared_server(template_env)
        pid = server.fork(request, fds)
    return ForkedProcess(server, pid, status_read_fd)
