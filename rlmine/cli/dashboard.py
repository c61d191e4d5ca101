"""``rlmine dashboard``: start the Streamlit app on a database.

The app runs as a ``streamlit run dashboard/app.py`` subprocess: headless, no
usage statistics, no browser opened, no file watcher. The database path goes
through ``$RLMINE_DB`` (absolute, so the app's working directory does not
matter); the repository root is put on ``PYTHONPATH`` so ``import dashboard``
works from a checkout. A missing database is not an error: the app shows how
to create one and picks it up on refresh.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from pathlib import Path
from types import FrameType

import typer

from rlmine.cli.options import DbOption
from rlmine.cli.output import console
from rlmine.config import DB_ENV, resolve_db_path
from rlmine.errors import UserError

APP_PATH = Path(__file__).resolve().parents[2] / "dashboard" / "app.py"


def streamlit_command(app_path: Path, *, host: str, port: int, debug: bool = False) -> list[str]:
    """The ``streamlit run`` command line for the dashboard."""
    return [
        sys.executable,
        "-m",
        "streamlit",
        "run",
        str(app_path),
        "--server.headless=true",
        f"--server.address={host}",
        f"--server.port={port}",
        "--server.fileWatcherType=none",
        "--server.runOnSave=false",
        "--browser.gatherUsageStats=false",
        "--global.developmentMode=false",
        "--client.toolbarMode=viewer",
        # Pages catch their own errors; this hides tracebacks of anything that slips past them.
        f"--client.showErrorDetails={'full' if debug else 'none'}",
    ]


def streamlit_env(db: Path, app_path: Path, base: dict[str, str] | None = None) -> dict[str, str]:
    """The environment for the app: the database, the repository on PYTHONPATH, no telemetry."""
    env = dict(os.environ if base is None else base)
    env[DB_ENV] = str(db)
    repo = str(app_path.resolve().parents[1])
    env["PYTHONPATH"] = os.pathsep.join(p for p in (repo, env.get("PYTHONPATH", "")) if p)
    env["STREAMLIT_BROWSER_GATHER_USAGE_STATS"] = "false"
    return env


def check_port_free(host: str, port: int) -> None:
    """Fail early, with the fix, when something already listens on ``host:port``."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise UserError(f"cannot resolve host {host!r}", "--host 127.0.0.1") from exc
    family, kind, proto, _, address = infos[0]
    with socket.socket(family, kind, proto) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(address)
        except OSError as exc:
            raise UserError(f"port {port} on {host} is already in use", f"--port {port + 1}") from exc


def _run(command: list[str], env: dict[str, str]) -> int:
    """Run the app until it exits; Ctrl-C and SIGTERM stop it cleanly."""
    child = subprocess.Popen(command, env=env)

    def _forward(signum: int, _frame: FrameType | None) -> None:
        child.send_signal(signum)

    previous = signal.signal(signal.SIGTERM, _forward)
    try:
        return child.wait()
    except KeyboardInterrupt:  # the child got the same SIGINT from the terminal
        try:
            return child.wait(timeout=10)
        except subprocess.TimeoutExpired:
            child.kill()
            return child.wait()
    finally:
        signal.signal(signal.SIGTERM, previous)


def dashboard_cmd(
    db: Path | None = DbOption,
    port: int = typer.Option(8501, "--port", min=1, max=65535, help="Port to serve on."),
    host: str = typer.Option(
        "127.0.0.1", "--host", help="Address to listen on (0.0.0.0 for every interface)."
    ),
) -> None:
    """Browse runs in a web dashboard (read-only; safe while a batch is recording)."""
    path = resolve_db_path(db).resolve()
    if path.is_dir():
        raise UserError(f"{path} is a directory, not a database file", "--db path/to/file.duckdb")
    if not APP_PATH.is_file():
        raise UserError(f"the dashboard app is missing ({APP_PATH})", "reinstalling rlmine")
    check_port_free(host, port)
    debug = bool(os.environ.get("RLMINE_DEBUG"))
    out = console()
    if not path.exists():
        out.print(f"No database at {path} yet: the dashboard will show how to create one.", markup=False)
    out.print(f"rlmine dashboard on http://{host}:{port} (database {path}); Ctrl-C to stop.", markup=False)
    code = _run(streamlit_command(APP_PATH, host=host, port=port, debug=debug), streamlit_env(path, APP_PATH))
    if code not in (0, -signal.SIGTERM, -signal.SIGINT):
        raise typer.Exit(code if code > 0 else 1)


def register(app: typer.Typer) -> None:
    app.command("dashboard")(dashboard_cmd)
