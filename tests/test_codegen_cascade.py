"""The item cascade: distilled models answer confident items, the LLM the rest, nothing changes meaning."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import pytest

from codegen.build_run import BuildResult
from codegen.cascade import Cascade, ItemModel, instruction_key, parse_reply, split_prompt
from codegen.distill import DistillOptions, _pipeline, distil, harvest
from codegen.params import parameterize, question_shape

INSTR = (
    "For each note below, answer yes if it is about the weather, otherwise no. One label per line, in order."
)
WEATHER = ["rain all day", "sunny and warm", "heavy snow tonight", "strong wind outside", "fog this morning"]
OTHER = ["bought new shoes", "the train was late", "cooked pasta", "read a novel", "called my sister"]
TAILS = ["", " again", " near the lake", " for hours", " said Sam", " at noon"]


def _items(rng: random.Random, n: int) -> list[tuple[str, str]]:
    out = []
    for _ in range(n):
        weather = rng.random() < 0.4
        text = rng.choice(WEATHER if weather else OTHER) + rng.choice(TAILS) + f" #{rng.randint(1, 999)}"
        out.append((text, "yes" if weather else "no"))
    return out


def _calls(n_calls: int = 30, per: int = 10, seed: int = 1) -> list[tuple[str, str]]:
    """Recorded (prompt, response) pairs of an LLM that labels every item correctly."""
    rng = random.Random(seed)
    calls = []
    for _ in range(n_calls):
        items = _items(rng, per)
        calls.append((INSTR + "\n\n" + "\n".join(t for t, _ in items), "\n".join(f"{k + 1}. {lab}" for k, (_, lab) in enumerate(items))))  # fmt: skip
    return calls


class FakeLLM:
    """Labels items by keyword, as the recorded LLM did; records what it was sent."""

    def __init__(self, broken: bool = False) -> None:
        self.sent: list[str] = []
        self.broken = broken

    def __call__(self, prompts: list[str]) -> list[str]:
        self.sent += prompts
        out = []
        for prompt in prompts:
            parsed = split_prompt(prompt)
            if parsed is None or "weather" not in parsed[0]:
                out.append("I cannot tell.")
                continue
            labels = ["yes" if item.startswith(tuple(WEATHER)) else "no" for item in parsed[1]]
            out.append("Both look fine to me." if self.broken else "\n".join(labels))
        return out


def test_prompts_split_into_instruction_and_items_and_replies_parse_per_item() -> None:
    assert split_prompt(INSTR + "\n\na\nb\n") == (INSTR, ["a", "b"])
    assert split_prompt("no blank line\na\nb") is None
    assert split_prompt(INSTR + "\n\na\n\nb") is None  # an empty item: not one item per line
    assert parse_reply("1. yes\n2) no\n", 2, "lines") == ["yes", "no"]
    assert parse_reply("yes", 2, "lines") is None
    assert parse_reply('Here: ["yes", "no"]', 2, "json") == ["yes", "no"]
    # the output-format sentence is not part of the question asked about an item
    assert instruction_key(INSTR) == instruction_key(
        INSTR.replace("One label per line", "Reply with a JSON list")
    )


def test_the_exported_model_reproduces_scikit_learn_in_pure_python() -> None:
    models, reports = distil(_calls())
    key = instruction_key(INSTR)
    assert list(models) == [key] and reports[0].threshold is not None
    examples = harvest(_calls())[key]
    fitted = _pipeline(DistillOptions()).fit([t for t, _ in examples], [lab for _, lab in examples])
    model = ItemModel(models[key])
    fresh = [t for t, _ in _items(random.Random(9), 40)]
    for text, probs in zip(fresh, fitted.predict_proba(fresh), strict=True):
        label, probability = model.predict(text)
        assert label == fitted.classes_[probs.argmax()]
        assert probability == pytest.approx(probs.max(), abs=1e-4)


def test_labels_that_do_not_follow_the_items_give_no_model() -> None:
    rng = random.Random(4)
    noisy = []
    for prompt, _ in _calls():
        n = len(prompt.split("\n\n", 1)[1].splitlines())
        noisy.append((prompt, "\n".join(rng.choice(["yes", "no"]) for _ in range(n))))
    models, reports = distil(noisy)
    assert models == {}
    assert "agreement" in (reports[0].reason or "")


def test_confident_items_stay_local_and_only_the_uncertain_reach_the_llm() -> None:
    models, _ = distil(_calls())
    llm = FakeLLM()
    cascade = Cascade(models, llm)
    rng = random.Random(7)
    known = [t for t, _ in _items(rng, 12)]
    unknown = ["zzz qqq", "xyzzy plugh", "zzz qqq"]  # no word the model knows; one repeated
    prompt = INSTR + "\n\n" + "\n".join(known + unknown)
    reply = cascade.answer([prompt])[0]
    assert reply.splitlines() == FakeLLM()([prompt])[0].splitlines()
    assert len(llm.sent) == 1
    assert llm.sent[0].startswith(INSTR + "\n\n")
    assert llm.sent[0].split("\n\n", 1)[1].splitlines() == ["zzz qqq", "xyzzy plugh"]  # distinct, in order
    assert cascade.stats["items_local"] == 12 and cascade.stats["items_sent"] == 2
    cascade.answer([prompt])  # the same prompt again in this run: answered from the cache
    assert len(llm.sent) == 1 and cascade.stats["prompts_cached"] == 1


def test_without_an_llm_only_prompts_the_models_cover_entirely_are_answered() -> None:
    """What ``--llm off`` sees: the LLM refuses, so a prompt with an uncertain item fails."""

    class Refused(Exception):
        pass

    def refuse(prompts: list[str]) -> list[str]:
        raise Refused(f"{len(prompts)} prompt(s)")

    models, _ = distil(_calls())
    covered = [t for t, _ in _items(random.Random(3), 8)]
    cascade = Cascade(models, refuse)
    assert cascade.answer([INSTR + "\n\n" + "\n".join(covered)])[0].splitlines() == [
        "yes" if t.startswith(tuple(WEATHER)) else "no" for t in covered
    ]
    with pytest.raises(Refused):
        cascade.answer([INSTR + "\n\n" + "\n".join([*covered, "xyzzy plugh"])])


def test_a_reply_that_is_not_per_item_falls_back_to_the_program_s_own_prompt() -> None:
    models, _ = distil(_calls())
    llm = FakeLLM(broken=True)
    prompt = INSTR + "\n\nsunny and warm\nxyzzy plugh"
    assert Cascade(models, llm).answer([prompt]) == ["Both look fine to me."]  # its reply to the real prompt
    assert llm.sent[-1] == prompt


def test_prompts_without_a_model_and_disabled_cascades_go_to_the_llm_unchanged() -> None:
    models, _ = distil(_calls())
    llm = FakeLLM()
    other = "Summarise this text.\n\nrain all day"
    assert Cascade(models, llm).answer([other, other]) == ["I cannot tell."] * 2
    assert llm.sent == [other]  # identical prompts in one batch are sent once
    off = Cascade(models, llm, enabled=False)
    prompt = INSTR + "\n\nsunny and warm"
    assert off.answer([prompt]) == ["yes"] and llm.sent[-1] == prompt


def test_a_string_listing_a_parameter_s_choices_stays_literal() -> None:
    params = [{"sentiment": "negative", "year": 2023}, {"sentiment": "positive", "year": 2022}]
    question = "How many negative reviews in 2023?"
    values = question_shape(question, params[0], params).values
    code, used = parameterize(
        ['instr = "Label each review: positive, negative or neutral."', 'want = "negative"'], values, params
    )
    assert code == [
        "instr = 'Label each review: positive, negative or neutral.'",
        "want = question_params['sentiment']",
    ]
    assert used == {"sentiment"}


@pytest.fixture(scope="module")
def reviews_agent(tmp_path_factory: pytest.TempPathFactory) -> tuple[Any, Path, BuildResult]:
    from codegen import TaskBuildOptions, build_for_task
    from recorder.batch import RecordOptions, record
    from recorder.families import make_task
    from recorder.tasks import load_task
    from rlmine.store import Store

    root = tmp_path_factory.mktemp("cascade-task")
    task = load_task(make_task("reviews-aggregate", root / "task", size_bytes=102_400, instances=12, seed=5))
    store = Store.open(root / "t.duckdb", create=True)
    record(task, db=store, options=RecordOptions(runs=3, concurrency=2, batch="train"))
    built = build_for_task(store, task.name, TaskBuildOptions(concurrency=2))
    assert built.rendered is not None
    script = root / "agent.py"
    script.write_text(built.rendered.script)
    return task, script, built


@pytest.mark.slow
def test_a_built_agent_ships_distilled_models_and_answers_with_fewer_llm_calls(
    reviews_agent: tuple[Any, Path, BuildResult],
) -> None:
    from codegen.runner import run_script_file
    from recorder.lm.registry import make_lm
    from recorder.lm.server import SimServer

    task, script, built = reviews_agent
    text = built.rendered.script if built.rendered else ""
    assert "ITEM_MODELS" in text and "label each review below with its overall sentiment" in text
    checker = task.make_checker()

    def factory(model: str) -> Any:
        return make_lm("sim", role="sub" if model == "sim-sub" else "root")

    calls = {True: 0, False: 0}
    with SimServer(factory, models=("sim", "sim-sub")) as server:
        for inst in task.instances_in("test") + task.instances_in("validation"):
            for cascade in (True, False):
                out = run_script_file(
                    script, inst.context_path(task), inst.question_text(task), llm="live",
                    api_base=server.base_url, model="sim-sub", extra=() if cascade else ("--no-cascade",),
                )  # fmt: skip
                assert out.error is None, out.error
                assert checker.check(out.answer, inst.expected).correct
                calls[cascade] += out.llm_calls
    assert calls[True] < calls[False]
