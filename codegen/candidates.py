"""From a recorded run to a candidate program: cells → slice → parameters → grouping key.

Candidates are grouped by the miner's tactic sequence when the store has one for the
run (``mined_steps``), else by the normalized slice (:func:`codegen.program.group_key`);
the question shape is always part of the key, since one program answers one shape.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from codegen.params import PARAMS_NAME, Parameters, parameterize, question_shape
from codegen.program import group_key
from codegen.slicing import Cell, Slice, SliceError, slice_cells
from rlmine.store import ReplCell


@dataclass(frozen=True, slots=True)
class RunProgram:
    """One successful run as a program over parameters."""

    run_id: str
    params: Parameters
    slice: Slice
    statements: tuple[str, ...]  # parameterized
    key: str  # grouping key within the shape
    tactic_sequence: tuple[str, ...]

    @property
    def uses_llm(self) -> bool:
        return bool(self.slice.llm_helpers)


def to_cells(rows: Sequence[ReplCell]) -> list[Cell]:
    """Store cells → slicer cells, marking the last cell of each iteration (where a reply's FINAL applies)."""
    out = []
    for i, row in enumerate(rows):
        last = i + 1 == len(rows) or rows[i + 1].iteration != row.iteration
        out.append(Cell(row.code, row.failed, row.error, row.reply, last))
    return out


def run_program(
    run_id: str,
    cells: Sequence[ReplCell],
    question: str,
    params: Mapping[str, Any],
    all_params: Sequence[Mapping[str, Any]] = (),
    tactic_sequence: tuple[str, ...] = (),
) -> RunProgram:
    """Slice a run and turn its instance values into parameters; raises SliceError."""
    sliced = slice_cells(to_cells(cells))
    if PARAMS_NAME in sliced.code:
        raise SliceError(
            f"the run's code uses the name {PARAMS_NAME!r}, which the agent reserves", "another run"
        )
    found = question_shape(question, params, all_params)
    statements, _used = parameterize(sliced.statements, found.values, all_params)
    key = "tactics:" + "→".join(tactic_sequence) if tactic_sequence else "slice:" + group_key(statements)
    return RunProgram(run_id, found, sliced, tuple(statements), key, tactic_sequence)


@dataclass(frozen=True, slots=True)
class CandidateGroup:
    """Runs of one question shape whose programs share a grouping key (one candidate)."""

    shape_key: str
    key: str
    members: tuple[RunProgram, ...]

    @property
    def representative(self) -> RunProgram:
        return self.members[0]

    @property
    def source_runs(self) -> tuple[str, ...]:
        return tuple(m.run_id for m in self.members)


def group_programs(programs: Sequence[RunProgram]) -> dict[str, list[CandidateGroup]]:
    """Shape key → candidate groups, the most supported first (ties: fewer sub-LLM helpers, then key)."""
    by_key: dict[tuple[str, str], list[RunProgram]] = {}
    for program in programs:
        by_key.setdefault((program.params.shape.key, program.key), []).append(program)
    shapes: dict[str, list[CandidateGroup]] = {}
    for (shape_key, key), members in sorted(by_key.items()):
        shapes.setdefault(shape_key, []).append(CandidateGroup(shape_key, key, tuple(members)))
    for groups in shapes.values():
        groups.sort(key=lambda g: (-len(g.members), len(g.representative.slice.llm_helpers), g.key))
    return shapes
