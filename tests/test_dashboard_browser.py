"""The dashboard in a real headless Chromium, while another process writes runs into the database.

Starts ``rlmine dashboard`` on a free loopback port against the fixture
database, starts a writer subprocess that (like the recorder's spool flusher)
repeatedly opens ``store.writer()`` briefly, saves a run and sleeps, and drives
Debian's Chromium through Playwright: every page renders, the run viewer shows
the code of a known iteration, a click in the runs table opens a run, nested
runs are linked, and the runs written meanwhile appear after Refresh. Only
explicit waits for content (no sleeps). Screenshots go to ``test-artifacts/``.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
from dashboard_fixtures import (
    CHILD_RUN,
    CHROMIUM_ARGS,
    IMPORTED_RUN,
    KNOWN_CODE_MARKER,
    KNOWN_RUN,
    TOP_LEVEL_RUNS,
    WRONG_RUN,
    build_fixture_db,
    child_env,
    running_dashboard,
    stop,
)
from playwright.sync_api import Page, expect, sync_playwright

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = ROOT / "test-artifacts" / "dashboard"
WRITES = 10  # runs the writer adds while the browser works
WRITE_INTERVAL_S = 0.5
WAIT_MS = 30_000

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(
        not CHROMIUM.exists(), reason="no /usr/bin/chromium: install Debian's chromium package"
    ),
]


def shot(page: Page, name: str) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"))


def first_metric(page: Page) -> int:
    value = page.get_by_test_id("stMetricValue").first
    expect(value).to_be_visible()
    return int(value.inner_text().replace(",", ""))


def test_dashboard_in_chromium_while_a_recorder_writes(tmp_path: Path) -> None:
    db = build_fixture_db(tmp_path / "live.duckdb")
    release = tmp_path / "release-last-write"
    writer = subprocess.Popen(
        [
            sys.executable,
            str(ROOT / "tests" / "dashboard_fixtures.py"),
            "write-loop",
            str(db),
            "--count",
            str(WRITES),
            "--interval",
            str(WRITE_INTERVAL_S),
            "--release",
            str(release),
        ],
        env=child_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    expect.set_options(timeout=WAIT_MS)
    try:
        with running_dashboard(db, tmp_path / "dashboard.log") as url, sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
            context = browser.new_context(viewport={"width": 1400, "height": 1100})
            context.set_default_timeout(WAIT_MS)
            page = context.new_page()

            # Overview, read while the writer is busy (its last run waits for `release`).
            page.goto(f"{url}/")
            expect(page.get_by_text("Success rate per task and model")).to_be_visible()
            runs_at_start = first_metric(page)
            assert len(TOP_LEVEL_RUNS) <= runs_at_start < len(TOP_LEVEL_RUNS) + WRITES
            expect(page.get_by_text("are simulator runs")).to_be_visible()
            shot(page, "overview")
            stale = page  # kept open (as a second tab) until the end, then refreshed
            page = context.new_page()

            # Run viewer deep link: the code of iteration 2 of a known run, then Next.
            page.goto(f"{url}/run_viewer?run={KNOWN_RUN}&iter=2")
            expect(page.get_by_text(f"def {KNOWN_CODE_MARKER}(errors):")).to_be_visible()
            expect(page.get_by_text("Simulator ground truth")).to_be_visible()
            page.get_by_text(f"def {KNOWN_CODE_MARKER}(errors):").scroll_into_view_if_needed()
            shot(page, "run_viewer")
            page.get_by_role("button", name="Next →").first.click()
            expect(page.get_by_text("SUBMIT(42)")).to_be_visible()
            expect(page).to_have_url(re.compile(r"iter=3"))

            # An imported rlms run links its nested child run, which links back.
            page.goto(f"{url}/run_viewer?run={IMPORTED_RUN}&iter=1")
            page.get_by_role("link", name=re.compile(rf"^{CHILD_RUN} — from iteration 1")).click()
            expect(page.get_by_text(f"called from iteration 1 of run {IMPORTED_RUN}")).to_be_visible()
            shot(page, "nested_child_run")

            # An unknown id in the URL is a friendly message.
            page.goto(f"{url}/run_viewer?run=no-such-run")
            expect(page.get_by_text("no run with id 'no-such-run'")).to_be_visible()

            # Compare two runs side by side.
            page.goto(f"{url}/compare?runs={WRONG_RUN},{KNOWN_RUN}")
            expect(page.get_by_text("Iteration 3", exact=True)).to_be_visible()
            expect(page.get_by_text("ZeroDivisionError: integer division or modulo by zero")).to_be_visible()
            shot(page, "compare")

            # Runs: filter to one task, tick the oldest run's row, open it in the viewer.
            page.goto(f"{url}/runs")
            expect(page.get_by_text(re.compile(r"Showing \d+ of \d+ runs"))).to_be_visible()
            page.get_by_text("Filter and sort").click()
            # A rerun triggered by the writer can land between opening the box and
            # picking the option and drop the pick: pick again until the filter holds.
            for attempt in range(3):
                page.get_by_role("combobox", name="Task").click()
                page.keyboard.type("log-incidents")
                page.get_by_role("option", name="log-incidents").click()
                page.keyboard.press("Escape")
                try:
                    expect(page.get_by_text("Showing 3 of 3 runs.")).to_be_visible(timeout=10_000)
                    break
                except AssertionError:
                    if attempt == 2:
                        raise
            grid = page.get_by_test_id("stDataFrame")
            expect(grid.locator("canvas").first).to_be_attached()
            box = grid.bounding_box()
            assert box is not None
            # Row-selection boxes sit in the first column; rows are 35 px under a 35 px header.
            page.mouse.click(box["x"] + 16, box["y"] + 35 + 35 * 2 + 17)  # third row: the oldest run
            expect(page.get_by_text("Compare selected (1)")).to_be_visible()
            shot(page, "runs")
            page.get_by_role("button", name="Open in run viewer").click()
            expect(page).to_have_url(re.compile(rf"run_viewer\?run={KNOWN_RUN}"))
            expect(page.get_by_text("print(len(context))")).to_be_visible()

            # Auto-refresh on the runs page picks up the writer's last run by itself.
            page.goto(f"{url}/runs")
            shown = page.get_by_text(re.compile(r"Showing (\d+) of \1 runs\."))
            expect(shown).to_be_visible()
            before = int(re.findall(r"\d+", shown.inner_text())[0])
            assert before < len(TOP_LEVEL_RUNS) + WRITES  # the last write is still held back
            page.get_by_text("Auto-refresh", exact=True).click()
            expect(page.get_by_role("switch", name="Auto-refresh")).to_be_checked()
            release.touch()
            assert writer.wait(timeout=60) == 0, writer.stdout.read() if writer.stdout else ""
            total = len(TOP_LEVEL_RUNS) + WRITES
            expect(page.get_by_text(f"Showing {total} of {total} runs.")).to_be_visible()
            shot(page, "runs_after_auto_refresh")

            # The Refresh button on a page opened in another tab earlier shows them too.
            stale.get_by_role("button", name="Refresh", exact=True).click()
            expect(stale.get_by_test_id("stMetricValue").first).to_have_text(str(total))
            shot(stale, "overview_after_refresh")
            page.get_by_role("textbox", name="Search code, reasoning and outputs").fill(
                f"live_marker_{WRITES - 1}"
            )
            page.keyboard.press("Enter")
            expect(
                page.get_by_text(f"Showing 1 of 1 runs containing “live_marker_{WRITES - 1}”.")
            ).to_be_visible()
            browser.close()
    finally:
        stop(writer)
