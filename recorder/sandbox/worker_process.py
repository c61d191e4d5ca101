"""One worker process as the host sees it: how it is started, watched and killed.

The worker runs ``python -s -P worker.py SETTINGS`` (no user site-packages, no script
directory on ``sys.path``) in a new session, with the scratch directory as cwd, stdin from
/dev/null, and stdout/stderr into an unlinked temporary file that only the host reads (the
cells' output is captured inside the worker; this file collects faulthandler dumps and
whatever C code writes to fds 1 and 2). Its environment is built from scratch: nothing of
the host's environment is inherited, so API keys never reach it.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import tempfile
from typing import IO, Any

from recorder.sandbox.base import SandboxError
from recorder.sandbox.protocol import FrameReader

WORKER_PATH = os.path.join(os.path.dirname(os.path.abspath(__file__)), "worker.py")
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


def worker_environment(workdir: str, extra_env: dict[str, str]) -> dict[str, str]:
    """The worker's whole environment: fixed values, the scratch dir, then ``extra_env``."""
    env = {"PATH": os.environ.get("PATH", os.defpath), **_BASE_ENV, "HOME": workdir, "TMPDIR": workdir}
    env.update(extra_env)
    return env


class WorkerProcess:
    """One running worker process and the host's ends of its pipes."""

    def __init__(self, proc: subprocess.Popen[bytes], cmd_fd: int, res_fd: int, log: IO[bytes]) -> None:
        self.proc, self.cmd_fd, self.res_fd, self.log = proc, cmd_fd, res_fd, log
        self.reader = FrameReader(res_fd)

    @classmethod
    def spawn(cls, settings: dict[str, Any], workdir: str, env: dict[str, str]) -> WorkerProcess:
        """Start ``worker.py`` in its own session; ``settings`` gain the pipe fds."""
        cmd_r, cmd_w = os.pipe()
        res_r, res_w = os.pipe()
        log = tempfile.TemporaryFile()  # noqa: SIM115 - owned by the WorkerProcess, closed by kill()
        argv = [
            sys.executable,
            "-s",
            "-P",
            WORKER_PATH,
            json.dumps({**settings, "cmd_fd": cmd_r, "res_fd": res_w}),
        ]
        try:
            proc = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
                cwd=workdir,
                env=env,
                pass_fds=(cmd_r, res_w),
                start_new_session=True,
            )
        except OSError as exc:
            for fd in (cmd_w, res_r):
                os.close(fd)
            log.close()
            raise SandboxError(
                f"cannot start the sandbox worker: {exc}", f"check that {sys.executable} runs"
            ) from exc
        finally:
            os.close(cmd_r)
            os.close(res_w)
        return cls(proc, cmd_w, res_r, log)

    def exit_code(self, wait_s: float) -> int | None:
        try:
            return self.proc.wait(wait_s)
        except subprocess.TimeoutExpired:
            return None

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
        with contextlib.suppress(OSError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        with contextlib.suppress(OSError):
            self.proc.kill()
        self.proc.wait()
        for fd in (self.cmd_fd, self.res_fd):
            with contextlib.suppress(OSError):
                os.close(fd)
        self.log.close()


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
