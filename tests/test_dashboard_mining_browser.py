"""The Tactics and Flows pages in a real headless Chromium, on a mined database."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from dashboard_fixtures import running_dashboard
from miner_fixtures import make_db
from playwright.sync_api import expect, sync_playwright
from test_dashboard_browser import CHROMIUM, CHROMIUM_ARGS, WAIT_MS, shot

import miner

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
        browser.close()
