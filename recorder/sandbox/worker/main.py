"""Entry point of the sandbox's processes: ``python -s -P worker/main.py SETTINGS_JSON``.

The same file starts the fork-server template (``worker/main.py --fork-server FD``, see
:mod:`recorder.sandbox.worker.template`), which imports the same modules once and forks workers.

The host starts this file by path with ``-P`` (the script's directory is not put on
``sys.path``). The worker-side modules (``serve``, ``runtime``, ``isolation``, ``guards``,
``capture``, ``protocol``, ``context_loader``, ``text_reader``) use the standard library
only; to import them without running ``recorder/__init__.py`` and
``recorder/sandbox/__init__.py`` (host-side code that may grow heavy imports and would slow
every worker start), the three packages down to ``recorder.sandbox.worker`` are registered
as bare modules whose ``__path__`` points at their directories. Nothing is added to ``sys.path``.
"""

from __future__ import annotations

import os
import sys
import types


def _register_packages() -> None:
    worker_dir = os.path.dirname(os.path.abspath(__file__))
    sandbox_dir = os.path.dirname(worker_dir)
    for name, path in (
        ("recorder", os.path.dirname(sandbox_dir)),
        ("recorder.sandbox", sandbox_dir),
        ("recorder.sandbox.worker", worker_dir),
    ):
        package = types.ModuleType(name)
        package.__path__ = [path]
        sys.modules[name] = package


def main() -> int:
    _register_packages()
    if sys.argv[1:2] == ["--fork-server"]:
        from recorder.sandbox.worker.template import run_template

        return run_template(int(sys.argv[2]))
    from recorder.sandbox.worker.serve import serve

    return serve(sys.argv[1])


if __name__ == "__main__":
    sys.exit(main())
