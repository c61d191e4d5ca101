"""What every test shares: no real model requests, and the explicit opt-in for loopback servers.

Real model requests are impossible in the test suite: before collection this turns the switch
of :mod:`recorder.lm.guard` off, both in this process (``recorder.lm.ALLOW_MODEL_REQUESTS``)
and for every subprocess a test starts (``RLMINE_ALLOW_MODEL_REQUESTS=0``). A backend asked for
a request then raises ``ModelRequestsDisabled``, which fails the test.

A test that talks to a loopback OpenAI-compatible server (``tests/loopback.py``, ``rlmine
sim-server``) opts in, to loopback addresses only, with the marker::

    pytestmark = pytest.mark.loopback_models      # a whole module
    @pytest.mark.loopback_models                  # one test

Helper modules shared with the subprocess scripts live in ``tests/scripts``; pytest puts that
folder on ``sys.path`` (``pythonpath`` in pyproject.toml), so no test file edits ``sys.path``.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

import recorder.lm
from recorder.lm.guard import ENV


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "loopback_models: the test may send model requests to loopback servers"
    )
    os.environ[ENV] = "0"
    recorder.lm.ALLOW_MODEL_REQUESTS = False


@pytest.fixture(autouse=True)
def _model_requests(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Off for every test; loopback only for tests marked ``loopback_models``."""
    allowed = "loopback" if request.node.get_closest_marker("loopback_models") else False
    monkeypatch.setattr(recorder.lm, "ALLOW_MODEL_REQUESTS", allowed)
    monkeypatch.setenv(ENV, "loopback" if allowed else "0")
    yield
