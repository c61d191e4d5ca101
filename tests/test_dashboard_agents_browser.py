"""The Agents page in a real headless Chromium: script, provenance, candidates, eval chart, download."""

from __future__ import annotations

from pathlib import Path

import pytest
from dashboard_fixtures import running_dashboard
from playwright.sync_api import expect, sync_playwright
from test_dashboard_agents import agent_db  # noqa: F401  (the fixture)
from test_dashboard_browser import ARTIFACTS, CHROMIUM, CHROMIUM_ARGS, WAIT_MS

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(
        not CHROMIUM.exists(), reason="no /usr/bin/chromium: install Debian's chromium package"
    ),
]


def test_agents_page_in_chromium(agent_db: tuple[Path, str], tmp_path: Path) -> None:  # noqa: F811
    db, agent_id = agent_db
    expect.set_options(timeout=WAIT_MS)
    with running_dashboard(db, tmp_path / "dashboard.log") as url, sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        page = browser.new_context(viewport={"width": 1400, "height": 1400}).new_page()
        page.set_default_timeout(WAIT_MS)
        page.goto(f"{url}/agents?agent={agent_id}")
        expect(page.get_by_text(f"{agent_id} · built from one run")).to_be_visible()
        expect(page.get_by_text("Against the RLM")).to_be_visible()
        expect(page.get_by_test_id("stPlotlyChart").first).to_be_visible()
        expect(page.get_by_role("button", name="Download the script")).to_be_visible()
        page.get_by_text("Script", exact=True).click()
        expect(page.get_by_text("def solve_0(context, question_params):")).to_be_visible()
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "agents.png"), full_page=True)
        # the source run links to the run viewer
        page.get_by_role("link", name="01RUNAAAAAAAAAAAAAAAAAAAAA").first.click()
        expect(
            page.get_by_text("Agent built from").or_(page.get_by_text("SUBMIT(verdict.strip())")).first
        ).to_be_visible()
        browser.close()
