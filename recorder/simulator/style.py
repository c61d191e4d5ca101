"""Per-run stylistic choices: variable names, sizes, print style, error injection.

Everything is drawn from one ``random.Random`` seeded by (seed, temperature,
question), so a run is reproducible and different runs read differently. Names
are drawn per role without repeats, so two roles never share a variable.
"""

from __future__ import annotations

import random
from collections.abc import Sequence

__all__ = ["NAME_POOLS", "Style"]

NAME_POOLS: dict[str, tuple[str, ...]] = {
    "lines": ("lines", "rows", "all_lines", "line_list", "raw_lines", "entries"),
    "counter": ("counts", "counter", "freq", "tally", "name_counts", "hits"),
    "chunks": ("chunks", "parts", "pieces", "blocks", "windows", "segments"),
    "replies": ("replies", "answers", "outputs", "responses", "results", "llm_out"),
    "answer": ("answer", "final", "final_answer", "result", "best", "top_answer"),
    "cands": ("candidates", "cands", "name_pool", "pool", "shortlist", "maybe_names"),
    "instr": ("instruction", "q", "ask", "task_prompt", "header", "preamble"),
    "pattern": ("name_re", "pat", "rx", "name_pattern", "cap_re", "regex"),
    "records": ("records", "reviews", "recs", "items", "docs", "data"),
    "subset": ("selected", "subset", "target", "picked", "relevant", "in_scope"),
    "errors": ("errors", "errs", "error_rows", "failures", "err_entries", "bad"),
    "labels": ("labels", "verdicts", "tags", "flags", "classes", "judgements"),
    "totals": ("totals", "per_key", "agg", "summary", "by_key", "score"),
    "sample": ("sample", "probe", "subset_lines", "few", "peek_rows", "test_rows"),
    "gaz": ("celebs", "people", "known", "stars", "celebrity_names", "real_people"),
    "size": ("chunk_size", "size", "step", "n_chars", "csize", "width"),
    "batch": ("batch_size", "bs", "per_call", "group", "n_per", "bsz"),
}


class Style:
    """Seeded choices for one run. Names come out the same for the same role."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self._names: dict[str, str] = {}
        self._used: set[str] = set()
        self.print_style = rng.randrange(3)
        self.verify = rng.random() < 0.5
        self.show_plan = rng.random() < 0.45
        self.bug = rng.random() < 0.3
        self.bug_site = rng.randrange(2)  # where a family with two kinds of mistake makes it
        self.sample_seed = rng.randrange(1, 1000)

    def take_bug(self) -> bool:
        """True once, if this run makes a deliberate mistake (at most one per run)."""
        made, self.bug = self.bug, False
        return made

    def name(self, role: str) -> str:
        if role not in self._names:
            options = [n for n in NAME_POOLS[role] if n not in self._used]
            chosen = self.rng.choice(options)
            self._names[role] = chosen
            self._used.add(chosen)
        return self._names[role]

    def names(self, *roles: str) -> dict[str, str]:
        return {role: self.name(role) for role in roles}

    @property
    def used_names(self) -> frozenset[str]:
        return frozenset(self._used)

    def pick(self, options: Sequence[str]) -> str:
        return self.rng.choice(list(options))

    def number(self, options: Sequence[int]) -> int:
        return self.rng.choice(list(options))

    def show(self, label: str, expr: str) -> str:
        """A print statement in this run's style."""
        if self.print_style == 0:
            return f'print("{label}:", {expr})'
        if self.print_style == 1 and '"' not in expr:  # f-strings cannot nest quotes before 3.12
            return f'print(f"{label} = {{({expr})!r}}")'
        return f'print("{label}", "->", {expr})'
