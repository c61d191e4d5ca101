"""OS-level confinement the worker applies to itself before any user code runs.

The worker does this itself (rather than in a ``preexec_fn``) because ``preexec_fn`` is
unsafe in a host with threads, and the host runs up to 32 sandboxes from threads. Nothing
user-controlled runs before these steps, so the effect is the same. In order:

1. join the host-made pids cgroup (``pids.max`` = max_processes; root only);
2. Linux namespaces, when permitted: a new network namespace (no interfaces: even loopback
   is down), a new PID namespace (the host and other sandboxes are invisible and cannot be
   signalled; when its first process dies the kernel kills every process in it), new UTS
   and IPC namespaces (its own host name, ``rlmine-sandbox``, and System V IPC) and a
   private mount namespace. As root the worker unshares directly; otherwise through a
   user namespace mapping its own uid. A PID namespace only applies to children, so the
   worker forks once: the parent waits and relays the exit status, the child carries on
   as the worker, and then builds its private filesystem view
   (:mod:`recorder.sandbox.worker.fsview`, with a fresh ``/proc``);
3. rlimits: file size, no core files, and — when not root — the number of processes of
   the uid (root is exempt from RLIMIT_NPROC in the kernel, hence the cgroup and the
   in-process guards of :mod:`recorder.sandbox.worker.guards`);
4. after the context is loaded, the address-space limit (sized to fit the context);
5. ``PR_SET_NO_NEW_PRIVS``, dropping every capability including the bounding set and, when
   started as root inside the private view, becoming uid/gid 65534 (nobody) with no
   supplementary groups — so user code cannot raise the rlimits back, leave the
   namespaces, write cgroup files or read root's files.

Every step is best effort and reported in the worker's ``isolation`` record. Without the
view (``view=False``, or where mount namespaces are not allowed) the worker keeps the
recorder's uid and sees its files.
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
import os
import resource
import signal
import sys

CLONE_NEWNS = 0x00020000
CLONE_NEWUTS = 0x04000000
CLONE_NEWIPC = 0x08000000
CLONE_NEWUSER = 0x10000000
CLONE_NEWPID = 0x20000000
CLONE_NEWNET = 0x40000000
MS_NOSUID, MS_NODEV, MS_NOEXEC = 2, 4, 8
MS_REC, MS_PRIVATE = 0x4000, 0x40000
PR_SET_PDEATHSIG = 1
PR_CAPBSET_DROP = 24
PR_SET_NO_NEW_PRIVS = 38
PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL = 47, 4
LINUX_CAPABILITY_VERSION_3 = 0x20080522
MB = 1 << 20
HOSTNAME = b"rlmine-sandbox"
NOBODY = 65534  # the unprivileged uid and gid workers run as when the recorder is root


@functools.cache
def _libc() -> ctypes.CDLL:
    return ctypes.CDLL(None, use_errno=True)


def preload() -> None:
    """Resolve the libc functions used here (the fork-server template does it once for all)."""
    if sys.platform.startswith("linux"):
        libc = _libc()
        for name in ("prctl", "unshare", "mount", "capset", "capget", "sethostname"):
            getattr(libc, name)
        last_capability()


def count_user_tasks(uid: int) -> int:
    """Threads and processes owned by ``uid`` (what RLIMIT_NPROC counts)."""
    total = 0
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/status") as handle:
                status = handle.read()
        except OSError:
            continue
        fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
        if fields.get("Uid", "").split()[:1] == [str(uid)]:
            total += int(fields.get("Threads", "1").strip() or 1)
    return total


def join_cgroup(path: str | None, procs_fd: int | None = None) -> bool:
    """Move this process into the pids cgroup at ``path``, through ``procs_fd`` (its
    ``cgroup.procs``, opened by the host) when given: a forked worker may not see /sys."""
    if procs_fd is not None:
        try:
            os.write(procs_fd, str(os.getpid()).encode())
        except OSError:
            return False
        finally:
            os.close(procs_fd)
        return True
    if not path:
        return False
    try:
        with open(os.path.join(path, "cgroup.procs"), "w") as handle:
            handle.write(str(os.getpid()))
    except OSError:
        return False
    return True


def die_with_parent(parent_pid: int) -> None:
    """SIGKILL this process when its parent (the fork-server template) dies; exit now if it has."""
    if sys.platform.startswith("linux"):
        _libc().prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    if os.getppid() != parent_pid:  # the parent died before the prctl took effect
        os._exit(1)


def _write(path: str, text: str) -> None:
    with open(path, "w") as handle:
        handle.write(text)


def _unshare_user_namespace(libc: ctypes.CDLL, flags: int) -> bool:
    uid, gid = os.geteuid(), os.getegid()
    if libc.unshare(flags | CLONE_NEWUSER) != 0:
        return False
    # Map our own ids so files we create keep their owner (an unmapped uid cannot create files).
    _write("/proc/self/setgroups", "deny")
    _write("/proc/self/uid_map", f"{uid} {uid} 1")
    _write("/proc/self/gid_map", f"{gid} {gid} 1")
    return True


def _relay_child(pid: int, close_fds: tuple[int, ...]) -> None:
    """The parent left outside the PID namespace: wait for the worker, exit as it did."""
    for fd in close_fds:  # the host must see EOF as soon as the real worker dies
        with contextlib.suppress(OSError):
            os.close(fd)
    _, status = os.waitpid(pid, 0)
    code = os.waitstatus_to_exitcode(status)
    os._exit(128 - code if code < 0 else code)


def mount_fresh_proc() -> bool:
    """Make the mount tree private and mount this PID namespace's own ``/proc`` over the host's."""
    libc = _libc()
    private = libc.mount(None, b"/", None, MS_REC | MS_PRIVATE, None) == 0
    return private and bool(
        libc.mount(b"proc", b"/proc", b"proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, None) == 0
    )


def enter_namespaces(
    mode: str, isolate_network: bool, close_in_parent: tuple[int, ...], mount_proc: bool = True
) -> list[str]:
    """Enter new namespaces (see module doc); returns the names of those applied.

    ``mount_proc`` False leaves ``/proc`` to the caller (the private view mounts its own)."""
    if mode == "off" or not sys.platform.startswith("linux"):
        return []
    libc = _libc()
    flags = (
        CLONE_NEWPID | CLONE_NEWNS | CLONE_NEWUTS | CLONE_NEWIPC | (CLONE_NEWNET if isolate_network else 0)
    )
    applied: list[str] = []
    if mode == "auto" and libc.unshare(flags) == 0:
        pass
    elif _unshare_user_namespace(libc, flags):
        applied.append("userns")
    else:
        return []
    if isolate_network:
        applied.append("netns")
    if libc.sethostname(HOSTNAME, len(HOSTNAME)) == 0:
        applied.append("utsns")
    applied.append("ipcns")
    pid = os.fork()
    if pid:
        _relay_child(pid, close_in_parent)
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    applied.append("pidns")
    if mount_proc and mount_fresh_proc():
        applied.append("proc")
    return applied


def _set_limit(which: int, value: int) -> None:
    _soft, hard = resource.getrlimit(which)
    if hard != resource.RLIM_INFINITY:
        value = min(value, hard)
    resource.setrlimit(which, (value, value))


def apply_rlimits(file_size_limit_mb: int, nproc_limit: int | None) -> None:
    """File size, core dumps and (when given) processes; SIGXFSZ becomes an EFBIG error."""
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    _set_limit(resource.RLIMIT_FSIZE, file_size_limit_mb * MB)
    _set_limit(resource.RLIMIT_CORE, 0)
    if nproc_limit is not None:
        _set_limit(resource.RLIMIT_NPROC, nproc_limit)


def limit_memory(memory_limit_mb: int, context_size: int) -> int:
    """Cap the address space, leaving room to work on the loaded context; returns MB."""
    try:
        with open("/proc/self/statm") as handle:
            mapped = int(handle.read().split()[0]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError):
        mapped = 0
    limit = max(memory_limit_mb * MB, mapped + max(512 * MB, int(1.5 * context_size)))
    _set_limit(resource.RLIMIT_AS, limit)
    return limit // MB


_CapHeader = ctypes.c_uint32 * 2  # made once: a ctypes array type costs ~0.1 ms to create
_CapData = ctypes.c_uint32 * 6  # two __user_cap_data_struct: effective, permitted, inheritable


def _has_capabilities() -> bool:
    """Whether any capability is effective (capget: no /proc read at every worker start)."""
    header, data = _CapHeader(LINUX_CAPABILITY_VERSION_3, 0), _CapData()
    if _libc().capget(header, data) != 0:
        return os.geteuid() == 0
    return bool(data[0] or data[3])


@functools.cache
def last_capability() -> int:
    """The highest capability number this kernel knows (read once: the templates preload it)."""
    try:
        with open("/proc/sys/kernel/cap_last_cap") as handle:
            return int(handle.read())
    except (OSError, ValueError):
        return 40


def drop_privileges(switch_to: int | None = None) -> list[str]:
    """No new privileges through exec; drop every capability; then, as root, become uid and
    gid ``switch_to`` with no supplementary groups. Returns what applied."""
    if not sys.platform.startswith("linux"):
        return []
    libc = _libc()
    applied = []
    if libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) == 0:
        applied.append("no-new-privs")
    if _has_capabilities():
        for cap in range(last_capability() + 1):  # needs CAP_SETPCAP: before the uid switch clears it
            libc.prctl(PR_CAPBSET_DROP, cap, 0, 0, 0)
        libc.prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0)
        if switch_to is not None and os.geteuid() == 0:
            try:
                os.setgroups([])
                os.setresgid(switch_to, switch_to, switch_to)
                os.setresuid(switch_to, switch_to, switch_to)  # clears every capability
                applied.append(f"uid={switch_to}")
            except OSError:
                pass
            # A change of uid clears the parent-death signal: set it again, so the worker
            # still dies with the process that relays its exit status.
            libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        if libc.capset(_CapHeader(LINUX_CAPABILITY_VERSION_3, 0), _CapData()) == 0:
            applied.append("caps-dropped")
    return applied
