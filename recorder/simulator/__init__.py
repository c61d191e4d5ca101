"""The offline simulator: a seeded root model and a task-aware oracle sub-LM.

``make_simulator_lm(role="root")`` writes real Python for the demo families
(several genuinely different strategies, varied names and styles, deliberate
mistakes and fixes, some wrong approaches) and labels every statement with the
tactic it meant (``metadata["step_labels"]``, ground truth for the miner).
``make_simulator_lm(role="sub")`` answers ``llm_query`` prompts from the
families' ground-truth tables. Both are named "sim" everywhere: they simulate
models, they are not models.
"""

from __future__ import annotations

from rlmine.errors import UserError

from .oracle import DEFAULT_NOISE, UNKNOWN_ANSWER, answer_prompt
from .root import DEFAULT_SUCCESS_RATE, SimulatorRootLM, choose_plan
from .strategies import STRATEGIES, Strategy
from .sub import OracleSubLM

__all__ = [
    "DEFAULT_NOISE",
    "DEFAULT_SUCCESS_RATE",
    "STRATEGIES",
    "UNKNOWN_ANSWER",
    "OracleSubLM",
    "SimulatorRootLM",
    "Strategy",
    "answer_prompt",
    "choose_plan",
    "make_simulator_lm",
    "strategy_names",
]


def strategy_names(family: str) -> list[str]:
    """Names of the simulator's strategies for ``family`` (sound ones first)."""
    if family not in STRATEGIES:
        raise UserError(f"no simulator strategies for {family!r}", f"one of: {', '.join(STRATEGIES)}")
    return [s.name for s in sorted(STRATEGIES[family], key=lambda s: not s.sound)]


def _fraction(name: str, value: float | None) -> None:
    if value is not None and not 0.0 <= value <= 1.0:
        raise UserError(f"simulator option {name}={value} is outside 0..1", f"{name}=0.7")


def make_simulator_lm(
    role: str = "root",
    *,
    seed: int | None = None,
    latency: float | None = None,
    success_rate: float | None = None,
    noise: float | None = None,
) -> SimulatorRootLM | OracleSubLM:
    """The simulated root model (``role="root"``) or the oracle sub-LM (``role="sub"``)."""
    _fraction("success_rate", success_rate)
    _fraction("noise", noise)
    if latency is not None and latency < 0:
        raise UserError(f"simulator latency {latency} is negative", "a scale >= 0, e.g. latency=0.05")
    if role == "root":
        return SimulatorRootLM(seed=seed, latency=latency, success_rate=success_rate)
    if role == "sub":
        return OracleSubLM(seed=seed, latency=latency, noise=noise)
    raise UserError(f"unknown simulator role {role!r}", "role root or sub")
