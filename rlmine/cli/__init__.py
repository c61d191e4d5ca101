"""The ``rlmine`` command line: a thin layer over each package's Python API.

Every command module exposes ``register(app)``. Library errors
(:class:`rlmine.errors.RlmineError`) become one ``Error: … — try …`` line and a
non-zero exit here, at the edge, and nowhere else.
"""

from __future__ import annotations

import importlib
import os
import sys

import typer

from rlmine import __version__
from rlmine.cli.help_format import hide_flag_types
from rlmine.cli.output import err_console
from rlmine.errors import RlmineError

# Command modules, in --help order. Each defines register(app).
COMMAND_MODULES = (
    "rlmine.cli.demo",
    "rlmine.cli.record",
    "rlmine.cli.runs",
    "rlmine.cli.tasks",
    "rlmine.cli.families",
    "rlmine.cli.imports",
    "rlmine.cli.score",
    "rlmine.cli.mine",
    "rlmine.cli.tactic_edits",
    "rlmine.cli.export",
    "rlmine.cli.db",
    "rlmine.cli.dashboard",
    "rlmine.cli.simserver",
    "rlmine.cli.agents",
    "rlmine.cli.evaluate",
)

app = typer.Typer(
    name="rlmine",
    help="Record Recursive Language Model runs, browse their traces, mine tactics, build agents.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode="rich",
)
hide_flag_types()


def _version(value: bool) -> None:
    if value:
        typer.echo(f"rlmine {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Show the version and exit."
    ),
) -> None:
    """rlmine: turn RLM traces into reusable agents."""


def _register_all() -> None:
    for name in COMMAND_MODULES:
        module = importlib.import_module(name)
        register = getattr(module, "register", None)
        if register is not None:
            register(app)


_register_all()


def main() -> None:
    """Console-script entry point: run the app, turn domain errors into one line."""
    try:
        code = app(standalone_mode=False)
        if isinstance(code, int) and code != 0:
            sys.exit(code)
    except RlmineError as exc:
        err_console().print(f"Error: {exc.one_line()}", markup=False, highlight=False, soft_wrap=True)
        sys.exit(1)
    except typer.Exit as exc:
        sys.exit(exc.exit_code)
    except typer.Abort:
        err_console().print("Aborted.", markup=False)
        sys.exit(130)
    except KeyboardInterrupt:
        err_console().print("Interrupted.", markup=False)
        sys.exit(130)
    except Exception as exc:  # the click usage errors and anything unexpected
        # Usage errors. Recent typer vendors click (typer._click), so its exceptions
        # are not click's classes: recognise either by the class name in the MRO.
        if any(cls.__name__ == "ClickException" for cls in type(exc).__mro__):
            if type(exc).__name__ != "NoArgsIsHelpError":  # typer has printed the help already
                exc.show()  # type: ignore[attr-defined]
            sys.exit(int(exc.exit_code))  # type: ignore[attr-defined]
        if os.environ.get("RLMINE_DEBUG"):
            raise
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        err_console().print(
            f"Error: unexpected {type(exc).__name__}: {first} — try again with RLMINE_DEBUG=1 for details",
            markup=False,
            soft_wrap=True,
        )
        sys.exit(1)
