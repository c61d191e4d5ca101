"""Demo task families: seeded generators of large contexts whose answers are known exactly.

``FAMILIES`` maps a name to a :class:`Family`; ``get_family`` looks one up,
``make_task`` writes many instances of one as a task file (``rlmine tasks make``)
and ``parse_size`` reads sizes such as ``"50MB"``. Each family streams its
context to disk (memory stays flat from 100 KB to 1 GB) and computes the
expected answer while writing.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from rlmine.errors import UserError

from .base import Family
from .celebrities import CelebritiesFamily
from .incident_logs import IncidentLogsFamily
from .reviews import ReviewsFamily
from .sizes import MAX_SIZE, MIN_SIZE, format_size, parse_size
from .task_writer import TaskProgressFn, make_task_with

__all__ = [
    "FAMILIES",
    "MAX_SIZE",
    "MIN_SIZE",
    "Family",
    "format_size",
    "get_family",
    "make_task",
    "parse_size",
]

FAMILIES: dict[str, Family] = {
    family.name: family for family in (CelebritiesFamily(), IncidentLogsFamily(), ReviewsFamily())
}


def get_family(name: str) -> Family:
    """The family called ``name``; UserError listing the choices otherwise."""
    try:
        return FAMILIES[name]
    except KeyError:
        raise UserError(f"unknown task family {name!r}", f"one of: {', '.join(FAMILIES)}") from None


def make_task(
    family: str,
    out_dir: Path,
    *,
    size_bytes: int,
    instances: int,
    seed: int,
    splits: Sequence[float] = (0.6, 0.2, 0.2),
    progress: TaskProgressFn | None = None,
    name: str | None = None,
    covered: bool = False,
) -> Path:
    """Write ``out_dir/task.yaml`` and ``out_dir/contexts/*``; return the task file path.

    ``progress(done_bytes, total_bytes)`` is called as contexts are written; ``name`` is the
    task's name (default ``<family>-<size>-s<seed>``); ``covered`` keeps validation and test
    questions to the categories train asks (see :func:`.task_writer.make_task_with`).
    """
    return make_task_with(
        get_family(family),
        Path(out_dir),
        size_bytes=size_bytes,
        instances=instances,
        seed=seed,
        splits=splits,
        progress=progress,
        name=name,
        covered=covered,
    )
