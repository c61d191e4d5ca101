"""``rlmine record`` under hostile conditions: two recorders on one batch, failing endpoints,
bad options (nothing may be written), Ctrl-C's wording.

Real processes, a real database, models over loopback HTTP (as in test_record_cli.py).
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from loopback import running_server

sys.path.insert(0, str(Path(__file__).resolve().parent / "scripts"))

from recorder_fakes import counting_root, write_task

from recorder.lm.base import LM
from recorder.lm.server import SimServer
from rlmine.store import Store

ROOT = Path(__file__).resolve().parents[1]


def model(name: str) -> LM:
    return counting_root(steps=2, delay_s=0.1 if name == "slowcount" else 0.0, model=name)


@pytest.fixture
def server() -> Iterator[SimServer]:
    with running_server(model) as srv:
        yield srv


def rlmine(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "rlmine", *args], capture_output=True, text=True, cwd=ROOT, timeout=timeout
    )


def runs(db: Path) -> list[tuple[Any, ...]]:
    with Store.open(db).reader() as con:
        return con.execute("SELECT slot_key, status, owner FROM runs ORDER BY slot_key").fetchall()


def test_two_identical_recorders_never_run_a_slot_twice(tmp_path: Path, server: SimServer) -> None:
    task = write_task(tmp_path, instances=2)
    db = tmp_path / "runs.duckdb"
    args = ["record", str(task), "--db", str(db), "-n", "8", "-c", "3", "--json"]
    args += ["--model", "slowcount", "--api-base", server.base_url]
    argv = [sys.executable, "-m", "rlmine", *args]
    procs = [
        subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT)
        for _ in range(2)
    ]
    outs = [proc.communicate(timeout=120) for proc in procs]
    for proc, (_out, err) in zip(procs, outs, strict=True):
        assert proc.returncode == 0, err
    reports = [json.loads(out) for out, _err in outs]
    rows = runs(db)
    keys = Counter(key for key, _status, _owner in rows)
    assert len(rows) == 16 and set(keys.values()) == {1}  # 16 slots, one run each
    assert {status for _key, status, _owner in rows} == {"submitted"}
    ran = [len(r["runs"]) for r in reports]
    assert sum(ran) == 16  # between them they ran every slot once
    # whoever started second left the first one's slots alone (and said so), or found them done
    assert all(r["skipped"] + r["elsewhere"] + len(r["runs"]) == 16 for r in reports)
