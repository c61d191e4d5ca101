"""Hostile cells: code that attacks the sandbox on purpose, and proof that each attack is contained.

Every attack runs in a fresh sandbox in each mode: ``root`` (the recorder is root, as on these
machines: the worker runs as nobody in its own namespaces) and ``userns`` (the path a normal
user gets, through a user namespace; exercised here as root with ``namespaces="userns"``,
since the interpreter under /root cannot be run by another uid on this machine). An attack
returns whether it was contained and the evidence; the module prints the whole matrix at the
end, and the README's isolation table must name every attack (a test checks).
"""

from __future__ import annotations

import os
import re
import socket
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from recorder.sandbox import SandboxConfig, SubprocessSandbox

ROOT = Path(__file__).resolve().parent.parent
MODES: dict[str, dict[str, Any]] = {"root": {}, "userns": {"namespaces": "userns"}}
Outcome = tuple[bool, str]

pytestmark = pytest.mark.skipif(
    not os.path.isdir("/proc/self/ns") or os.geteuid() != 0,
    reason="the hostile-cell suite needs Linux namespaces and runs as root (as the recorder does here)",
)


def _box(mode: str, **settings: Any) -> SubprocessSandbox:
    return SubprocessSandbox(SandboxConfig(**{"cell_timeout_s": 5, **MODES[mode], **settings}))


def _out(box: SubprocessSandbox, code: str) -> str:
    result = box.execute(code)
    return result.stdout + (result.error or "")


def cgroup_cap(mode: str, _tmp: Path) -> Outcome:
    """Lift the process cap from inside: write `max` into pids.max, join the root cgroup, fork."""
    code = """
import ctypes, os, time
tried = []
for line in open('/proc/self/cgroup'):
    _, ctl, path = line.strip().split(':', 2)
    if 'pids' in ctl.split(','):
        for target, text in ((f'/sys/fs/cgroup/pids{path}/pids.max', 'max'),
                             ('/sys/fs/cgroup/pids/cgroup.procs', str(os.getpid()))):
            try:
                open(target, 'w').write(text); tried.append('wrote ' + target)
            except OSError as exc:
                tried.append(type(exc).__name__)
libc = ctypes.CDLL(None)
forks = 0
for _ in range(40):
    pid = libc.fork()
    if pid == 0:
        time.sleep(3); os._exit(0)
    forks += pid > 0
print(tried, 'forks', forks)
"""
    with _box(mode, max_processes=8) as box:
        cgroup = box._res.cgroup
        out = _out(box, code)
        cap = Path(cgroup.path, "pids.max").read_text().strip() if cgroup else "none"
    forks = int(re.search(r"forks (\d+)", out).group(1)) if "forks" in out else -1  # type: ignore[union-attr]
    return "wrote" not in out and 0 <= forks < 8 and cap in ("8", "none"), f"{out.strip()} pids.max={cap}"


def dev_shm(mode: str, _tmp: Path) -> Outcome:
    """Fill the host's /dev/shm (host memory, outside the address-space limit)."""
    name = f"rlmine-hostile-{os.getpid()}-{mode}"
    code = f"""
written = 0
try:
    with open('/dev/shm/{name}', 'wb') as f:
        for _ in range(64):
            f.write(b'x' * (1 << 20)); f.flush(); written += 1
except OSError as exc:
    print(type(exc).__name__, exc.errno)
print('MB', written)
"""
    with _box(mode, tmp_limit_mb=8) as box:
        out = _out(box, code)
    leaked = os.path.exists(f"/dev/shm/{name}")
    written = int(out.rsplit("MB", 1)[1])
    return not leaked and written <= 8, f"wrote {written} MB, left on the host: {leaked}"


def writes_outside(mode: str, tmp: Path) -> Outcome:
    """Write outside the scratch folder: /etc, the repository, the recorder's temp dir, /root."""
    targets = [
        "/etc/rlmine-hostile",
        str(ROOT / "rlmine-hostile"),
        str(tmp / "hostile"),
        "/root/rlmine-hostile",
    ]
    code = f"""
for target in {targets!r}:
    try:
        open(target, 'w').write('pwned'); print('wrote', target)
    except OSError as exc:
        print(type(exc).__name__)
"""
    with _box(mode) as box:
        out = _out(box, code)
    landed = [t for t in targets if os.path.exists(t)]
    for target in landed:
        os.remove(target)
    # Judged on the host: a target under /tmp (a checkout there, say) is inside the worker's own
    # /tmp tmpfs, where a write succeeds and vanishes with the worker.
    return not landed, out.strip().replace("\n", " ")


def scratch_cap(mode: str, _tmp: Path) -> Outcome:
    """Fill the disk through the scratch folder with many files, each under the file size limit."""
    code = """
written = 0
try:
    for i in range(16):
        with open(f'part{i}.bin', 'wb') as f:
            for _ in range(4):
                f.write(b'x' * (1 << 20)); f.flush(); written += 1
except OSError as exc:
    print(type(exc).__name__, exc.errno)
print('MB', written)
"""
    with _box(mode, scratch_limit_mb=16, file_size_limit_mb=8) as box:
        out = _out(box, code)
        workdir = box.workdir
        on_host = sum(f.stat().st_size for f in Path(workdir or ".").rglob("*") if f.is_file())
    written = int(out.rsplit("MB", 1)[1])
    gone = workdir is not None and not os.path.exists(workdir)
    return (
        written <= 16 and on_host == 0 and gone,
        f"wrote {written} MB of 64, host disk {on_host} B, removed {gone}",
    )


def forged_frame(mode: str, _tmp: Path) -> Outcome:
    """Forge a 300 MB result frame on the result pipe to blow up the host's memory."""
    code = """
import fcntl, os, stat
for fd in range(3, 64):
    try:
        if stat.S_ISFIFO(os.fstat(fd).st_mode) and fcntl.fcntl(fd, fcntl.F_GETFL) & os.O_WRONLY:
            os.write(fd, (300 << 20).to_bytes(4, 'big'))
            chunk = b' ' * (1 << 20)
            for _ in range(300):
                os.write(fd, chunk)
    except OSError:
        pass
"""
    Path("/proc/self/clear_refs").write_text("5")  # reset the peak RSS (VmHWM)
    with _box(mode) as box:
        before = _vm("VmRSS")
        result = box.execute(code)
        grew = _vm("VmHWM") - before
        after = box.execute("print('next')").stdout
    contained = (
        result.error_kind == "sandbox" and "cap" in (result.error or "") and grew < 64 and after == "next\n"
    )
    return contained, f"{result.error_kind}: {(result.error or '')[:90]} host grew {grew:.0f} MB"


def _vm(field: str) -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    return 0.0


def kernel_settings(mode: str, _tmp: Path) -> Outcome:
    """Rename the host (/proc/sys/kernel/hostname, sethostname) and write other kernel settings."""
    code = """
import ctypes, socket
for path, text in (('/proc/sys/kernel/hostname', 'pwned'), ('/proc/sys/vm/drop_caches', '3')):
    try:
        open(path, 'w').write(text); print('wrote', path)
    except OSError as exc:
        print(type(exc).__name__)
print('sethostname', ctypes.CDLL(None).sethostname(b'pwned2', 6))
print('name', socket.gethostname())
"""
    host_before = socket.gethostname()
    with _box(mode) as box:
        out = _out(box, code)
    unchanged = socket.gethostname() == host_before
    return unchanged and "wrote" not in out and "sethostname -1" in out, out.strip().replace("\n", " ")


def recorder_files(mode: str, tmp: Path) -> Outcome:
    """Read /etc/shadow and a file only the recorder's user may read."""
    secret = tmp / "secret.txt"
    secret.write_text("recorder-secret")
    secret.chmod(0o600)
    code = f"""
for path in ('/etc/shadow', {str(secret)!r}, {str(ROOT / "pyproject.toml")!r}):
    try:
        print('read', path, len(open(path).read()))
    except OSError as exc:
        print(type(exc).__name__)
"""
    with _box(mode) as box:
        out = _out(box, code)
    return "read" not in out, out.strip().replace("\n", " ")


def unix_socket(mode: str, tmp: Path) -> Outcome:
    """Connect to a Unix socket listening on disk, past the Python guard (``_socket``)."""
    path = str(tmp / "recorder.sock")
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(path)
    server.listen(1)
    server.settimeout(0.5)
    accepted: list[bool] = []

    def accept() -> None:
        try:
            server.accept()[0].close()
            accepted.append(True)
        except OSError:
            pass

    thread = threading.Thread(target=accept)
    thread.start()
    code = f"""
import _socket
s = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM)
try:
    s.connect({path!r}); print('connected')
except OSError as exc:
    print(type(exc).__name__)
"""
    with _box(mode) as box:
        out = _out(box, code)
    thread.join()
    server.close()
    return not accepted and "connected" not in out, out.strip()


def sigalrm_disabled(mode: str, _tmp: Path) -> Outcome:
    """Ignore and block SIGALRM, so that later cells would never time out softly."""
    with _box(mode, cell_timeout_s=1) as box:
        box.execute("import signal\nsignal.signal(signal.SIGALRM, signal.SIG_IGN)")
        box.execute("import signal\nsignal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGALRM})")
        result = box.execute("kept = 1\nwhile True:\n    pass")
        kept = box.execute("print(kept)").stdout
    soft = result.error_kind == "timeout" and not result.restarted and kept == "1\n"
    return soft, f"{result.error_kind}, restarted={result.restarted}, kept={kept.strip()}"


def delayed_kill(mode: str, _tmp: Path) -> Outcome:
    """A cell leaves a thread that kills the worker later: the next cell must not get the blame."""
    with _box(mode) as box:
        box.execute("x = 1")
        box.execute(
            "import os, threading, time\nthreading.Thread(target=lambda: (time.sleep(0.3), os._exit(9))).start()"
        )
        threading.Event().wait(0.8)
        result = box.execute("print(x)")
        after = box.execute("print('fresh')").stdout
    message = result.error or ""
    blamed = "after cell 2" in message and "cell 3" in message and "did not run" in message
    return blamed and result.restarted and after == "fresh\n", message[:120]


def environment(mode: str, _tmp: Path) -> Outcome:
    """Read API keys from the environment, the host's /proc and the template's."""
    os.environ["OPENAI_API_KEY"] = "sk-hostile-test"
    try:
        code = f"""
import os
found = [k for k in os.environ if 'KEY' in k]
for pid in (1, {os.getpid()}, {os.getppid()}):
    try:
        found.append(('sk-hostile' in open(f'/proc/{{pid}}/environ').read(), pid))
    except OSError:
        pass
print(found)
"""
        with _box(mode) as box:
            out = _out(box, code)
    finally:
        del os.environ["OPENAI_API_KEY"]
    return "True" not in out and "KEY" not in out, out.strip()


def tcp_out(mode: str, _tmp: Path) -> Outcome:
    """Reach a TCP server on the host's loopback, past the Python guard."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(1)
    port = server.getsockname()[1]
    code = f"""
import _socket
s = _socket.socket(_socket.AF_INET, _socket.SOCK_STREAM)
s.settimeout(1)
try:
    s.connect(('127.0.0.1', {port})); print('connected')
except OSError as exc:
    print(type(exc).__name__)
"""
    with _box(mode) as box:
        out = _out(box, code)
    server.close()
    return "connected" not in out, out.strip()


def fork_bomb_and_loop(mode: str, _tmp: Path) -> Outcome:
    """A fork bomb through ctypes, then an infinite loop in C: the next cell still works."""
    with _box(mode, max_processes=16, cell_timeout_s=1) as box:
        bomb = box.execute("import ctypes\nlibc = ctypes.CDLL(None)\nwhile True:\n    libc.fork()")
        loop = box.execute(
            "import time\nwhile True:\n    try:\n        time.sleep(10)\n    except BaseException:\n        pass"
        )
        after = box.execute("print('alive')").stdout
    return (
        bomb.error_kind is not None and loop.restarted and after == "alive\n",
        f"{bomb.error_kind}/{loop.error_kind}",
    )


@dataclass(frozen=True)
class Attack:
    name: str  # as the README's isolation table names it
    run: Callable[[str, Path], Outcome]


ATTACKS = [
    Attack("lift the process cap (pids.max, root cgroup)", cgroup_cap),
    Attack("fill the host's /dev/shm", dev_shm),
    Attack("write outside the scratch folder", writes_outside),
    Attack("fill the disk through the scratch folder", scratch_cap),
    Attack("forge a 300 MB result frame", forged_frame),
    Attack("rename the host, write kernel settings", kernel_settings),
    Attack("read /etc/shadow and the recorder's files", recorder_files),
    Attack("connect to a Unix socket on disk", unix_socket),
    Attack("disable SIGALRM for later cells", sigalrm_disabled),
    Attack("kill the worker after the cell returned", delayed_kill),
    Attack("read API keys (environment, /proc)", environment),
    Attack("TCP to the host's loopback", tcp_out),
    Attack("ctypes fork bomb, loop that ignores interrupts", fork_bomb_and_loop),
]


@pytest.fixture(scope="module")
def matrix(request: pytest.FixtureRequest) -> Iterator[dict[tuple[str, str], Outcome]]:
    found: dict[tuple[str, str], Outcome] = {}
    yield found
    reporter = request.config.pluginmanager.get_plugin("terminalreporter")
    capture = request.config.pluginmanager.get_plugin("capturemanager")
    if reporter is None or capture is None or not found:
        return
    with capture.global_and_fixture_disabled():  # shown on the terminal even when tests pass
        reporter.write_line("")
        reporter.write_line(f"hostile cells: {'attack':<52} " + " ".join(f"{m:<12}" for m in MODES))
        for attack in ATTACKS:
            cells = [found.get((attack.name, m)) for m in MODES]
            marks = ["contained" if c and c[0] else "NOT CONTAINED" if c else "not run" for c in cells]
            reporter.write_line(f"hostile cells: {attack.name:<52} " + " ".join(f"{x:<12}" for x in marks))


@pytest.mark.parametrize("mode", list(MODES))
@pytest.mark.parametrize("attack", ATTACKS, ids=[a.run.__name__ for a in ATTACKS])
def test_attack_is_contained(
    attack: Attack, mode: str, tmp_path: Path, matrix: dict[tuple[str, str], Outcome]
) -> None:
    with _box(mode) as probe:
        applied = probe.isolation
    if mode == "userns" and applied.get("userns") != "yes":
        pytest.skip(f"no user namespaces here: {applied}")
    contained, evidence = attack.run(mode, tmp_path)
    matrix[(attack.name, mode)] = (contained, evidence)
    assert contained, evidence


def test_the_readme_table_names_every_attack() -> None:
    readme = (ROOT / "README.md").read_text()
    rows = {
        line.split("|")[1].strip(): line
        for line in readme.splitlines()
        if line.startswith("| ") and line.count("|") >= 4
    }
    for attack in ATTACKS:
        assert attack.name in rows, f"README isolation table lacks {attack.name!r}"
        assert rows[attack.name].count("contained") == 2, rows[attack.name]


@pytest.mark.parametrize("mode", list(MODES))
def test_the_view_still_serves_ordinary_work(mode: str, tmp_path: Path) -> None:
    """Contained is not broken: devices, scratch and /tmp files, imports, the context all work."""
    context = tmp_path / "ctx.txt"
    context.write_text("line one\nline two\n")
    code = """
import json, os, tempfile, collections
open('notes.txt', 'w').write('kept')
with tempfile.NamedTemporaryFile('w', delete=False) as f:
    f.write('tmp')
with open('/dev/null', 'w') as null:
    null.write('x')
print(len(os.urandom(8)), len(open('/dev/urandom', 'rb').read(4)), open('/dev/zero', 'rb').read(2))
print(open('notes.txt').read(), open(f.name).read(), os.getcwd() == os.environ['HOME'])
print(len(context.splitlines()), sorted(os.listdir('/')))
"""
    with _box(mode, context_path=str(context)) as box:
        result = box.execute(code)
        assert box.isolation["view"].startswith("private"), box.isolation
    assert result.error is None, result.error
    lines = result.stdout.splitlines()
    assert lines[0] == "8 4 b'\\x00\\x00'"
    assert lines[1] == "kept tmp True"
    top = set(lines[2].split(" ", 1)[1].strip("[]").replace("'", "").split(", "))
    assert lines[2].startswith("2 ") and {"usr", "proc", "dev", "tmp"} <= top
    assert not top & {"home", "var", "srv", "opt", "boot", "sys", "run", "mnt"}  # not the host's root
