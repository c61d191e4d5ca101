"""Test helper: the loopback OpenAI-compatible server, started and stopped around a block.

    from loopback import serve, serve_lm

    with serve_lm(FunctionLM(lambda messages, **kw: "hi")) as base_url:
        lm = OpenAICompatLM("sim", api_base=base_url)

``serve`` yields the base URL (``http://127.0.0.1:PORT/v1``); ``running_server``
yields the :class:`SimServer` itself (for its ``log`` and ``request_count``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager

from recorder.lm.base import LM
from recorder.lm.server import FaultConfig, SimServer


@contextmanager
def running_server(
    lm_factory: Callable[[str], LM], *, faults: FaultConfig | None = None, models: Sequence[str] = ()
) -> Iterator[SimServer]:
    server = SimServer(lm_factory, host="127.0.0.1", port=0, faults=faults, models=models)
    server.start()
    try:
        yield server
    finally:
        server.stop()


@contextmanager
def serve(
    lm_factory: Callable[[str], LM], *, faults: FaultConfig | None = None, models: Sequence[str] = ()
) -> Iterator[str]:
    with running_server(lm_factory, faults=faults, models=models) as server:
        yield server.base_url


@contextmanager
def serve_lm(lm: LM, *, faults: FaultConfig | None = None) -> Iterator[str]:
    """Serve one LM under every model name."""
    with serve(lambda _model: lm, faults=faults) as base_url:
        yield base_url
