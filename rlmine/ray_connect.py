"""Finding Ray and joining a cluster, shared by the recorder's and the miner's Ray paths.

Ray is an optional extra: it is imported here, only when a Ray path is asked for, and its
absence is a one-line error naming ``pip install 'rlmine[ray]'``. Imports nothing of the
project but :mod:`rlmine.errors`.
"""

from __future__ import annotations

import logging
import os
import socket
from types import ModuleType
from typing import Any

from rlmine.errors import UserError

__all__ = ["INSTALL_HINT", "connect", "import_ray"]

INSTALL_HINT = "pip install 'rlmine[ray]'"
_REACH_TIMEOUT_S = 5.0


def import_ray() -> ModuleType:
    """The ``ray`` module, or a UserError naming the extra to install."""
    try:
        import ray
    except ImportError as exc:
        raise UserError("--executor ray needs Ray, which is not installed", INSTALL_HINT) from exc
    return ray


def _check_reachable(address: str) -> None:
    """A UserError unless something listens at ``HOST:PORT``: Ray itself keeps retrying an
    unreachable address for minutes before it gives up."""
    host, _, port = address.rpartition(":")
    if not host or not port.isdigit():
        raise UserError(f"--ray-address {address!r} is not HOST:PORT or auto", "--ray-address HEAD:6379")
    try:
        socket.create_connection((host, int(port)), timeout=_REACH_TIMEOUT_S).close()
    except OSError as exc:
        raise UserError(
            f"no Ray cluster answers at {address} ({exc.strerror or exc})",
            "the head node's address and GCS port (as printed by ray start on the head node), or --ray-address auto "
            "on a node of the cluster",
        ) from None


def connect(address: str | None, init_options: dict[str, Any] | None = None) -> bool:
    """Join Ray; True when this call started (and so should shut down) the connection.

    An already initialised Ray (a notebook, a test) is used as it is. Otherwise
    ``address`` (``auto`` or ``HEAD:6379`` from a cluster node), else ``$RAY_ADDRESS``,
    else a private local Ray bound to 127.0.0.1 with the dashboard off.
    """
    ray = import_ray()
    if ray.is_initialized():
        return False
    address = address or os.environ.get("RAY_ADDRESS") or None
    kwargs: dict[str, Any] = {"logging_level": logging.WARNING, **(init_options or {})}
    if not address:  # private and short-lived: its start-up notices are noise to the user
        kwargs = {
            "include_dashboard": False,
            "_node_ip_address": "127.0.0.1",
            **kwargs,
            "logging_level": (init_options or {}).get("logging_level", logging.ERROR),
        }
    if address and address != "auto":
        _check_reachable(address)
    try:
        ray.init(address=address, **kwargs)
    except (ConnectionError, RuntimeError, ValueError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise UserError(
            f"cannot connect to the Ray cluster at {address}: {first}",
            "--ray-address auto (or HEAD:6379) on a node of the cluster, or no --ray-address for a local Ray",
        ) from exc
    return True
