"""``--executor`` choices on the command line, without starting Ray (these need no ray extra)."""

from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path

import pytest
from recorder_fakes import write_task

ROOT = Path(__file__).resolve().parents[1]

# `import ray` fails in this child as it does where the extra is not installed.
NO_RAY = "import sys; sys.modules['ray'] = None; from rlmine.cli import main; sys.argv[0] = 'rlmine'; main()"


def rlmine(*args: str, without_ray: bool = False) -> subprocess.CompletedProcess[str]:
    head = [sys.executable, "-c", NO_RAY] if without_ray else [sys.executable, "-m", "rlmine"]
    return subprocess.run([*head, *args], capture_output=True, text=True, cwd=ROOT, timeout=60)


def test_executor_ray_without_ray_installed_is_one_line_naming_the_extra(tmp_path: Path) -> None:
    task = write_task(tmp_path)
    db = tmp_path / "x.duckdb"
    result = rlmine("record", str(task), "--executor", "ray", "--db", str(db), without_ray=True)
    assert result.returncode == 1 and result.stdout == ""
    assert result.stderr == (
        "Error: --executor ray needs Ray, which is not installed — try pip install 'rlmine[ray]'\n"
    )
    assert not db.exists()  # refused before anything was written


def test_mine_executor_ray_without_ray_installed_names_the_extra(tmp_path: Path) -> None:
    db = tmp_path / "x.duckdb"
    result = rlmine("mine", "--executor", "ray", "--db", str(db), without_ray=True)
    assert result.returncode == 1
    assert (
        result.stderr.startswith("Error: --executor ray needs Ray")
        and "pip install 'rlmine[ray]'" in result.stderr
    )


def test_unknown_executor_and_ray_flags_on_the_local_executor_are_refused(tmp_path: Path) -> None:
    task = write_task(tmp_path)
    db = tmp_path / "x.duckdb"
    unknown = rlmine("record", str(task), "--executor", "dask", "--db", str(db))
    assert unknown.returncode == 1
    assert unknown.stderr == "Error: unknown executor 'dask' — try --executor one of: local, ray\n"
    stray = rlmine("record", str(task), "--ray-address", "auto", "--db", str(db))
    assert stray.returncode == 1
    assert stray.stderr == "Error: --ray-address is for the Ray executor only — try adding --executor ray\n"
    assert not db.exists()


def test_an_unreachable_ray_address_is_one_line_before_anything_is_written(tmp_path: Path) -> None:
    pytest.importorskip("ray")
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    task = write_task(tmp_path)
    db = tmp_path / "x.duckdb"
    result = rlmine(
        "record", str(task), "--executor", "ray", "--ray-address", f"127.0.0.1:{port}", "--db", str(db)
    )
    assert result.returncode == 1
    error = result.stderr.strip().splitlines()[-1]
    assert error.startswith(f"Error: no Ray cluster answers at 127.0.0.1:{port} (Connection refused) — try ")
    assert not db.exists()


def test_a_ray_env_variable_that_is_not_set_is_refused(tmp_path: Path) -> None:
    pytest.importorskip("ray")
    task = write_task(tmp_path)
    db = tmp_path / "x.duckdb"
    result = rlmine(
        "record", str(task), "--executor", "ray", "--ray-env", "RLMINE_NOT_SET_ANYWHERE", "--db", str(db)
    )
    assert result.returncode == 1
    assert result.stderr.strip().splitlines()[-1] == (
        "Error: --ray-env RLMINE_NOT_SET_ANYWHERE is not set in this environment — "
        "try export RLMINE_NOT_SET_ANYWHERE=… before recording, or drop --ray-env RLMINE_NOT_SET_ANYWHERE"
    )
    assert not db.exists()
