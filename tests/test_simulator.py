"""The simulator: its code really runs, varies between runs, labels every step; the oracle answers.

A tiny driver here plays the engine: it executes each reply's code with exec()
in a namespace holding ``context``, ``llm_query``/``llm_query_batched`` (answered
by the oracle sub-LM) and ``SUBMIT``, and feeds the output back in the engine's
message format. Answers are scored with the family's own checker.
"""

from __future__ import annotations

import ast
import contextlib
import io
import itertools
import json
import random
import re
import traceback
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from recorder.checkers import get_checker
from recorder.families import FAMILIES, get_family
from recorder.lm.base import LMResponse, Message
from recorder.simulator import (
    STRATEGIES,
    UNKNOWN_ANSWER,
    SimulatorRootLM,
    answer_prompt,
    make_simulator_lm,
    strategy_names,
)
from recorder.simulator.cell import TACTICS
from rlmine.errors import UserError

RUNS = 30
SIZE = 200 * 1024
SYSTEM = Message("system", "You are an RLM. Use context, llm_query, llm_query_batched, SUBMIT.")


class _Submitted(BaseException):
    def __init__(self, value: Any) -> None:
        self.value = value


@dataclass
class Episode:
    answer: Any = None
    submitted: bool = False
    responses: list[LMResponse] = field(default_factory=list)
    codes: list[str] = field(default_factory=list)
    outputs: list[str] = field(default_factory=list)


def first_message(question: str, context: Any) -> Message:
    kind = type(context).__name__
    return Message(
        "user", f"Question: {question}\n\nContext: {kind}, {len(str(context)):,} characters\n\nExplore."
    )


class Repl:
    """The REPL namespace of one run: context, the oracle behind llm_query, SUBMIT."""

    def __init__(self, context: Any, *, noise: float | None = None) -> None:
        sub = make_simulator_lm("sub", noise=noise)

        def llm_query(prompt: str, model: str | None = None) -> str:
            return sub.complete([Message("user", prompt)]).text

        def llm_query_batched(prompts: list[str], model: str | None = None) -> list[str]:
            return [llm_query(p) for p in prompts]

        def submit(value: Any) -> None:
            raise _Submitted(value)

        self.namespace: dict[str, Any] = {
            "context": context,
            "llm_query": llm_query,
            "llm_query_batched": llm_query_batched,
            "SUBMIT": submit,
        }

    def run(self, code: str, name: str) -> tuple[str, bool, Any]:
        """(output as the engine shows it, submitted?, answer)."""
        out = io.StringIO()
        try:
            with contextlib.redirect_stdout(out):
                exec(compile(code, name, "exec"), self.namespace)
        except _Submitted as done:
            return out.getvalue(), True, done.value
        except Exception as exc:
            tb = "".join(traceback.format_exception_only(type(exc), exc))
            return (
                f'{out.getvalue()}\nError (code): Traceback (most recent call last):\n  File "{name}"\n{tb}',
                False,
                None,
            )
        return out.getvalue(), False, None


def code_of(resp: LMResponse) -> str:
    blocks: list[str] = re.findall(r"```python\n(.*?)```", resp.text, re.S)
    assert len(blocks) == 1, resp.text
    return blocks[0]


def drive(
    question: str, context: Any, *, seed: int, root: Any = None, budget: int = 12, noise: float | None = None
) -> Episode:
    """Play the engine: run each reply's code, feed the output back, stop on SUBMIT.

    After ``budget`` steps one more turn asks for the answer ("Budget exhausted"), as the engine does.
    """
    root = root or make_simulator_lm("root")
    repl = Repl(context, noise=noise)
    messages = [SYSTEM, first_message(question, context)]
    episode = Episode()
    for turn in range(budget + 1):
        if turn == budget:
            messages.append(
                Message("user", "Budget exhausted: all steps are used. Reply now with SUBMIT(...).")
            )
        resp = root.complete(messages, seed=seed, temperature=0.7)
        episode.responses.append(resp)
        episode.codes.append(code_of(resp))
        messages.append(Message("assistant", resp.text))
        output, submitted, answer = repl.run(episode.codes[-1], f"<cell {turn}>")
        if submitted:
            episode.answer, episode.submitted = answer, True
            return episode
        episode.outputs.append(output)
        left = budget - turn - 1
        messages.append(
            Message("user", f"{output[:4000]}\nBudget: {left} steps left, 400 sub-LLM calls left.")
        )
    return episode


def load(path: Path, suffix: str) -> Any:
    text = path.read_text()
    return [json.loads(line) for line in text.splitlines()] if suffix == ".jsonl" else text


@pytest.fixture(scope="module")
def episodes(tmp_path_factory: pytest.TempPathFactory) -> dict[str, list[tuple[Episode, Any]]]:
    """30 runs per family over 3 instances (seeds 0..29), with the expected answers."""
    out: dict[str, list[tuple[Episode, Any]]] = {}
    folder = tmp_path_factory.mktemp("ctx")
    for name, family in FAMILIES.items():
        instances = []
        for i in range(3):
            params = family.make_instance_params(random.Random(100 + i))
            path = folder / f"{name}-{i}{family.context_suffix}"
            result = family.write_context(path, params=params, seed=i, size_bytes=SIZE)
            instances.append(
                (family.question_for(params), load(path, family.context_suffix), result["expected"])
            )
        out[name] = []
        for seed in range(RUNS):
            question, context, expected = instances[seed % 3]
            out[name].append((drive(question, context, seed=seed), expected))
    return out


@pytest.mark.parametrize("name", sorted(FAMILIES))
def test_runs_vary_in_strategy_and_naming(name: str, episodes: dict[str, list[tuple[Episode, Any]]]) -> None:
    runs = [e for e, _ in episodes[name]]
    strategies = Counter(e.responses[0].metadata["strategy"] for e in runs)
    assert len(strategies) >= 3, strategies
    assert set(strategies) <= set(strategy_names(name))
    scaling_code = {e.codes[-2] for e in runs if len(e.codes) >= 2}
    assert len(scaling_code) >= 20  # not the same code with another seed: names, sizes, prints differ
    assigned = Counter(
        t.id
        for e in runs
        for code in e.codes
        for node in ast.parse(code).body
        if isinstance(node, ast.Assign)
        for t in node.targets
        if isinstance(t, ast.Name) and not t.id.startswith("_")
    )
    assert len(assigned) >= 25, assigned


@pytest.mark.parametrize("name", sorted(FAMILIES))
def test_success_rate_is_in_the_default_band(
    name: str, episodes: dict[str, list[tuple[Episode, Any]]]
) -> None:
    checker = get_checker(get_family(name).checker)
    correct = [checker.check(e.answer, expected).correct for e, expected in episodes[name]]
    assert all(e.submitted for e, _ in episodes[name])
    rate = sum(correct) / len(correct)
    assert 0.6 <= rate <= 0.85, rate
    sound = [e.responses[0].metadata["sound"] for e, _ in episodes[name]]
    assert sum(c for c, s in zip(correct, sound, strict=True) if not s) < sum(1 for s in sound if not s) / 2


def test_deliberate_mistakes_are_followed_by_a_fix(episodes: dict[str, list[tuple[Episode, Any]]]) -> None:
    fixed = 0
    for runs in episodes.values():
        for episode, _ in runs:
            actions = [r.metadata["action"] for r in episode.responses]
            for i, action in enumerate(actions[:-1]):
                if action == "buggy":  # a deliberate mistake really fails, and the next reply fixes it
                    assert "Error (code)" in episode.outputs[i]
                    assert actions[i + 1] == "fix"
                    assert any(
                        tactic == "fix" for *_, tactic in episode.responses[i + 1].metadata["step_labels"]
                    )
                    fixed += 1
    assert fixed >= 5


def test_every_top_level_statement_is_labelled(episodes: dict[str, list[tuple[Episode, Any]]]) -> None:
    for runs in episodes.values():
        for episode, _ in runs:
            for code, resp in zip(episode.codes, episode.responses, strict=True):
                labels = resp.metadata["step_labels"]
                ranges = [(int(a), int(b)) for a, b, _ in labels]
                assert all(t in TACTICS for *_, t in labels)
                assert ranges[0][0] == 1 and ranges[-1][1] == len(code.rstrip("\n").splitlines())
                assert all(b + 1 == c for (_, b), (c, _) in itertools.pairwise(ranges))
                for node in ast.parse(code).body:
                    end = node.end_lineno or node.lineno
                    assert any(a <= node.lineno and end <= b for a, b in ranges), (code, labels)


def _conversation(question: str) -> list[Message]:
    return [SYSTEM, Message("user", f"Question: {question}\n\nContext: str, 300,000 characters\n\nExplore.")]


QUESTION = get_family("celebrities").question_for({"k": 5})


def test_replies_are_a_pure_function_of_messages_seed_and_temperature() -> None:
    lm = make_simulator_lm("root")
    msgs = _conversation(QUESTION)
    a, b = lm.complete(msgs, seed=3, temperature=0.7), lm.complete(msgs, seed=3, temperature=0.7)
    assert a.text == b.text and a.metadata == b.metadata
    assert len({lm.complete(msgs, seed=s, temperature=0.7).text for s in range(6)}) >= 4
    assert a.model == "sim" and a.cost is None
    assert a.tokens_out == len(a.text) // 4 and a.tokens_in == sum(len(m.content) for m in msgs) // 4


def test_budget_exhausted_submits_the_best_variable() -> None:
    lm = make_simulator_lm("root")
    msgs = [*_conversation(QUESTION), Message("assistant", "x"), Message("user", "ok\nBudget: 3 steps left.")]
    msgs.append(Message("user", "Budget exhausted: all 4 steps are used. Reply now with SUBMIT(...)."))
    resp = lm.complete(msgs, seed=1)
    code = re.search(r"```python\n(.*?)```", resp.text, re.S)
    assert code is not None and "SUBMIT(" in code.group(1)
    submitted: list[Any] = []
    namespace: dict[str, Any] = {"SUBMIT": submitted.append}
    exec(code.group(1), namespace)
    assert submitted == [[]]  # nothing computed yet: the family's fallback
    name = re.search(r'for _name in \("(\w+)"', code.group(1))
    assert name is not None
    namespace = {"SUBMIT": submitted.append, name.group(1): ["Keanu Reeves"]}
    exec(code.group(1), namespace)
    assert submitted[-1] == ["Keanu Reeves"]


def test_success_rate_option_picks_sound_or_flawed_strategies() -> None:
    msgs = _conversation(QUESTION)
    always = make_simulator_lm("root", success_rate=1.0)
    never = make_simulator_lm("root", success_rate=0.0)
    assert all(always.complete(msgs, seed=s).metadata["sound"] for s in range(10))
    assert not any(never.complete(msgs, seed=s).metadata["sound"] for s in range(10))


def test_unknown_questions_get_a_generic_runnable_strategy() -> None:
    episode = drive(
        "What is the capital of the country described here?", "France is a country in Europe.", seed=1
    )
    assert episode.submitted and episode.responses[0].metadata["strategy"] == "ask_head"
    assert episode.answer == UNKNOWN_ANSWER  # the oracle is honest about text it cannot place


def test_simulated_latency_sleeps_and_is_reported() -> None:
    slept: list[float] = []
    lm = SimulatorRootLM(latency=0.5, sleep=slept.append)
    resp = lm.complete(_conversation(QUESTION), seed=1)
    assert len(slept) == 1 and slept[0] > 0.3 and resp.latency_s >= slept[0]
    quiet = SimulatorRootLM(sleep=slept.append)
    quiet.complete(_conversation(QUESTION), seed=1)
    assert len(slept) == 1


@pytest.mark.parametrize(
    "kwargs", [{"role": "judge"}, {"success_rate": 1.5}, {"noise": -0.1}, {"latency": -1.0}]
)
def test_bad_simulator_options_are_user_errors(kwargs: dict[str, Any]) -> None:
    with pytest.raises(UserError):
        make_simulator_lm(**kwargs)


def test_strategy_registry_lists_three_sound_strategies_per_family() -> None:
    for name in FAMILIES:
        assert sum(s.sound for s in STRATEGIES[name]) >= 3
        assert any(not s.sound for s in STRATEGIES[name])


# --- the oracle, asked in words the simulator never uses -------------------------------------


def test_oracle_celebrities_answers_a_differently_phrased_prompt() -> None:
    prompt = (
        "Here are some lines of text. Tell me which famous people (not painters, not made-up characters) "
        "appear in them. Give me a JSON array.\n"
        "keanu reeves fighting Darth Vader, by Greg Rutkowski\n"
        "a cat in Paris\n"
        "TAYLOR  SWIFT as an elf, in the style of Alphonse Mucha\n"
    )
    text, family = answer_prompt(prompt, noise=0.0)
    assert family == "celebrities"
    assert json.loads(text.strip("`json\n")) == ["Keanu Reeves", "Taylor Swift"]


def test_oracle_logs_answers_a_differently_phrased_prompt() -> None:
    prompt = (
        "Go through these log entries and for every one tell me if end users were impacted (yes/no).\n"
        "2024-01-01T10:00:00.000Z ERROR checkout-api [req=ab12cd34] Checkout failed for customer c000001: "
        "deadlock detected on table orders\n"
        "2024-01-01T10:00:01.000Z ERROR billing-batch [req=ab12cd35] Nightly reindex job aborted (No space left on device)\n"
    )
    assert answer_prompt(prompt, noise=0.0) == ("yes\nno", "incident-logs")
    causes = (
        "What caused each of these failures? Pick a category: database, network, disk, memory. JSON please.\n"
    )
    text, _ = answer_prompt(causes + "\n".join(prompt.splitlines()[1:]), noise=0.0)
    assert json.loads(text.strip("`json\n")) == ["database", "disk"]


def test_oracle_reviews_answers_a_differently_phrased_prompt() -> None:
    prompt = (
        "Count the reviews below that are unhappy (negative in tone). Reply with just the number.\n"
        '{"text": "Not bad at all, honestly. Arrived two days early."}\n'
        '{"text": "Would not recommend. The help desk was useless."}\n'
        '{"text": "It delivers nothing the listing promised. I regret this purchase."}\n'
    )
    assert answer_prompt(prompt, noise=0.0) == ("2", "reviews-aggregate")
    topic = prompt.replace("that are unhappy (negative in tone)", "that talk about shipping")
    assert answer_prompt(topic, noise=0.0)[0] == "1"  # "delivers" is not about shipping


def test_oracle_refuses_what_it_cannot_place_and_noise_is_seeded() -> None:
    assert answer_prompt("Summarise the causes of the French revolution.") == (UNKNOWN_ANSWER, None)
    names = "\n".join(n for n in ("Keanu Reeves", "Greg Rutkowski", "Tom Hanks") for _ in range(1))
    prompt = f"Which of these are celebrities? One per line.\n{names}"
    assert answer_prompt(prompt, noise=0.3, seed=4) == answer_prompt(prompt, noise=0.3, seed=4)
    noisy = {answer_prompt(prompt, noise=0.5, seed=s)[0] for s in range(12)}
    assert len(noisy) > 1 and answer_prompt(prompt, noise=0.0)[0] == "Keanu Reeves\nTom Hanks"


def _celebrity_instance(tmp_path: Path) -> tuple[str, str, list[str]]:
    family = get_family("celebrities")
    path = tmp_path / "c.txt"
    result = family.write_context(path, params={"k": 5}, seed=9, size_bytes=150 * 1024)
    return family.question_for({"k": 5}), path.read_text(), result["expected"]


def test_one_step_left_runs_the_rest_of_the_plan_at_once(tmp_path: Path) -> None:
    question, context, expected = _celebrity_instance(tmp_path)
    for seed in (1, 4, 6):
        root = make_simulator_lm("root", success_rate=1.0)
        episode = drive(question, context, seed=seed, root=root, budget=3, noise=0.0)
        assert episode.submitted and len(episode.responses) <= 4
        last = episode.responses[-1]
        if len(episode.responses) == 3:  # the third step held the rest of the plan
            assert last.text.startswith("Only one step left")
        assert get_checker("topk_overlap").check(episode.answer, expected).correct


def test_a_restarted_repl_is_recovered_in_one_cell(tmp_path: Path) -> None:
    question, context, expected = _celebrity_instance(tmp_path)
    lm = make_simulator_lm("root", success_rate=1.0)
    messages = [SYSTEM, first_message(question, context)]
    first = lm.complete(messages, seed=2)
    messages += [
        Message("assistant", first.text),
        Message("user", "...\nREPL restarted: every variable was lost."),
    ]
    resp = lm.complete(messages, seed=2)
    assert resp.metadata["action"] == "recover"
    _, submitted, answer = Repl(context, noise=0.0).run(code_of(resp), "<recover>")
    assert submitted and get_checker("topk_overlap").check(answer, expected).correct


def test_reviews_parse_mistake_lands_in_the_turn_that_parses() -> None:
    # The exploration is sometimes cut into two turns before the parse statement; the mistake
    # (and its fix) must then go on the second turn instead of crashing the run.
    import recorder.simulator.strategies.reviews as reviews
    from recorder.simulator.style import Style

    params = {"ym": "2024-03", "sentiment": "positive", "kind": "sentiment"}
    later = 0
    for seed in range(400):
        st = Style(random.Random(seed))
        st.bug, st.bug_site = True, 0
        turns = reviews._explore(reviews._writer(params, st), st)
        buggy = [n for n, turn in enumerate(turns) if turn.bug is not None]
        assert len(buggy) == 1
        turn = turns[buggy[0]]
        assert turn.bug is not None
        assert any("splitlines()" in s.code and "json.loads" in s.code for s in turn.bug.cell.stmts)
        assert turn.bug.fix_cell.stmts[0].tactic == "fix"
        later += buggy[0] > 0
    assert later > 0  # the case that used to raise ValueError was exercised
