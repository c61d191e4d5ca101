"""rlmine: record Recursive Language Model runs, mine their tactics, generate agents.

The package holds the CLI, configuration, the shared trace data model and the
trace store. Stages (``recorder``, ``miner``, ``codegen``, ``dashboard``) are
sibling packages that talk to each other only through :mod:`rlmine.store`.
"""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("rlmine")
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0.0.0+src"

__all__ = ["__version__"]
