"""The loopback OpenAI-compatible server, over raw HTTP, and the ``rlmine sim-server`` command."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
import textwrap
import threading
import time
import types
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest
import typer
from loopback import running_server, serve, serve_lm
from typer.testing import CliRunner

from recorder.lm import FunctionLM, LMError, LMResponse, Message, OpenAICompatLM, ScriptedLM
from recorder.lm.server import FaultConfig, SimServer
from rlmine.cli.simserver import register, sim_lm_factory
from rlmine.errors import UserError

# These tests talk to a loopback OpenAI-compatible server (see tests/conftest.py).
pytestmark = pytest.mark.loopback_models

ROOT = Path(__file__).resolve().parents[1]
CHAT = [{"role": "user", "content": "hello"}]


def post(base_url: str, body: Any, path: str = "/chat/completions") -> tuple[int, dict[str, Any], Any]:
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    request = urllib.request.Request(base_url + path, data=data, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, dict(response.headers), json.loads(response.read())
    except urllib.error.HTTPError as err:
        return err.code, dict(err.headers), json.loads(err.read())


def get(base_url: str, path: str) -> tuple[int, Any]:
    try:
        with urllib.request.urlopen(base_url + path, timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read())


# -- wire format ------------------------------------------------------------------------


def test_chat_completion_body_carries_usage_reasoning_and_metadata() -> None:
    reply = LMResponse(
        "done", "x", reasoning="r", tokens_in=4, tokens_out=2, metadata={"step_labels": [[1, 1, "peek"]]}
    )
    with serve_lm(FunctionLM(lambda m, **kw: reply)) as url:
        status, _, body = post(url, {"model": "sim", "messages": CHAT})
    assert status == 200 and body["object"] == "chat.completion" and body["model"] == "sim"
    message = body["choices"][0]["message"]
    assert message["content"] == "done" and message["reasoning_content"] == "r"
    assert message["rlmine_metadata"] == {"step_labels": [[1, 1, "peek"]]}
    assert body["usage"] == {"prompt_tokens": 4, "completion_tokens": 2, "total_tokens": 6}


def test_usage_is_omitted_when_unknown_and_content_parts_are_read() -> None:
    seen: list[list[Message]] = []

    def fn(messages: list[Message], **kwargs: Any) -> str:
        seen.append(messages)
        return "ok"

    parts = [{"role": "user", "content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}]}]
    with serve_lm(FunctionLM(fn)) as url:
        status, _, body = post(url, {"model": "m", "messages": parts})
    assert status == 200 and "usage" not in body
    assert seen == [[Message("user", "ab")]]


def test_models_endpoint_lists_advertised_and_served_models() -> None:
    with running_server(lambda m: ScriptedLM(["x"], model=m), models=["sim", "sim-sub"]) as server:
        post(server.base_url, {"model": "extra", "messages": CHAT})
        status, body = get(server.base_url, "/models")
    assert status == 200 and [m["id"] for m in body["data"]] == ["sim", "sim-sub", "extra"]


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        (b"{not json", "invalid request"),
        ({"model": "m"}, "messages"),
        ({"model": "m", "messages": CHAT, "temperature": "hot"}, "temperature"),
        ({"messages": CHAT}, "model"),
    ],
)
def test_bad_requests_get_400_in_openai_error_format(body: Any, fragment: str) -> None:
    with running_server(lambda m: ScriptedLM(["x"])) as server:
        status, _, reply = post(server.base_url, body)
        assert server.log[-1][1] == 400
    assert status == 400 and fragment in reply["error"]["message"]


def test_unknown_route_and_unknown_model() -> None:
    made: list[str] = []

    def factory(model: str) -> FunctionLM:
        made.append(model)
        if model != "sim":
            raise UserError(f"no model {model!r}", "--model sim")
        return FunctionLM(lambda m, **kw: "hi")

    with serve(factory) as url:
        assert get(url, "/nothing")[0] == 404
        status, _, body = post(url, {"model": "gpt-9", "messages": CHAT})
        assert (
            status == 404
            and body["error"]["code"] == "model_not_found"
            and "--model sim" in body["error"]["message"]
        )
        for _ in range(3):
            assert post(url, {"model": "sim", "messages": CHAT})[0] == 200
    assert made == ["gpt-9", "sim"]  # one factory call per model name


def test_a_crashing_lm_costs_one_500_not_the_server() -> None:
    lm = ScriptedLM([RuntimeError("bug in the LM"), "recovered"])
    with serve_lm(lm) as url:
        status, _, body = post(url, {"model": "m", "messages": CHAT})
        assert status == 500 and "RuntimeError: bug in the LM" in body["error"]["message"]
        assert (
            post(url, {"model": "m", "messages": CHAT})[2]["choices"][0]["message"]["content"] == "recovered"
        )


# -- faults -------------------------------------------------------------------------------


def test_faults_are_deterministic_by_request_number() -> None:
    faults = FaultConfig(rate_limit_every=3, error_500_every=4, malformed_every=5, slow_every=7)
    assert [faults.fault_for(n) for n in range(1, 13)] == [
        None, None, "rate_limit", "error_500", "malformed", "rate_limit",
        "slow", "error_500", "rate_limit", "malformed", None, "rate_limit",
    ]  # fmt: skip
    with pytest.raises(UserError, match="rate_limit_every"):
        FaultConfig(rate_limit_every=0)


def test_rate_limit_sends_retry_after_and_is_logged() -> None:
    with running_server(
        lambda m: ScriptedLM(["x"] * 4), faults=FaultConfig(rate_limit_every=3, retry_after_s=0.5)
    ) as server:
        answers = [post(server.base_url, {"model": "m", "messages": CHAT}) for _ in range(6)]
        assert server.request_count == 6
        assert server.log == [("m", 200), ("m", 200), ("m", 429), ("m", 200), ("m", 200), ("m", 429)]
    assert answers[2][1]["Retry-After"] == "0.5"


def test_malformed_fault_sends_broken_json() -> None:
    with serve(lambda m: ScriptedLM(["x"]), faults=FaultConfig(malformed_every=1)) as url:
        request = urllib.request.Request(
            url + "/chat/completions", data=json.dumps({"model": "m", "messages": CHAT}).encode()
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            raw = response.read()
    with pytest.raises(json.JSONDecodeError):
        json.loads(raw)


@pytest.mark.timeout(30)
def test_stop_wakes_slow_requests_and_releases_the_port() -> None:
    server = SimServer(lambda m: ScriptedLM(["x"]), faults=FaultConfig(slow_every=1, slow_s=60))
    url = server.start()
    caller = threading.Thread(target=lambda: post(url, {"model": "m", "messages": CHAT}), daemon=True)
    caller.start()
    while server.request_count == 0:
        time.sleep(0.01)
    started = time.perf_counter()
    server.stop()
    assert time.perf_counter() - started < 10
    with pytest.raises(urllib.error.URLError):
        urllib.request.urlopen(url + "/models", timeout=2)


def test_refuses_non_loopback_hosts_unless_allowed() -> None:
    with pytest.raises(UserError, match="non-loopback"):
        SimServer(lambda m: ScriptedLM([]), host="0.0.0.0")
    SimServer(lambda m: ScriptedLM([]), host="0.0.0.0", allow_remote=True)  # constructing does not bind
    SimServer(lambda m: ScriptedLM([]), host="localhost")


# -- the CLI command ------------------------------------------------------------------------


def test_factory_maps_sim_models_to_roles(monkeypatch: pytest.MonkeyPatch) -> None:
    made: list[dict[str, Any]] = []
    fake = types.ModuleType("recorder.simulator")
    fake.make_simulator_lm = lambda **kw: made.append(kw) or ScriptedLM([], model="sim")  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "recorder.simulator", fake)
    factory = sim_lm_factory(latency=0.1, seed=4)
    factory("sim")
    factory("sim-sub")
    assert made == [{"role": "root", "latency": 0.1, "seed": 4}, {"role": "sub", "latency": 0.1, "seed": 4}]
    with pytest.raises(UserError) as caught:
        factory("gpt-4o")
    assert "sim, sim-sub" in caught.value.one_line()


def test_help_names_the_simulator_and_fault_options() -> None:
    app = typer.Typer()
    app.callback()(lambda: None)
    register(app)
    result = CliRunner().invoke(app, ["sim-server", "--help"], env={"COLUMNS": "200", "NO_COLOR": "1"})
    assert result.exit_code == 0
    for text in ("SIMULATOR", "--rate-limit-every", "--malformed-every", "--slow-s", "--latency"):
        assert text in result.output


_CLI = textwrap.dedent(
    """
    import sys, types, typer
    from recorder.lm import FunctionLM
    fake = types.ModuleType("recorder.simulator")
    if sys.argv[1] == "with-sim":
        fake.make_simulator_lm = lambda role, **kw: FunctionLM(lambda m, **k: f"{role} says hi", model="sim")
    sys.modules["recorder.simulator"] = fake
    from rlmine.cli.simserver import register
    app = typer.Typer()
    app.callback()(lambda: None)
    register(app)
    app(sys.argv[2:])
    """
)


def _cli(mode: str, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", _CLI, mode, "sim-server", *args],
        cwd=ROOT,
        env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin", "COLUMNS": "200"},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


@pytest.mark.timeout(60)
def test_cli_serves_until_interrupted() -> None:
    proc = _cli("with-sim", "--port", "0", "--rate-limit-every", "2", "--retry-after", "0.05")
    try:
        assert proc.stdout is not None
        first = proc.stdout.readline()
        match = re.search(r"(http://127\.0\.0\.1:\d+/v1)", first)
        assert match, first
        url = match.group(1)
        assert "--api-base" in proc.stdout.readline()
        root = OpenAICompatLM("sim", api_base=url, backoff_base_s=0.001)
        assert root.complete([Message("user", "q")]).text == "root says hi"
        sub = OpenAICompatLM("sim-sub", api_base=url, backoff_base_s=0.001).complete([Message("user", "q")])
        assert sub.text == "sub says hi" and sub.metadata["http_status_history"] == [429, 200]
        with pytest.raises(LMError, match="sim-sub"):
            OpenAICompatLM("gpt-4o", api_base=url, max_retries=1).complete([Message("user", "q")])
        proc.send_signal(signal.SIGINT)
        out, _ = proc.communicate(timeout=20)
    finally:
        proc.kill()
    assert proc.returncode == 0 and "Stopped." in out


@pytest.mark.timeout(60)
def test_cli_reports_a_missing_simulator_in_one_line() -> None:
    proc = _cli("without-sim")
    out, _ = proc.communicate(timeout=30)
    assert proc.returncode == 1
    assert out.startswith("Error: the simulator backend cannot be loaded") and "Traceback" not in out
