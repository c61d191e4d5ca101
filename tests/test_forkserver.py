"""The sandbox fork server: one template per host, forking workers that are confined as spawned ones."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest
from waiting import eventually

from recorder.sandbox import SandboxConfig, SubprocessSandbox
from recorder.sandbox.base import START_METHOD_ENV
from recorder.sandbox.host import forkserver
from recorder.sandbox.host.cgroup import PidsCgroup
from rlmine.errors import UserError

REPO = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the fork server is Linux-only")
# Where workers fork from a template whose root is the view (decision 0014).
VIEW_TEMPLATE = os.geteuid() == 0 and not any(
    p == "/tmp" or p.startswith("/tmp/") for p in (sys.prefix, sys.base_prefix, sys.exec_prefix)
)


def _stat(pid: int) -> list[str] | None:
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return text[text.rindex(")") + 2 :].split()  # fields from the state on: [state, ppid, ...]


def alive(pid: int) -> bool:
    fields = _stat(pid)
    return fields is not None and fields[0] not in ("Z", "X")


def children(pid: int) -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        fields = _stat(int(entry)) if entry.isdigit() else None
        if fields is not None and fields[1] == str(pid):
            found.append(int(entry))
    return found


@pytest.fixture(autouse=True)
def fresh_server(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.delenv(START_METHOD_ENV, raising=False)  # these tests are about the default
    forkserver.stop_shared_server()
    yield
    forkserver.stop_shared_server()


def template_pid() -> int:
    server = forkserver.running_server()
    assert server is not None
    return server.pid


def test_sandboxes_share_one_template_that_reaps_every_worker() -> None:
    boxes = [SubprocessSandbox(SandboxConfig()) for _ in range(3)]
    for box in boxes:
        box.start()
    template = template_pid()
    server = forkserver.running_server()
    assert server is not None
    # As root, workers fork from the template's one child whose root is the view (decision 0014),
    # unless Python lies under /tmp (a checkout there): each worker then builds its own view.
    parent = server.view_template_pid if VIEW_TEMPLATE else template
    assert parent is not None
    workers = [box.worker_info["pid"] for box in boxes]
    assert all(box.isolation["start"] == "forkserver" for box in boxes)
    assert sorted(children(parent)) == sorted(workers)
    if parent != template:
        assert children(template) == [parent]
    assert [box.execute("print(7 * 6)").stdout for box in boxes] == ["42\n"] * 3
    for box in boxes:
        box.shutdown()
    assert eventually(lambda: children(parent) == [])  # killed and reaped: no zombies left
    assert alive(template) and alive(parent)


@pytest.mark.skipif(not VIEW_TEMPLATE, reason="the template view needs root and Python outside /tmp")
def test_workers_copy_the_template_view_and_mount_only_their_own_pieces(tmp_path: Path) -> None:
    context = tmp_path / "ctx.txt"
    context.write_text("the context")
    code = "print(len(context), sorted(line.split()[4] for line in open('/proc/self/mountinfo')))"
    with SubprocessSandbox(SandboxConfig(context_path=str(context))) as box:
        out = box.execute(code).stdout
        server = forkserver.running_server()
        assert server is not None and server.view_template_pid is not None
        assert not list(Path("/tmp").glob("rlmine-view-*"))  # its mount point left no litter
    length, mounts = out.split(" ", 1)
    assert length == "11" and box.isolation["view"].startswith("private")
    assert str(tmp_path) not in mounts  # the context was read through an fd, never bound
    for own in ("/tmp", "/dev/shm", "/proc", "/proc/sys", os.path.realpath(box.workdir or "")):
        assert f"'{own}'" in mounts


@pytest.mark.parametrize("namespaces", ["auto", "off"])
def test_a_forked_worker_holds_only_its_own_pipes(namespaces: str) -> None:
    config = SandboxConfig(namespaces=namespaces)  # type: ignore[arg-type]
    with SubprocessSandbox(config) as first, SubprocessSandbox(config) as second:
        code = (
            "import os\nfds = {}\nfor fd in os.listdir('/proc/self/fd'):\n    try:\n"
            "        fds[int(fd)] = os.readlink(f'/proc/self/fd/{fd}')\n    except OSError:\n        pass\n"
            "print(sorted(fds.values()))"
        )
        for box in (first, second):
            targets = box.execute(code).stdout
            assert "socket:" not in targets  # not the template's socket: no way to ask it for forks
            assert targets.count("pipe:") == 2  # its command and result pipes, nobody else's
            assert "/dev/null" in targets


def test_the_template_never_sees_the_hosts_secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-secret")
    with SubprocessSandbox(SandboxConfig()) as box:
        assert box.execute("import os\nprint(os.environ.get('OPENAI_API_KEY'))").stdout == "None\n"
        environ = Path(f"/proc/{template_pid()}/environ").read_bytes()
    assert b"sk-test-secret" not in environ and b"PATH=" in environ


def test_a_dead_template_takes_its_workers_along_and_is_replaced(tmp_path: Path) -> None:
    context = tmp_path / "ctx.txt"
    context.write_text("the context")
    with SubprocessSandbox(SandboxConfig(context_path=str(context))) as box:
        box.execute("kept = 1")
        old_template, old_worker = template_pid(), box.worker_info["pid"]
        os.kill(old_template, signal.SIGKILL)
        assert eventually(lambda: not alive(old_worker))  # PR_SET_PDEATHSIG
        lost = box.execute("print(kept)")
        assert lost.error_kind == "sandbox" and lost.restarted
        result = box.execute("print(context, 'kept' in globals())")
        assert result.stdout == "the context False\n"
        assert box.isolation["start"] == "forkserver" and template_pid() != old_template


def test_a_template_that_cannot_start_falls_back_to_spawning(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    broken = tmp_path / "broken_worker.py"
    broken.write_text("import sys\nsys.exit('template exploded')\n")
    monkeypatch.setattr(forkserver, "WORKER_PATH", str(broken))
    with SubprocessSandbox(SandboxConfig()) as box, SubprocessSandbox(SandboxConfig()) as other:
        assert box.isolation["start"].startswith("spawn (fallback: the fork server did not start")
        assert "template exploded" in box.isolation["start"]
        assert box.worker_info["start_method"] == "spawn" and box.worker_info["start_fallback"]
        assert box.execute("print('still works')").stdout == "still works\n"
        assert other.worker_info["start_method"] == "spawn"  # the failure is remembered, not retried
        assert box.isolation["network"] == "netns" or box.isolation["network"] == "socket-guard"
    assert forkserver.running_server() is None


def test_extra_env_read_at_interpreter_start_is_honoured_by_spawning(tmp_path: Path) -> None:
    extra = str(tmp_path / "lib")
    with SubprocessSandbox(SandboxConfig(extra_env={"PYTHONPATH": extra, "TASK": "x"})) as box:
        assert box.worker_info["start_method"] == "spawn"
        assert "PYTHONPATH" in box.isolation["start"]
        assert box.execute(f"import sys\nprint({extra!r} in sys.path)").stdout == "True\n"
    with SubprocessSandbox(SandboxConfig(extra_env={"TASK": "x"})) as box:
        assert box.isolation["start"] == "forkserver"
        assert box.execute("import os\nprint(os.environ['TASK'])").stdout == "x\n"


def test_start_method_from_config_or_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    with SubprocessSandbox(SandboxConfig(start_method="spawn")) as box:
        assert box.isolation["start"] == "spawn" and box.worker_info["start_fallback"] is None
    assert forkserver.running_server() is None  # spawning never starts a template
    monkeypatch.setenv(START_METHOD_ENV, "spawn")
    assert SandboxConfig().start_method == "spawn"
    monkeypatch.setenv(START_METHOD_ENV, "vfork")
    with pytest.raises(UserError, match="start method 'vfork'"):
        SubprocessSandbox(SandboxConfig())


@pytest.mark.parametrize("start_method", ["forkserver", "spawn"])
def test_a_hard_timeout_kills_what_the_worker_started(
    start_method: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # No cgroup and no PID namespace: only the kill of the worker's process group stops the child.
    monkeypatch.setattr(PidsCgroup, "create", classmethod(lambda cls, max_pids: None))
    config = SandboxConfig(namespaces="off", cell_timeout_s=0.5, start_method=start_method)  # type: ignore[arg-type]
    with SubprocessSandbox(config) as box:
        forked = box.execute(
            "import ctypes\nlibc = ctypes.CDLL(None)\npid = libc.fork()\n"
            "if pid == 0:\n    libc.pause()\nprint(pid)"
        )
        child = int(forked.stdout)
        assert alive(child)
        stuck = box.execute(
            "import time\nwhile True:\n    try:\n        time.sleep(100)\n    except BaseException:\n        pass"
        )
        assert stuck.error_kind == "timeout" and stuck.restarted
        assert eventually(lambda: not alive(child))
        assert box.execute("print('fresh')").stdout == "fresh\n"


_HOST_SCRIPT = """
import os, sys, time
from recorder.sandbox import SubprocessSandbox, SandboxConfig
from recorder.sandbox.host import forkserver
box = SubprocessSandbox(SandboxConfig())
box.start()
print(forkserver.running_server().pid, box.worker_info["pid"], flush=True)
sys.stdin.readline()  # the test checks both are alive before the host ends
if sys.argv[1] == "hang":
    time.sleep(60)
"""


@pytest.mark.parametrize("ending", ["exit", "hang"])
def test_the_template_and_its_workers_end_with_the_host(ending: str) -> None:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    host = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(_HOST_SCRIPT), ending],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        env=env,
        cwd=REPO,
    )
    assert host.stdout is not None and host.stdin is not None
    template, worker = (int(pid) for pid in host.stdout.readline().split())
    assert alive(template) and alive(worker)
    host.stdin.write(b"go\n")
    host.stdin.close()
    if ending == "hang":
        host.kill()  # SIGKILL: no atexit; the template sees its socket close
    host.wait(30)
    host.stdout.close()
    assert eventually(lambda: not alive(template) and not alive(worker))


def test_a_forked_host_starts_its_own_template() -> None:
    with SubprocessSandbox(SandboxConfig()) as box:
        parent_template = template_pid()
        read_end, write_end = os.pipe()
        pid = os.fork()
        if pid == 0:  # the child: must never return into pytest
            code = 1
            try:
                os.close(read_end)
                with SubprocessSandbox(SandboxConfig()) as child_box:
                    out = child_box.execute("print(6 * 7)").stdout.strip()
                    os.write(write_end, f"{template_pid()} {out}".encode())
                code = 0
            finally:
                os._exit(code)
        os.close(write_end)
        with os.fdopen(read_end) as reader:
            child_template, answer = reader.read().split()
        assert os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]) == 0
        assert answer == "42" and int(child_template) != parent_template
        assert template_pid() == parent_template and box.execute("print('ok')").stdout == "ok\n"
