"""Human-readable sizes: ``parse_size("50MB") -> 52428800``.

Units are binary (1 KB = 1024 bytes), as file managers and ``ls -h`` show them;
``KiB``/``MiB``/``GiB`` are accepted as synonyms. Generated contexts must lie
between :data:`MIN_SIZE` and :data:`MAX_SIZE` (checked by :func:`check_size`).
"""

from __future__ import annotations

import re

from rlmine.errors import UserError

__all__ = ["MAX_SIZE", "MIN_SIZE", "check_size", "format_size", "parse_size"]

_UNITS = {"": 1, "b": 1, "k": 1024, "kb": 1024, "kib": 1024, "m": 1024**2, "mb": 1024**2, "mib": 1024**2}
_UNITS |= {"g": 1024**3, "gb": 1024**3, "gib": 1024**3}
_SIZE_RE = re.compile(r"^\s*(-?\d+(?:\.\d+)?)\s*([a-zA-Z]*)\s*$")

MIN_SIZE = 100 * 1024
MAX_SIZE = 1024**3


def parse_size(text: str | int) -> int:
    """Bytes in ``text`` ("50MB", "1.5 GB", "300kb", "123456"); UserError when unreadable."""
    if isinstance(text, int) and not isinstance(text, bool):
        if text < 0:
            raise UserError(f"size {text} is negative", "a positive size such as 50MB")
        return text
    match = _SIZE_RE.match(str(text))
    unit = match.group(2).lower() if match else ""
    if match is None or unit not in _UNITS:
        raise UserError(f"cannot read the size {text!r}", "a number with B, KB, MB or GB, e.g. 50MB")
    value = float(match.group(1))
    if value < 0:
        raise UserError(f"size {text!r} is negative", "a positive size such as 50MB")
    return int(value * _UNITS[unit])


def format_size(n_bytes: int) -> str:
    """The shortest exact-enough label: 52428800 -> "50MB", 150000 -> "146KB"."""
    for unit, factor in (("GB", 1024**3), ("MB", 1024**2), ("KB", 1024)):
        if n_bytes >= factor:
            value = n_bytes / factor
            return f"{value:.0f}{unit}" if value >= 10 or value.is_integer() else f"{value:.1f}{unit}"
    return f"{n_bytes}B"


def check_size(n_bytes: int) -> int:
    """``n_bytes`` if it is a context size we generate (100KB..1GB), else UserError."""
    if n_bytes < MIN_SIZE or n_bytes > MAX_SIZE:
        raise UserError(
            f"context size {format_size(n_bytes)} ({n_bytes} bytes) is outside 100KB..1GB",
            "a size between 100KB and 1GB, e.g. --size 50MB",
        )
    return n_bytes
