"""Every text the engine sends to the root model. Snapshot-tested.

The simulator and real models rely on a few stable markers (see
``docs/architecture.md``): ``Question:``, ``Context:``, ``Error (``,
``REPL restarted``, ``Budget:`` and ``Budget exhausted``.
"""

from __future__ import annotations

from recorder.tasks import Budget

SYSTEM_PROMPT = """\
You are a Recursive Language Model (RLM). You answer a question about a context that is too large \
to read at once. The context is loaded in a Python REPL as the variable `context`; you explore it by \
writing code, one step at a time, and you see what your code prints.

In the REPL you have:
- `context`: the loaded data (a str for text files, a list for JSONL, parsed JSON for .json files, \
a dict {{path: text}} for a directory).
- `llm_query(prompt: str) -> str`: ask a sub-LLM about a piece of text you pass in the prompt \
(it sees nothing else). Use it for judgements code cannot make: classifying, extracting names, \
summarising. Keep each prompt under ~100k characters.
- `llm_query_batched(prompts: list[str]) -> list[str]`: many sub-LLM queries at once, run in \
parallel; much faster than a loop of llm_query. A failed slot holds a string starting "Error:".
- `SUBMIT(answer)`: end the run with your final answer (str, number, list or dict).
- `print(...)`: the only way to see values. Output is truncated to {max_output_chars} characters \
per step, so print summaries, not whole texts.

Each reply: first think briefly about what to do next, then give ONE ```python block. It runs, \
and you see its output in the next message. Variables persist between steps. Explore the format \
before processing everything; test an approach on a sample before scaling it; verify before you \
submit.

Budget: at most {max_iterations} steps and {max_sub_calls} sub-LLM calls{extra}.
"""


def system_prompt(budget: Budget) -> str:
    extra = []
    if budget.max_tokens is not None:
        extra.append(f", {budget.max_tokens:,} tokens")
    if budget.max_cost is not None:
        extra.append(f", ${budget.max_cost:.2f}")
    extra.append(f"; each step's code may run {budget.cell_timeout_s:g} s")
    return SYSTEM_PROMPT.format(
        max_output_chars=budget.max_output_chars,
        max_iterations=budget.max_iterations,
        max_sub_calls=budget.max_sub_calls,
        extra="".join(extra),
    )


def first_user_message(question: str, context_kind: str, context_chars: int | None) -> str:
    size = "unknown size" if context_chars is None else f"{context_chars:,} characters"
    return (
        f"Question: {question}\n\n"
        f"Context: {context_kind}, {size}\n\n"
        "The context is in the REPL as `context`. Start by exploring it."
    )


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" + ("" if n == 1 else "s")


def budget_line(*, used_iterations: int, budget: Budget, sub_calls: int, wall_s: float) -> str:
    left_iter = budget.max_iterations - used_iterations
    left_sub = max(budget.max_sub_calls - sub_calls, 0)
    left_s = max(budget.max_wall_s - wall_s, 0.0)
    return (
        f"Budget: {_count(left_iter, 'step')} left, {_count(left_sub, 'sub-LLM call')} left, "
        f"{left_s:.0f} s left."
    )


def truncate_middle(
    text: str, limit: int, *, cut_at: int | None = None, hidden: int | None = None
) -> tuple[str, bool]:
    """Keep the head and tail of ``text`` within ``limit`` characters, saying what was cut.

    ``cut_at``: ``text`` is already a head and a tail joined at that index (the sandbox
    capped the output), ``hidden`` characters dropped between them (None: unknown). Both
    cuts are then told by one marker, never a marker inside another.
    """
    if cut_at is None and len(text) <= limit:
        return text, False
    head_src, tail_src = (text, text) if cut_at is None else (text[:cut_at], text[cut_at:])
    n_head = min(len(head_src), limit // 2)
    n_tail = min(len(tail_src), limit - n_head)
    head, tail = head_src[:n_head], tail_src[len(tail_src) - n_tail :]
    if cut_at is None:
        marker = f"{len(text) - n_head - n_tail:,} characters"
    elif hidden is None:
        marker = "some characters"
    else:
        marker = f"about {hidden + len(head_src) - n_head + len(tail_src) - n_tail:,} characters"
    return f"{head}\n[... {marker} not shown ...]\n{tail}", True


NO_CODE_REMINDER = (
    "Your reply had no ```python block, so nothing ran. Reply with your reasoning and one ```python "
    "block; call SUBMIT(answer) when you have the answer."
)

EXHAUSTED = (
    "Budget exhausted: {reason}. Reply now with one ```python block that calls SUBMIT(...) with your "
    "best answer from the variables you have."
)
