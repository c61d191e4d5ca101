"""The Tactics and Flows pages, the run viewer's tactic tags and Compare's tactic alignment in a real
headless Chromium, on a mined database."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from dashboard_fixtures import running_dashboard
from miner_fixtures import make_db
from playwright.sync_api import expect, sync_playwright
from test_dashboard_browser import CHROMIUM, CHROMIUM_ARGS, WAIT_MS, shot

import miner
from rlmine.store import Store, run_steps

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(
        not CHROMIUM.exists(), reason="no /usr/bin/chromium: install Debian's chromium package"
    ),
]


def test_tactics_and_flows_pages_in_chromium(tmp_path: Path) -> None:
    db = tmp_path / "mined.duckdb"
    result = miner.mine(make_db(db), task="logs", embedder="hashing")
    second = sorted(result.tactics, key=lambda t: (-t.size, t.id))[1]
    with Store.open(db).reader() as con:
        steps = run_steps(con, "R0000")
    regex = steps[(steps["iteration"] == 1) & (steps["line_start"] == 2)].iloc[0]  # the re.search line
    expect.set_options(timeout=WAIT_MS)
    with running_dashboard(db, tmp_path / "dashboard.log") as url, sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        context = browser.new_context(viewport={"width": 1400, "height": 1100})
        context.set_default_timeout(WAIT_MS)
        page = context.new_page()

        # A deep link to one tactic: its detail, then the map of steps.
        page.goto(f"{url}/tactics?tactic={second.id}")
        expect(page.get_by_text(f"{second.id} · {second.label}", exact=True)).to_be_visible()
        expect(page.get_by_text("Example (the medoid step):")).to_be_visible()
        expect(page.get_by_text("Map of steps")).to_be_visible()
        expect(page.locator(".js-plotly-plot").first).to_be_visible()
        shot(page, "tactics")

        page.goto(f"{url}/flows")
        expect(page.get_by_role("heading", name="Flows", exact=True)).to_be_visible()
        expect(page.get_by_text("Directly-follows graph")).to_be_visible()
        expect(page.get_by_text(re.compile("Consensus plan:"))).to_be_visible()
        expect(page.get_by_text("Successful vs failed runs")).to_be_visible()
        expect(page.locator(".js-plotly-plot").first).to_be_visible()
        shot(page, "flows")

        # The run viewer tags each step of the iteration with its tactic; Compare aligns by tactic.
        page.goto(f"{url}/run_viewer?run=R0000&iter=1")
        expect(page.get_by_text(f"L2 · {regex['tactic_id']} {regex['tactic_label']}")).to_be_visible()
        shot(page, "viewer_tactics")
        page.goto(f"{url}/compare?runs=R0000,R0002")
        expect(page.get_by_text("Tactic alignment")).to_be_visible()
        expect(page.get_by_text(re.compile(r"tactic\(s\) in common"))).to_be_visible()
        shot(page, "compare_tactics")
        browser.close()
