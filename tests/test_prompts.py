"""Snapshots of every text the engine sends to the root model, and the markers models rely on.

The conversation snapshot comes from a real engine run with a scripted model and a
scripted sandbox (so it is exact and fast). When a prompt changes on purpose, refresh
the snapshots with ``RLMINE_UPDATE_GOLDEN=1 pytest tests/test_prompts.py`` and review
the diff under ``tests/golden/``.
"""

from __future__ import annotations

import os
from dataclasses import replace
from pathlib import Path

import pytest

from recorder.engine import EngineOptions, run_rlm
from recorder.lm.base import Message
from recorder.lm.scripted import ScriptedLM
from recorder.prompts import EXHAUSTED, NO_CODE_REMINDER, budget_line, system_prompt, truncate_middle
from recorder.sandbox.scripted import ScriptedSandbox, cell_result
from recorder.tasks import Budget

GOLDEN = Path(__file__).resolve().parent / "golden"
UPDATE = os.environ.get("RLMINE_UPDATE_GOLDEN") == "1"

OK = cell_result()  # a cell that printed nothing and did not submit


def check_golden(name: str, text: str) -> None:
    path = GOLDEN / name
    if UPDATE:
        path.parent.mkdir(exist_ok=True)
        path.write_text(text, encoding="utf-8")
    assert path.exists(), f"no snapshot {path}: run with RLMINE_UPDATE_GOLDEN=1 to create it"
    assert text == path.read_text(encoding="utf-8"), f"{name} changed; refresh with RLMINE_UPDATE_GOLDEN=1"


def render(messages: list[Message]) -> str:
    return "".join(f"=== {m.role} ===\n{m.content}\n" for m in messages)


CELLS = {
    "print(context[:20])": replace(OK, stdout="line one\nline two\n", stdout_bytes=18),
    "print(big)": replace(
        OK,
        stdout="HEAD-OF-OUTPUT\nTAIL-OF-OUTPUT\n",
        stdout_bytes=250_000,
        stdout_cut=15,
        output_truncated=True,
    ),
    "print('x' * 100)\nwarn()": replace(OK, stdout="x" * 100 + "\n", stderr="warning: careful\n"),
    "counts['a']": replace(
        OK,
        error="Traceback (most recent call last):\n  cell 4, line 1\nNameError: name 'counts' is not defined",
        error_kind="code",
    ),
    "while True: pass": replace(
        OK,
        error="The cell exceeded its 30 s time limit and was interrupted.",
        error_kind="timeout",
        restarted=True,
    ),
    "SUBMIT(3)": replace(OK, submitted=True, answer=3),
}

REPLIES = [
    "Peek at the start.\n```python\nprint(context[:20])\n```",
    "Print everything (too much).\n```python\nprint(big)\n```",
    "Long line and a warning.\n```python\nprint('x' * 100)\nwarn()\n```",
    "Use counts.\n```python\ncounts['a']\n```",
    "Loop.\n```python\nwhile True: pass\n```",
    "Let me think without code.",
    "Answer now.\n```python\nSUBMIT(3)\n```",
]


def scripted_run() -> tuple[ScriptedLM, ScriptedSandbox, str]:
    lm = ScriptedLM(REPLIES, model="scripted")
    box = ScriptedSandbox(CELLS)
    budget = Budget(max_iterations=6, max_sub_calls=20, max_output_chars=60, cell_timeout_s=30)
    trace = run_rlm(
        "How many distinct users logged in?\nCount each user once.",
        None,
        lm=lm,
        options=EngineOptions(budget=budget, sandbox_factory=box.factory, temperature=0.0, seed=1),
    )
    return lm, box, trace.run.status


def test_the_whole_conversation_matches_its_snapshot() -> None:
    lm, box, status = scripted_run()
    assert status == "budget_exhausted" and box.started and box.shut_down
    assert box.executed == list(CELLS)  # each block ran once, in order
    check_golden("conversation.txt", render(lm.calls[-1]))


def test_the_markers_models_rely_on() -> None:
    lm, _box, _status = scripted_run()
    messages = lm.calls[-1]
    assert messages[0].role == "system" and "llm_query_batched" in messages[0].content
    first = messages[1].content.splitlines()
    assert first[0] == "Question: How many distinct users logged in?" and first[1] == "Count each user once."
    assert "Context: str, unknown size" in first
    users = [m.content for m in messages if m.role == "user"][1:]
    assert all(any(line.startswith("Budget: ") for line in u.splitlines()) for u in users[:4])
    assert any(line.startswith("Error (code): ") for line in users[3].splitlines())
    assert "Error (timeout): " in users[4] and "REPL restarted" in users[4]
    assert users[5] == NO_CODE_REMINDER
    assert users[6].startswith("Budget exhausted: all 6 steps are used")
    assert "[... about 249,970 characters not shown ...]" in users[1]  # the sandbox's cut, marked
    assert "characters not shown ...]" in users[2] and "stderr:\nwarning: careful" in users[2]
    assert all(o == {"temperature": 0.0, "seed": 1, "max_tokens": None} for o in lm.call_options)


@pytest.mark.parametrize(
    ("name", "budget"),
    [
        ("system_prompt_default.txt", Budget()),
        ("system_prompt_limits.txt", Budget(max_iterations=3, max_tokens=50_000, max_cost=0.25)),
    ],
)
def test_system_prompt_snapshot(name: str, budget: Budget) -> None:
    check_golden(name, system_prompt(budget))


def test_budget_line_and_fixed_texts() -> None:
    line = budget_line(used_iterations=4, budget=Budget(max_iterations=10), sub_calls=12, wall_s=100.4)
    assert line == "Budget: 6 steps left, 488 sub-LLM calls left, 800 s left."
    assert EXHAUSTED.format(reason="x").startswith("Budget exhausted: x.")
    assert "```python" in NO_CODE_REMINDER and "SUBMIT(answer)" in NO_CODE_REMINDER


def test_truncate_middle_keeps_head_and_tail() -> None:
    assert truncate_middle("short", 10) == ("short", False)
    text, cut = truncate_middle("a" * 50 + "b" * 50, 20)
    assert cut and text.startswith("a" * 10) and text.endswith("b" * 10)
    assert "[... 80 characters not shown ...]" in text
