"""The worker's private view of the filesystem (runs in the sandbox's processes, standard library only).

Built the way bubblewrap builds one, but without exec, so the fork server keeps its start cost
(decisions 0011, 0014). The root is a tmpfs holding only:

* read-only binds of what Python needs: ``/usr`` (with the ``/bin``, ``/lib``… symlinks of
  a merged-usr system, or binds where they are real directories), ``/etc/ld.so.cache`` and
  ``/etc/localtime``, the interpreter's prefixes and every ``site-packages`` on ``sys.path``;
* a read-only ``/dev`` with only null, zero, full, random and urandom;
* per worker: the scratch folder (the worker's cwd, ``HOME`` and ``TMPDIR``): a fresh tmpfs
  capped at ``scratch_mb``, owned by the worker's uid, gone when the worker ends; its own
  small ``/tmp`` and ``/dev/shm`` (tmpfs, ``tmp_mb`` each) and a fresh ``/proc`` whose
  ``/proc/sys`` is read-only.

Two ways to get there. As root, a child template of the fork server builds the shared part
once (:func:`build_skeleton`), pivots into it and detaches the host's tree
(:func:`enter_template_view`); each worker it forks copies that namespace and mounts only its
own pieces (:func:`finish_template_view`). Otherwise (a user namespace, a spawned worker) the
worker builds the whole view on its scratch folder's path, with the context bound read-only,
and pivots itself (:func:`build_view`); flags the kernel locks in a user namespace (nosuid,
atime...) are carried over on remount.

Everything else — other users' files, the recorder's files and sockets, ``/sys`` (cgroup
files included), the host's ``/dev/shm`` — does not exist in the view, whose root is
read-only.
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
import os
import stat
import sys
import tempfile

MS_RDONLY, MS_NOSUID, MS_NODEV, MS_NOEXEC = 1, 2, 4, 8
MS_REMOUNT, MS_NOATIME, MS_NODIRATIME, MS_BIND = 32, 1024, 2048, 4096
MS_REC, MS_PRIVATE, MS_RELATIME = 0x4000, 0x40000, 1 << 21
MNT_DETACH = 2
CLONE_NEWNS = 0x00020000
_ST_TO_MS = (  # statvfs f_flag bit -> mount flag (flags a user namespace may not clear)
    (os.ST_RDONLY, MS_RDONLY),
    (os.ST_NOSUID, MS_NOSUID),
    (os.ST_NODEV, MS_NODEV),
    (os.ST_NOEXEC, MS_NOEXEC),
    (os.ST_NOATIME, MS_NOATIME),
    (os.ST_NODIRATIME, MS_NODIRATIME),
    (os.ST_RELATIME, MS_RELATIME),
)
_DEVICES = ("null", "zero", "full", "random", "urandom")
_ETC_FILES = ("/etc/ld.so.cache", "/etc/localtime")
_SYSTEM_DIRS = ("/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32")
_SYSTEM_MOUNTED = ("/usr", "/proc", "/dev")  # never bound again inside the view


class ViewError(OSError):
    """A step of building the view failed (the message names it)."""


@functools.cache
def _libc() -> ctypes.CDLL:
    return ctypes.CDLL(None, use_errno=True)


def preload() -> None:
    if sys.platform.startswith("linux"):
        for name in ("mount", "umount2", "pivot_root", "unshare"):
            getattr(_libc(), name)


def _mount(source: str | None, target: str, fstype: str | None, flags: int, data: str | None = None) -> None:
    def enc(value: str | None) -> bytes | None:
        return value.encode() if value is not None else None

    if _libc().mount(enc(source), enc(target), enc(fstype), flags, enc(data)) != 0:
        errno = ctypes.get_errno()
        raise ViewError(errno, f"mount {source or fstype} on {target}: {os.strerror(errno)}")


def _locked_flags(path: str) -> int:
    try:
        flag = os.statvfs(path).f_flag
    except OSError:
        return 0
    return sum(ms for st, ms in _ST_TO_MS if flag & st)


def _mount_point(source: str, target: str) -> None:
    """An empty directory or file at ``target``, as ``source`` is, for a bind mount to cover."""
    if os.path.isdir(source):
        os.makedirs(target, exist_ok=True)
    else:
        os.makedirs(os.path.dirname(target), exist_ok=True)
        with contextlib.suppress(FileExistsError):
            os.close(os.open(target, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644))


def _bind(source: str, target: str, writable: bool = False, device: bool = False) -> None:
    """Bind ``source`` at ``target`` (created as an empty file or directory), read-only unless
    asked, nodev unless it is a ``device`` node."""
    _mount_point(source, target)
    _mount(source, target, None, MS_BIND | MS_REC)
    flags = _locked_flags(target) | MS_NOSUID | (0 if device else MS_NODEV)
    if not writable:
        flags |= MS_RDONLY
    _mount(None, target, None, MS_REMOUNT | MS_BIND | flags)


def _device(source: str, target: str, mknod: bool) -> None:
    """The same device node: made with mknod as real root (one call), else bound (a user
    namespace may create nodes, but its tmpfs is nodev: they would not open)."""
    if mknod:
        try:
            os.mknod(target, 0o666 | stat.S_IFCHR, os.stat(source).st_rdev)
            os.chmod(target, 0o666)  # mknod honours the umask
            return
        except OSError:
            pass
    _bind(source, target, writable=True, device=True)


def _tmpfs(target: str, size_mb: int, mode: int, uid: int, gid: int, inodes: int) -> None:
    os.makedirs(target, exist_ok=True)
    options = f"size={size_mb}m,nr_inodes={inodes},mode={mode:o},uid={uid},gid={gid}"
    _mount("tmpfs", target, "tmpfs", MS_NOSUID | MS_NODEV, options)


def python_paths() -> list[str]:
    """The interpreter's prefixes and the site-packages directories on ``sys.path``."""
    paths = {sys.base_prefix, sys.prefix, sys.exec_prefix, sys.base_exec_prefix}
    paths.update(entry for entry in sys.path if os.path.basename(entry) in ("site-packages", "dist-packages"))
    found = sorted(p for p in paths if p and os.path.isdir(p) and not p.startswith("/usr/"))
    return [p for p in found if not any(_under(p, q) for q in found if q != p)]  # nested: one bind


def _under(path: str, parent: str) -> bool:
    return path == parent or path.startswith(parent.rstrip("/") + "/")


def _static_binds() -> list[str]:
    """What every view binds read-only at its own path: the loader's files and Python's paths."""
    paths = [p for p in (*_ETC_FILES, *python_paths()) if os.path.exists(p)]
    return sorted(p for p in set(paths) if not any(_under(p, d) for d in _SYSTEM_MOUNTED))


def _per_worker(path: str) -> bool:
    """Paths under ``/tmp`` live in each worker's own ``/tmp``: they are mounted per worker."""
    return _under(path, "/tmp")


def build_skeleton(root: str, in_userns: bool = False) -> None:
    """Mount the part of the view every worker shares on ``root`` (an empty directory): a
    tmpfs holding the system directories, ``/dev`` with its devices, the static binds (those
    not under ``/tmp``) and empty mount points for ``/tmp``, ``/dev/shm`` and ``/proc``.

    The fork-server template builds it once in its own mount namespace (decision 0014);
    without one (not root, or a spawned worker) each worker builds it on its own root."""
    _mount("tmpfs", root, "tmpfs", MS_NOSUID | MS_NODEV, "size=1m,nr_inodes=4096,mode=755")

    def inside(path: str) -> str:
        return os.path.join(root, path.lstrip("/"))

    for path in _SYSTEM_DIRS:
        if os.path.islink(path):
            os.symlink(os.readlink(path), inside(path))
        elif os.path.isdir(path):
            _bind(path, inside(path))
    os.makedirs(inside("/dev"))
    _mount(
        "tmpfs", inside("/dev"), "tmpfs", MS_NOSUID | MS_NOEXEC, "size=64k,nr_inodes=64,mode=755"
    )  # not nodev: mknod
    for name in _DEVICES:
        _device(f"/dev/{name}", inside(f"/dev/{name}"), not in_userns)
    for path in ("/dev/shm", "/tmp", "/proc"):
        os.makedirs(inside(path), exist_ok=True)
    _mount(None, inside("/dev"), None, MS_REMOUNT | MS_BIND | MS_RDONLY | MS_NOSUID | MS_NOEXEC)
    for path in _static_binds():
        if not _per_worker(path):
            _bind(path, inside(path))


def add_mount_points(root: str, paths: list[str]) -> None:
    """Create, in a skeleton, the empty mount points a worker needs for ``paths`` (its scratch
    folder and its context) outside ``/tmp``; names only: what is mounted there is per worker."""
    for path in paths:
        target = os.path.join(root, path.lstrip("/"))
        if _per_worker(path) or os.path.lexists(target) or any(_under(path, d) for d in _SYSTEM_MOUNTED):
            continue
        _mount_point(path, target)


def _pivot(root: str) -> None:
    """Make ``root`` (a mount point) this mount namespace's root and detach the old one.

    pivot_root(".", ".") stacks the old root on the new one; unmounting "." then detaches
    it, with no directory for the old root needed."""
    os.chdir(root)
    if _libc().pivot_root(b".", b".") != 0:
        errno = ctypes.get_errno()
        raise ViewError(errno, f"pivot_root: {os.strerror(errno)}")
    if _libc().umount2(b".", MNT_DETACH) != 0:
        errno = ctypes.get_errno()
        raise ViewError(errno, f"detaching the old root: {os.strerror(errno)}")
    os.chdir("/")


def _remount_root(read_only: bool) -> None:
    flags = (_locked_flags("/") & ~MS_RDONLY) | (MS_RDONLY if read_only else 0)
    _mount(None, "/", None, MS_REMOUNT | MS_BIND | flags | MS_NOSUID | MS_NODEV)


def enter_template_view() -> None:
    """Make the skeleton this process's root, once: for a child template of the fork server
    (as root), whose forked workers then copy it and add only their own mounts
    (:func:`finish_template_view`): no bind, pivot or unmount per worker (decision 0014).

    Runs in a mount namespace of its own; the skeleton is built on a fresh directory under
    ``/tmp`` that is removed again once the old root is detached. Raises ViewError where
    this is not possible (not root, or Python lives under ``/tmp``, which every worker
    covers with its own): the caller forks from the main template instead."""
    if not sys.platform.startswith("linux") or os.geteuid() != 0:
        raise ViewError(1, "a template view needs root")
    if any(_per_worker(path) for path in _static_binds()):
        raise ViewError(22, "Python lies under /tmp: each worker binds it into its own /tmp")
    if _libc().unshare(CLONE_NEWNS) != 0:
        errno = ctypes.get_errno()
        raise ViewError(errno, f"unshare: {os.strerror(errno)}")
    _mount(None, "/", None, MS_REC | MS_PRIVATE)
    parent = os.open("/tmp", os.O_PATH | os.O_DIRECTORY)
    root = tempfile.mkdtemp(prefix="rlmine-view-", dir="/tmp")
    try:
        build_skeleton(root)
        _pivot(root)
    except OSError:
        _libc().umount2(root.encode(), MNT_DETACH)
        raise
    finally:  # through the old root's /tmp, still open here
        with contextlib.suppress(OSError):
            os.rmdir(os.path.basename(root), dir_fd=parent)
        os.close(parent)
    _remount_root(read_only=True)


def add_template_mount_point(path: str) -> None:
    """In a template view: the (empty) mount point of a scratch folder outside ``/tmp``.
    Only its name is shared with the template's other workers, never what is mounted there."""
    if _per_worker(path) or os.path.lexists(path) or any(_under(path, d) for d in _SYSTEM_MOUNTED):
        return
    _remount_root(read_only=False)
    try:
        os.makedirs(path, exist_ok=True)
    finally:
        _remount_root(read_only=True)


def finish_template_view(workdir: str, scratch_mb: int, tmp_mb: int, uid: int, gid: int) -> None:
    """In a worker forked from a template view, in its own mount and PID namespaces: mount
    what is its own (``/tmp``, the scratch folder, ``/dev/shm``, ``/proc``) and enter the
    scratch folder. Everything else is the template's read-only view, copied by unshare."""
    _tmpfs("/tmp", tmp_mb, 0o1777, uid, gid, 4096)  # before the scratch: it may lie under /tmp
    os.makedirs(workdir, exist_ok=True)
    _tmpfs(workdir, scratch_mb, 0o700, uid, gid, 65536)
    _tmpfs("/dev/shm", tmp_mb, 0o1777, uid, gid, 4096)
    _mount("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC)
    _bind("/proc/sys", "/proc/sys")
    os.chdir(workdir)


def build_view(
    workdir: str,
    context_path: str | None,
    scratch_mb: int,
    tmp_mb: int,
    uid: int,
    gid: int,
    in_userns: bool = False,
) -> None:
    """Replace this process's root with the private view (module doc); raises ViewError.

    The whole view, built by one worker for itself (a spawned worker, a user namespace, a
    template without root). Call in a private mount namespace, inside a new PID namespace
    (for ``/proc``). ``workdir`` (an empty directory the host made) becomes the mount point
    of the new root, then the scratch tmpfs at the same path inside it; ``uid``/``gid`` own
    the writable mounts. ``in_userns``: this process is in a user namespace (device nodes
    are bound, not made).
    """
    workdir = os.path.realpath(workdir)
    context = os.path.realpath(context_path) if context_path and os.path.exists(context_path) else None
    _mount(None, "/", None, MS_REC | MS_PRIVATE)
    build_skeleton(workdir, in_userns)
    add_mount_points(workdir, [workdir, *([context] if context else [])])
    root = workdir

    def inside(path: str) -> str:
        return os.path.join(root, path.lstrip("/"))

    _tmpfs(inside("/tmp"), tmp_mb, 0o1777, uid, gid, 4096)  # before the scratch: it may lie under /tmp
    os.makedirs(inside(workdir), exist_ok=True)
    _tmpfs(inside(workdir), scratch_mb, 0o700, uid, gid, 65536)
    _tmpfs(inside("/dev/shm"), tmp_mb, 0o1777, uid, gid, 4096)
    # Binds after /tmp: a context or a virtualenv may lie under it (a checkout in /tmp).
    binds = [p for p in _static_binds() if _per_worker(p)]
    if context is not None and not any(_under(context, d) for d in _SYSTEM_MOUNTED):
        binds.append(context)
    for path in sorted(set(binds)):
        if not _under(path, workdir):
            _bind(path, inside(path))
    _mount("proc", inside("/proc"), "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC)
    _bind(inside("/proc/sys"), inside("/proc/sys"))
    _pivot(root)
    _remount_root(read_only=True)
    os.chdir(workdir)
