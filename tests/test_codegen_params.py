"""Question shapes, derived parameters, literal substitution, and grouping by the miner's tactics."""

from __future__ import annotations

from pathlib import Path

from codegen.candidates import group_programs, run_program
from codegen.params import extract, parameterize, question_shape
from rlmine.store import ReplCell, Store, tactic_sequences

TEMPLATE = "How many reviews written in {month_name} {year} mention {topic}? Answer with an integer."
PARAMS = [
    {"month_name": "December", "month": 12, "year": 2023, "topic": "the battery"},
    {"month_name": "June", "month": 6, "year": 2022, "topic": "the price"},
]


def test_shape_slots_derive_the_month_and_read_other_questions() -> None:
    found = question_shape(TEMPLATE.format(**PARAMS[0]), PARAMS[0], PARAMS)
    assert found.shape.template == TEMPLATE
    assert found.shape.derived == (("month", "month_number", "month_name"),)
    assert found.values == PARAMS[0]
    assert extract(found.shape, TEMPLATE.format(**PARAMS[1])) == PARAMS[1]
    assert extract(found.shape, "Which service failed most?") is None


def test_literals_become_parameter_reads_with_dates_zero_padded() -> None:
    found = question_shape(TEMPLATE.format(**PARAMS[0]), PARAMS[0], PARAMS)
    code, used = parameterize(
        [
            "sel = [r for r in recs if r['date'].startswith('2023-12')]",
            "prompt = 'Does this review mention the battery? yes or no'",
            "top = ranked[:2023]",
            "first = rows[12]",
        ],
        found.values,
    )
    assert code == [
        "sel = [r for r in recs if r['date'].startswith(f\"{question_params['year']}-{question_params['month']:02d}\")]",
        "prompt = f\"Does this review mention {question_params['topic']}? yes or no\"",
        "top = ranked[:question_params['year']]",
        "first = rows[12]",  # an index is a position, not a parameter
    ]
    assert used == {"year", "month", "topic"}
    june = {"year": 2022, "month": 6, "topic": "the price"}
    namespace = {"question_params": june, "recs": [{"date": "2022-06-03"}, {"date": "2022-07-01"}]}
    exec(code[0], namespace)
    assert namespace["sel"] == [{"date": "2022-06-03"}]


def test_a_question_without_parameters_matches_any_question() -> None:
    shape = question_shape("What is in the log?", {}).shape
    assert shape.slots == () and extract(shape, "something else entirely") == {}


def _cells(run_id: str, k: int, name: str) -> list[ReplCell]:
    code = f"{name} = sorted(context.split())\nSUBMIT({name}[:{k}])"
    return [ReplCell(run_id, 0, 0, code, False, None, "")]


def test_runs_group_by_normalized_slice_or_by_the_miners_tactic_sequence(tmp_path: Path) -> None:
    q = "Which {k} words come first?"
    params = [{"k": 3}, {"k": 4}]
    a = run_program("A", _cells("A", 3, "words"), q.format(k=3), params[0], params)
    b = run_program("B", _cells("B", 4, "tokens"), q.format(k=4), params[1], params)
    assert a.key == b.key and a.statements[-1] == "SUBMIT(words[:question_params['k']])"
    groups = group_programs([a, b])
    assert [len(g.members) for g in next(iter(groups.values()))] == [2]
    # Once the miner has run, its tactic sequence (the `mined_steps` view) is the key instead.
    store = Store.open(tmp_path / "m.duckdb", create=True)
    with store.writer() as con:
        con.execute(
            "INSERT INTO steps (mining_id, run_id, iteration, ordinal, line_start, line_end, tactic_id, "
            "hash, parsed, failed) VALUES ('M1', 'A', 0, 0, 1, 1, 'split', 'h1', true, false), "
            "('M1', 'A', 0, 1, 2, 2, 'submit', 'h2', true, false), "
            "('M1', 'B', 0, 0, 1, 1, 'split', 'h1', true, false)"
        )
    with store.reader() as con:
        seqs = tactic_sequences(con, ["A", "B"])
    assert seqs == {"A": ("split", "submit"), "B": ("split",)}
    a2 = run_program("A", _cells("A", 3, "words"), q.format(k=3), params[0], params, seqs["A"])
    b2 = run_program("B", _cells("B", 4, "tokens"), q.format(k=4), params[1], params, seqs["B"])
    assert a2.key == "tactics:split→submit" and a2.key != b2.key
