"""Mined tactics on the run viewer and Compare: pure logic over the store's ``run_steps``.

A step's lines are lines of ``iterations.code``, the iteration's code blocks joined
with a blank line between them (``"\\n\\n".join``), so a step is placed on the block
that holds its first line, with its lines counted from that block's first line.
Compare aligns two runs by their tactic sequences: rare steps (outliers) are left
out and repeats collapsed, as the miner's Flows do, then ``difflib.SequenceMatcher``
pairs the common tactics and marks the rest as gaps.
"""

from __future__ import annotations

import difflib
from collections.abc import Sequence
from dataclasses import dataclass

import pandas as pd

RARE = "rare"
GAP = "—"


@dataclass(frozen=True, slots=True)
class Tag:
    """One step's tactic, placed on a block: lines counted from the block's first line."""

    block: int
    line_start: int
    line_end: int
    tactic_id: str | None  # None: a rare step (an outlier of the mining)
    label: str | None

    @property
    def lines(self) -> str:
        return f"L{self.line_start}" + ("" if self.line_end == self.line_start else f"–{self.line_end}")

    @property
    def badge(self) -> str:
        if self.tactic_id is None:
            return f"{self.lines} · {RARE}"
        return f"{self.lines} · {self.tactic_id}" + (f" {self.label}" if self.label else "")


def block_starts(codes: Sequence[str]) -> list[int]:
    """The line of the joined cell where each block begins (1-based)."""
    starts, line = [], 1
    for code in codes:
        starts.append(line)
        line += code.count("\n") + 2  # the block's lines, then the blank line of the join
    return starts


def place_steps(steps: pd.DataFrame, codes: Sequence[str]) -> list[Tag]:
    """``run_steps`` rows of one iteration as tags on its blocks (one block when ``codes`` is empty)."""
    starts = block_starts(codes) if codes else [1]
    tags = []
    for row in steps.to_dict("records"):
        first, last = int(row["line_start"]), int(row["line_end"])
        block = max((i for i, s in enumerate(starts) if s <= first), default=0)
        offset = starts[block] - 1
        tactic = None if pd.isna(row["tactic_id"]) else str(row["tactic_id"])
        label = None if pd.isna(row["tactic_label"]) else str(row["tactic_label"])
        tags.append(Tag(block, first - offset, last - offset, tactic, label))
    return tags


def tactic_sequence(steps: pd.DataFrame) -> list[str]:
    """A run's tactic sequence: rare steps left out, repeats in a row collapsed."""
    out: list[str] = []
    for tactic in steps["tactic_id"]:
        if pd.isna(tactic):
            continue
        if not out or out[-1] != tactic:
            out.append(str(tactic))
    return out


def align(a: Sequence[str], b: Sequence[str]) -> pd.DataFrame:
    """Two tactic sequences aligned: one row per position, ``match`` True where both hold the tactic.

    A gap in a run is ``None``; positions count from 1 in each run's sequence.
    """
    rows: list[tuple[int | None, str | None, str | None, int | None, bool]] = []
    matcher = difflib.SequenceMatcher(a=list(a), b=list(b), autojunk=False)
    for op, i1, i2, j1, j2 in matcher.get_opcodes():
        if op == "equal":
            rows += [
                (i + 1, a[i], b[j], j + 1, True) for i, j in zip(range(i1, i2), range(j1, j2), strict=True)
            ]
            continue
        # A replaced stretch shows both sides against gaps, so no unlike tactics look paired.
        rows += [(i + 1, a[i], None, None, False) for i in range(i1, i2)]
        rows += [(None, None, b[j], j + 1, False) for j in range(j1, j2)]
    return pd.DataFrame(rows, columns=["pos_a", "tactic_a", "tactic_b", "pos_b", "match"], dtype=object)


def labels_of(steps: pd.DataFrame) -> dict[str, str]:
    """Tactic id -> label, from ``run_steps`` rows."""
    known = steps.dropna(subset=["tactic_id", "tactic_label"])
    return dict(zip(known["tactic_id"].astype(str), known["tactic_label"].astype(str), strict=True))
