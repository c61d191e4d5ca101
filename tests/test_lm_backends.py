"""LM backends over real loopback HTTP: the OpenAI SDK client, our retry policy, prices, the registry."""

from __future__ import annotations

import importlib.util
import json
import sys
import threading
import time
import types
from pathlib import Path
from typing import Any

import httpx2
import openai
import pytest
from loopback import running_server, serve_lm

from recorder.lm import (
    KNOWN_BACKENDS,
    FunctionLM,
    LMError,
    LMResponse,
    Message,
    OpenAICompatLM,
    ScriptedLM,
    load_prices,
    make_lm,
)
from recorder.lm.guard import allow_model_requests
from recorder.lm.openai_backend import resolve_api_key
from recorder.lm.pricing import bundled_prices
from recorder.lm.retry import RetryPolicy, parse_retry_after
from recorder.lm.server import FaultConfig
from recorder.lm.wire import read_completion
from rlmine.errors import RlmineRuntimeError, UserError

# These tests talk to a loopback OpenAI-compatible server (see tests/conftest.py).
pytestmark = pytest.mark.loopback_models

MSGS = [Message("system", "be brief"), Message("user", "Question: hello?")]


def usage_lm(
    text: str = "ok", *, sleep_s: float = 0.0, seen: list[dict[str, Any]] | None = None
) -> FunctionLM:
    def fn(messages: list[Message], **kwargs: Any) -> LMResponse:
        if seen is not None:
            seen.append({"messages": messages, **kwargs})
        time.sleep(sleep_s)
        return LMResponse(text=text, model="whatever", tokens_in=11, tokens_out=7)

    return FunctionLM(fn)


def client(base_url: str, model: str = "gpt-4o-mini", **options: Any) -> OpenAICompatLM:
    options.setdefault("backoff_base_s", 0.001)
    options.setdefault("timeout_s", 5)
    return OpenAICompatLM(model, api_base=base_url, **options)


# -- the happy path ---------------------------------------------------------------------


def test_usage_latency_cost_and_forwarded_parameters() -> None:
    seen: list[dict[str, Any]] = []
    with serve_lm(usage_lm("the answer", sleep_s=0.05, seen=seen)) as url:
        reply = client(url).complete(MSGS, temperature=0.3, seed=7, max_tokens=99)
    assert reply.text == "the answer"
    assert (reply.tokens_in, reply.tokens_out) == (11, 7)
    assert reply.latency_s >= 0.05
    assert reply.cost == pytest.approx((11 * 0.15 + 7 * 0.6) / 1e6)
    assert reply.metadata["retries"] == 0 and reply.metadata["http_status_history"] == [200]
    assert seen[0]["messages"] == MSGS
    assert (seen[0]["temperature"], seen[0]["seed"], seen[0]["max_tokens"]) == (0.3, 7, 99)


def test_unreported_usage_stays_none_and_unknown_model_costs_none() -> None:
    with serve_lm(FunctionLM(lambda messages, **kw: "no usage")) as url:
        reply = client(url, model="my-local-model").complete(MSGS)
    assert reply.text == "no usage"
    assert reply.tokens_in is None and reply.tokens_out is None and reply.cost is None


def test_reasoning_and_rlmine_metadata_survive_http() -> None:
    labels = [[1, 3, "peek"], [4, 4, "submit"]]
    lm = FunctionLM(
        lambda m, **kw: LMResponse("code", "sim", reasoning="I think", metadata={"step_labels": labels})
    )
    with serve_lm(lm) as url:
        reply = client(url, model="sim").complete(MSGS)
    assert reply.reasoning == "I think"
    assert reply.metadata["step_labels"] == labels
    assert reply.metadata["retries"] == 0


def test_reasoning_read_from_either_field_name() -> None:
    base = {"model": "m", "choices": [{"message": {"content": "x"}}]}
    for name in ("reasoning_content", "reasoning"):
        base["choices"][0]["message"][name] = "why"  # type: ignore[index]
        assert read_completion(base).reasoning == "why"


# -- retries ------------------------------------------------------------------------


def test_429_honours_retry_after_then_succeeds() -> None:
    faults = FaultConfig(rate_limit_every=2, retry_after_s=0.2)
    with running_server(lambda _m: usage_lm(), faults=faults) as server:
        lm = client(server.base_url)
        lm.complete(MSGS)  # request 1: fine
        started = time.perf_counter()
        reply = lm.complete(MSGS)  # request 2: 429, request 3: fine
        waited = time.perf_counter() - started
    assert reply.metadata["retries"] == 1
    assert reply.metadata["http_status_history"] == [429, 200]
    assert 0.18 <= waited < 2.0  # backoff alone would be ~1 ms
    assert [status for _, status in server.log] == [200, 429, 200]


def test_retry_after_is_capped_by_backoff_max() -> None:
    with serve_lm(usage_lm(), faults=FaultConfig(rate_limit_every=2, retry_after_s=30)) as url:
        lm = client(url, backoff_max_s=0.05)
        lm.complete(MSGS)
        started = time.perf_counter()
        assert lm.complete(MSGS).metadata["retries"] == 1
        assert time.perf_counter() - started < 5


@pytest.mark.parametrize(
    ("faults", "first_status"),
    [
        (FaultConfig(error_500_every=2), 500),
        (FaultConfig(malformed_every=2), 200),
    ],
)
def test_server_error_and_malformed_body_are_retried(faults: FaultConfig, first_status: int) -> None:
    with serve_lm(usage_lm("fine"), faults=faults) as url:
        lm = client(url)
        lm.complete(MSGS)
        reply = lm.complete(MSGS)
    assert reply.text == "fine"
    assert reply.metadata["http_status_history"] == [first_status, 200]
    assert reply.metadata["retries"] == 1


def test_slow_response_times_out_and_is_retried() -> None:
    with serve_lm(usage_lm("late but fine"), faults=FaultConfig(slow_every=2, slow_s=3.0)) as url:
        lm = client(url, timeout_s=0.3)
        lm.complete(MSGS)
        started = time.perf_counter()
        reply = lm.complete(MSGS)
        elapsed = time.perf_counter() - started
    assert reply.text == "late but fine"
    assert reply.metadata["http_status_history"] == [None, 200]
    assert "timed out" in reply.metadata["retry_reasons"][0]
    assert elapsed < 3.0


def test_non_retryable_400_fails_at_once_with_one_line() -> None:
    def refuse(messages: list[Message], **kwargs: Any) -> str:
        raise UserError("prompt too long\nfor this model", "shorter prompt")

    with running_server(lambda _m: FunctionLM(refuse)) as server:
        with pytest.raises(LMError) as caught:
            client(server.base_url).complete(MSGS)
        assert server.request_count == 1
    line = caught.value.one_line()
    assert "\n" not in line and "HTTP 400" in line and "prompt too long for this model" in line


def test_exhausted_retries_raise_lm_error() -> None:
    faults = FaultConfig(rate_limit_every=1, retry_after_s=0.01)
    with running_server(lambda _m: usage_lm(), faults=faults) as server:
        with pytest.raises(LMError, match=r"gave up after 3 attempts.*HTTP 429"):
            client(server.base_url, max_retries=2).complete(MSGS)
        assert server.request_count == 3


def test_unreachable_server_is_a_connection_error() -> None:
    with serve_lm(usage_lm()) as url:
        pass  # the port is free again now
    with pytest.raises(LMError, match="connection error"):
        client(url, max_retries=1).complete(MSGS)


def test_parse_retry_after_forms() -> None:
    assert parse_retry_after({"Retry-After": "2"}) == 2.0
    assert parse_retry_after({"retry-after-ms": "250", "Retry-After": "9"}) == 0.25
    assert parse_retry_after({"Retry-After": "Wed, 21 Oct 2015 07:28:10 GMT"}, now=1445412480.0) == 10.0
    assert parse_retry_after({"Retry-After": "soon"}) is None
    assert parse_retry_after(None) is None


def test_backoff_is_exponential_with_full_jitter_and_capped() -> None:
    policy = RetryPolicy(max_retries=6, backoff_base_s=0.5, backoff_max_s=3.0)
    assert [policy.delay(n, None, lambda: 1.0) for n in range(5)] == [0.5, 1.0, 2.0, 3.0, 3.0]
    assert policy.delay(4, None, lambda: 0.0) == 0.0
    assert policy.delay(0, 99.0, lambda: 0.0) == 3.0
    with pytest.raises(UserError):
        RetryPolicy(max_retries=-1)


# -- concurrency --------------------------------------------------------------------


def test_one_client_shared_by_16_threads() -> None:
    echo = FunctionLM(lambda messages, **kw: messages[-1].content.upper())
    results: dict[int, str] = {}
    with serve_lm(echo) as url:
        lm = client(url)

        def work(i: int) -> None:
            results[i] = lm.complete([Message("user", f"thread {i}")]).text

        threads = [threading.Thread(target=work, args=(i,)) for i in range(16)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=30)
    assert results == {i: f"THREAD {i}" for i in range(16)}


def test_server_answers_in_parallel() -> None:
    with serve_lm(usage_lm(sleep_s=0.3)) as url:
        lm = client(url)
        lm.complete(MSGS)  # warm the connection pool
        threads = [threading.Thread(target=lm.complete, args=(MSGS,)) for _ in range(8)]
        started = time.perf_counter()
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=30)
        elapsed = time.perf_counter() - started
    assert elapsed < 4 * 0.3  # serial would take 8 × 0.3 s


# -- prices ---------------------------------------------------------------------------


def test_price_lookup_is_exact_modulo_prefix_and_date() -> None:
    table = bundled_prices()
    assert table.cost("gpt-4o-mini", 1_000_000, 0) == pytest.approx(0.15)
    assert table.cost("openai/gpt-4o-mini-2024-07-18", 0, 1_000_000) == pytest.approx(0.6)
    assert table.cost("gpt-4o-mini-turbo-ultra", 10, 10) is None
    assert table.cost("gpt-4o-mini", None, 10) is None


def test_price_override_file_and_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    file = tmp_path / "prices.json"
    file.write_text(
        json.dumps(
            {"models": {"my-model": {"input": 1.0, "output": 2.0}, "gpt-4o-mini": {"input": 9, "output": 9}}}
        )
    )
    table = load_prices(file)
    assert table.cost("my-model", 1_000_000, 1_000_000) == pytest.approx(3.0)
    assert table.cost("gpt-4o-mini", 1_000_000, 0) == pytest.approx(9.0)
    assert table.cost("gpt-4o", 1_000_000, 0) == pytest.approx(2.5)  # bundled entries kept
    monkeypatch.setenv("RLMINE_PRICES", str(file))
    assert load_prices().cost("my-model", 1_000_000, 0) == pytest.approx(1.0)
    file.write_text(json.dumps({"models": {"bad": {"input": -1, "output": 1}}}))
    with pytest.raises(UserError, match="non-negative"):
        load_prices(file)
    with pytest.raises(UserError, match="not found"):
        load_prices(tmp_path / "missing.json")


# -- API keys and the registry ----------------------------------------------------------


def test_missing_api_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MY_KEY", raising=False)
    with pytest.raises(UserError, match="MY_KEY"):
        OpenAICompatLM("gpt-4o-mini", api_key_env="MY_KEY")
    with pytest.raises(UserError, match="MY_KEY"):
        resolve_api_key("MY_KEY", "https://api.example.com/v1")
    assert resolve_api_key("MY_KEY", "http://localhost:8000/v1")
    with serve_lm(usage_lm("keyless")) as url:
        assert OpenAICompatLM("m", api_base=url, api_key_env="MY_KEY").complete(MSGS).text == "keyless"
    monkeypatch.setenv("MY_KEY", "sk-test")
    assert resolve_api_key("MY_KEY", None) == "sk-test"


def test_registry_builds_and_refuses_with_choices() -> None:
    base = "http://127.0.0.1:9/v1"
    assert make_lm("gpt-4o-mini", api_base=base).model == "gpt-4o-mini"
    assert make_lm("openai/gpt-4o-mini", api_base=base).model == "gpt-4o-mini"
    assert make_lm("meta-llama/Llama-3.1-8B", api_base=base).model == "meta-llama/Llama-3.1-8B"
    assert make_lm("qwen2.5:7b", api_base=base, latency=None, timeout_s=5).model == "qwen2.5:7b"
    for spec in ("", "anthropic/claude-3-5-haiku", "sim/fast"):
        with pytest.raises(UserError) as caught:
            make_lm(spec, api_base=base)
        assert "litellm/" in caught.value.one_line() or "sim" in caught.value.one_line()
    with pytest.raises(UserError, match="latency"):
        make_lm("gpt-4o-mini", api_base=base, latency=1.0)
    assert {"sim", "litellm/", "openai/"} <= set(KNOWN_BACKENDS)


def test_registry_sim_entry_calls_the_simulator(monkeypatch: pytest.MonkeyPatch) -> None:
    made: list[dict[str, Any]] = []
    fake = types.ModuleType("recorder.simulator")

    def make_simulator_lm(**kwargs: Any) -> ScriptedLM:
        made.append(kwargs)
        return ScriptedLM([], model="sim")

    fake.make_simulator_lm = make_simulator_lm  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "recorder.simulator", fake)
    assert make_lm("sim", role="sub", latency=0.5, seed=3).model == "sim"
    assert made == [{"role": "sub", "latency": 0.5, "seed": 3}]
    monkeypatch.setitem(sys.modules, "recorder.simulator", types.ModuleType("recorder.simulator"))
    with pytest.raises(RlmineRuntimeError, match="simulator backend cannot be loaded"):
        make_lm("sim")


# -- LiteLLM ------------------------------------------------------------------------------


def test_litellm_missing_gives_install_hint() -> None:
    if importlib.util.find_spec("litellm") is not None:
        pytest.skip("litellm is installed here")
    with pytest.raises(UserError) as caught:
        make_lm("litellm/anthropic/claude-3-5-haiku")
    assert "pip install 'rlmine[litellm]'" in caught.value.one_line()


def test_litellm_backend_shares_the_retry_policy(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[dict[str, Any]] = []
    fake = types.ModuleType("litellm")

    def completion(**kwargs: Any) -> dict[str, Any]:
        calls.append(kwargs)
        if len(calls) == 1:
            request = httpx2.Request("POST", "https://provider.test/v1/messages")
            response = httpx2.Response(429, headers={"retry-after-ms": "10"}, request=request)
            raise openai.RateLimitError("slow down", response=response, body=None)
        return {
            "model": "claude-3-5-haiku",
            "choices": [{"message": {"content": "bonjour", "reasoning_content": "hmm"}}],
            "usage": {"prompt_tokens": 1_000_000, "completion_tokens": 0},
        }

    fake.completion = completion  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "litellm", fake)
    lm = make_lm("litellm/anthropic/claude-3-5-haiku", backoff_base_s=5.0)
    with allow_model_requests(True):  # the fake module above is the only "provider" reached
        reply = lm.complete(MSGS, temperature=0.0)
    assert reply.text == "bonjour" and reply.reasoning == "hmm"
    assert reply.metadata["http_status_history"] == [429, 200]
    assert reply.cost == pytest.approx(0.8)
    assert calls[0]["num_retries"] == 0 and calls[0]["model"] == "anthropic/claude-3-5-haiku"


# -- fakes ---------------------------------------------------------------------------------


def test_scripted_lm_records_calls_and_raises_scripted_errors() -> None:
    boom = LMError("provider down")
    lm = ScriptedLM(["first", boom, LMResponse("third", "x", tokens_in=3)], model="fake")
    assert lm.complete(MSGS, seed=1).text == "first"
    with pytest.raises(LMError, match="provider down"):
        lm.complete([Message("user", "again")])
    assert lm.complete(MSGS).tokens_in == 3
    with pytest.raises(LMError, match="ran out of replies"):
        lm.complete(MSGS)
    assert lm.calls[0] == MSGS and lm.calls[1] == [Message("user", "again")]
    assert lm.call_options[0]["seed"] == 1


def test_scripted_lm_is_thread_safe() -> None:
    lm = ScriptedLM([f"r{i}" for i in range(32)])
    got: list[str] = []
    lock = threading.Lock()

    def work() -> None:
        text = lm.complete(MSGS).text
        with lock:
            got.append(text)

    threads = [threading.Thread(target=work) for _ in range(32)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(got) == sorted(f"r{i}" for i in range(32)) and len(lm.calls) == 32


def test_function_lm_rejects_wrong_return_type() -> None:
    with pytest.raises(TypeError, match="expected str or LMResponse"):
        FunctionLM(lambda messages, **kw: 42).complete(MSGS)  # type: ignore[arg-type, return-value]
