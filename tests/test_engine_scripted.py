"""The engine's own logic with both fakes: a scripted root model and a scripted sandbox.

No worker process and no HTTP: these tests pin how a run ends, what is recorded and what the
model is told, turn by turn. What only a real worker can show (variables shared between
blocks, a crash and restart, ``llm_query_batched`` in parallel over HTTP) stays in
``tests/test_engine.py``.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pytest

from recorder.engine import EngineOptions, RunObserver, run_rlm
from recorder.lm.base import LMError, LMResponse, Message
from recorder.lm.scripted import FunctionLM, ScriptedLM
from recorder.sandbox.base import ExecutionResult, LLMHandler, SandboxError
from recorder.sandbox.scripted import ScriptedSandbox, cell_result
from recorder.tasks import Budget
from rlmine.trace import Iteration, LLMCall, Run, StepLabel, Trace


@pytest.fixture
def context_file(tmp_path: Path) -> Path:
    path = tmp_path / "log.txt"
    path.write_text("a\nb\nc\n")
    return path


def code(body: str, reasoning: str = "Next step.") -> str:
    return f"{reasoning}\n```python\n{body}\n```"


def run(
    replies: Sequence[str | LMResponse | BaseException],
    box: ScriptedSandbox,
    context: Path,
    *,
    budget: Budget | None = None,
    sub: FunctionLM | None = None,
    observer: RunObserver | None = None,
) -> tuple[Trace, ScriptedLM]:
    lm = ScriptedLM(replies, model="root")
    options = EngineOptions(budget=budget or Budget(), sandbox_factory=box.factory)
    trace = run_rlm("How many lines?", context, lm=lm, sub_lm=sub, options=options, observer=observer)
    return trace, lm


def test_a_submitted_run_records_each_cell_and_shuts_the_sandbox_down(context_file: Path) -> None:
    box = ScriptedSandbox(["3\n", cell_result(submit=3)])
    trace, lm = run([code("print(len(context.splitlines()))"), code("SUBMIT(3)", "Done.")], box, context_file)
    assert (trace.run.status, trace.run.final_answer, trace.run.error) == ("submitted", "3", None)
    assert box.executed == ["print(len(context.splitlines()))", "SUBMIT(3)"]
    assert box.started and box.shut_down and lm.remaining == 0
    assert box.config is not None and box.config.context_path == str(context_file)
    assert [it.stdout for it in trace.iterations] == ["3\n", ""]
    assert [it.submitted for it in trace.iterations] == [False, True]
    # the output went back to the model with the budget left
    told = lm.calls[1][-1].content
    assert told.startswith("3\n\nBudget: 11 steps left, 500 sub-LLM calls left,")


def test_an_answer_on_the_final_turn_ends_budget_exhausted_with_the_answer(context_file: Path) -> None:
    box = ScriptedSandbox(["one\n", "two\n", cell_result(submit=["x"])])
    replies = [code("print('one')"), code("print('two')"), code("SUBMIT(['x'])")]
    trace, lm = run(replies, box, context_file, budget=Budget(max_iterations=2))
    assert (trace.run.status, trace.run.final_answer) == ("budget_exhausted", '["x"]')
    assert lm.calls[-1][-1].content.startswith("Budget exhausted: all 2 steps are used")
    assert [it.metadata["final_turn"] for it in trace.iterations] == [False, False, True]


def test_the_token_and_cost_budgets_end_the_run(context_file: Path) -> None:
    heavy = LMResponse(code("print(1)"), "root", tokens_in=40, tokens_out=20, cost=0.3)
    box = ScriptedSandbox(["1\n", "1\n"])
    trace, lm = run([heavy, "No code now."], box, context_file, budget=Budget(max_tokens=50))
    assert trace.run.status == "budget_exhausted" and trace.run.final_answer is None
    assert lm.calls[-1][-1].content.startswith("Budget exhausted: the token budget of 50 is used")
    assert trace.iterations[-1].error_kind == "parse" and box.executed == ["print(1)"]

    box = ScriptedSandbox(["1\n"])
    trace, lm = run([heavy, "No code."], box, context_file, budget=Budget(max_cost=0.25))
    assert trace.run.status == "budget_exhausted"
    assert lm.calls[-1][-1].content.startswith("Budget exhausted: the cost budget of $0.25 is used")


def test_a_dead_sandbox_ends_the_run_with_its_error(context_file: Path) -> None:
    died = cell_result(error="the worker was killed by signal 9", error_kind="sandbox")
    box = ScriptedSandbox(["ok\n", died])
    trace, _lm = run([code("print('ok')"), code("boom()"), code("never()")], box, context_file)
    assert trace.run.status == "error"
    assert trace.run.error == "the sandbox died: the worker was killed by signal 9"
    assert len(trace.iterations) == 2 and trace.iterations[1].error_kind == "sandbox"


def test_a_restarted_worker_is_recoverable_and_the_model_is_told(context_file: Path) -> None:
    restarted = cell_result(error="the worker died", error_kind="sandbox", restarted=True)
    box = ScriptedSandbox([restarted, cell_result(submit="ok")])
    trace, lm = run([code("crash()"), code("SUBMIT('ok')")], box, context_file)
    assert trace.run.status == "submitted" and trace.iterations[0].metadata["restarted"] is True
    assert "REPL restarted: every variable was lost" in lm.calls[1][-1].content


def test_a_terminal_sandbox_error_ends_the_run_without_recording_the_turn(context_file: Path) -> None:
    box = ScriptedSandbox(["fine\n", SandboxError("the context could not be reloaded", "a smaller file")])
    trace, _lm = run([code("print(1)"), code("print(2)")], box, context_file)
    assert trace.run.status == "error"
    assert trace.run.error == "sandbox: the context could not be reloaded — try a smaller file"
    assert len(trace.iterations) == 1 and box.shut_down


def test_a_sandbox_that_cannot_start_ends_the_run_before_any_cell(context_file: Path) -> None:
    box = ScriptedSandbox([], start_error=SandboxError("no worker", "check the platform"))
    trace, lm = run([code("print(1)")], box, context_file)
    assert trace.run.status == "error" and trace.run.error == "sandbox: no worker — try check the platform"
    assert box.executed == [] and len(lm.calls) == 1  # the first root call ran while it started


def test_blocks_after_a_failing_block_do_not_run(context_file: Path) -> None:
    reply = "Three.\n```python\na = 1\n```\n```python\nb = a / 0\n```\n```python\nprint(b)\n```"
    failing = cell_result(error="ZeroDivisionError: division by zero")
    box = ScriptedSandbox(["", failing, cell_result(submit=1)])
    trace, lm = run([reply, code("SUBMIT(1)")], box, context_file)
    assert box.executed == ["a = 1", "b = a / 0", "SUBMIT(1)"]
    first = trace.iterations[0]
    assert [(b.code, b.ran) for b in first.blocks] == [
        ("a = 1", True),
        ("b = a / 0", True),
        ("print(b)", False),
    ]
    assert first.error == "ZeroDivisionError: division by zero" and first.error_kind == "code"
    told = lm.calls[1][-1].content
    assert told.startswith("(no output)\n(no output)\nError (code): ZeroDivisionError")


def test_long_output_is_cut_in_the_middle_for_the_model(context_file: Path) -> None:
    box = ScriptedSandbox(["x" * 300 + "\n", cell_result(submit=0)])
    trace, lm = run(
        [code("print('x' * 300)"), code("SUBMIT(0)")], box, context_file, budget=Budget(max_output_chars=100)
    )
    first = trace.iterations[0]
    assert first.output_truncated and first.blocks[0].metadata == {"output_truncated": True}
    told = lm.calls[1][-1].content
    assert "characters not shown ...]" in told and len(told.split("\n\nBudget:")[0]) < 200


def test_sub_calls_made_by_a_cell_are_recorded_with_its_iteration(context_file: Path) -> None:
    def asks(code_text: str, llm_query: LLMHandler) -> ExecutionResult:
        answers = llm_query(["first", "second"], None)
        return cell_result(" ".join(answers) + "\n")

    sub = FunctionLM(lambda messages, **_: messages[-1].content.upper(), model="sub")
    box = ScriptedSandbox(["warm-up\n", asks, cell_result(submit="done")])
    trace, _lm = run(
        [code("print(0)"), code("llm_query_batched(['first', 'second'])"), code("SUBMIT('done')")],
        box,
        context_file,
        sub=sub,
    )
    assert trace.iterations[1].stdout == "FIRST SECOND\n"
    subs = sorted((c.prompt, c.response, c.iteration) for c in trace.calls if c.role == "sub")
    assert subs == [("first", "FIRST", 1), ("second", "SECOND", 1)]
    assert (trace.run.n_llm_calls, trace.run.n_sub_calls) == (5, 2)


def test_a_failed_root_call_is_recorded_and_ends_the_run(context_file: Path) -> None:
    box = ScriptedSandbox(["1\n"])
    trace, _lm = run([code("print(1)"), LMError("provider down", "retry later")], box, context_file)
    assert (
        trace.run.status == "error" and trace.run.error == "root LM failed: provider down — try retry later"
    )
    last = trace.iterations[-1]
    assert (last.index, last.error_kind, last.code) == (1, "lm", None)
    assert trace.calls[-1].role == "root" and trace.calls[-1].response is None


def test_the_observer_hears_of_the_run_and_every_iteration_as_it_ends(context_file: Path) -> None:
    heard: list[str] = []

    class Observer:
        def run_started(self, run: Run) -> None:
            heard.append(f"start {run.status}")

        def iteration_finished(
            self, iteration: Iteration, calls: Sequence[LLMCall], labels: Sequence[StepLabel]
        ) -> None:
            heard.append(f"iteration {iteration.index}: {len(calls)} call(s), box ran {len(box.executed)}")

    box = ScriptedSandbox(["1\n", cell_result(submit=1)])
    run([code("print(1)"), code("SUBMIT(1)")], box, context_file, observer=Observer())
    assert heard == [
        "start running",
        "iteration 0: 1 call(s), box ran 1",
        "iteration 1: 1 call(s), box ran 2",
    ]


def test_the_scripted_sandbox_keeps_its_lifecycle_and_says_when_its_script_ends() -> None:
    box = ScriptedSandbox({"print(1)": "1\n", "SUBMIT(None)": cell_result(submit=None)})
    with pytest.raises(SandboxError, match="not running"):
        box.execute("print(1)")
    with box:
        assert box.execute("print(1)").stdout == "1\n"
        submitted = box.execute("SUBMIT(None)")
        assert submitted.submitted and submitted.answer is None
        with pytest.raises(SandboxError, match="no result for the code 'print\\(2\\)'"):
            box.execute("print(2)")
    assert box.shut_down
    short = ScriptedSandbox(["only\n"])
    short.start()
    assert short.execute("a").stdout == "only\n" and short.remaining == 0
    with pytest.raises(SandboxError, match="ran out of cells after 1") as caught:
        short.execute("b")
    assert caught.value.one_line() == "ScriptedSandbox ran out of cells after 1 — try script more cells"


def test_model_messages_start_with_the_question_and_context_size(context_file: Path) -> None:
    box = ScriptedSandbox([cell_result(submit=3)])
    _trace, lm = run([code("SUBMIT(3)")], box, context_file)
    first: list[Message] = lm.calls[0]
    assert first[0].role == "system" and first[1].content.startswith("Question: How many lines?")
    assert f"Context: str, {context_file.stat().st_size:,} characters" in first[1].content
