"""The miner: split recorded code into steps, embed them, cluster them into tactics, and find
the tactic sequences that successful runs share. Reads and writes only through rlmine.store.

Python API::

    import miner
    result = miner.mine("traces/rlmine.duckdb", task="celebrities-16mb-n10-s1")
    names = {t.id: t.label for t in result.tactics}  # each with .size, .lift, medoid example
    plan = [names[tid] for tid in result.consensus]    # the dominant successful approach

Stages (each its own module, swappable like BERTopic's): ``steps`` -> ``normalize`` ->
``embed`` -> ``cluster`` -> ``label`` -> ``flows``; ``pipeline`` strings them together.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from miner.pipeline import MineOptions, MiningResult, Tactic, mine

__all__ = ["MineOptions", "MiningResult", "Tactic", "mine"]


def __getattr__(name: str) -> Any:
    # Lazy: `import miner` stays cheap (scikit-learn and the store load on first use).
    if name in __all__:
        from miner import pipeline

        return getattr(pipeline, name)
    raise AttributeError(name)
