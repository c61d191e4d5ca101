"""What a mining returns: its tactics, sequences, plan and counts (``miner.mine``'s value)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from miner.flows import Pattern

__all__ = ["MiningResult", "Tactic"]


@dataclass(frozen=True, slots=True)
class Tactic:
    id: str
    label: str
    keywords: list[str]
    size: int
    n_runs: int
    success_rate: float | None
    lift: float | None
    median_iterations: float | None
    median_llm_calls: float | None
    median_tokens: float | None
    example: str
    members: list[str]


@dataclass(frozen=True)
class MiningResult:
    mining_id: str
    task_id: str | None
    model: str
    n_runs: int
    n_steps: int
    n_distinct: int
    n_outliers: int
    n_unparsed: int
    n_embedded: int  # distinct steps embedded now (not found in the cache)
    base_rate: float | None
    tactics: list[Tactic]
    patterns: list[Pattern]
    consensus: list[str]
    sequences: dict[str, list[str]]
    timings: dict[str, float]
    notes: list[str]
    edits: list[str] = field(default_factory=list)  # ids of the tactic edits this mining applied

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["patterns"] = [{**asdict(p), "tactics": list(p.tactics)} for p in self.patterns]
        return data
