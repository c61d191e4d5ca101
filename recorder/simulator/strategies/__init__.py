"""Strategy registry of the simulated root model, per family.

Each family module offers ``detect(question) -> params | None`` (does this
question belong to the family, and with which parameters) and ``STRATEGIES``:
sound strategies (right answers, give or take sub-LLM noise) and flawed ones
(plausible approaches that give wrong answers). The simulator picks flawed ones
at the rate ``1 - success_rate``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from . import celebrities, generic, incident_logs, reviews
from .common import Strategy

__all__ = ["DETECTORS", "STRATEGIES", "Strategy", "detect_family"]

STRATEGIES: dict[str, tuple[Strategy, ...]] = {
    "celebrities": celebrities.STRATEGIES,
    "incident-logs": incident_logs.STRATEGIES,
    "reviews-aggregate": reviews.STRATEGIES,
    "generic": generic.STRATEGIES,
}
DETECTORS: dict[str, Callable[[str], dict[str, Any] | None]] = {
    "celebrities": celebrities.detect,
    "incident-logs": incident_logs.detect,
    "reviews-aggregate": reviews.detect,
}


def detect_family(question: str) -> tuple[str, dict[str, Any]]:
    """(family, params) for a question; ("generic", {"question": ...}) when none matches."""
    for family, detect in DETECTORS.items():
        params = detect(question)
        if params is not None:
            return family, params
    return "generic", {"question": question}
