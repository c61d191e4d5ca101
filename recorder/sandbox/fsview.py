"""The worker's private view of the filesystem (runs inside the worker, standard library only).

Built in the worker's own mount namespace (see :mod:`recorder.sandbox.isolation`), the way
bubblewrap builds one, but in the forked worker itself so the fork server keeps its start
cost (decision 0011). The new root is a tmpfs holding only:

* read-only binds of what Python needs: ``/usr`` (with the ``/bin``, ``/lib``… symlinks of
  a merged-usr system, or binds where they are real directories), ``/etc/ld.so.cache`` and
  ``/etc/localtime``, the interpreter's prefixes and every ``site-packages`` on ``sys.path``;
* the context file or directory, read-only;
* the scratch folder (the worker's cwd, ``HOME`` and ``TMPDIR``): a fresh tmpfs capped at
  ``scratch_mb``, owned by the worker's uid, gone when the worker ends;
* its own small ``/tmp`` and ``/dev/shm`` (tmpfs, ``tmp_mb`` each), a ``/dev`` with only
  null, zero, full, random and urandom, and a fresh ``/proc`` whose ``/proc/sys`` is read-only.

Everything else — other users' files, the recorder's files and sockets, ``/sys`` (cgroup
files included), the host's ``/dev/shm`` — does not exist in the view. The root itself is
remounted read-only after ``pivot_root``. Works as root and inside a user namespace (mount
flags the kernel locks there, such as nosuid or atime, are carried over on remount).
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
import os
import stat
import sys

MS_RDONLY, MS_NOSUID, MS_NODEV, MS_NOEXEC = 1, 2, 4, 8
MS_REMOUNT, MS_NOATIME, MS_NODIRATIME, MS_BIND = 32, 1024, 2048, 4096
MS_REC, MS_PRIVATE, MS_RELATIME = 0x4000, 0x40000, 1 << 21
MNT_DETACH = 2
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
OLD_ROOT = ".rlmine-old-root"


class ViewError(OSError):
    """A step of building the view failed (the message names it)."""


@functools.cache
def _libc() -> ctypes.CDLL:
    return ctypes.CDLL(None, use_errno=True)


def preload() -> None:
    if sys.platform.startswith("linux"):
        for name in ("mount", "umount2", "pivot_root"):
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


def _bind(source: str, target: str, writable: bool = False, device: bool = False) -> None:
    """Bind ``source`` at ``target`` (created as an empty file or directory), read-only unless
    asked, nodev unless it is a ``device`` node."""
    if os.path.isdir(source):
        os.makedirs(target, exist_ok=True)
    else:
        os.makedirs(os.path.dirname(target), exist_ok=True)
        with contextlib.suppress(FileExistsError):
            os.close(os.open(target, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644))
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

    Call in a private mount namespace, inside a new PID namespace (for ``/proc``). ``workdir``
    (an empty directory the host made) becomes the mount point of the new root, then the
    scratch tmpfs at the same path inside it; ``uid``/``gid`` own the writable mounts.
    ``in_userns``: this process is in a user namespace (device nodes are bound, not made).
    """
    workdir = os.path.realpath(workdir)
    _mount(None, "/", None, MS_REC | MS_PRIVATE)
    _mount("tmpfs", workdir, "tmpfs", MS_NOSUID | MS_NODEV, "size=1m,nr_inodes=4096,mode=755")
    root = workdir

    def inside(path: str) -> str:
        return os.path.join(root, path.lstrip("/"))

    for path in _SYSTEM_DIRS:
        if os.path.islink(path):
            os.symlink(os.readlink(path), inside(path))
        elif os.path.isdir(path):
            _bind(path, inside(path))
    _tmpfs(inside("/tmp"), tmp_mb, 0o1777, uid, gid, 4096)  # before the scratch: it may lie under /tmp
    _tmpfs(inside(workdir), scratch_mb, 0o700, uid, gid, 65536)
    os.makedirs(inside("/dev"), exist_ok=True)
    _mount(
        "tmpfs", inside("/dev"), "tmpfs", MS_NOSUID | MS_NOEXEC, "size=64k,nr_inodes=64,mode=755"
    )  # not nodev: mknod
    for name in _DEVICES:
        _device(f"/dev/{name}", inside(f"/dev/{name}"), not in_userns)
    _tmpfs(inside("/dev/shm"), tmp_mb, 0o1777, uid, gid, 4096)
    # Binds last: a context or a virtualenv may lie under /tmp, mounted just above.
    binds = [p for p in (*_ETC_FILES, *python_paths()) if os.path.exists(p)]
    if context_path and os.path.exists(context_path):
        binds.append(os.path.realpath(context_path))
    for path in sorted(set(binds)):
        if not _under(path, workdir) and not any(_under(path, d) for d in ("/usr", "/proc", "/dev")):
            _bind(path, inside(path))
    os.makedirs(inside("/proc"), exist_ok=True)
    _mount("proc", inside("/proc"), "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC)
    _bind(inside("/proc/sys"), inside("/proc/sys"))
    os.mkdir(inside(OLD_ROOT))
    if _libc().pivot_root(root.encode(), inside(OLD_ROOT).encode()) != 0:
        errno = ctypes.get_errno()
        raise ViewError(errno, f"pivot_root: {os.strerror(errno)}")
    os.chdir("/")
    if _libc().umount2(f"/{OLD_ROOT}".encode(), MNT_DETACH) != 0:
        errno = ctypes.get_errno()
        raise ViewError(errno, f"detaching the old root: {os.strerror(errno)}")
    os.rmdir(f"/{OLD_ROOT}")
    _mount(None, "/", None, MS_REMOUNT | MS_BIND | MS_RDONLY | MS_NOSUID | MS_NODEV)
    os.chdir(workdir)
