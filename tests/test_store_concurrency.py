"""Several processes (and threads) on one database file, and a writer killed with SIGKILL.

DuckDB lets only one process hold a file read-write, so these tests run real
subprocesses against real files: short-held connections with lock retries must
let a reader and a writer take turns, and the spool must keep every iteration
a killed recorder had finished.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

from rlmine.store import Store
from rlmine.store._queries import list_runs, table_counts
from rlmine.store._spool import spool_dir
from rlmine.store._writes import save_traces
from rlmine.trace import Iteration, Run, Trace

REPO = Path(__file__).resolve().parents[1]
N_RUNS, N_ITERS = 50, 3

_COMMON = """
import json, sys, time
from pathlib import Path
from rlmine.store import Store
from rlmine.trace import Iteration, Run, Trace

def wait_for(path, limit=60.0):
    deadline = time.monotonic() + limit
    while not Path(path).exists():
        if time.monotonic() > deadline:
            sys.exit("timed out waiting for " + str(path))
        time.sleep(0.005)
"""

_WRITER = (
    _COMMON
    + f"""
from rlmine.store._rows import trace_rows
from rlmine.store._spool import SpoolWriter
from rlmine.store._writes import save_traces

db, mode, ready, done = sys.argv[1:5]
wait_for(ready)
store = Store.open(db)

def trace(i):
    rid = f"R{{i:03d}}"
    its = tuple(Iteration(run_id=rid, index=j, reasoning="r" * 200, code="c" * 300, stdout="o" * 1000)
                for j in range({N_ITERS}))
    return Trace(run=Run(id=rid, engine="rlmine", status="submitted"), iterations=its).with_totals()

if mode == "transactions":
    for i in range({N_RUNS}):
        with store.writer() as con:
            save_traces(con, [trace(i)])
else:
    spool = SpoolWriter(store, flush_interval_s=0.02)
    for i in range({N_RUNS}):
        spool.write(trace_rows(trace(i)))
        time.sleep(0.005)
    spool.close()
Path(done).touch()
"""
)

_READER = (
    _COMMON
    + """
db, ready, done, out = sys.argv[1:5]
store = Store.open(db)
seen = []
deadline = time.monotonic() + 120
while time.monotonic() < deadline:
    finished = Path(done).exists()  # checked before reading: the last read sees everything
    with store.reader() as con:
        runs = con.execute("SELECT count(*) FROM runs").fetchone()[0]
        its = con.execute("SELECT count(*) FROM iterations").fetchone()[0]
        partial = con.execute(
            "SELECT count(*) FROM runs r WHERE n_iterations <> "
            "(SELECT count(*) FROM iterations i WHERE i.run_id = r.id)"
        ).fetchone()[0]
    seen.append([runs, its, partial])
    Path(ready).touch()
    if finished:
        break
    time.sleep(0.002)
Path(out).write_text(json.dumps(seen))
"""
)

_KILLED = (
    _COMMON
    + """
from rlmine.store._owners import current_owner
from rlmine.store._rows import iteration_row, run_row
from rlmine.store._spool import SpoolWriter

store = Store.open(sys.argv[1], create=True)
spool = SpoolWriter(store, flush_interval_s=0.02)
run = Run(id="KILLED", engine="rlmine", status="running", owner=current_owner())
spool.write({"runs": [run_row(run)]})
i = 0
while True:  # the recorder's path: each finished iteration goes to the spool at once
    it = Iteration(run_id="KILLED", index=i, reasoning="r" * 200, code=f"print({i})", stdout="o" * 1000)
    spool.write({"iterations": [iteration_row(it)]})
    print(f"wrote {i}", flush=True)
    i += 1
    time.sleep(0.002)
"""
)


def _script(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / f"{name}.py"
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(REPO)}


@pytest.mark.parametrize("mode", ["transactions", "spool"])
def test_a_reader_and_a_writer_process_at_the_same_time(tmp_path: Path, mode: str) -> None:
    db = tmp_path / "shared.duckdb"
    Store.open(db, create=True)
    ready, done, out = tmp_path / "ready", tmp_path / "done", tmp_path / "seen.json"
    reader = subprocess.Popen(
        [sys.executable, str(_script(tmp_path, "reader", _READER)), str(db), str(ready), str(done), str(out)],
        env=_env(),
        stderr=subprocess.PIPE,
        text=True,
    )
    writer = subprocess.Popen(
        [sys.executable, str(_script(tmp_path, "writer", _WRITER)), str(db), mode, str(ready), str(done)],
        env=_env(),
        stderr=subprocess.PIPE,
        text=True,
    )
    _, writer_err = writer.communicate(timeout=150)
    _, reader_err = reader.communicate(timeout=150)
    assert writer.returncode == 0, writer_err
    assert reader.returncode == 0, reader_err

    seen = json.loads(out.read_text())
    runs = [s[0] for s in seen]
    assert runs[0] == 0  # the reader's first look came before any write
    assert runs == sorted(runs), "committed runs never disappear"
    assert seen[-1] == [N_RUNS, N_RUNS * N_ITERS, 0]
    assert all(partial == 0 for _, _, partial in seen), "a run is never visible without its iterations"
    with Store.open(db).reader() as con:
        assert table_counts(con)["runs"] == N_RUNS
    assert list(spool_dir(db).glob("*.jsonl")) == []


def test_a_reader_thread_waits_for_a_writer_in_the_same_process(tmp_path: Path) -> None:
    store = Store.open(tmp_path / "x.duckdb", create=True)
    result: list[int] = []
    errors: list[BaseException] = []

    def read() -> None:
        try:
            with store.reader() as con:
                result.append(table_counts(con)["runs"])
        except BaseException as exc:
            errors.append(exc)

    with store.writer() as con:
        run = Run(id="R", engine="rlmine", status="submitted")
        save_traces(
            con, [Trace(run=run, iterations=(Iteration(run_id="R", index=0, reasoning=None, code="1"),))]
        )
        thread = threading.Thread(target=read)
        thread.start()
        time.sleep(0.2)  # the reader must wait for this transaction, not fail
    thread.join(timeout=60)
    assert errors == []
    assert result == [1]


@pytest.mark.parametrize("kill_after", [1, 150])
def test_sigkill_mid_run_loses_no_finished_iteration(tmp_path: Path, kill_after: int) -> None:
    db = tmp_path / "killed.duckdb"
    proc = subprocess.Popen(
        [sys.executable, str(_script(tmp_path, "killed", _KILLED)), str(db)],
        env=_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    written: list[int] = []
    for line in proc.stdout:
        written.append(int(line.split()[1]))
        if len(written) >= kill_after:
            break
    proc.send_signal(signal.SIGKILL)
    rest, err = proc.communicate(timeout=60)
    written += [int(line.split()[1]) for line in rest.splitlines() if line.startswith("wrote ")]
    assert proc.returncode == -signal.SIGKILL, err
    assert len(written) >= kill_after

    store = Store.open(db)  # ingests the dead recorder's spool files
    with store.reader() as con:
        stored = {r[0] for r in con.execute("SELECT idx FROM iterations WHERE run_id = 'KILLED'").fetchall()}
        stale = list(list_runs(con, status="stale")["id"])
    assert set(written) <= stored
    assert stale == ["KILLED"]  # its owner is dead: `runs list --status stale` finds it
    assert list(spool_dir(db).glob("*.jsonl")) == []
