"""The report in a real headless Chromium: no console errors, the table sorts, filters and pages, a flagged
sheet shows its crops and reasons, every image loads. Screenshots go to reports/ (the lead looks at them)."""

from __future__ import annotations

import pytest

from pipeline import config as cfg
from pipeline.report.browser import VIEWPORT, PageCheck, chromium_path, inspect_report, launch, open_page, watch
from pipeline.report.tables import sheet_slug
from tests.report.conftest import ODD_ID, SHEETS

pytestmark = [pytest.mark.browser,
              pytest.mark.skipif(chromium_path() is None, reason="chromium not installed (apt-get install chromium)")]


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = launch(p)
        yield b
        b.close()


@pytest.fixture
def page(browser):
    pg = browser.new_page(viewport=VIEWPORT)
    yield pg
    pg.close()


def column(page, key: str) -> list[str]:
    """Text of one column of the visible table rows."""
    index = page.eval_on_selector_all("#sheets-table thead th", f"hs => hs.findIndex(h => h.dataset.key === '{key}')")
    return page.eval_on_selector_all("#sheets-table tbody tr", f"rs => rs.map(r => r.cells[{index}].innerText)")


def show_all(page) -> None:
    """Page through the whole (filtered) table, collecting nothing: just checks next stops at the end."""
    while page.is_enabled("#page-next"):
        page.click("#page-next")


def test_index_loads_every_chunk_without_errors(built_report, page):
    check = PageCheck()
    watch(page, check)
    open_page(page, built_report / "index.html", check)
    page.wait_for_function(f"document.getElementById('table-count').textContent.includes('of {len(SHEETS)}')")
    assert check.ok, check
    assert page.inner_text("#page-info") == "page 1 of 3"
    assert column(page, "sheet_id") == ["s002", ODD_ID]


def test_table_sorts_filters_and_pages(built_report, page):
    open_page(page, built_report / "index.html", PageCheck())
    page.wait_for_function(f"document.getElementById('table-count').textContent.startsWith('{len(SHEETS)} of')")
    page.click("#sheets-table th[data-key='sheet_id']")
    assert page.get_attribute("#sheets-table th[data-key='sheet_id']", "aria-sort") == "ascending"
    assert column(page, "sheet_id") == [ODD_ID, "s001"]
    page.click("#sheets-table th[data-key='sheet_id']")
    assert column(page, "sheet_id") == ["s005", "s004"]
    page.click("#page-next")
    assert column(page, "sheet_id") == ["s002", "s001"] and page.inner_text("#page-info") == "page 2 of 3"
    page.fill("#filter-text", "s00")
    assert page.inner_text("#table-count").startswith("4 of") and page.inner_text("#page-info") == "page 1 of 2"
    page.fill("#filter-text", "")
    page.check("#filter-flagged")
    show_all(page)
    assert page.inner_text("#table-count").startswith("3 of")
    page.select_option("#filter-verdict", "altered")
    assert column(page, "sheet_id") == ["s002"]


def test_flagged_sheet_page_shows_crops_reasons_and_images(built_report, page):
    check = PageCheck()
    watch(page, check)
    open_page(page, built_report / "index.html", check)
    page.click("#sheets-table tbody a >> text=s002")
    page.wait_for_load_state("load")
    assert page.url.endswith("sheets/s002.html")
    check.broken_images.extend(page.evaluate("Array.from(document.images).filter(i => i.naturalWidth === 0)"
                                             ".map(i => i.src)"))
    assert check.ok, check
    assert "The party votes add up to 217" in page.inner_text("#flags")
    crops = page.eval_on_selector_all("#crops img", "imgs => imgs.map(i => i.naturalWidth)")
    assert len(crops) == 3 and all(w > 0 for w in crops)
    assert page.eval_on_selector("#scan-image", "i => i.naturalWidth") > 0
    assert page.locator(".scan .box.flagged").count() == 3
    page.click("#next-sheet")
    page.wait_for_load_state("load")
    assert page.url.endswith(f"sheets/{sheet_slug(ODD_ID)}.html")
    assert ODD_ID in page.inner_text("h1")


def test_screenshots_of_index_and_flagged_sheet(built_report, browser):
    """The same check the lead runs on the real report (python -m pipeline.report.browser reports)."""
    shots = cfg.REPORTS_DIR
    shots.mkdir(parents=True, exist_ok=True)
    check = inspect_report(browser, built_report, shots)
    assert check.ok, check
    assert [p.name for p in check.screenshots] == ["screenshot_index.png", "screenshot_sheet.png"]
    assert all(p.stat().st_size > 10_000 for p in check.screenshots)
