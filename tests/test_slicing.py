"""The backward slice on hand-written cell sequences: each case states the exact slice expected."""

from __future__ import annotations

import pytest

from codegen.slicing import Cell, SliceError, slice_cells


def _slice(*cells: Cell | str) -> list[str]:
    return list(slice_cells([c if isinstance(c, Cell) else Cell(c) for c in cells]).statements)


def test_mutation_by_append_and_dict_update_is_kept_and_prints_go() -> None:
    got = _slice(
        "print(context[:100])\nlines = context.splitlines()\nprint(len(lines))",
        "hits = []\nfor l in lines:\n    if 'ERROR' in l:\n        hits.append(l)\n        print(l)",
        "by = {}\nby.update({'n': len(hits)})\nunused = [x for x in lines if x]",
        "SUBMIT(by['n'])",
    )
    assert got == [
        "lines = context.splitlines()",
        "hits = []",
        "for l in lines:\n    if 'ERROR' in l:\n        hits.append(l)",
        "by = {}",
        "by.update({'n': len(hits)})",
        "SUBMIT(by['n'])",
    ]


def test_subscript_assignment_is_a_mutation_of_its_base() -> None:
    got = _slice("counts = {}", "counts['a'] = 1\ncounts['b'] = 2\npeek = counts['a']", "SUBMIT(counts)")
    assert got == ["counts = {}", "counts['a'] = 1", "counts['b'] = 2", "SUBMIT(counts)"]


def test_function_defined_in_one_cell_and_used_later_keeps_its_globals() -> None:
    got = _slice(
        "import re\nsep = '|'\nprint(context[:50])",
        "def fields(line):\n    return [f.strip() for f in line.split(sep)]",
        "rows = [fields(x) for x in context.splitlines()]",
        "SUBMIT(len(rows))",
    )
    assert got == [
        "sep = '|'",
        "def fields(line):\n    return [f.strip() for f in line.split(sep)]",
        "rows = [fields(x) for x in context.splitlines()]",
        "SUBMIT(len(rows))",
    ]


def test_variable_overwritten_after_a_failed_attempt_takes_the_working_definition() -> None:
    failed = Cell(
        "import json\npattern = r'(\\d+) ERR'\nfound = int(context.split()[99])",
        failed=True,
        error='Traceback (most recent call last):\n  File "<cell 2>", line 3, in <module>\nIndexError: list index out of range',
    )
    got = _slice(
        "pattern = 'first guess'",
        failed,
        "pattern = r'(\\d+) ERROR'\nimport re\nfound = re.findall(pattern, context)",
        "SUBMIT(json.dumps(found))",
    )
    # json was imported by the failed cell before its failing line; `found` from it never existed.
    assert got == [
        "import json",
        "pattern = '(\\\\d+) ERROR'",
        "import re",
        "found = re.findall(pattern, context)",
        "SUBMIT(json.dumps(found))",
    ]


def test_llm_query_inside_a_comprehension_keeps_prompt_and_chunks() -> None:
    result = slice_cells(
        [
            Cell("size = 1000\nchunks = [context[i:i + size] for i in range(0, len(context), size)]"),
            Cell("probe = llm_query('hello?')\nprint(probe)"),
            Cell("prompt = 'Count the names in:'\nanswers = [llm_query(prompt + c) for c in chunks]"),
            Cell("total = sum(int(a) for a in answers)\nSUBMIT(total)\nprint('after')"),
        ]
    )
    assert list(result.statements) == [
        "size = 1000",
        "chunks = [context[i:i + size] for i in range(0, len(context), size)]",
        "prompt = 'Count the names in:'",
        "answers = [llm_query(prompt + c) for c in chunks]",
        "total = sum((int(a) for a in answers))",
        "SUBMIT(total)",
    ]
    assert result.llm_helpers == frozenset({"llm_query"})
    assert result.dropped == 2  # the probe; its print went with it; nothing after SUBMIT ran


def test_exploration_only_cells_vanish() -> None:
    got = _slice(
        "print(type(context), len(context))\ncontext[:300]",
        "import random\nrandom.seed(3)\nfor _l in random.sample(context.splitlines(), 5):\n    print(_l)",
        "n = context.count('\\n')",
        "SUBMIT(n)",
    )
    assert got == ["n = context.count('\\n')", "SUBMIT(n)"]


def test_final_var_in_the_reply_text_ends_the_slice_at_that_variable() -> None:
    got = _slice(
        Cell("print(context[:200])", reply="Let me look first."),
        Cell(
            "lines = context_0.splitlines()\nanswer = str(sum(1 for l in lines if ' ERROR ' in l))\nprint(answer)",
            reply="Count them.",
        ),
        Cell("", reply="The count is in `answer`.\nFINAL_VAR(answer)"),
    )
    assert got == [
        "lines = context.splitlines()",
        "answer = str(sum((1 for l in lines if ' ERROR ' in l)))",
        "SUBMIT(answer)",
    ]


def test_rlms_answer_dict_and_rlm_query_map_onto_the_agent_helpers() -> None:
    got = _slice(
        "from collections import Counter\nc = Counter(l.split()[2] for l in context.splitlines())",
        "check = rlm_query('which?')\nanswer = {'content': c.most_common(1)[0][0], 'ready': True}",
    )
    assert got == [
        "from collections import Counter",
        "c = Counter((l.split()[2] for l in context.splitlines()))",
        "answer = {'content': c.most_common(1)[0][0], 'ready': True}",
        "SUBMIT(answer['content'])",
    ]


def test_a_run_that_never_answers_is_refused() -> None:
    with pytest.raises(SliceError, match="never gave an answer"):
        slice_cells([Cell("x = 1"), Cell("print(x)")])


def test_a_name_only_a_failed_cell_would_have_made_is_refused() -> None:
    cells = [
        Cell("x = undefined_thing()", failed=True, error='File "<cell 1>", line 1\nNameError: nope'),
        Cell("SUBMIT(x)"),
    ]
    with pytest.raises(SliceError, match="depends on x"):
        slice_cells(cells)
