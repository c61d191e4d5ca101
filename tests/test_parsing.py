"""Splitting root-model replies into reasoning and code, for the shapes real models produce."""

from __future__ import annotations

import pytest

from recorder.parsing import parse_reply


@pytest.mark.parametrize("lang", ["python", "py", "python3", "repl", "", "Python", "PYTHON"])
def test_runnable_fences(lang: str) -> None:
    parsed = parse_reply(f"Look.\n```{lang}\nprint(1)\n```\n")
    assert parsed.blocks == ("print(1)",) and parsed.reasoning == "Look."


@pytest.mark.parametrize("lang", ["json", "bash", "text", "output"])
def test_other_languages_stay_in_the_reasoning(lang: str) -> None:
    reply = f"The output looked like:\n```{lang}\n{{'a': 1}}\n```\nNow code.\n```python\nx = 1\n```"
    parsed = parse_reply(reply)
    assert parsed.blocks == ("x = 1",)
    assert parsed.reasoning == f"The output looked like:\n```{lang}\n{{'a': 1}}\n```\nNow code."


def test_several_blocks_keep_their_order_and_join_as_one_cell() -> None:
    parsed = parse_reply("A\n```python\na = 1\n```\nB\n```repl\nb = a + 1\n```\nC\n```\nprint(b)\n```")
    assert parsed.blocks == ("a = 1", "b = a + 1", "print(b)")
    assert parsed.code == "a = 1\n\nb = a + 1\n\nprint(b)"
    assert parsed.reasoning == "A\n\nB\n\nC"


def test_an_unclosed_last_fence_runs_to_the_end() -> None:
    parsed = parse_reply("Try:\n```python\nx = 1\nprint(x)\n")
    assert parsed.blocks == ("x = 1\nprint(x)",) and parsed.reasoning == "Try:"


def test_no_block_at_all() -> None:
    parsed = parse_reply("  I think the answer is 42.\n\n\n\nBut let me check.  ")
    assert parsed.blocks == () and parsed.code == ""
    assert parsed.reasoning == "I think the answer is 42.\n\nBut let me check."


def test_empty_and_blank_blocks_are_skipped() -> None:
    assert parse_reply("```python\n```\n```python\n   \n\n```").blocks == ()


def test_a_longer_fence_may_contain_a_shorter_one() -> None:
    parsed = parse_reply('````python\ns = """\n```\ninner\n```\n"""\n````\nafter')
    assert parsed.blocks == ('s = """\n```\ninner\n```\n"""',) and parsed.reasoning == "after"


def test_tilde_fences_and_info_strings() -> None:
    assert parse_reply("~~~python\nx = 1\n~~~").blocks == ("x = 1",)
    assert parse_reply("```python title='step 1'\nx = 2\n```").blocks == ("x = 2",)


def test_windows_line_endings() -> None:
    parsed = parse_reply("Plan.\r\n```python\r\nx = 1\r\n```\r\nThen.\r\n```python\r\ny = 2\r\n```\r\n")
    assert parsed.blocks == ("x = 1", "y = 2") and parsed.reasoning == "Plan.\n\nThen."


def test_a_block_indented_as_a_whole_is_dedented() -> None:
    reply = "1. Count:\n   ```python\n   for x in [1]:\n       print(x)\n   ```\n2. Submit."
    parsed = parse_reply(reply)
    assert parsed.blocks == ("for x in [1]:\n    print(x)",)
    assert parsed.reasoning == "1. Count:\n\n2. Submit."
    compile(parsed.blocks[0], "<cell>", "exec")  # runnable as written


def test_code_keeps_its_inner_blank_lines_and_indentation() -> None:
    code = "def f(x):\n    if x:\n\n        return 1\n    return 0"
    assert parse_reply(f"```python\n{code}\n\n```").blocks == (code,)
