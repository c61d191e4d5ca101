"""The switch that makes real model requests impossible (``recorder.lm.guard``), as tests use it.

tests/conftest.py turns it off for the whole suite; these tests check that "off" really blocks
(before any byte reaches a server), that "loopback" lets only loopback servers through, and
that the setting is read from the package attribute first, then the environment.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from loopback import running_server
from recorder_fakes import write_task

import recorder.lm
from recorder.batch import RecordOptions, record
from recorder.engine import EngineOptions, run_rlm
from recorder.lm.base import Message
from recorder.lm.guard import ENV, ModelRequestsDisabled, allow_model_requests, model_requests_allowed
from recorder.lm.openai_backend import OpenAICompatLM
from recorder.lm.scripted import FunctionLM
from recorder.sandbox.scripted import ScriptedSandbox
from rlmine.errors import UserError

MSGS = [Message("user", "hi")]


def answering() -> FunctionLM:
    return FunctionLM(lambda _messages, **_: "hello", model="echo")


def test_the_suite_runs_with_model_requests_off() -> None:
    assert recorder.lm.ALLOW_MODEL_REQUESTS is False and model_requests_allowed() is False


def test_off_blocks_even_a_loopback_server_before_any_request_is_sent() -> None:
    with running_server(lambda _name: answering()) as server:
        lm = OpenAICompatLM("gpt-4o-mini", api_base=server.base_url, max_retries=0)
        with pytest.raises(ModelRequestsDisabled) as caught:
            lm.complete(MSGS)
        assert server.request_count == 0
    line = caught.value.one_line()
    assert line.startswith("real model requests are disabled (RLMINE_ALLOW_MODEL_REQUESTS")
    assert "refused: gpt-4o-mini at http://127.0.0.1:" in line and "— try a fake LM" in line
    assert "\n" not in line


def test_a_blocked_root_call_fails_the_run_loudly_instead_of_being_recorded(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-not-a-real-key")
    context = tmp_path / "c.txt"
    context.write_text("x\n")
    box = ScriptedSandbox(["never\n"])
    with pytest.raises(ModelRequestsDisabled, match=r"refused: gpt-4o-mini at https://api\.openai\.com/v1"):
        run_rlm("q", context, lm="gpt-4o-mini", options=EngineOptions(sandbox_factory=box.factory))
    assert box.executed == []


@pytest.mark.loopback_models
def test_loopback_lets_a_local_server_through_and_nothing_else(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REMOTE_KEY", "sk-not-a-real-key")
    assert model_requests_allowed() == "loopback"
    with running_server(lambda _name: answering()) as server:
        lm = OpenAICompatLM("echo", api_base=server.base_url, max_retries=0)
        assert lm.complete(MSGS).text == "hello" and server.request_count == 1
    remote = OpenAICompatLM("gpt-4o-mini", api_base="http://192.0.2.1:9/v1", api_key_env="REMOTE_KEY")
    with pytest.raises(ModelRequestsDisabled, match="only loopback model requests are allowed"):
        remote.complete(MSGS)  # refused at once: 192.0.2.1 (TEST-NET-1) would only time out


@pytest.mark.loopback_models
def test_a_batch_against_a_blocked_endpoint_records_the_refusal_and_calls_nothing(tmp_path: Path) -> None:
    task = write_task(tmp_path, instances=1)
    with running_server(lambda _name: answering()) as server, allow_model_requests(False):
        options = RecordOptions(models=("gpt-4o-mini",), api_base=server.base_url)
        result = record(task, db=tmp_path / "runs.duckdb", options=options)
        assert server.request_count == 0
    (run,) = result.runs
    assert run.status == "error" and run.error is not None
    assert run.error.startswith("ModelRequestsDisabled: real model requests are disabled")


def test_the_attribute_wins_over_the_environment_and_the_environment_is_read_when_unset(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(recorder.lm, "ALLOW_MODEL_REQUESTS", None)
    for raw, expected in (("0", False), ("off", False), ("loopback", "loopback"), ("1", True), ("", True)):
        monkeypatch.setenv(ENV, raw)
        assert model_requests_allowed() == expected, raw
    monkeypatch.delenv(ENV)
    assert model_requests_allowed() is True
    monkeypatch.setenv(ENV, "maybe")
    with pytest.raises(UserError, match="RLMINE_ALLOW_MODEL_REQUESTS='maybe' is not a setting"):
        model_requests_allowed()
    monkeypatch.setenv(ENV, "1")
    with allow_model_requests("loopback"):
        assert model_requests_allowed() == "loopback"
    assert recorder.lm.ALLOW_MODEL_REQUESTS is None and model_requests_allowed() is True
