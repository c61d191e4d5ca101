"""Fakes shared by the recorder tests and the subprocess scripts they start.

- :func:`write_task` writes a tiny task file: each instance is a text file of
  ``item-N`` lines and the question asks how many lines it has (checker ``exact``).
- :func:`counting_root` is a stateless scripted root model: its reply depends only on
  how many assistant turns the conversation already holds, so one instance can serve
  many concurrent runs (in process, or behind the loopback HTTP server).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import yaml

from recorder.lm.base import LMResponse, Message
from recorder.lm.scripted import FunctionLM


def write_task(
    directory: Path,
    *,
    name: str = "tiny-count",
    instances: int = 2,
    budget: Mapping[str, Any] | None = None,
    split: str = "train",
) -> Path:
    """Write ``directory/task.yaml`` with ``instances`` contexts of 10, 11, … lines."""
    (directory / "contexts").mkdir(parents=True, exist_ok=True)
    entries = []
    for i in range(instances):
        lines = 10 + i
        path = directory / "contexts" / f"c{i}.txt"
        path.write_text("".join(f"item-{j}\n" for j in range(lines)), encoding="utf-8")
        entries.append(
            {"id": f"{split}-{i:03d}", "split": split, "context": f"contexts/c{i}.txt", "expected": lines}
        )
    spec = {
        "name": name,
        "description": "count the lines of a small file",
        "question": "How many lines does the context have?",
        "checker": "exact",
        "budget": dict(budget or {"max_iterations": 8, "cell_timeout_s": 20}),
        "instances": entries,
    }
    task = directory / "task.yaml"
    task.write_text(yaml.safe_dump(spec, sort_keys=False), encoding="utf-8")
    return task


def turn_number(messages: list[Message]) -> int:
    """How many assistant turns came before this call (0 for the first root call)."""
    return sum(1 for m in messages if m.role == "assistant")


def counting_reply(step: int, steps: int) -> str:
    """Reply number ``step`` of a run that explores for ``steps - 1`` turns, then submits."""
    if step == 0:
        return "Look at the size first.\n```python\nlines = context.splitlines()\nprint(len(lines))\n```"
    if step < steps - 1:
        return f"Check one line.\n```python\nprint(lines[{step}])\n```"
    return "Submit the count.\n```python\nSUBMIT(len(lines))\n```"


def counting_root(steps: int = 2, delay_s: float = 0.0, model: str = "fake-root") -> FunctionLM:
    """A root model that counts the context's lines in ``steps`` iterations."""

    def reply(messages: list[Message], **_: Any) -> LMResponse:
        if delay_s:
            time.sleep(delay_s)
        text = counting_reply(min(turn_number(messages), steps - 1), steps)
        return LMResponse(text=text, model=model, tokens_in=len(messages) * 10, tokens_out=5)

    return FunctionLM(reply, model=model)


def fake_factory(steps: int = 2, delay_s: float = 0.0) -> Callable[..., FunctionLM]:
    """An ``lm_factory`` for :func:`recorder.batch.record`: counting roots, echoing subs."""

    def factory(spec: str, *, role: str = "root", **_: Any) -> FunctionLM:
        if role == "sub":
            return FunctionLM(lambda messages, **_kw: "sub:" + messages[-1].content, model=spec)
        return counting_root(steps, delay_s, model=spec)

    return factory
