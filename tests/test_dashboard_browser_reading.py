"""Finding failures and reading runs, in a real headless Chromium (the reading fixture).

``rlmine dashboard`` on ``tests/reading_fixtures.py``'s database, driven through
Playwright: ``/overview`` opens without a "Page not found" pop-up; the code-error
filter keeps exactly the runs whose code raised, and a reload of its URL shows
the same table; a three-block iteration shows each block's output under its
code; the sub-call pager reaches the 150th call. Explicit waits for content only.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from dashboard_fixtures import running_dashboard
from playwright.sync_api import Page, expect, sync_playwright
from reading_fixtures import (
    BLOCKS_RUN,
    CODE_ERROR_RUNS,
    INDEX_ERROR,
    N_PAGER_CALLS,
    PAGER_RUN,
    build_reading_db,
)
from test_dashboard_browser import ARTIFACTS, CHROMIUM, CHROMIUM_ARGS, WAIT_MS

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(
        not CHROMIUM.exists(), reason="no /usr/bin/chromium: install Debian's chromium package"
    ),
]


def shot(page: Page, name: str) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"reading_{name}.png"), full_page=True)


def top(page: Page, text: str) -> float:
    """The vertical position of the first element showing exactly ``text``."""
    box = page.get_by_text(text, exact=True).first.bounding_box()
    assert box is not None, text
    return float(box["y"])


def code_top(page: Page, pattern: str) -> float:
    """The vertical position of the first code element whose text matches ``pattern``."""
    box = page.get_by_test_id("stCode").filter(has_text=re.compile(pattern)).first.bounding_box()
    assert box is not None, pattern
    return float(box["y"])


def table_csv(page: Page) -> str:
    """The runs table as its own "Download as CSV" gives it (the grid draws on a canvas)."""
    grid = page.get_by_test_id("stDataFrame")
    grid.hover()
    with page.expect_download() as download:
        grid.get_by_role("button", name="Download as CSV").click()
    return Path(download.value.path()).read_text(encoding="utf-8-sig")


def choose(page: Page, combobox: str, option: str) -> None:
    """Open ``combobox`` and pick ``option``, reopening while the page still reflows.

    A click that lands while an expander opens (or 50 of them render) can miss the
    list; the option's appearance, not a sleep, says the click took.
    """
    box = page.get_by_role("combobox", name=combobox)
    item = page.get_by_role("option", name=option, exact=True)
    for _ in range(4):
        box.scroll_into_view_if_needed()
        box.click()
        try:
            expect(item).to_be_visible(timeout=5_000)
            break
        except AssertionError:
            page.keyboard.press("Escape")
    item.click()


def test_finding_failures_and_reading_runs_in_chromium(tmp_path: Path) -> None:
    db = build_reading_db(tmp_path / "reading.duckdb")
    expect.set_options(timeout=WAIT_MS)
    with running_dashboard(db, tmp_path / "dashboard.log") as url, sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        context = browser.new_context(viewport={"width": 1400, "height": 1100})
        context.set_default_timeout(WAIT_MS)
        # Without the File System Access API the grid's CSV button falls back to a plain download.
        context.add_init_script("window.showSaveFilePicker = undefined;")
        page = context.new_page()

        # /overview is the Overview, with no "Page not found" pop-up.
        page.goto(f"{url}/overview")
        expect(page.get_by_text("Runs with code errors")).to_be_visible()
        expect(page.get_by_text("Success rate per task and model")).to_be_visible()
        expect(page.get_by_text("Page not found")).to_have_count(0)
        expect(page.get_by_role("dialog")).to_have_count(0)
        shot(page, "overview")

        # The code-error filter, chosen in the page, keeps exactly the two runs whose code raised...
        page.goto(f"{url}/runs")
        expect(page.get_by_text("Showing 6 of 6 runs.")).to_be_visible()
        page.get_by_text("Filter and sort").click()
        choose(page, "Code errors", "code errors")
        page.keyboard.press("Escape")
        expect(
            page.get_by_text(f"Showing {len(CODE_ERROR_RUNS)} of {len(CODE_ERROR_RUNS)} runs.")
        ).to_be_visible()
        expect(page).to_have_url(re.compile(r"errors=code\+errors"))
        assert set(re.findall(r"run=(r-read-[a-z]+)", table_csv(page))) == CODE_ERROR_RUNS
        shot(page, "runs_code_errors")
        # ...and a reload of that URL shows the same table.
        page.reload()
        expect(
            page.get_by_text(f"Showing {len(CODE_ERROR_RUNS)} of {len(CODE_ERROR_RUNS)} runs.")
        ).to_be_visible()
        expect(page.get_by_text("Filter and sort (1 active)")).to_be_visible()

        # A three-block reply: each block's output right under its own code, in the model's order.
        page.goto(f"{url}/run_viewer?run={BLOCKS_RUN}&iter=0")
        expect(page.get_by_text("Block 3 of 3 · ok · 0.50 s")).to_be_visible()
        order = [
            top(page, "Block 1 of 3 · ok · 0.01 s"),
            code_top(page, r"print\(len\(lines\)\)"),
            code_top(page, r"^\s*6\s*$"),
            top(page, "Block 2 of 3 · error · 0.02 s"),
            code_top(page, r"print\(lines\[0\]"),
            code_top(page, "^Traceback"),  # the block's stderr
            code_top(page, r"^\s*" + re.escape(INDEX_ERROR) + r"\s*$"),  # the block's error
            top(page, "Block 3 of 3 · ok · 0.50 s"),
            code_top(page, r"svcs = llm_query_batched"),
            code_top(page, r"^\s*\['api', 'db'\]\s*$"),
        ]
        assert order == sorted(order), order
        expect(page.get_by_text("code error in block 2")).to_be_visible()
        shot(page, "blocks")

        # The sub-call pager reaches the 150th call.
        page.goto(f"{url}/run_viewer?run={PAGER_RUN}&iter=1")
        expect(page.get_by_text(f"{N_PAGER_CALLS} sub-LLM call(s)", exact=True)).to_be_visible()
        expect(page.get_by_text("#150 · Summarise chunk 149")).to_have_count(0)
        choose(page, "Calls", f"101–150 of {N_PAGER_CALLS}")
        last = page.get_by_text(re.compile(r"^#150 · Summarise chunk 149 of the log"))
        last.scroll_into_view_if_needed()
        expect(last).to_be_visible()
        shot(page, "pager")
        browser.close()
