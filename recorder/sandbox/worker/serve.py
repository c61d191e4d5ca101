"""The worker's start-up sequence and main loop (runs inside the sandbox process).

Order matters: confinement that needs privileges (cgroup, namespaces) comes first; the
context is loaded before the address-space limit so that limit can be sized to it;
privileges are dropped and the Python guards installed last, just before the ``ready``
frame. From then on only user code runs, one cell per ``exec`` frame.

Settings (see ``SubprocessSandbox._settings``; nothing in them is secret) arrive as one JSON
argument in a spawned worker, or in the fork request in a worker forked by the fork-server
template: either way this same sequence runs, in the worker process, before any user code.
"""

from __future__ import annotations

import faulthandler
import json
import os
import sys
import time
from typing import Any

from recorder.sandbox.contexts import resolve_format
from recorder.sandbox.protocol import write_frame
from recorder.sandbox.worker import fsview, guards, isolation
from recorder.sandbox.worker.context_loader import (
    ContextLoadError,
    SharedContext,
    context_bytes,
    load_context,
)
from recorder.sandbox.worker.runtime import CellRunner, CellTimer, LLMBridge, serve_forever


def _confine(settings: dict[str, Any], fds: tuple[int, int]) -> dict[str, str]:
    record: dict[str, str] = {}
    root = os.geteuid() == 0
    nproc = None if root else isolation.count_user_tasks(os.getuid()) + int(settings["max_processes"])
    extra: dict[str, int] = settings.get("fds", {})
    in_cgroup = isolation.join_cgroup(settings.get("cgroup"), extra.pop("cgroup", None))
    isolate_network = not settings["network"]
    view = bool(settings.get("view", True))
    relay_closes = (*fds, *extra.values())  # the parent left outside the PID namespace needs none
    namespaces = isolation.enter_namespaces(settings["namespaces"], isolate_network, relay_closes, not view)
    if settings.get("in_view") and "pidns" not in namespaces:
        # Forked from a template view without namespaces of its own: mounting here would
        # change the template's view. Never happens as root; refuse rather than share.
        raise OSError("the worker could not enter its namespaces inside the template's view")
    record["view"] = _enter_view(settings, namespaces) if view else "host"
    if record["view"].startswith("private"):
        namespaces.append("proc")  # the view has its own /proc
    elif view and "pidns" in namespaces and isolation.mount_fresh_proc():
        namespaces.append("proc")
    isolation.apply_rlimits(int(settings["file_size_limit_mb"]), nproc)
    process_limits = [
        name for name, on in (("cgroup-pids", in_cgroup), ("rlimit-nproc", nproc is not None)) if on
    ]
    record["processes"] = "+".join([*process_limits, "fork-guard"])
    record["pid"] = "+".join(name for name in namespaces if name in ("pidns", "proc")) or "none"
    record["userns"] = "yes" if "userns" in namespaces else "no"
    if isolate_network:
        record["network"] = "netns" if "netns" in namespaces else "socket-guard"
    else:
        record["network"] = "allowed"
    record["files"] = f"rlimit-fsize={settings['file_size_limit_mb']}MB"
    record["host"] = "+".join(name for name in namespaces if name in ("utsns", "ipcns")) or "shared"
    return record


def _worker_ids(namespaces: list[str]) -> tuple[int, int]:
    """Who the worker will run as: nobody when started as root, else its own (mapped) ids."""
    if os.geteuid() == 0 and "userns" not in namespaces:
        return isolation.NOBODY, isolation.NOBODY
    return os.getuid(), os.getgid()


def _enter_view(settings: dict[str, Any], namespaces: list[str]) -> str:
    """Build the private filesystem view (:mod:`recorder.sandbox.worker.fsview`) when asked and possible."""
    if "pidns" not in namespaces:
        return "host (no mount and PID namespaces here)"
    uid, gid = _worker_ids(namespaces)
    scratch_mb, tmp_mb = int(settings["scratch_limit_mb"]), int(settings["tmp_limit_mb"])
    if settings.get("in_view"):  # forked from a template whose root is the view already
        fsview.finish_template_view(str(settings["workdir"]), scratch_mb, tmp_mb, uid, gid)
        return f"private (scratch={scratch_mb}MB, tmp={tmp_mb}MB)"
    try:
        fsview.build_view(
            str(settings["workdir"]),
            settings.get("context_path"),
            int(settings["scratch_limit_mb"]),
            int(settings["tmp_limit_mb"]),
            uid,
            gid,
            "userns" in namespaces,
        )
    except OSError as exc:
        return f"host (view failed: {exc})"
    return f"private (scratch={settings['scratch_limit_mb']}MB, tmp={settings['tmp_limit_mb']}MB)"


def _load(settings: dict[str, Any]) -> tuple[Any, int]:
    """The context, read through the fd the host opened when there is one (a worker in a
    template view cannot see the file's path), else by path."""
    path = settings.get("context_path")
    if not path:
        return None, 0
    fd = settings.get("fds", {}).pop("context", None)
    if fd is None:
        return load_context(path, settings["context_format"]), context_bytes(path)
    try:
        via = f"/proc/self/fd/{fd}"
        kind = resolve_format(path, settings["context_format"])  # by its name, as by path
        return load_context(via, kind, name=path), context_bytes(via)
    finally:
        os.close(fd)


def _peak_rss_mb() -> float | None:
    try:
        with open("/proc/self/status") as handle:
            for line in handle:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except (OSError, ValueError):
        pass
    return None


def serve(raw_settings: str | dict[str, Any], shared: SharedContext | None = None) -> int:
    """Confine, load the context, report ``ready``, then run cells; returns the exit status.

    ``raw_settings`` is the JSON argument of a spawned worker, or the decoded settings in a
    worker forked by the fork-server template (:mod:`recorder.sandbox.worker.template`). ``shared``
    is the context already loaded by a context template, in place of loading it here.
    """
    started = time.monotonic()
    faulthandler.enable()  # a crash in C code leaves the cell's line in the worker's stderr
    settings = json.loads(raw_settings) if isinstance(raw_settings, str) else raw_settings
    cmd_fd, res_fd = int(settings["cmd_fd"]), int(settings["res_fd"])
    record = _confine(settings, (cmd_fd, res_fd))
    try:
        context, size = shared.take() if shared is not None else _load(settings)
    except ContextLoadError as exc:
        write_frame(res_fd, {"op": "ready", "error": str(exc)})
        return 2
    for fd in settings.get("fds", {}).values():  # a context fd a shared context made unneeded
        os.close(fd)
    record["memory"] = f"rlimit-as={isolation.limit_memory(int(settings['memory_limit_mb']), size)}MB"
    switch_to = isolation.NOBODY if record["view"].startswith("private") else None
    record["privileges"] = "+".join(isolation.drop_privileges(switch_to)) or "unchanged"
    guards.block_process_creation()
    if not settings["network"]:
        guards.block_network()
    timer = CellTimer()
    bridge = LLMBridge(cmd_fd, res_fd, bool(settings["llm"]), timer)
    runner = CellRunner(
        context, bridge, timer, float(settings["cell_timeout_s"]), int(settings["max_output_chars"])
    )
    write_frame(
        res_fd,
        {
            "op": "ready",
            "isolation": record,
            "context_type": type(context).__name__,
            "context_len": len(context) if hasattr(context, "__len__") else None,
            "ready_s": time.monotonic() - started,
            "peak_rss_mb": _peak_rss_mb(),
            "context_shared": shared is not None,
        },
    )
    del context
    serve_forever(runner, bridge, cmd_fd, res_fd)
    sys.stdout.flush()
    return 0
