"""``rlmine sim-server``: the simulator behind a loopback OpenAI-compatible API.

Model ``sim`` is the simulated root model, ``sim-sub`` the task-aware oracle sub-LM.
Any OpenAI client (``rlmine run --api-base URL --model sim``, curl, the SDK) can
then exercise the real network path offline. Both LMs are built before the server
starts, so a missing simulator is reported at once rather than on the first request.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from typing import Annotated

import typer
from rich.console import Console

from recorder.lm.base import LM
from rlmine.cli.output import err_console
from rlmine.errors import RlmineError, UserError

__all__ = ["SIM_MODELS", "register", "sim_lm_factory"]

SIM_MODELS: Mapping[str, str] = {"sim": "root", "sim-sub": "sub"}  # model name → simulator role


def sim_lm_factory(*, latency: float | None = None, seed: int | None = None) -> Callable[[str], LM]:
    """A server factory: one simulator LM per served model name; other names are a UserError."""

    from recorder.lm.registry import make_lm

    def factory(model: str) -> LM:
        role = SIM_MODELS.get(model)
        if role is None:
            choices = ", ".join(SIM_MODELS)
            raise UserError(f"the simulator server has no model {model!r}", f"--model one of: {choices}")
        return make_lm("sim", role=role, latency=latency, seed=seed)

    return factory


def register(app: typer.Typer) -> None:
    """Add the ``sim-server`` command to ``app``."""

    @app.command("sim-server")
    def sim_server(
        host: Annotated[str, typer.Option(help="Loopback address to bind.")] = "127.0.0.1",
        port: Annotated[int, typer.Option(help="TCP port (0-65535); 0 picks a free one.")] = 0,
        latency: Annotated[float | None, typer.Option(help="Simulated seconds per call (scale).")] = None,
        seed: Annotated[int | None, typer.Option(help="Simulator seed.")] = None,
        rate_limit_every: Annotated[int | None, typer.Option(min=1, help="Every Nth request → 429.")] = None,
        retry_after: Annotated[float, typer.Option(min=0, help="Retry-After seconds sent with a 429.")] = 1.0,
        error_500_every: Annotated[int | None, typer.Option(min=1, help="Every Nth request → 500.")] = None,
        slow_every: Annotated[int | None, typer.Option(min=1, help="Every Nth request is slow.")] = None,
        slow_s: Annotated[float, typer.Option(min=0, help="Seconds a slow request waits.")] = 5.0,
        malformed_every: Annotated[
            int | None, typer.Option(min=1, help="Every Nth request → broken JSON.")
        ] = None,
    ) -> None:
        """Serve the SIMULATOR (a stand-in, not a real LLM) as an OpenAI-compatible API on loopback."""
        console = Console(highlight=False)
        from recorder.lm.server import FaultConfig, SimServer

        faults = FaultConfig(
            rate_limit_every=rate_limit_every,
            retry_after_s=retry_after,
            error_500_every=error_500_every,
            malformed_every=malformed_every,
            slow_every=slow_every,
            slow_s=slow_s,
        )
        try:
            if not 0 <= port <= 65535:
                raise UserError(
                    f"port {port} is out of range (0-65535)", "--port 8000, or --port 0 for a free one"
                )
            build = sim_lm_factory(latency=latency, seed=seed)
            lms = {name: build(name) for name in SIM_MODELS}
            server = SimServer(
                lambda name: lms[name] if name in lms else build(name),
                host=host,
                port=port,
                faults=faults,
                models=list(SIM_MODELS),
            )
            url = server.start()
        except RlmineError as exc:  # one line on stderr, also when run outside rlmine's main()
            err_console().print(f"Error: {exc.one_line()}", markup=False)
            raise typer.Exit(1) from None
        console.print(f"Simulator (not a real LLM) serving at {url}", markup=False, soft_wrap=True)
        console.print(
            f"Use it with: --api-base {url} --model sim   (sub-LM: --model sim-sub)",
            markup=False,
            soft_wrap=True,
        )
        console.print("Press Ctrl-C to stop.", markup=False)
        console.file.flush()
        try:
            threading.Event().wait()
        except KeyboardInterrupt:
            console.print("Stopped.", markup=False)
        finally:
            server.stop()
