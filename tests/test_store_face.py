"""The store's one face: ``rlmine.store.__all__`` is pinned, and nothing outside the store reaches past it.

Every stage (recorder, importers, miner, codegen, dashboard, CLI) reaches the
database through ``from rlmine.store import X`` with ``X`` in ``__all__``; only
modules under ``rlmine/store/`` import ``duckdb`` or the store's private modules.
A new public name is a deliberate change: add it here too.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import rlmine.store

ROOT = Path(__file__).resolve().parents[1]
# The packages held to the rule (tests and benchmarks may build fixtures with SQL).
CHECKED = ("recorder", "miner", "codegen", "dashboard", "rlmine")
STORE = ROOT / "rlmine" / "store"

# The pinned face: one name a line. Change it on purpose, with the face.
EXPORTED = (Path(__file__).parent / "golden" / "store_face_names.txt").read_text().split()


def test_exported_members() -> None:
    """What ``rlmine.store`` exports is exactly the pinned list, and every name exists."""
    assert sorted(rlmine.store.__all__) == sorted(EXPORTED)
    missing = [name for name in rlmine.store.__all__ if not hasattr(rlmine.store, name)]
    assert missing == []


def test_internal_modules_are_private() -> None:
    """Every module of the store but the face and the schema-doc script has a private name."""
    public = sorted(
        p.name for p in STORE.glob("*.py") if not p.name.startswith("_") and p.name != "schema_doc.py"
    )
    assert public == []


def _violations(path: Path, root: Path = ROOT) -> list[str]:
    """Imports in ``path`` that reach past the store's face."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    found: list[str] = []
    public = set(rlmine.store.__all__)
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] == "duckdb" or alias.name.startswith("rlmine.store."):
                    found.append(f"import {alias.name}")
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module is not None:
            if node.module.split(".")[0] == "duckdb" or node.module.startswith("rlmine.store."):
                found.append(f"from {node.module} import ...")
            elif node.module == "rlmine.store":
                found.extend(
                    f"from rlmine.store import {a.name} (not in __all__)"
                    for a in node.names
                    if a.name not in public
                )
            elif node.module == "rlmine":
                found.extend("from rlmine import store" for a in node.names if a.name == "store")
    return [f"{path.relative_to(root)}:{v}" for v in found]


def _checked_files() -> list[Path]:
    files = []
    for package in CHECKED:
        for path in sorted((ROOT / package).rglob("*.py")):
            if STORE in path.parents or ".venv" in path.parts:
                continue
            files.append(path)
    return files


def test_nothing_outside_the_store_imports_duckdb_or_its_internals() -> None:
    files = _checked_files()
    assert len(files) > 100  # the walk found the packages
    violations = [v for path in files for v in _violations(path)]
    assert violations == []


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("import duckdb\n", "import duckdb"),
        ("from duckdb import DuckDBPyConnection\n", "from duckdb import ..."),
        ("from rlmine.store._rows import run_row\n", "from rlmine.store._rows import ..."),
        ("import rlmine.store._spool\n", "import rlmine.store._spool"),
        ("from rlmine.store import _writes\n", "from rlmine.store import _writes (not in __all__)"),
        ("def f():\n    import duckdb\n", "import duckdb"),  # lazy imports count too
    ],
)
def test_the_check_catches_each_kind_of_leak(tmp_path: Path, source: str, expected: str) -> None:
    """The scan is not vacuous: each way past the face is reported."""
    path = tmp_path / "probe.py"
    path.write_text(source, encoding="utf-8")
    assert _violations(path, tmp_path) == [f"probe.py:{expected}"]


def test_the_public_import_passes(tmp_path: Path) -> None:
    path = tmp_path / "probe.py"
    path.write_text("from rlmine.store import Store, get_trace\n", encoding="utf-8")
    assert _violations(path, tmp_path) == []
