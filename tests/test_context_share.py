"""Large contexts shared copy-on-write by the workers of many sandboxes (fork server only)."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from waiting import eventually

from recorder.sandbox import SandboxConfig, SandboxError, SubprocessSandbox
from recorder.sandbox.base import START_METHOD_ENV
from recorder.sandbox.host import context_share, forkserver

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the fork server is Linux-only")
SIZE = context_share.SHARE_MIN_BYTES + (1 << 20)


@pytest.fixture(autouse=True)
def fresh_server(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.delenv(START_METHOD_ENV, raising=False)  # these tests are about the default
    forkserver.stop_shared_server()
    context_share.REGISTRY.stop_all()
    yield
    context_share.REGISTRY.stop_all()
    forkserver.stop_shared_server()


@pytest.fixture(scope="module")
def big_text(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("ctx") / "big.log"
    line = b"2024-05-01T12:00:00Z host-17 sshd[4242]: Accepted publickey for deploy from 10.0.0.7\n"
    path.write_bytes((line * (SIZE // len(line) + 1))[:SIZE])
    return path


def private_mb(pid: int) -> float:
    """Memory only this process holds (not shared with its template)."""
    total = 0
    for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
        if line.startswith(("Private_Clean:", "Private_Dirty:")):
            total += int(line.split()[1])
    return total / 1024


def worker_pid(box: SubprocessSandbox) -> int:
    """The process that holds the context: the worker, or its child in a PID namespace."""
    pid = int(box.worker_info["pid"])
    inner = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    return int(inner[0]) if inner else pid


def test_sandboxes_on_one_large_file_share_one_loaded_copy(big_text: Path) -> None:
    digest = hashlib.sha256(big_text.read_bytes()).hexdigest()
    check = "import hashlib\nprint(len(context), hashlib.sha256(context.encode()).hexdigest())"
    config = SandboxConfig(context_path=str(big_text))
    with (
        SubprocessSandbox(config) as first,
        SubprocessSandbox(config) as second,
        SubprocessSandbox(SandboxConfig(context_path=str(big_text), share_context=False)) as alone,
    ):
        for box in (first, second, alone):
            assert box.execute(check).stdout.split() == [str(SIZE), digest]
        assert first.worker_info["context_shared"] and second.worker_info["context_shared"]
        assert not alone.worker_info["context_shared"]
        assert context_share.REGISTRY.count() == 1
        # The context's pages belong to the context template, not to each worker.
        assert private_mb(worker_pid(first)) < SIZE / 2**20 / 2
        assert private_mb(worker_pid(alone)) > SIZE / 2**20
        assert first.isolation["memory"] == alone.isolation["memory"]  # RLIMIT_AS sized the same


def test_a_shared_context_is_private_to_each_worker_and_reset_on_restart(tmp_path: Path) -> None:
    path = tmp_path / "records.jsonl"
    record = json.dumps({"id": 0, "text": "x" * 200}) + "\n"
    path.write_text(record * (SIZE // len(record) + 1))
    count = SIZE // len(record) + 1
    config = SandboxConfig(context_path=str(path))
    with SubprocessSandbox(config) as first, SubprocessSandbox(config) as second:
        assert first.worker_info["context_shared"]
        first.execute("context.clear()\ncontext.append('mine')")
        assert second.execute("print(len(context))").stdout == f"{count}\n"
        assert first.execute("print(context)").stdout == "['mine']\n"
        restarted = first.execute("import os\nos._exit(1)")
        assert restarted.restarted and first.worker_info["context_shared"]
        assert first.execute("print(len(context))").stdout == f"{count}\n"


def test_del_context_frees_as_much_as_in_a_worker_that_loaded_it(big_text: Path) -> None:
    code = (
        "def vm():\n    return int(open('/proc/self/statm').read().split()[0])\n"
        "before = vm()\ndel context\nimport gc\ngc.collect()\nprint(before, vm())"
    )
    freed = {}
    for share in (True, False):
        with SubprocessSandbox(SandboxConfig(context_path=str(big_text), share_context=share)) as box:
            assert box.worker_info["context_shared"] is share
            before, after = (int(pages) for pages in box.execute(code).stdout.split())
            freed[share] = (before - after) * os.sysconf("SC_PAGE_SIZE")
    assert freed[True] >= SIZE and abs(freed[True] - freed[False]) < (4 << 20)


def test_a_changed_file_is_loaded_afresh(tmp_path: Path, big_text: Path) -> None:
    path = tmp_path / "changing.log"
    path.write_bytes(big_text.read_bytes())
    with SubprocessSandbox(SandboxConfig(context_path=str(path))) as box:
        assert box.execute("print(len(context))").stdout == f"{SIZE}\n"
        with open(path, "ab") as handle:
            handle.write(b"appended line\n")
        restarted = box.execute("import os\nos._exit(1)")
        assert restarted.restarted and box.worker_info["context_shared"]
        assert box.execute("print(context[-14:], end='')").stdout == "appended line\n"


def test_a_dead_context_template_is_replaced(big_text: Path) -> None:
    with SubprocessSandbox(SandboxConfig(context_path=str(big_text))) as box:
        pid = int(box.worker_info["pid"])
        template = int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
        main = forkserver.running_server()
        assert main is not None and template != main.pid  # forked by the context template
        os.kill(template, signal.SIGKILL)
        assert eventually(
            lambda: not Path(f"/proc/{pid}").exists() or "Z" in Path(f"/proc/{pid}/stat").read_text()
        )
        assert box.execute("print(1)").restarted
        assert box.worker_info["context_shared"]
        assert box.execute("print(len(context))").stdout == f"{SIZE}\n"


def test_a_context_that_fails_to_load_fails_as_before(tmp_path: Path) -> None:
    path = tmp_path / "broken.jsonl"
    path.write_text('{"ok": 1}\n{not json\n' + '{"pad": 0}\n' * (SIZE // 11))
    box = SubprocessSandbox(SandboxConfig(context_path=str(path)))
    with pytest.raises(SandboxError, match="line 2"):
        box.start()
    box.shutdown()
