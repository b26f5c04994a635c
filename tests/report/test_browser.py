"""The report in a real headless Chromium: no console errors, the table sorts, filters and pages, a flagged
sheet shows its crops and reasons, every image loads; "check these first" is on the first screen on a desktop and
on a phone, the verdict chips count what the filter shows, nothing scrolls sideways at 400 px. Screenshots go to
a temporary folder, never into reports/."""

from __future__ import annotations

import pytest

from pipeline.report.browser import VIEWPORT, PageCheck, chromium_path, inspect_report, launch, open_page, watch
from pipeline.report.tables import sheet_slug
from tests.report.conftest import ODD_ID, SHEETS, view_link
from tests.report.test_build import chip_counts

DESKTOP = {"width": 1400, "height": 1000}
PHONE = {"width": 400, "height": 800}

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
    assert column(page, "sheet_id") == ["s002", "s005"]
    assert column(page, "reason")[0].startswith("PRI looks altered")


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
    assert page.inner_text("#table-count").startswith("4 of")
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
    assert "Party votes + unregistered + null = total votes does not hold: 217 against 271" in page.inner_text(
        "#flags")
    crops = page.eval_on_selector_all("#flags .flag .crops img", "imgs => imgs.map(i => i.naturalWidth)")
    assert len(crops) == 2 and all(w > 0 for w in crops)  # PRI under the sum and under the alteration
    assert page.eval_on_selector("#scan-image", "i => i.naturalWidth") > 0
    assert page.locator(".scan .box.flagged").count() == 1
    assert "Ranked 1 of 5" in page.inner_text("#rank-reason")
    page.click("#next-sheet")
    page.wait_for_load_state("load")
    assert page.url.endswith("sheets/s005.html")
    assert "s005" in page.inner_text("h1")


def test_screenshots_of_index_and_flagged_sheet(built_report, browser, tmp_path):
    """The same check the lead runs on the real report (python -m pipeline.report.browser reports)."""
    check = inspect_report(browser, built_report, tmp_path)
    assert check.ok, check
    assert [p.name for p in check.screenshots] == ["screenshot_index.png", "screenshot_sheet.png"]
    assert all(p.stat().st_size > 10_000 for p in check.screenshots)


@pytest.mark.parametrize("viewport", [DESKTOP, PHONE], ids=["1400x1000", "400px"])
def test_check_these_first_is_on_the_first_screen(built_report, browser, viewport):
    page = browser.new_page(viewport=viewport)
    try:
        check = PageCheck()
        watch(page, check)
        open_page(page, built_report / "index.html", check)
        first = page.locator("#check-first .check-item").first.bounding_box()
        heading = page.locator("#check-first h2").bounding_box()
        assert heading["y"] >= 0 and first["y"] + first["height"] <= viewport["height"], (heading, first)
        assert page.locator("#check-first .check-item").count() == 3
        assert check.ok, check
    finally:
        page.close()


def test_chips_count_what_the_filter_shows(built_report, page):
    open_page(page, built_report / "index.html", PageCheck())
    page.wait_for_function(f"document.getElementById('table-count').textContent.startsWith('{len(SHEETS)} of')")
    chips = chip_counts((built_report / "index.html").read_text(encoding="utf-8"))
    assert sum(chips.values()) == len(SHEETS)
    for verdict, n in chips.items():
        page.click(f"#verdict-chips [data-verdict='{verdict}']")
        assert page.input_value("#filter-verdict") == verdict
        assert page.inner_text("#table-count").startswith(f"{n} of {len(SHEETS)}"), verdict


def goto(page, report, link: str) -> None:
    """Open ``link`` (relative to the index, with its ``#...`` part) from file://."""
    path, _, fragment = link.partition("#")
    page.goto((report / path).resolve().as_uri() + (f"#{fragment}" if fragment else ""), wait_until="load")


@pytest.mark.parametrize("name", ["index.html", "sheets/s002.html", "s004", "forensics.html", "model.html"])
def test_nothing_scrolls_sideways_on_a_phone(built_report, browser, name):
    page = browser.new_page(viewport=PHONE)
    try:
        goto(page, built_report, view_link(built_report, name) if "." not in name else name)
        if "." not in name:
            page.wait_for_function("document.getElementById('sheet-id').textContent !== '…'")
        width = page.evaluate("[document.documentElement.scrollWidth, window.innerWidth]")
        assert width[0] <= width[1], f"{name}: {width[0]} px wide in a {width[1]} px window"
    finally:
        page.close()


def test_the_current_view_downloads_as_csv_with_reasons(built_report, page, tmp_path):
    open_page(page, built_report / "index.html", PageCheck())
    page.wait_for_function(f"document.getElementById('table-count').textContent.startsWith('{len(SHEETS)} of')")
    page.select_option("#filter-verdict", "needs_review")
    with page.expect_download() as info:
        page.click("#download-view")
    path = tmp_path / "view.csv"
    info.value.save_as(path)
    lines = path.read_text(encoding="utf-8").splitlines()
    assert lines[0].startswith("rank,sheet_id,verdict,reason") and len(lines) == 3  # header + the two on every page
    assert lines[1].startswith("2,s005,needs_review,The page could not be read") and lines[1].endswith(
        "sheets/s005.html")


def test_a_sheet_without_a_page_of_its_own_is_drawn_from_data(built_report, page):
    check = PageCheck()
    watch(page, check)
    open_page(page, built_report / "index.html", check)
    page.wait_for_function(f"document.getElementById('table-count').textContent.startsWith('{len(SHEETS)} of')")
    page.click("#page-next")
    page.click("#sheets-table tbody a >> text=s001")
    page.wait_for_function("document.getElementById('sheet-id').textContent === 's001'")
    assert "sheets/view.html#" in page.url
    assert page.inner_text("#rank-reason").startswith("Ranked 4 of 5: group 4 of 5 (statistical outlier)")
    page.wait_for_function("document.querySelectorAll('#flags .crops img').length === 1 && "
                           "document.querySelector('#flags .crops img').naturalWidth > 0")
    assert page.eval_on_selector("#scan-image", "i => i.complete && i.naturalWidth > 0")
    assert page.locator(".scan .box").count() == 18 and page.locator(".scan .box.flagged").count() == 1
    assert "PAN" in page.inner_text("#flags") and page.locator("#reads-table tbody tr").count() == 18
    # previous goes to the last page of its own, next to the clean sheet drawn on this page
    page.click("#next-sheet")
    page.wait_for_function("document.getElementById('sheet-id').textContent === 's004'")
    assert "No finding on this sheet." in page.inner_text("#flags")
    assert "= 388 = total_votes (VOTACION TOTAL)" in page.inner_text("#passed-checks")
    page.click("#prev-sheet")
    page.wait_for_function("document.getElementById('sheet-id').textContent === 's001'")
    page.click("#prev-sheet")  # found in the ranked table, then a page of its own: wait for that navigation
    page.wait_for_url(f"**/sheets/{sheet_slug(ODD_ID)}.html")
    page.wait_for_load_state("load")
    assert "odd" in page.inner_text("h1")
    assert check.ok, check


#: What a sheet's findings show, read from the page (whitespace folded): per flag its header, plain reason, the
#: fields that caused it, its crops' captions, the evidence summary, the audit's wording and both evidence tables;
#: then the checks that pass.
FINDINGS_JS = """() => {
  const t = e => e ? e.textContent.replace(/\\s+/g, " ").trim() : null;
  const cells = (a, sel) => Array.from(a.querySelectorAll(sel + " tr")).map(r => Array.from(r.cells).map(t));
  return {flags: Array.from(document.querySelectorAll("#flags article.flag")).map(a => ({
            rule: a.dataset.rule, head: t(a.querySelector("header")), plain: t(a.querySelector(".reason.plain")),
            causes: t(a.querySelector(".causes")), crops: Array.from(a.querySelectorAll(".crop figcaption")).map(t),
            summary: t(a.querySelector("details.evidence-details > summary")),
            wording: t(a.querySelector("p.reason.small")),
            items: cells(a, "table.evidence"), fields: cells(a, "table.evidence-fields")})),
          passed: Array.from(document.querySelectorAll("#passed-checks li")).map(t)};
}"""


@pytest.fixture(scope="module")
def data_only_report(batch, tmp_path_factory):
    """The report of the batch with no page of its own for any sheet: every one is drawn from data."""
    from pipeline.report import ReportSettings, build_report

    out = tmp_path_factory.mktemp("data_only")
    build_report(batch.processed, out, truth=batch.truth, models_dir=batch.models,
                 settings=ReportSettings(static_pages=0, detail_chunk_rows=2))
    return out


@pytest.mark.parametrize("sheet_id", ["s002", "s005", ODD_ID])
def test_a_sheet_drawn_from_data_shows_the_evidence_of_its_own_page(built_report, data_only_report, page,
                                                                   sheet_id):
    """Issue 17 item 3 at scale: a flagged sheet ranked below ``static_pages`` shows the same findings, fields,
    crops, evidence tables and passed checks as the page of its own it gets when ranked higher."""
    check = PageCheck()
    watch(page, check)
    open_page(page, built_report / "sheets" / f"{sheet_slug(sheet_id)}.html", check)
    own = page.evaluate(FINDINGS_JS)
    link = view_link(data_only_report, sheet_id)
    assert link.startswith("sheets/view.html#")
    goto(page, data_only_report, link)
    page.wait_for_function("(id) => document.getElementById('sheet-id').textContent === id", arg=sheet_id)
    page.wait_for_function("Array.from(document.querySelectorAll('#flags .crops img'))"
                           ".every(i => i.complete && i.naturalWidth > 0)")
    drawn = page.evaluate(FINDINGS_JS)
    assert check.ok, check
    assert own["flags"] and any(f["items"] or f["fields"] for f in own["flags"])
    assert drawn == own
    if sheet_id == "s002":  # the sum's evidence, its doubtful field's row only, and the checks that hold
        sums = next(f for f in drawn["flags"] if f["rule"] == "votes_add_up")
        assert ["sum of parts", "217"] in sums["items"] and sums["summary"] == "Evidence and the audit's wording"
        assert [r[0] for r in sums["fields"]] == ["field", "PRI"]
        assert ["rule", "party votes + unregistered + null = total votes"] in sums["items"]
        assert "1.2e-05" not in str(drawn)
        assert any(line.endswith("= ballots_received (BOLETAS RECIBIDAS)") for line in drawn["passed"])
