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

EXPORTED = [
    "AgentRecord",
    "BatchSummary",
    "CORRECT_CHOICES",
    "CandidateRecord",
    "Catalog",
    "Connection",
    "DatabaseError",
    "ERROR_CHOICES",
    "EvalRow",
    "HeldWriter",
    "InstanceRow",
    "LATEST_VERSION",
    "PageData",
    "PageState",
    "RUN_SORT_COLUMNS",
    "RecordError",
    "ReplCell",
    "Row",
    "RunFilter",
    "RunRecorder",
    "RunSummary",
    "SCHEMAS",
    "STATUS_FILTERS",
    "SlotRun",
    "Store",
    "TABLE_ORDER",
    "TraceRows",
    "VERDICT_LABELS",
    "batch_runs",
    "batch_summary",
    "cached_embeddings",
    "catalog_from_record",
    "check_header",
    "claim_slots",
    "code_cells",
    "count_runs",
    "current_owner",
    "current_version",
    "delete_runs",
    "directly_follows",
    "dumps",
    "eval_rows",
    "export_jsonl",
    "export_parquet",
    "find_task_id",
    "finished_batch_runs",
    "get_agent",
    "get_run_summary",
    "get_tactic",
    "get_trace",
    "iter_traces",
    "latest_agent_for_task",
    "latest_build",
    "latest_mining",
    "limit_threads",
    "list_agents",
    "list_candidates",
    "list_evals",
    "list_minings",
    "list_runs",
    "list_tactics",
    "load_page",
    "merge_rows",
    "next_tactic_number",
    "owner_alive",
    "previous_tactics",
    "prompt_columns",
    "read_cells",
    "read_instances",
    "read_task",
    "release_claims",
    "replace_run_tables",
    "replace_runs",
    "resolve_agent_id",
    "resolve_run_id",
    "run_costs",
    "run_from_row",
    "run_row",
    "run_sequences",
    "run_steps",
    "runs_on_instances",
    "save_build",
    "save_embeddings",
    "save_eval",
    "save_mining",
    "save_records",
    "save_runs",
    "save_traces",
    "stale_flags",
    "step_vectors",
    "sub_call_responses",
    "successful_runs",
    "table_counts",
    "tactic_members",
    "tactic_sequences",
    "task_id_for",
    "task_names",
    "task_row",
    "to_arrow",
    "top_patterns",
    "trace_from_record",
    "trace_rows",
    "upsert_batch",
    "upsert_instances",
    "upsert_task",
]


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
