"""A mining as table rows: one DataFrame per mining table, written in one transaction."""

from __future__ import annotations

import json
from dataclasses import asdict
from typing import TYPE_CHECKING

import pandas as pd

from miner.result import MiningResult
from miner.steps import Step

if TYPE_CHECKING:
    from miner.pipeline import MineOptions

__all__ = ["mining_tables"]


def mining_tables(
    result: MiningResult,
    opts: MineOptions,
    steps: list[Step],
    normalized: list[str],
    step_hash: list[str],
    tactic_of_step: list[str | None],
    *,
    tactics_medoid_hashes: list[str],
) -> dict[str, pd.DataFrame]:
    mid = result.mining_id
    mining = pd.DataFrame(
        [
            {
                "id": mid,
                "task_id": result.task_id,
                "params": json.dumps({**asdict(opts), "edits": result.edits}),
                "model": result.model,
                "n_runs": result.n_runs,
                "n_steps": result.n_steps,
                "n_distinct": result.n_distinct,
                "n_tactics": len(result.tactics),
                "n_outliers": result.n_outliers,
                "n_unparsed": result.n_unparsed,
                "base_rate": result.base_rate,
                "consensus": json.dumps(result.consensus),
                "timings": json.dumps({k: round(v, 4) for k, v in result.timings.items()}),
                "created_at": pd.Timestamp.now(tz="UTC").tz_localize(None),
            }
        ]
    )
    step_df = pd.DataFrame(
        {
            "mining_id": mid,
            "run_id": [s.run_id for s in steps],
            "iteration": [s.iteration for s in steps],
            "ordinal": [s.ordinal for s in steps],
            "line_start": [s.line_start for s in steps],
            "line_end": [s.line_end for s in steps],
            "code": [s.code for s in steps],
            "normalized": normalized,
            "hash": step_hash,
            "parsed": [s.parsed for s in steps],
            "failed": [s.failed for s in steps],
            "tactic_id": pd.Series(tactic_of_step, dtype=object),
        }
    )
    tactic_df = pd.DataFrame(
        [
            {
                "mining_id": mid,
                "id": t.id,
                "label": t.label,
                "keywords": json.dumps(t.keywords),
                "size": t.size,
                "n_runs": t.n_runs,
                "success_rate": t.success_rate,
                "lift": t.lift,
                "median_iterations": t.median_iterations,
                "median_llm_calls": t.median_llm_calls,
                "median_tokens": t.median_tokens,
                "medoid_hash": h,
                "example": t.example,
                "members": json.dumps(t.members),
            }
            for t, h in zip(result.tactics, tactics_medoid_hashes, strict=True)
        ]
    )
    seq_df = pd.DataFrame(
        [
            {"mining_id": mid, "run_id": run, "position": pos, "tactic_id": tactic}
            for run, seq in result.sequences.items()
            for pos, tactic in enumerate(seq)
        ]
    )
    pattern_df = pd.DataFrame(
        [
            {
                "mining_id": mid,
                "tactics": list(p.tactics),
                "length": len(p.tactics),
                "support": p.support,
                "success_rate": p.success_rate,
                "lift": p.lift,
                "median_iterations": p.median_iterations,
                "median_llm_calls": p.median_llm_calls,
                "median_tokens": p.median_tokens,
            }
            for p in result.patterns
        ]
    )
    return {
        "mining_runs": mining,
        "steps": step_df,
        "tactics": tactic_df,
        "run_tactics": seq_df,
        "patterns": pattern_df,
    }
