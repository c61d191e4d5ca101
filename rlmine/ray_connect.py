"""Finding Ray and joining a cluster, shared by the recorder's and the miner's Ray paths.

Ray is an optional extra: it is imported here, only when a Ray path is asked for, and its
absence is a one-line error naming ``pip install 'rlmine[ray]'``. Imports nothing of the
project but :mod:`rlmine.errors`.
"""

from __future__ import annotations

import logging
import os
from types import ModuleType
from typing import Any

from rlmine.errors import UserError

__all__ = ["INSTALL_HINT", "connect", "import_ray"]

INSTALL_HINT = "pip install 'rlmine[ray]'"


def import_ray() -> ModuleType:
    """The ``ray`` module, or a UserError naming the extra to install."""
    try:
        import ray
    except ImportError as exc:
        raise UserError("--executor ray needs Ray, which is not installed", INSTALL_HINT) from exc
    return ray


def connect(address: str | None, init_options: dict[str, Any] | None = None) -> bool:
    """Join Ray; True when this call started (and so should shut down) the connection.

    An already initialised Ray (a notebook, a test) is used as it is. Otherwise
    ``address`` (``auto``, ``ray://HEAD:10001``, ``HOST:6379``), else ``$RAY_ADDRESS``,
    else a private local Ray bound to 127.0.0.1 with the dashboard off.
    """
    ray = import_ray()
    if ray.is_initialized():
        return False
    address = address or os.environ.get("RAY_ADDRESS") or None
    kwargs: dict[str, Any] = {"logging_level": logging.WARNING, **(init_options or {})}
    if not address:
        kwargs = {"include_dashboard": False, "_node_ip_address": "127.0.0.1", **kwargs}
    try:
        ray.init(address=address, **kwargs)
    except (ConnectionError, RuntimeError, ValueError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise UserError(
            f"cannot connect to the Ray cluster at {address}: {first}",
            "--ray-address auto on a cluster node, ray://HEAD:10001 from outside, or no --ray-address "
            "for a local Ray",
        ) from exc
    return True
