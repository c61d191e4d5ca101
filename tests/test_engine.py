"""The RLM engine end to end: real subprocess sandbox, real HTTP, real DuckDB.

The root and sub models are FunctionLMs behind the loopback OpenAI-compatible server;
the engine talks to them through OpenAICompatLM (the openai SDK and our retry policy),
exactly as it would talk to a provider.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from loopback import running_server, serve
from recorder_fakes import turn_number

from recorder.batch import RecordOptions, record
from recorder.engine import EngineOptions, run_rlm
from recorder.lm.base import LMResponse, Message
from recorder.lm.openai_backend import OpenAICompatLM
from recorder.lm.scripted import FunctionLM
from recorder.lm.server import FaultConfig
from recorder.prompts import NO_CODE_REMINDER
from recorder.sandbox.base import SandboxError
from recorder.sandbox.scripted import ScriptedSandbox
from recorder.tasks import Budget
from rlmine.errors import UserError
from rlmine.store import Store
from rlmine.store._queries import get_trace, list_runs
from rlmine.trace import Trace

# These tests talk to a loopback OpenAI-compatible server (see tests/conftest.py).
pytestmark = pytest.mark.loopback_models

Script = Callable[[int, list[Message]], str | LMResponse]


class Root:
    """A scripted root model: ``script(turn, messages)``; keeps every conversation it saw."""

    def __init__(self, script: Script, model: str = "fake-root") -> None:
        self.script, self.model = script, model
        self.seen: list[list[Message]] = []
        self.options: list[dict[str, Any]] = []

    def __call__(self, messages: list[Message], **options: Any) -> str | LMResponse:
        self.seen.append(messages)
        self.options.append(options)
        return self.script(turn_number(messages), messages)


def steps(*replies: str) -> Script:
    """Reply with ``replies[turn]``; the last one repeats."""
    return lambda turn, _messages: replies[min(turn, len(replies) - 1)]


@contextmanager
def http_models(
    root: Root, sub: FunctionLM | None = None, faults: FaultConfig | None = None, **client: Any
) -> Iterator[tuple[OpenAICompatLM, OpenAICompatLM]]:
    """The root and sub models behind one loopback server, and clients for both."""
    lms = {"fake-root": FunctionLM(root, model="fake-root"), "fake-sub": sub or echo_sub()}
    with serve(lambda name: lms[name], faults=faults) as url:
        opts = {"backoff_base_s": 0.01, "backoff_max_s": 0.5, **client}
        root_lm = OpenAICompatLM("fake-root", api_base=url, **opts)
        sub_lm = OpenAICompatLM("fake-sub", api_base=url, **opts)
        try:
            yield root_lm, sub_lm
        finally:
            root_lm.close()
            sub_lm.close()


def echo_sub(delay_s: float = 0.0) -> FunctionLM:
    def reply(messages: list[Message], **_: Any) -> LMResponse:
        if delay_s:
            time.sleep(delay_s)
        prompt = messages[-1].content
        return LMResponse(text=prompt.upper(), model="fake-sub", tokens_in=len(prompt), tokens_out=3)

    return FunctionLM(reply, model="fake-sub")


@pytest.fixture
def context_file(tmp_path: Path) -> Path:
    path = tmp_path / "log.txt"
    path.write_text("".join(f"{i} {'ERROR' if i % 3 == 0 else 'ok'} event\n" for i in range(30)))
    return path


def run(
    root: Root,
    context: Path,
    *,
    budget: Budget | None = None,
    sub: FunctionLM | None = None,
    faults: FaultConfig | None = None,
    **client: Any,
) -> Trace:
    with http_models(root, sub, faults, **client) as (root_lm, sub_lm):
        options = EngineOptions(budget=budget or Budget(cell_timeout_s=20), temperature=0.3, seed=7)
        return run_rlm("How many ERROR lines?", context, lm=root_lm, sub_lm=sub_lm, options=options)


def stored(tmp_path: Path, trace: Trace) -> Trace:
    """Save ``trace`` in a fresh database and read it back."""
    store = Store.open(tmp_path / "engine.duckdb", create=True)
    store.save_traces([trace])
    with store.reader() as con:
        return get_trace(con, trace.run.id)


# -- a whole run, stored ---------------------------------------------------------------


def test_a_multi_iteration_run_is_stored_completely(tmp_path: Path, context_file: Path) -> None:
    task = tmp_path / "task.yaml"
    task.write_text(
        "name: count-errors\nquestion: How many ERROR lines?\nchecker: exact\n"
        "budget: {max_iterations: 6, cell_timeout_s: 20}\n"
        f"instances:\n  - {{id: i0, split: train, context: {context_file.name}, expected: 10}}\n"
    )
    script = steps(
        "First the format.\n```python\nlines = context.splitlines()\nprint(len(lines), lines[0])\n```",
        "Now a mistake.\n```python\nprint('before')\n```\n```python\nprint(counts['x'])\n```\n"
        "```python\nprint('after')\n```",
        "Ask the sub-LLM.\n```python\none = llm_query('hello')\n"
        "many = llm_query_batched(['a', 'b', 'c'])\nprint(one, many)\n"
        "errors = [l for l in lines if 'ERROR' in l]\n```",
        "Done.\n```python\nSUBMIT(len(errors))\n```",
    )

    def reply(turn: int, messages: list[Message]) -> LMResponse:
        text = script(turn, messages)
        assert isinstance(text, str)
        return LMResponse(
            text, "fake-root", reasoning=f"thinking {turn}", tokens_in=100 + turn, tokens_out=20
        )

    root = Root(reply)
    lms = {"fake-root": FunctionLM(root), "fake-sub": echo_sub()}
    db = tmp_path / "runs.duckdb"
    with serve(lambda name: lms[name]) as url:
        options = RecordOptions(models=("fake-root",), sub_model="fake-sub", api_base=url, seeds=(5,))
        result = record(task, db=db, options=options)
    assert result.by_status == {"submitted": 1}

    store = Store.open(db)
    with store.reader() as con:
        listed = list_runs(con)
        trace = get_trace(con, str(listed["id"][0]))
    run = trace.run
    assert (run.status, run.final_answer, run.score, run.correct) == ("submitted", "10", 1.0, True)
    assert run.root_model == "fake-root" and run.sub_model == "fake-sub" and run.error is None
    assert run.question == "How many ERROR lines?" and run.expected == "10"
    assert run.params["seed"] == 5 and run.params["budget"]["max_iterations"] == 6
    assert run.context.bytes == context_file.stat().st_size and run.context.sha256

    its = trace.iterations
    assert [it.index for it in its] == [0, 1, 2, 3]
    assert its[0].code == "lines = context.splitlines()\nprint(len(lines), lines[0])"
    assert its[0].stdout == "30 0 ERROR event\n" and its[0].error is None
    assert its[0].reasoning == "thinking 0\n\nFirst the format."
    assert its[1].error_kind == "code" and "NameError" in (its[1].error or "")
    # Recorded through the spool: each block with its own output, error and "ran" flag.
    b = its[1].blocks
    assert [(x.index, x.code, x.ran) for x in b] == [
        (0, "print('before')", True),
        (1, "print(counts['x'])", True),
        (2, "print('after')", False),
    ]
    assert (b[0].stdout, b[0].error) == ("before\n", None)
    assert b[1].stdout == "" and b[1].error_kind == "code" and "NameError" in (b[1].error or "")
    assert (b[2].stdout, b[2].error, b[2].duration_s) == (None, None, None)
    assert its[1].stdout == "before\n" and its[1].error == b[1].error
    assert [len(it.blocks) for it in its] == [1, 3, 1, 1]
    assert its[2].stdout == "HELLO ['A', 'B', 'C']\n"
    assert its[3].submitted and not its[2].submitted
    for it in its:
        assert it.duration_s is not None and 0 < it.duration_s < 10
        assert it.root_latency_s is not None and it.root_latency_s > 0
        assert (it.root_tokens_in, it.root_tokens_out) == (100 + it.index, 20)

    roots = [c for c in trace.calls if c.role == "root"]
    subs = sorted((c for c in trace.calls if c.role == "sub"), key=lambda c: c.prompt or "")
    assert [c.iteration for c in roots] == [0, 1, 2, 3]
    assert roots[1].prompt is not None and roots[1].prompt.startswith("30 0 ERROR event")
    assert roots[0].reasoning == "thinking 0" and roots[0].model == "fake-root"
    assert [(c.prompt, c.response, c.iteration) for c in subs] == [
        ("a", "A", 2),
        ("b", "B", 2),
        ("c", "C", 2),
        ("hello", "HELLO", 2),
    ]
    for call in subs:
        assert call.model == "fake-sub" and call.tokens_in == len(call.prompt or "")
        assert call.tokens_out == 3 and call.latency_s is not None and call.latency_s > 0
    assert (run.n_iterations, run.n_llm_calls, run.n_sub_calls) == (4, 8, 4)
    assert run.tokens_in == sum(100 + i for i in range(4)) + len("hello") + 3
    assert run.tokens_out == 4 * 20 + 4 * 3
    assert run.wall_s is not None and run.wall_s > sum(it.duration_s or 0 for it in its)
    # Every root call was sent the run's seed and temperature (None: the task sets none).
    assert all(o["seed"] == 5 for o in root.options)


def test_llm_query_batched_reaches_the_server_in_parallel(tmp_path: Path, context_file: Path) -> None:
    active = peak = 0
    lock = threading.Lock()

    def slow(messages: list[Message], **_: Any) -> LMResponse:
        nonlocal active, peak
        with lock:
            active += 1
            peak = max(peak, active)
        time.sleep(0.3)
        with lock:
            active -= 1
        prompt = messages[-1].content
        return LMResponse(prompt[::-1], "fake-sub", tokens_in=len(prompt), tokens_out=len(prompt) + 1)

    root = Root(
        steps(
            "```python\nout = llm_query_batched([f'p{i}' for i in range(6)])\nprint(out)\n```",
            "```python\nSUBMIT(out)\n```",
        )
    )
    trace = stored(tmp_path, run(root, context_file, sub=FunctionLM(slow)))
    first = trace.iterations[0]
    assert first.stdout == "['0p', '1p', '2p', '3p', '4p', '5p']\n"
    assert peak >= 4  # the six prompts overlapped at the server
    assert first.duration_s is not None and first.duration_s < 3 * 0.3
    subs = [c for c in trace.calls if c.role == "sub"]
    assert sorted((c.prompt, c.tokens_in, c.tokens_out) for c in subs) == [(f"p{i}", 2, 3) for i in range(6)]
    assert all(c.latency_s is not None and c.latency_s >= 0.3 for c in subs)
    assert (
        trace.run.status == "submitted" and trace.run.final_answer == '["0p", "1p", "2p", "3p", "4p", "5p"]'
    )


def test_429_with_retry_after_and_500_are_retried_and_the_run_completes(
    tmp_path: Path, context_file: Path
) -> None:
    root = Root(
        steps(
            "```python\nprint(llm_query_batched(['x', 'y']))\n```",
            "```python\nprint(llm_query('z'))\n```",
            "```python\nSUBMIT('ok')\n```",
        )
    )
    faults = FaultConfig(rate_limit_every=2, retry_after_s=0.05, error_500_every=3)
    lms = {"fake-root": FunctionLM(root), "fake-sub": echo_sub()}
    with running_server(lambda name: lms[name], faults=faults) as server:
        opts: dict[str, Any] = {"backoff_base_s": 0.01, "backoff_max_s": 0.5}
        root_lm = OpenAICompatLM("fake-root", api_base=server.base_url, **opts)
        sub_lm = OpenAICompatLM("fake-sub", api_base=server.base_url, **opts)
        trace = run_rlm("q", context_file, lm=root_lm, sub_lm=sub_lm)
        statuses = [status for _model, status in server.log]
    trace = stored(tmp_path, trace)
    assert trace.run.status == "submitted" and trace.run.final_answer == "ok"
    assert 429 in statuses and 500 in statuses and statuses.count(200) == 3 + 3
    assert [it.stdout for it in trace.iterations[:2]] == ["['X', 'Y']\n", "Z\n"]
    histories = [c.metadata.get("http_status_history") for c in trace.calls]
    assert sum(c.metadata.get("retries", 0) for c in trace.calls) == len(statuses) - 6
    assert any(h and h[0] in (429, 500) and h[-1] == 200 for h in histories)


# -- how a run ends --------------------------------------------------------------------


def test_budget_exhaustion_asks_for_the_answer_once_more(tmp_path: Path, context_file: Path) -> None:
    def script(turn: int, messages: list[Message]) -> str:
        if messages[-1].content.startswith("Budget exhausted"):
            return "Out of steps.\n```python\nSUBMIT(partial)\n```"
        return f"Still exploring.\n```python\npartial = {turn}\nprint(partial)\n```"

    root = Root(script)
    trace = stored(tmp_path, run(root, context_file, budget=Budget(max_iterations=3, cell_timeout_s=20)))
    assert trace.run.status == "budget_exhausted" and trace.run.final_answer == "2"
    assert len(trace.iterations) == 4 and trace.iterations[-1].submitted
    assert [it.metadata["final_turn"] for it in trace.iterations] == [False, False, False, True]
    last = root.seen[-1]
    assert last[-1].role == "user" and last[-1].content.startswith("Budget exhausted: all 3 steps are used")
    assert last[-2].content.startswith("2\n") and "Budget: 0 steps left" in last[-2].content


def test_budget_exhaustion_without_an_answer(tmp_path: Path, context_file: Path) -> None:
    root = Root(steps("```python\nprint(1)\n```", "```python\nprint(1)\n```", "I cannot say."))
    trace = stored(tmp_path, run(root, context_file, budget=Budget(max_iterations=2, cell_timeout_s=20)))
    assert trace.run.status == "budget_exhausted" and trace.run.final_answer is None
    assert trace.iterations[-1].error_kind == "parse" and len(trace.iterations) == 3


def test_a_reply_without_code_counts_and_gets_a_reminder(tmp_path: Path, context_file: Path) -> None:
    root = Root(steps("Let me think about it first.", "```python\nSUBMIT(len(context))\n```"))
    trace = stored(tmp_path, run(root, context_file))
    assert trace.run.status == "submitted" and trace.run.n_iterations == 2
    first = trace.iterations[0]
    assert (
        first.code is None
        and first.error_kind == "parse"
        and first.reasoning == "Let me think about it first."
    )
    assert root.seen[1][-2:] == [
        Message("assistant", "Let me think about it first."),
        Message("user", NO_CODE_REMINDER),
    ]


def test_several_blocks_run_in_order_and_share_variables(tmp_path: Path, context_file: Path) -> None:
    reply = (
        "Two steps.\n```python\nn = len(context.splitlines())\nprint('n', n)\n```\n"
        "then\n```repl\nprint('double', n * 2)\n```"
    )
    failing = "```python\nprint('a')\nraise ValueError('boom')\n```\n```python\nprint('never')\n```"
    root = Root(steps(reply, failing, "```python\nSUBMIT(n)\n```"))
    trace = stored(tmp_path, run(root, context_file))
    first, second = trace.iterations[:2]
    assert first.code == "n = len(context.splitlines())\nprint('n', n)\n\nprint('double', n * 2)"
    assert first.stdout == "n 30\ndouble 60\n" and first.metadata["blocks"] == 2
    assert first.reasoning == "Two steps.\n\nthen"
    assert second.stdout == "a\n" and "ValueError: boom" in (second.error or "")
    feedback = root.seen[2][-1].content
    assert "never" not in feedback and "Error (code): " in feedback
    assert [(b.code, b.stdout, b.ran) for b in first.blocks] == [
        ("n = len(context.splitlines())\nprint('n', n)", "n 30\n", True),
        ("print('double', n * 2)", "double 60\n", True),
    ]
    assert [(b.stdout, b.error is not None, b.ran) for b in second.blocks] == [
        ("a\n", True, True),
        (None, False, False),
    ]
    assert second.blocks[0].duration_s is not None and second.block_errors == (second.error,)
    assert trace.run.final_answer == "30"


def test_a_root_lm_failure_ends_the_run_with_status_error(tmp_path: Path, context_file: Path) -> None:
    def script(turn: int, _messages: list[Message]) -> str:
        if turn == 1:
            raise RuntimeError("model crashed")  # the server answers 500, every time
        return "```python\nx = 1\n```"

    trace = stored(tmp_path, run(Root(script), context_file, max_retries=1))
    assert trace.run.status == "error" and trace.run.final_answer is None
    assert trace.run.error is not None and trace.run.error.startswith("root LM failed: fake-root at ")
    assert "gave up after 2 attempts" in trace.run.error
    last = trace.iterations[-1]
    assert (last.index, last.error_kind, last.code) == (1, "lm", None)
    failed = [c for c in trace.calls if c.role == "root"][-1]
    assert failed.response is None and failed.error is not None and "HTTP 500" in failed.error


def test_a_worker_crash_restarts_the_repl_and_the_run_goes_on(tmp_path: Path, context_file: Path) -> None:
    root = Root(
        steps(
            "```python\nkept = 1\nimport os\nos._exit(3)\n```",
            "```python\nprint('kept' in globals(), len(context))\nSUBMIT('alive')\n```",
        )
    )
    trace = stored(tmp_path, run(root, context_file))
    assert trace.run.status == "submitted" and trace.run.final_answer == "alive"
    assert trace.iterations[0].error_kind == "sandbox" and trace.iterations[0].metadata["restarted"] is True
    assert "REPL restarted" in root.seen[1][-1].content
    assert trace.iterations[1].stdout == f"False {len(context_file.read_text())}\n"


def test_the_first_message_describes_a_jsonl_context_as_a_list(tmp_path: Path) -> None:
    context = tmp_path / "records.jsonl"
    context.write_text('{"a": 1}\n{"a": 2}\n')
    root = Root(steps("```python\nSUBMIT(type(context).__name__)\n```"))
    trace = run(root, context)
    first_user = root.seen[0][1].content
    assert f"Context: list, {context.stat().st_size:,} characters" in first_user
    assert trace.run.final_answer == "list"


def test_cancel_stops_the_run_between_iterations(context_file: Path) -> None:
    cancel = threading.Event()

    def script(turn: int, _messages: list[Message]) -> str:
        if turn == 1:
            cancel.set()
        return "```python\nprint('step')\n```"

    root_lm = FunctionLM(Root(script))
    box = ScriptedSandbox(["step\n", "step\n"])
    options = EngineOptions(sandbox_factory=box.factory)
    trace = run_rlm("q", context_file, lm=root_lm, sub_lm=None, options=options, cancel=cancel)
    assert trace.run.status == "cancelled" and len(trace.iterations) == 2
    assert box.executed == ["print('step')", "print('step')"] and box.shut_down


def test_a_missing_context_fails_before_any_model_call(tmp_path: Path) -> None:
    root = Root(steps("```python\nprint(1)\n```"))
    with pytest.raises(UserError, match="context not found"):
        run_rlm("q", tmp_path / "missing.txt", lm=FunctionLM(root))
    assert root.seen == []


def test_a_sandbox_that_cannot_start_ends_the_run_with_status_error(context_file: Path) -> None:
    broken = ScriptedSandbox([], start_error=SandboxError("the worker could not start", "check the platform"))
    options = EngineOptions(sandbox_factory=broken.factory)
    root = Root(steps("```python\nprint(1)\n```"))
    trace = run_rlm("q", context_file, lm=FunctionLM(root), options=options)
    assert trace.run.status == "error"
    assert trace.run.error == "sandbox: the worker could not start — try check the platform"
