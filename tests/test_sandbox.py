"""The sandboxed REPL, with real worker processes: behaviour, limits, recovery."""

from __future__ import annotations

import gc
import glob
import hashlib
import json
import os
import resource
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from recorder.sandbox import ExecutionResult, Sandbox, SandboxConfig, SandboxError, SubprocessSandbox
from recorder.sandbox.base import StartMethod
from recorder.sandbox.worker.capture import CappedWriter
from recorder.sandbox.worker.context_loader import read_text
from rlmine.errors import UserError


class RecordingLM:
    """An LLM handler that answers with the upper-cased prompt and records every call."""

    def __init__(self, delay_s: float = 0.0, fail: bool = False) -> None:
        self.calls: list[tuple[list[str], str | None]] = []
        self.delay_s = delay_s
        self.fail = fail

    def __call__(self, prompts: list[str], model: str | None) -> list[str]:
        self.calls.append((list(prompts), model))
        time.sleep(self.delay_s)
        if self.fail:
            raise ConnectionError("provider is down")
        return [prompt.upper() for prompt in prompts]


@pytest.fixture
def sandbox() -> Iterator[SubprocessSandbox]:
    with SubprocessSandbox(SandboxConfig(cell_timeout_s=5), RecordingLM()) as box:
        yield box


# The default start method is the fork server; the isolation and recovery tests run both ways.
both_start_methods = pytest.mark.parametrize("start_method", ["forkserver", "spawn"])


def run_ok(box: SubprocessSandbox, code: str) -> ExecutionResult:
    result = box.execute(code)
    assert result.error is None, result.error
    return result


# --- the REPL ------------------------------------------------------------------------------


def test_namespace_persists_and_code_errors_keep_it(sandbox: SubprocessSandbox) -> None:
    run_ok(sandbox, "x = 41\ndef inc(v):\n    return v + 1")
    failed = sandbox.execute("y = inc(x)\nraise ValueError('bad input')")
    assert failed.error_kind == "code" and not failed.restarted
    assert failed.error is not None and "ValueError: bad input" in failed.error
    assert '<cell 2>", line 2' in failed.error and "serve" not in failed.error  # user frames only
    assert run_ok(sandbox, "print(x, y)").stdout == "41 42\n"


def test_syntax_error_is_a_code_error(sandbox: SubprocessSandbox) -> None:
    result = sandbox.execute("def broken(:\n    pass")
    assert result.error_kind == "code" and result.error is not None and "SyntaxError" in result.error
    assert run_ok(sandbox, "print('still here')").stdout == "still here\n"


def test_stdout_and_stderr_are_separate(sandbox: SubprocessSandbox) -> None:
    result = run_ok(sandbox, "import sys\nprint('out')\nprint('err', file=sys.stderr)")
    assert (result.stdout, result.stderr, result.stdout_bytes) == ("out\n", "err\n", 4)


def test_lone_surrogates_never_leave_the_worker(sandbox: SubprocessSandbox) -> None:
    result = run_ok(sandbox, "bad = 'a\\udcff'\nprint(bad)\nSUBMIT({bad: [bad, llm_query(bad)]})")
    assert result.stdout == "a\ufffd\n" and result.answer == {"a\ufffd": ["a\ufffd", "A\ufffd"]}
    result.stdout.encode("utf-8")  # would raise on a surrogate


def test_submit_stops_the_cell_and_converts_the_answer(sandbox: SubprocessSandbox) -> None:
    result = run_ok(
        sandbox,
        "import numpy as np\nprint('before')\nSUBMIT({'n': np.int64(3), 't': (1, 2)})\nprint('after')",
    )
    assert result.submitted and result.answer == {"n": 3, "t": [1, 2]}
    assert result.stdout == "before\n"
    assert not run_ok(sandbox, "z = 1").submitted
    final = run_ok(sandbox, "total = 7\nFINAL_VAR('total')")
    assert final.submitted and final.answer == 7


def test_llm_query_reaches_the_handler() -> None:
    lm = RecordingLM()
    with SubprocessSandbox(SandboxConfig(), lm) as box:
        result = run_ok(
            box,
            "a = llm_query('who is it?', model='small')\n"
            "b = llm_query_batched(['x', 'y', 'z'])\n"
            "print(a, b, llm_query_batched([]))",
        )
    assert result.stdout == "WHO IS IT? ['X', 'Y', 'Z'] []\n"
    assert lm.calls == [(["who is it?"], "small"), (["x", "y", "z"], None)]


def test_llm_failures_become_errors_in_the_cell() -> None:
    with SubprocessSandbox(SandboxConfig(), RecordingLM(fail=True)) as box:
        result = box.execute("llm_query('hi')")
        assert result.error is not None and "ConnectionError: provider is down" in result.error
        assert "TypeError" in (box.execute("llm_query(['not', 'a', 'str'])").error or "")
    with SubprocessSandbox(SandboxConfig(), None) as box:
        result = box.execute("llm_query('hi')")
        assert result.error is not None and "without an LM handler" in result.error
    with SubprocessSandbox(SandboxConfig(), lambda prompts, model: ["only one"]) as box:
        result = box.execute("llm_query_batched(['a', 'b'])")
        assert result.error is not None and "wrong number of responses" in result.error


def test_time_waiting_for_the_llm_does_not_count_against_the_cell() -> None:
    with SubprocessSandbox(SandboxConfig(cell_timeout_s=1.0), RecordingLM(delay_s=0.6)) as box:
        result = run_ok(box, "print([llm_query(str(i)) for i in range(3)])")
    assert result.stdout == "['0', '1', '2']\n" and result.duration_s > 1.5


def test_parallel_sandboxes_in_threads() -> None:
    results: dict[int, str] = {}

    def work(index: int) -> None:
        with SubprocessSandbox(SandboxConfig(), RecordingLM()) as box:
            run_ok(box, f"n = {index}")
            results[index] = run_ok(box, "print(n, llm_query('q' + str(n)))").stdout

    threads = [threading.Thread(target=work, args=(i,)) for i in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert results == {i: f"{i} Q{i}\n" for i in range(6)}


# --- contexts --------------------------------------------------------------------------------


def test_text_context_of_about_a_megabyte(tmp_path: os.PathLike[str]) -> None:
    text = "".join(f"line {i}: naïve café ☕\n" for i in range(40_000))
    path = os.path.join(tmp_path, "ctx.txt")
    with open(path, "w", encoding="utf-8") as handle:
        handle.write(text)
    with SubprocessSandbox(SandboxConfig(context_path=path)) as box:
        result = run_ok(
            box,
            "import hashlib\nprint(type(context).__name__, len(context), hashlib.sha256(context.encode()).hexdigest())",
        )
    assert result.stdout.split() == ["str", str(len(text)), hashlib.sha256(text.encode()).hexdigest()]


def test_json_jsonl_and_directory_contexts(tmp_path: os.PathLike[str]) -> None:
    root = str(tmp_path)
    with open(os.path.join(root, "c.json"), "w") as handle:
        json.dump({"items": [1, 2, 3]}, handle)
    with open(os.path.join(root, "c.jsonl"), "w") as handle:
        handle.write('{"id": 1}\n\n{"id": 2}\n')
    os.makedirs(os.path.join(root, "tree", "sub"))
    for name, body in (("tree/a.txt", "alpha"), ("tree/sub/b.log", "beta")):
        with open(os.path.join(root, name), "w") as handle:
            handle.write(body)
    expected = {
        "c.json": "{'items': [1, 2, 3]}",
        "c.jsonl": "[{'id': 1}, {'id': 2}]",
        "tree": "{'a.txt': 'alpha', 'sub/b.log': 'beta'}",
    }
    for name, shown in expected.items():
        with SubprocessSandbox(SandboxConfig(context_path=os.path.join(root, name))) as box:
            assert run_ok(box, "print(context)").stdout == shown + "\n"
    with SubprocessSandbox(
        SandboxConfig(context_path=os.path.join(root, "c.json"), context_format="text")
    ) as box:
        assert run_ok(box, "print(type(context).__name__)").stdout == "str\n"


def test_bad_contexts_fail_to_start(tmp_path: os.PathLike[str]) -> None:
    with pytest.raises(UserError, match="context not found"):
        SubprocessSandbox(SandboxConfig(context_path=os.path.join(tmp_path, "missing.txt"))).start()
    broken = os.path.join(tmp_path, "broken.jsonl")
    with open(broken, "w") as handle:
        handle.write('{"ok": 1}\n{not json\n')
    box = SubprocessSandbox(SandboxConfig(context_path=broken))
    with pytest.raises(SandboxError, match="line 2"):
        box.start()
    box.shutdown()


def _read_back(tmp_path: os.PathLike[str], data: bytes) -> tuple[str, str]:
    """``data`` written to a file and read with ``read_text``, equal to Python's own decoding."""
    path = os.path.join(tmp_path, "context.txt")
    with open(path, "wb") as handle:
        handle.write(data)
    text = read_text(path)
    expected = data.decode("utf-8", errors="replace")
    assert len(text) == len(expected) and text == expected and hash(text) == hash(expected)
    return text, expected


@pytest.mark.parametrize(
    "tail",
    [
        b"tail\n",
        "caf\u00e9\n".encode(),
        "\u2615 mug\n".encode(),
        "\U0001f600 face\n".encode(),
        b"bad \xfe\xff byte",
    ],
    ids=["ascii", "latin-1", "ucs2", "ucs4", "invalid"],
)
def test_large_text_is_filled_in_place_for_every_string_kind(tmp_path: os.PathLike[str], tail: bytes) -> None:
    # 16 MB minus one byte, then a 2-byte character: it straddles the reader's chunk boundary.
    body = b"0123456789abcdef" * (1 << 20)
    data = body[:-1] + "\u00e9".encode() + tail if tail != b"tail\n" else body + tail
    text, expected = _read_back(tmp_path, data)
    assert text[-12:] == expected[-12:] and (text + "!").endswith(expected[-3:] + "!")


@pytest.mark.parametrize(
    "tail",
    ["caf\u00e9\n".encode(), "\u2615 mug\n".encode(), "\U0001f600 face\n".encode(), b"bad \xfe\xff byte"],
    ids=["latin-1", "ucs2", "ucs4", "invalid"],
)
def test_an_ascii_prefix_is_copied_from_memory_not_read_again(
    tmp_path: os.PathLike[str], tail: bytes
) -> None:
    # Two whole chunks of ASCII, then the first non-ASCII byte: pass 1's string holds the prefix.
    data = b"0123456789abcdef" * (2 << 20) + tail
    text, expected = _read_back(tmp_path, data)
    assert text[(2 << 20) * 16 - 3 :] == expected[(2 << 20) * 16 - 3 :]


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/self/status")
def test_a_utf8_context_never_holds_two_copies(tmp_path: os.PathLike[str]) -> None:
    """48 MB of ASCII with one accented character at the end: the peak stays near one copy."""
    path = os.path.join(tmp_path, "log.txt")
    with open(path, "wb") as handle:
        handle.write(b"0123456789abcdef" * (3 << 20) + "caf\u00e9\n".encode())
    code = (
        "import sys\nfrom recorder.sandbox.worker.context_loader import read_text\n"
        "def mb(key):\n    for line in open('/proc/self/status'):\n"
        "        if line.startswith(key): return int(line.split()[1]) / 1024\n"
        "base = mb('VmRSS')\ntext = read_text(sys.argv[1])\n"
        "print(len(text), mb('VmHWM') - base)"
    )
    repo = Path(__file__).resolve().parent.parent
    out = subprocess.run(
        [sys.executable, "-c", code, path], capture_output=True, text=True, check=True, cwd=repo
    )
    length, peak_mb = out.stdout.split()
    assert int(length) == 48 * (1 << 20) + 5
    assert float(peak_mb) < 48 + 32  # the string, pass 1's 16 MB buffer and one chunk in flight


# --- output capture -------------------------------------------------------------------------


def test_capped_writer_keeps_head_and_tail_and_counts_bytes() -> None:
    writer = CappedWriter(10)
    for piece in ("abc", "defg", "h" * 1000, "é", "xyz"):
        writer.write(piece)
    text, cut = writer.value()
    assert (text, cut, writer.truncated) == ("abcde" + "hhéxyz"[-5:], 5, True)
    assert writer.chars == 1011 and writer.bytes == 1012
    small = CappedWriter(10)
    small.write("héllo")
    assert small.value() == ("héllo", None) and not small.truncated


@pytest.mark.slow
def test_printing_a_gigabyte_is_capped_and_cheap_for_the_host() -> None:
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    with SubprocessSandbox(SandboxConfig(max_output_chars=1000)) as box:
        big = box.execute("print('a', 'x' * (10**9 - 2), 'z', sep='')")
        lines = box.execute("for i in range(10**6):\n    print(i)")
    grown_mb = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024
    assert big.error is None and big.output_truncated and big.stdout_bytes == 10**9 + 1
    assert big.stdout_cut == 500 and big.stdout == "a" + "x" * 997 + "z\n"
    assert (
        lines.output_truncated
        and lines.stdout.startswith("0\n1\n2\n")
        and lines.stdout.endswith("999998\n999999\n")
    )
    assert len(lines.stdout) == 1000 and lines.stdout_cut == 500
    assert grown_mb < 100


# --- limits and recovery ---------------------------------------------------------------------


def test_soft_timeout_interrupts_and_keeps_the_namespace(tmp_path: os.PathLike[str]) -> None:
    path = os.path.join(tmp_path, "ctx.txt")
    with open(path, "w") as handle:
        handle.write("the context")
    with SubprocessSandbox(SandboxConfig(context_path=path, cell_timeout_s=1)) as box:
        run_ok(box, "kept = 'yes'")
        result = box.execute("while True:\n    pass")
        assert result.error_kind == "timeout" and not result.restarted
        assert result.error is not None and "1 s" in result.error
        assert run_ok(box, "print(kept, context)").stdout == "yes the context\n"


def test_hard_timeout_restarts_the_worker(tmp_path: os.PathLike[str]) -> None:
    path = os.path.join(tmp_path, "ctx.txt")
    with open(path, "w") as handle:
        handle.write("the context")
    with SubprocessSandbox(SandboxConfig(context_path=path, cell_timeout_s=1)) as box:
        run_ok(box, "kept = 'yes'")
        stubborn = "import time\nwhile True:\n    try:\n        time.sleep(100)\n    except BaseException:\n        pass"
        result = box.execute(stubborn)
        assert result.error_kind == "timeout" and result.restarted
        assert result.error is not None and "variables were lost" in result.error
        assert run_ok(box, "print(context, 'kept' in globals())").stdout == "the context False\n"


@both_start_methods
def test_huge_allocation_raises_memory_error_and_the_worker_survives(start_method: StartMethod) -> None:
    with SubprocessSandbox(SandboxConfig(start_method=start_method)) as sandbox:
        _check_memory_limit(sandbox)
        assert sandbox.isolation["start"] == start_method


def _check_memory_limit(sandbox: SubprocessSandbox) -> None:
    run_ok(sandbox, "kept = 1")
    result = sandbox.execute("x = bytearray(50 * 1024**3)")
    assert result.error_kind == "memory" and not result.restarted
    assert run_ok(sandbox, "print(kept)").stdout == "1\n"
    assert "not allowed" in (
        sandbox.execute("import resource\nresource.setrlimit(resource.RLIMIT_AS, (-1, -1))").error or ""
    )


@both_start_methods
def test_file_size_limit_stops_a_ten_gigabyte_write(
    tmp_path: os.PathLike[str], start_method: StartMethod
) -> None:
    workdir = os.path.join(tmp_path, "scratch")
    config = SandboxConfig(file_size_limit_mb=8, workdir=workdir, start_method=start_method)
    with SubprocessSandbox(config) as box:
        code = "chunk = b'0' * (1 << 20)\nwith open('big.bin', 'wb') as f:\n    for _ in range(10 * 1024):\n        f.write(chunk)"
        result = box.execute(code)
        assert result.error_kind == "code" and "File too large" in (result.error or "")
        size = int(run_ok(box, "import os\nprint(os.path.getsize('big.bin'))").stdout)
        assert 0 < size <= 8 << 20
        assert run_ok(box, "print('ok')").stdout == "ok\n"
    assert os.path.isdir(workdir)  # a workdir given by the caller is kept...
    assert os.listdir(workdir) == []  # ...and the worker's files never reached the host's disk


@both_start_methods
def test_worker_death_is_reported_and_the_worker_restarted(
    tmp_path: os.PathLike[str], start_method: StartMethod
) -> None:
    path = os.path.join(tmp_path, "ctx.txt")
    with open(path, "w") as handle:
        handle.write("ctx")
    with SubprocessSandbox(SandboxConfig(context_path=path, start_method=start_method)) as box:
        for code, detail in (
            ("import os\nos._exit(1)", "exit status 1"),
            ("import ctypes\nctypes.string_at(0)", "SIGSEGV"),
        ):
            run_ok(box, "kept = 1")
            result = box.execute(code)
            assert result.error_kind == "sandbox" and result.restarted
            assert result.error is not None and detail in result.error
            assert run_ok(box, "print(context, 'kept' in globals())").stdout == "ctx False\n"
        os.remove(path)  # the next restart cannot reload the context
        with pytest.raises(SandboxError):
            box.execute("import os\nos._exit(3)")


def test_process_creation_is_blocked(sandbox: SubprocessSandbox) -> None:
    result = sandbox.execute("import os\nwhile True:\n    os.fork()")
    assert result.error_kind == "code" and "PermissionError" in (result.error or "")
    for code in ("import subprocess\nsubprocess.run(['true'])", "import os\nos.system('true')"):
        assert "PermissionError" in (sandbox.execute(code).error or "")
    assert run_ok(sandbox, "print('alive')").stdout == "alive\n"


@both_start_methods
def test_ctypes_fork_bomb_is_bounded_by_the_kernel(start_method: StartMethod) -> None:
    with SubprocessSandbox(SandboxConfig(max_processes=16, start_method=start_method)) as box:
        if box.isolation["processes"] == "fork-guard":
            pytest.skip("no kernel process limit on this platform (needs a pids cgroup or non-root)")
        code = (
            "import ctypes\nlibc = ctypes.CDLL(None)\nforked = 0\n"
            "for _ in range(300):\n    pid = libc.fork()\n    if pid == 0:\n        libc.pause()\n"
            "    elif pid > 0:\n        forked += 1\nprint(forked)"
        )
        forked = int(run_ok(box, code).stdout)
        assert 0 < forked < 16
    assert not glob.glob(f"/sys/fs/cgroup/**/rlmine-sandbox-{os.getpid()}-*", recursive=True)


@both_start_methods
def test_environment_holds_no_secrets(monkeypatch: pytest.MonkeyPatch, start_method: StartMethod) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-secret")
    with SubprocessSandbox(SandboxConfig(extra_env={"TASK_HINT": "logs"}, start_method=start_method)) as box:
        result = run_ok(
            box,
            "import os\nprint(os.environ.get('OPENAI_API_KEY'), os.environ['TASK_HINT'], os.getcwd() == os.environ['HOME'])",
        )
        assert result.stdout == "None logs True\n"
        if "proc" not in box.isolation["pid"]:
            pytest.skip("no private /proc here: other processes' environments stay readable")
        scan = "import glob\nfound = []\nfor p in glob.glob('/proc/*/environ'):\n    try:\n        found.append(open(p, 'rb').read())\n    except OSError:\n        pass\nprint(any(b'sk-test-secret' in e for e in found), len(found))"
        assert run_ok(box, scan).stdout.split()[0] == "False"


@pytest.fixture
def loopback_server() -> Iterator[int]:
    server = socket.create_server(("127.0.0.1", 0))
    yield server.getsockname()[1]
    server.close()


@both_start_methods
@pytest.mark.parametrize("namespaces", ["auto", "off"])
def test_network_is_blocked(loopback_server: int, namespaces: str, start_method: StartMethod) -> None:
    config = SandboxConfig(namespaces=namespaces, start_method=start_method)  # type: ignore[arg-type]
    with SubprocessSandbox(config) as box:
        network = box.isolation["network"]
        assert network in {"netns", "socket-guard"}
        guarded = box.execute(
            f"import socket\nsocket.create_connection(('127.0.0.1', {loopback_server}), timeout=2)"
        )
        assert guarded.error is not None and "PermissionError" in guarded.error
        raw = box.execute(
            f"import _socket\ns = _socket.socket()\ns.settimeout(2)\ns.connect(('127.0.0.1', {loopback_server}))"
        )
        if network == "netns":  # even the raw socket module finds no network
            assert raw.error is not None and "unreachable" in raw.error
        if namespaces == "off":
            assert network == "socket-guard"


def test_network_can_be_allowed(loopback_server: int) -> None:
    with SubprocessSandbox(SandboxConfig(network=True)) as box:
        assert box.isolation["network"] == "allowed"
        run_ok(
            box,
            f"import socket\nsocket.create_connection(('127.0.0.1', {loopback_server}), timeout=2).close()",
        )


def test_user_namespace_mode_still_runs_cells(tmp_path: os.PathLike[str]) -> None:
    with SubprocessSandbox(SandboxConfig(namespaces="userns")) as box:
        assert run_ok(box, "open('f.txt', 'w').write('hi')\nprint(open('f.txt').read())").stdout == "hi\n"
        assert box.isolation["userns"] in {"yes", "no"}


# --- lifecycle -------------------------------------------------------------------------------


def test_shutdown_is_idempotent_and_removes_the_scratch_dir() -> None:
    box: Sandbox = SubprocessSandbox(SandboxConfig())
    result = box.execute("open('note.txt', 'w').write('x')")  # execute starts it lazily
    assert result.error is None
    assert isinstance(box, SubprocessSandbox)
    workdir = box.workdir
    assert workdir is not None and os.path.isdir(workdir)
    assert box.execute("import os\nprint(os.listdir('.'))").stdout == "['note.txt']\n"
    box.shutdown()
    box.shutdown()
    assert not os.path.exists(workdir)
    with pytest.raises(SandboxError):
        box.execute("1")


def test_garbage_collection_releases_the_worker() -> None:
    box = SubprocessSandbox(SandboxConfig())
    box.start()
    workdir = box.workdir
    del box
    gc.collect()
    assert workdir is not None and not os.path.exists(workdir)


def test_invalid_config_is_a_user_error() -> None:
    with pytest.raises(UserError, match="cell_timeout_s"):
        SubprocessSandbox(SandboxConfig(cell_timeout_s=0))
    with pytest.raises(UserError, match="context format"):
        SubprocessSandbox(SandboxConfig(context_format="xml"))  # type: ignore[arg-type]


def test_worker_side_code_imports_only_the_standard_library_and_its_own_side() -> None:
    """recorder/sandbox/worker/ runs in the sandbox's processes: it may not reach host code."""
    import ast

    sandbox_dir = Path(__file__).resolve().parent.parent / "recorder" / "sandbox"
    shared = ("recorder.sandbox.worker", "recorder.sandbox.protocol", "recorder.sandbox.contexts")
    modules = [
        *sorted((sandbox_dir / "worker").glob("*.py")),
        sandbox_dir / "protocol.py",
        sandbox_dir / "contexts.py",
    ]
    offending = []
    for module in modules:
        for node in ast.walk(ast.parse(module.read_text())):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else []
            if isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            for name in names:
                top = name.split(".")[0]
                if top not in sys.stdlib_module_names and top != "__future__" and not name.startswith(shared):
                    offending.append(f"{module.name}: {name}")
    assert len(modules) >= 13 and offending == []
