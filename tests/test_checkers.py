"""Checkers: what score a user sees for the answers real models give."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from recorder.checkers import CHECKERS, Checker, CheckResult, get_checker, normalize, parse_structured
from rlmine.errors import UserError

FIXTURES = Path(__file__).parent / "fixtures" / "tasks"
TOP2 = ["Taylor Swift", "Keanu Reeves"]


def check(spec: object, answer: object, expected: object) -> CheckResult:
    return get_checker(spec).check(answer, expected)  # type: ignore[arg-type]


def test_registry_lists_the_contract_names() -> None:
    assert set(CHECKERS) == {"exact", "contains", "set_f1", "topk_overlap", "numeric"}
    for name in CHECKERS:
        assert isinstance(get_checker(name), Checker)


@pytest.mark.parametrize(
    ("answer", "expected", "correct"),
    [
        ("Taylor Swift", "taylor swift", True),
        ("  Taylor   Swift. ", "Taylor Swift", True),
        ('"Taylor Swift"', "Taylor Swift", True),
        ("```\nTaylor Swift\n```", "Taylor Swift", True),
        ("Taylor", "Taylor Swift", False),
        ("42", 42, True),
        (42.0, "42", True),
        ("1,234", 1234, True),
        (0.1 + 0.2, 0.3, True),
        ("43", 42, False),
        (["Taylor Swift"], "Taylor Swift", True),
        ('["Taylor Swift", "Keanu Reeves"]', TOP2, True),
        ("['taylor swift', 'keanu reeves']", TOP2, True),
        (["Keanu Reeves", "Taylor Swift"], TOP2, False),  # exact keeps list order
        ({"Error": 3, "warn": 1}, {"error": 3, "WARN": "1"}, True),
        (True, "true", True),
    ],
)
def test_exact(answer: object, expected: object, correct: bool) -> None:
    result = check("exact", answer, expected)
    assert result.correct is correct
    assert result.score == (1.0 if correct else 0.0)
    assert (result.detail is None) is correct


@pytest.mark.parametrize("spec", [*CHECKERS, {"name": "numeric", "tolerance": 1}])
@pytest.mark.parametrize("answer", [None, "", "   ", "``` ```", [], '""'])
def test_empty_or_none_answer_scores_zero_everywhere(spec: object, answer: object) -> None:
    expected: object = 5 if "numeric" in str(spec) else TOP2
    result = check(spec, answer, expected)
    assert (result.score, result.correct) == (0.0, False)
    assert result.detail == "empty answer"


def test_missing_expected_value_never_counts_as_correct() -> None:
    for name in CHECKERS:
        result = check(name, "anything", None)
        assert not result.correct and "no expected answer" in (result.detail or "")


@pytest.mark.parametrize("name", ["exact", "set_f1", "topk_overlap"])
def test_malformed_json_answer_scores_zero_with_reason(name: str) -> None:
    result = check(name, '["Taylor Swift", "Keanu Reeves"', TOP2)
    assert (result.score, result.correct) == (0.0, False)
    assert "could not parse" in (result.detail or "")


def test_contains() -> None:
    assert check("contains", "The answer is: Taylor Swift!", "taylor swift").correct
    assert not check("contains", "The answer is Keanu", "Taylor Swift").correct
    partial = check("contains", "Taylor Swift and others", TOP2)
    assert (partial.score, partial.correct) == (0.5, False)
    assert "keanu reeves" in (partial.detail or "")
    assert check("contains", ["Keanu Reeves", "Taylor Swift"], TOP2).correct
    assert check("contains", 1234, "123").correct


def test_set_f1_scores_partial_overlap() -> None:
    result = check("set_f1", ["Taylor Swift", "Zendaya"], TOP2)
    assert result.score == pytest.approx(0.5)
    assert not result.correct
    assert "missing 'keanu reeves'" in (result.detail or "") and "extra 'zendaya'" in (result.detail or "")
    assert check({"name": "set_f1", "threshold": 0.5}, ["Taylor Swift", "Zendaya"], TOP2).correct


@pytest.mark.parametrize(
    "answer",
    [
        ["keanu reeves", "TAYLOR SWIFT"],
        '["Keanu Reeves", "Taylor Swift"]',
        "{'Keanu Reeves', 'Taylor Swift'}",
        "Keanu Reeves, Taylor Swift",
        "1. Keanu Reeves\n2. Taylor Swift\n",
        "- Keanu Reeves\n- Taylor Swift",
        [("Taylor Swift", 120), ("Keanu Reeves", 80)],  # Counter.most_common output
        {"Taylor Swift": 120, "Keanu Reeves": 80},
        '```json\n["Keanu Reeves", "Taylor Swift"]\n```',
    ],
)
def test_set_like_checkers_accept_the_shapes_models_submit(answer: object) -> None:
    for spec in ("set_f1", "topk_overlap"):
        result = check(spec, answer, TOP2)
        assert (result.score, result.correct) == (1.0, True), spec


def test_topk_overlap_counts_only_the_first_k_items() -> None:
    expected = ["a", "b", "c"]
    assert check("topk_overlap", ["a", "x", "y", "b", "c"], expected).score == pytest.approx(1 / 3)
    assert check("topk_overlap", ["c", "a", "b"], expected).correct  # order-insensitive by default
    ordered = check({"name": "topk_overlap", "ordered": True}, ["c", "a", "b"], expected)
    assert (ordered.score, ordered.correct) == (0.0, False)
    assert check({"name": "topk_overlap", "ordered": True}, ["a", "b", "x"], expected).score == pytest.approx(
        2 / 3
    )
    k2 = check({"name": "topk_overlap", "k": 2, "threshold": 1.0}, ["b", "a", "zzz"], expected)
    assert (k2.score, k2.correct) == (1.0, True)
    lenient = check({"name": "topk_overlap", "threshold": 0.6}, ["a", "b", "x"], expected)
    assert lenient.correct and lenient.detail == "missing 'c'"


@pytest.mark.parametrize(
    ("spec", "answer", "expected", "correct"),
    [
        ("numeric", "42 reviews", 42, True),
        ("numeric", "There were 1,234 errors in 3 files", 1234, True),
        ("numeric", 41.5, "42", False),
        ({"name": "numeric", "tolerance": 0.5}, 41.5, 42, True),
        ({"name": "numeric", "tolerance": 0.4}, 41.5, 42, False),
        ({"name": "numeric", "rel_tolerance": 0.05}, "-95", -100, True),
        ({"name": "numeric", "rel_tolerance": 0.01}, "-95", -100, False),
        ("numeric", ["7"], 7, True),
        ("numeric", "3.5e2", 350, True),
    ],
)
def test_numeric(spec: object, answer: object, expected: object, correct: bool) -> None:
    assert check(spec, answer, expected).correct is correct


def test_numeric_without_a_number_in_the_answer() -> None:
    result = check("numeric", "I could not count them", 42)
    assert not result.correct and "no number" in (result.detail or "")
    with pytest.raises(UserError, match="not a number"):
        check("numeric", "42", "many")


def test_python_checker(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.syspath_prepend(str(FIXTURES))
    assert check("python:checker_funcs:same_length", "abc", "xyz").correct
    assert not check("python:checker_funcs:same_length", "abcd", "xyz").correct
    half = check("python:checker_funcs:half", "a", "b")
    assert (half.score, half.correct) == (0.5, False)
    assert check("python:checker_funcs:same_length", None, "xyz").detail == "empty answer"
    assert check({"name": "python:checker_funcs:at_least", "minimum": 3}, "4", 1).correct
    assert not check({"name": "python:checker_funcs:at_least", "minimum": 5}, "4", 1).correct
    boom = check("python:checker_funcs:explode", "a", "b")
    assert not boom.correct and "RuntimeError: boom" in (boom.detail or "")
    with pytest.raises(UserError, match="returned str"):
        check("python:checker_funcs:bad_type", "a", "b")


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("python:no_such_module_xyz:f", "cannot import checker module 'no_such_module_xyz'"),
        ("python:checker_funcs:missing", "has no function 'missing'"),
        ("python:checker_funcs", "bad python checker"),
    ],
)
def test_python_checker_errors(monkeypatch: pytest.MonkeyPatch, spec: str, message: str) -> None:
    monkeypatch.syspath_prepend(str(FIXTURES))
    with pytest.raises(UserError, match=message):
        get_checker(spec)


def test_unknown_checker_lists_the_choices() -> None:
    with pytest.raises(UserError) as info:
        get_checker("exactly")
    text = info.value.one_line()
    assert "unknown checker 'exactly'" in text and "did you mean 'exact'" in text
    for name in CHECKERS:
        assert name in text
    assert "python:module:function" in text


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ({"name": "numeric", "tol": 1}, "no parameter 'tol'"),
        ({"name": "exact", "threshold": 1}, "takes no parameters"),
        ({"name": "set_f1", "threshold": 2}, "threshold must be a number in \\[0, 1\\]"),
        ({"name": "topk_overlap", "k": 0}, "k must be a positive integer"),
        ({"name": "numeric", "tolerance": -1}, "tolerance must be a number >= 0"),
        ({"tolerance": 1}, "needs a name"),
        (42, "must be a name or a mapping"),
    ],
)
def test_bad_checker_parameters(spec: object, message: str) -> None:
    with pytest.raises(UserError) as info:
        get_checker(spec)  # type: ignore[arg-type]
    assert re.search(message, info.value.one_line())


def test_normalization_helpers() -> None:
    assert normalize("  Hello,   WORLD!! ") == "hello, world"
    assert normalize("3.0") == normalize(3) == "3"
    assert parse_structured("a; b; c") == ["a", "b", "c"]
    assert parse_structured("(1, 2)") == [1, 2]
    assert parse_structured({"x": 1}) == {"x": 1}


def test_check_result_rejects_scores_outside_the_unit_interval() -> None:
    with pytest.raises(ValueError):
        CheckResult(1.5, True)
