"""One worker process as the host sees it: how it is started, watched and killed.

Two ways to start one, with the same result:

* *forkserver* (the default on Linux): forked by the per-host template process of
  :mod:`recorder.sandbox.host.forkserver`, which has the worker's modules imported already
  (~1 ms instead of ~50 ms of CPU). Killed and reaped through the template.
* *spawn*: ``python -s -P worker/main.py SETTINGS`` (no user site-packages, no script directory
  on ``sys.path``), the host's own child. The fallback when the template cannot start, off
  Linux, or when ``extra_env`` sets variables that only a new interpreter reads
  (``PYTHONPATH``, ``LD_PRELOAD``, ``MALLOC_*``, locale, ...).

Either way the worker runs in a new session, with the scratch directory as cwd, stdin from
/dev/null, and stdout/stderr into an unlinked temporary file that only the host reads (the
cells' output is captured inside the worker; this file collects faulthandler dumps and
whatever C code writes to fds 1 and 2), with only its two protocol pipes open. Its
environment is built from scratch: nothing of the host's environment is inherited (the
template's is built the same way), so API keys never reach it.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import tempfile
from typing import IO, Any, Protocol

from recorder.sandbox.base import SandboxError
from recorder.sandbox.host.context_share import ContextShare
from recorder.sandbox.host.forkserver import WORKER_PATH, ForkServerError, fork_worker, start_worker_script
from recorder.sandbox.protocol import FrameReader, result_frame_cap

# Keep native libraries single-threaded (32 sandboxes on a few cores) and malloc arenas few
# (each thread arena reserves 64 MB of address space, which counts against RLIMIT_AS).
_BASE_ENV = {
    "LANG": "C.UTF-8",
    "LC_ALL": "C.UTF-8",
    "PYTHONHASHSEED": "0",
    "PYTHONDONTWRITEBYTECODE": "1",
    "OMP_NUM_THREADS": "1",
    "OPENBLAS_NUM_THREADS": "1",
    "MKL_NUM_THREADS": "1",
    "MALLOC_ARENA_MAX": "2",
}
# Read when the interpreter (or libc) starts: a forked worker would not see them.
_STARTUP_ENV_PREFIXES = ("PYTHON", "LD_", "MALLOC_", "GLIBC_", "LC_", "LANG")


def worker_environment(workdir: str, extra_env: dict[str, str]) -> dict[str, str]:
    """The worker's whole environment: fixed values, the scratch dir, then ``extra_env``."""
    env = {"PATH": os.environ.get("PATH", os.defpath), **_BASE_ENV, "HOME": workdir, "TMPDIR": workdir}
    env.update(extra_env)
    return env


class ProcessHandle(Protocol):
    """How the host waits for and kills one worker, however it was started."""

    pid: int

    def exit_code(self, wait_s: float) -> int | None: ...

    def kill(self) -> None: ...


class SpawnedProcess:
    """A worker started with ``subprocess``: the host's own child, killed by process group."""

    def __init__(self, proc: subprocess.Popen[bytes]) -> None:
        self.proc = proc
        self.pid = proc.pid

    def exit_code(self, wait_s: float) -> int | None:
        try:
            return self.proc.wait(wait_s)
        except subprocess.TimeoutExpired:
            return None

    def kill(self) -> None:
        with contextlib.suppress(OSError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        with contextlib.suppress(OSError):
            self.proc.kill()
        self.proc.wait()


def fork_server_blockers(extra_env: dict[str, str]) -> list[str]:
    """``extra_env`` names that only a new interpreter reads: such workers must be spawned."""
    return sorted(key for key in extra_env if key.startswith(_STARTUP_ENV_PREFIXES))


class WorkerProcess:
    """One running worker process and the host's ends of its pipes.

    ``start_method`` is how it was started: "forkserver" or "spawn".
    """

    def __init__(
        self,
        process: ProcessHandle,
        cmd_fd: int,
        res_fd: int,
        log: IO[bytes],
        start_method: str,
        max_frame_bytes: int,
    ) -> None:
        self.process, self.cmd_fd, self.res_fd, self.log = process, cmd_fd, res_fd, log
        self.start_method = start_method
        self.reader = FrameReader(res_fd, max_frame_bytes)

    @classmethod
    def spawn(cls, settings: dict[str, Any], workdir: str, env: dict[str, str]) -> WorkerProcess:
        """Start ``worker/main.py`` in its own session; ``settings`` gain the pipe fds."""
        cmd_r, cmd_w = os.pipe()
        res_r, res_w = os.pipe()
        try:  # the log is owned by the WorkerProcess, closed by kill()
            proc, log = start_worker_script(
                WORKER_PATH,
                [json.dumps({**settings, "cmd_fd": cmd_r, "res_fd": res_w})],
                cwd=workdir,
                env=env,
                pass_fds=(cmd_r, res_w),
            )
        except OSError as exc:
            for fd in (cmd_w, res_r):
                os.close(fd)
            raise SandboxError(
                f"cannot start the sandbox worker: {exc}", f"check that {sys.executable} runs"
            ) from exc
        finally:
            os.close(cmd_r)
            os.close(res_w)
        return cls(SpawnedProcess(proc), cmd_w, res_r, log, "spawn", _frame_cap(settings))

    @classmethod
    def fork(
        cls, settings: dict[str, Any], workdir: str, env: dict[str, str], share: ContextShare | None = None
    ) -> WorkerProcess:
        """Fork the worker from a fork-server template: the one that holds its context (with
        ``share``), else the one whose root is the view (:func:`wants_template_view`), else
        the main one. It gets the pids cgroup and the context as fds, which it uses and
        closes before any user code: a worker in a template view cannot see their paths.
        Raises ForkServerError."""
        extra = _extra_fds(settings)
        cmd_r, cmd_w = os.pipe()
        res_r, res_w = os.pipe()
        status_r, status_w = os.pipe()
        log = tempfile.TemporaryFile()  # noqa: SIM115 - owned by the WorkerProcess, closed by kill()
        request = {"settings": settings, "env": env, "workdir": workdir, "extra_fds": list(extra)}
        template_env = worker_environment("/", {})
        try:
            forked = fork_worker(
                request,
                [cmd_r, res_w, log.fileno(), status_w, *extra.values()],
                status_r,
                template_env,
                share.template_for if share is not None else None,
                wants_template_view(bool(settings.get("view", True)), str(settings.get("namespaces"))),
            )
        except BaseException:
            for fd in (cmd_w, res_r, status_r):
                os.close(fd)
            log.close()
            raise
        finally:
            for fd in (cmd_r, res_w, status_w, *extra.values()):
                os.close(fd)
        return cls(forked, cmd_w, res_r, log, "forkserver", _frame_cap(settings))

    @property
    def pid(self) -> int:
        return self.process.pid

    def exit_code(self, wait_s: float) -> int | None:
        return self.process.exit_code(wait_s)

    def crash_lines(self) -> str:
        """The fatal-error line and the cell frames of a faulthandler dump, if any."""
        with contextlib.suppress(OSError, ValueError):
            self.log.seek(0, os.SEEK_END)
            self.log.seek(max(0, self.log.tell() - 16_000))
            text = self.log.read().decode("utf-8", "replace")
            keep = [
                line
                for line in text.splitlines()
                if line.startswith("Fatal Python error") or "<cell " in line
            ]
            return "\n".join(keep[:12])
        return ""

    def kill(self) -> None:
        self.process.kill()
        for fd in (self.cmd_fd, self.res_fd):
            with contextlib.suppress(OSError):
                os.close(fd)
        self.log.close()


def wants_template_view(view: bool, namespaces: str) -> bool:
    """Fork from a template whose root is the view: a root host's default (decision 0014).
    A user namespace (asked for, or the only way without root) builds the view per worker."""
    return view and namespaces == "auto" and os.geteuid() == 0


def _extra_fds(settings: dict[str, Any]) -> dict[str, int]:
    """The pids cgroup's ``cgroup.procs`` and the context, opened for the worker (in the
    order zygote.EXTRA_FDS names them); a path that cannot be opened is left to the worker."""
    wanted = {"cgroup": (settings.get("cgroup"), "cgroup.procs", os.O_WRONLY)}
    wanted["context"] = (settings.get("context_path"), "", os.O_RDONLY)
    fds: dict[str, int] = {}
    for name, (path, leaf, mode) in wanted.items():
        if path:
            with contextlib.suppress(OSError):
                fds[name] = os.open(os.path.join(str(path), leaf) if leaf else str(path), mode | os.O_CLOEXEC)
    return fds


def _frame_cap(settings: dict[str, Any]) -> int:
    return result_frame_cap(int(settings.get("max_output_chars", 100_000)))


def start_worker(
    settings: dict[str, Any],
    workdir: str,
    env: dict[str, str],
    method: str,
    extra_env: dict[str, str],
    share: ContextShare | None = None,
) -> tuple[WorkerProcess, str | None]:
    """Fork the worker (``method`` "forkserver") or spawn it; returns it and why a fork
    was not possible (None when the requested method was used)."""
    if method != "forkserver":
        return WorkerProcess.spawn(settings, workdir, env), None
    blockers = fork_server_blockers(extra_env)
    if not sys.platform.startswith("linux"):
        why = f"the fork server needs Linux, not {sys.platform}"
    elif blockers:
        why = f"extra_env sets {', '.join(blockers)}, which only a new interpreter reads"
    else:
        try:
            return WorkerProcess.fork(settings, workdir, env, share), None
        except ForkServerError as exc:
            why = str(exc)
    return WorkerProcess.spawn(settings, workdir, env), why


def describe_exit(code: int | None, relayed: bool) -> str:
    if code is None:
        return "it closed its result pipe"
    number = -code if code < 0 else code - 128 if relayed and 128 < code < 160 else 0
    if not number:
        return f"exit status {code}"
    try:
        name = signal.Signals(number).name
    except ValueError:
        name = f"signal {number}"
    return f"killed by {name}" + (", possibly for lack of memory" if number == signal.SIGKILL else "")
