"""Every dashboard page under Streamlit's AppTest: empty, missing and fixture databases, bad URLs.

Also the ``rlmine dashboard`` command's pieces (the command line, the
environment, the port check) and its one-line errors.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from dashboard_fixtures import (
    CHILD_RUN,
    IMPORTED_RUN,
    KNOWN_CODE_MARKER,
    KNOWN_RUN,
    TOP_LEVEL_RUNS,
    WRONG_RUN,
    build_empty_db,
    build_fixture_db,
    write_loop,
)
from streamlit.testing.v1 import AppTest
from typer.testing import CliRunner

from dashboard import components
from rlmine.cli import app as cli_app
from rlmine.cli.dashboard import check_port_free, streamlit_command, streamlit_env
from rlmine.errors import UserError

ROOT = Path(__file__).resolve().parents[1]
APP = ROOT / "dashboard" / "app.py"
PAGES = (components.OVERVIEW, components.RUNS, components.RUN_VIEWER, components.COMPARE)


@pytest.fixture(scope="module")
def fixture_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_fixture_db(tmp_path_factory.mktemp("apptest") / "fixture.duckdb")


UseDb = Callable[[Path], Path]


@pytest.fixture()
def use_db(monkeypatch: pytest.MonkeyPatch) -> UseDb:
    """Point the app at a database (as ``rlmine dashboard --db`` does, through $RLMINE_DB)."""

    def _use(path: Path) -> Path:
        monkeypatch.setenv("RLMINE_DB", str(path))
        return path

    monkeypatch.delenv("RLMINE_DEBUG", raising=False)
    return _use


def open_page(page: str, **params: str) -> AppTest:
    at = AppTest.from_file(str(APP), default_timeout=60)
    at.run()  # AppTest needs one run of the entry script before switching pages
    at.query_params.update(params)
    if page != components.OVERVIEW or params:
        at.switch_page(page).run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def texts(at: AppTest) -> str:
    parts = [*at.markdown, *at.caption, *at.info, *at.warning, *at.error, *at.code, *at.title, *at.subheader]
    return "\n".join(str(p.value) for p in parts)


# -- empty states ------------------------------------------------------------------


@pytest.mark.parametrize("page", PAGES)
def test_pages_on_an_empty_database_say_how_to_get_data(page: str, tmp_path: Path, use_db: UseDb) -> None:
    use_db(build_empty_db(tmp_path / "empty.duckdb"))
    at = open_page(page)
    assert not at.error
    info = " ".join(i.value for i in at.info)
    assert "No runs in" in info and "rlmine demo" in info and "rlmine import" in info


@pytest.mark.parametrize("page", PAGES)
def test_pages_on_a_missing_database_show_a_friendly_empty_state(
    page: str, tmp_path: Path, use_db: UseDb
) -> None:
    missing = use_db(tmp_path / "not-there.duckdb")
    at = open_page(page)
    assert not at.error
    info = " ".join(i.value for i in at.info)
    assert f"No database at `{missing.resolve()}`" in info and "rlmine demo" in info
    assert not missing.exists()  # the dashboard never creates the file


def test_a_file_that_is_not_a_database_is_one_line_not_a_traceback(tmp_path: Path, use_db: UseDb) -> None:
    bogus = tmp_path / "notes.duckdb"
    bogus.write_text("not a database at all\n" * 100)
    use_db(bogus)
    at = open_page(components.OVERVIEW)
    assert len(at.error) == 1
    assert "is not a DuckDB database" in at.error[0].value and "Traceback" not in texts(at)


# -- fixture database --------------------------------------------------------------


def test_overview_shows_counts_and_marks_simulator_and_imported_runs(fixture_db: Path, use_db: UseDb) -> None:
    use_db(fixture_db)
    at = open_page(components.OVERVIEW)
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Runs"] == str(len(TOP_LEVEL_RUNS)) and metrics["Success rate"] == "60%"
    assert "**4 are simulator runs**" in texts(at) and "**1 are imported**" in texts(at)
    assert [s.value for s in at.subheader] == [
        "Success rate per task and model",
        "Runs: tokens, time and iterations by verdict",
        "Tokens and cost over time",
        "How runs used their budget",
        "Recent batches",
    ]
    assert not at.error and not at.warning


def test_runs_page_lists_filters_and_searches(fixture_db: Path, use_db: UseDb) -> None:
    use_db(fixture_db)
    at = open_page(components.RUNS)
    assert f"Showing {len(TOP_LEVEL_RUNS)} of {len(TOP_LEVEL_RUNS)} runs." in texts(at)
    assert set(at.dataframe(key="runs_table").value["id"]) == set(TOP_LEVEL_RUNS)
    at.multiselect(key="f_kind").select("imported").run()
    assert "Showing 1 of 1 runs." in texts(at)
    at.multiselect(key="f_kind").unselect("imported").run()
    at.text_input(key="search").input(KNOWN_CODE_MARKER).run()
    assert not at.exception
    # the search narrows the one table (no second table), each run opening at its match
    assert f"Showing 1 of 1 runs containing “{KNOWN_CODE_MARKER}”." in texts(at)
    assert len(at.dataframe) == 1
    table = at.dataframe(key="runs_table").value
    assert set(table["link"]) == {f"run_viewer?run={KNOWN_RUN}&iter=2"}
    assert list(table["match"]) == ["code · iteration 2"]
    at.text_input(key="search").input("no such text anywhere").run()
    assert "No iteration's code, reasoning or output contains" in texts(at)


def test_run_viewer_deep_link_shows_that_iteration(fixture_db: Path, use_db: UseDb) -> None:
    use_db(fixture_db)
    at = open_page(components.RUN_VIEWER, run=KNOWN_RUN, iter="2")
    code = [c.value for c in at.code]
    assert any(c.startswith(f"def {KNOWN_CODE_MARKER}") for c in code)
    assert "#### Iteration 2" in texts(at) and "Simulator ground truth" in texts(at)
    assert any("Show the whole output" in e.label for e in at.expander)  # long output is cut, with expand
    at.button(key="next_top").click().run()
    assert at.query_params["iter"] == "3" and any(c.value == "SUBMIT(42)" for c in at.code)
    at.button(key="prev_top").click().run()
    assert at.query_params["iter"] == "2"


def test_run_viewer_shows_errors_and_sub_calls(fixture_db: Path, use_db: UseDb) -> None:
    use_db(fixture_db)
    at = open_page(components.RUN_VIEWER, run=WRONG_RUN, iter="0")
    assert any("ZeroDivisionError" in c.value for c in at.code)
    assert [e.value for e in at.error] == ["code error"]
    at = open_page(components.RUN_VIEWER, run=KNOWN_RUN, iter="1")
    assert "**2 sub-LLM call(s)**" in texts(at)
    assert any("Classify: db timeout" in c.value for c in at.code)


def test_run_viewer_links_parent_and_nested_child_runs(fixture_db: Path, use_db: UseDb) -> None:
    use_db(fixture_db)
    parent = open_page(components.RUN_VIEWER, run=IMPORTED_RUN, iter="1")
    links = [p.value for p in parent.page_link]
    assert any(label.startswith(f"Open nested run {CHILD_RUN}") for label in links)
    assert any(label.startswith(f"{CHILD_RUN} — from iteration 1") for label in links)
    child = open_page(components.RUN_VIEWER, run=CHILD_RUN)
    assert f"called from iteration 1 of run `{IMPORTED_RUN}`" in texts(child)


def test_run_viewer_show_all_iterations(fixture_db: Path, use_db: UseDb) -> None:
    use_db(fixture_db)
    at = open_page(components.RUN_VIEWER, run=KNOWN_RUN)
    at.toggle(key="viewer_all").set_value(True).run()
    assert all(f"#### Iteration {i}" in texts(at) for i in range(4))


def test_compare_lines_runs_up_by_iteration(fixture_db: Path, use_db: UseDb) -> None:
    use_db(fixture_db)
    at = open_page(components.COMPARE, runs=f"{WRONG_RUN},{KNOWN_RUN}")
    assert all(f"#### Iteration {i}" in texts(at) for i in range(4))
    assert "— (no such iteration: the run had ended)" in texts(at)
    assert at.multiselect(key="compare_pick").value == [WRONG_RUN, KNOWN_RUN]


# -- bad query parameters ----------------------------------------------------------


@pytest.mark.parametrize("page", PAGES)
def test_unknown_run_id_in_the_url_is_a_friendly_message(page: str, fixture_db: Path, use_db: UseDb) -> None:
    use_db(fixture_db)
    at = open_page(page, run="no-such-run", runs="no-such-run", iter="x")
    assert not at.error
    if page == components.RUN_VIEWER:
        assert at.warning[0].value.startswith("no run with id 'no-such-run'")
        assert at.selectbox(key="viewer_pick") is not None  # offers a way on
    if page == components.COMPARE:
        assert "no run with id 'no-such-run'" in at.warning[0].value


def test_run_viewer_with_a_bad_iteration_falls_back_to_the_first(fixture_db: Path, use_db: UseDb) -> None:
    use_db(fixture_db)
    at = open_page(components.RUN_VIEWER, run=KNOWN_RUN, iter="99")
    assert "has no iteration '99'" in at.warning[0].value
    assert "#### Iteration 0" in texts(at)


# -- refresh, auto-refresh, page guard ---------------------------------------------


def test_refresh_shows_runs_written_after_the_page_loaded(tmp_path: Path, use_db: UseDb) -> None:
    db = use_db(build_fixture_db(tmp_path / "growing.duckdb"))
    at = open_page(components.OVERVIEW)
    assert at.metric[0].value == str(len(TOP_LEVEL_RUNS))
    write_loop(db, count=1, interval_s=0)  # another process would do the same
    at.sidebar.button[0].click().run()  # Refresh
    assert at.metric[0].value == str(len(TOP_LEVEL_RUNS) + 1)


def test_auto_refresh_toggle_renders(fixture_db: Path, use_db: UseDb) -> None:
    use_db(fixture_db)
    at = open_page(components.RUNS)
    at.toggle(key=components.AUTO_REFRESH_KEY).set_value(True).run()
    assert not at.exception and at.selectbox(key=components.INTERVAL_KEY).value == 5


@pytest.mark.parametrize("debug", [False, True])
def test_an_unexpected_failure_is_one_friendly_line(
    debug: bool, tmp_path: Path, use_db: UseDb, monkeypatch: pytest.MonkeyPatch
) -> None:
    use_db(build_fixture_db(tmp_path / f"broken-{debug}.duckdb"))
    if debug:
        monkeypatch.setenv("RLMINE_DEBUG", "1")

    def boom(*_args: object) -> None:
        raise RuntimeError("kaboom\nsecond line")

    monkeypatch.setattr("rlmine.store._dashboard_queries.recent_batches", boom)
    at = open_page(components.OVERVIEW)
    assert len(at.error) == 1
    assert "could not be shown (RuntimeError: kaboom)" in at.error[0].value
    assert "second line" not in at.error[0].value
    details = [e for e in at.expander if "RLMINE_DEBUG" in e.label]
    assert bool(details) is debug


# -- the `rlmine dashboard` command ------------------------------------------------


def test_streamlit_command_is_headless_private_and_on_the_given_address() -> None:
    cmd = streamlit_command(APP, host="127.0.0.1", port=8502)
    assert cmd[:5] == [sys.executable, "-m", "streamlit", "run", str(APP)]
    for flag in (
        "--server.headless=true",
        "--browser.gatherUsageStats=false",
        "--server.address=127.0.0.1",
        "--server.port=8502",
        "--client.showErrorDetails=none",
    ):
        assert flag in cmd
    assert "--client.showErrorDetails=full" in streamlit_command(APP, host="::1", port=1, debug=True)


def test_streamlit_env_passes_the_database_and_the_repository(tmp_path: Path) -> None:
    env = streamlit_env(tmp_path / "x.duckdb", APP, base={"PYTHONPATH": "/elsewhere", "HOME": "/h"})
    assert env["RLMINE_DB"] == str(tmp_path / "x.duckdb")
    assert env["PYTHONPATH"] == os.pathsep.join([str(ROOT), "/elsewhere"])
    assert env["HOME"] == "/h" and env["STREAMLIT_BROWSER_GATHER_USAGE_STATS"] == "false"


def test_a_busy_port_is_a_user_error_with_the_fix() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        port = sock.getsockname()[1]
        with pytest.raises(UserError, match=f"port {port} on 127.0.0.1 is already in use") as err:
            check_port_free("127.0.0.1", port)
        assert err.value.hint == f"--port {port + 1}"


def test_cli_rejects_bad_options() -> None:
    result = CliRunner().invoke(cli_app, ["dashboard", "--port", "0"])
    assert result.exit_code != 0 and "--port" in result.output


def test_cli_error_is_one_line_and_exit_1(tmp_path: Path) -> None:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    proc = subprocess.run(
        [sys.executable, "-m", "rlmine", "dashboard", "--db", str(tmp_path)],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert proc.returncode == 1
    assert (
        proc.stderr.strip()
        == f"Error: {tmp_path} is a directory, not a database file — try --db path/to/file.duckdb"
    )
