"""Open a built report in headless Chromium, check it, and save screenshots.

Used by the browser test and runnable on any report::

    python -m pipeline.report.browser reports        # writes reports/screenshot_index.png, screenshot_sheet.png

Needs Debian's ``chromium`` on the PATH (``apt-get install chromium``) and the ``playwright`` package; the
browser is started with flags that keep it off the network.
"""

from __future__ import annotations

import argparse
import shutil
import sys
from dataclasses import dataclass, field
from pathlib import Path

from pipeline.errors import InputFileError, MissingDataError

CHROMIUM_ARGS = ("--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run")
VIEWPORT = {"width": 1360, "height": 900}
TIMEOUT_MS = 15_000
INDEX_SHOT = "screenshot_index.png"
SHEET_SHOT = "screenshot_sheet.png"
#: JavaScript: the images of the page that failed to load (``naturalWidth`` 0 once complete).
BROKEN_IMAGES_JS = "Array.from(document.images).filter(i => !i.complete || i.naturalWidth === 0).map(i => i.src)"


@dataclass
class PageCheck:
    """What a browser saw on the report: console errors, failed requests, broken images, screenshots."""

    console_errors: list[str] = field(default_factory=list)
    failed_requests: list[str] = field(default_factory=list)
    broken_images: list[str] = field(default_factory=list)
    screenshots: list[Path] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """True when nothing went wrong."""
        return not (self.console_errors or self.failed_requests or self.broken_images)


def chromium_path() -> str | None:
    """The system Chromium executable, if installed."""
    return shutil.which("chromium") or shutil.which("chromium-browser")


def launch(playwright):
    """Start headless Chromium with the network-quiet flags; raises when it is not installed."""
    executable = chromium_path()
    if executable is None:
        raise MissingDataError("chromium not found on PATH; install it with `apt-get install -y chromium`")
    return playwright.chromium.launch(executable_path=executable, args=list(CHROMIUM_ARGS))


def watch(page, check: PageCheck) -> None:
    """Record console errors, uncaught exceptions and failed requests of ``page`` into ``check``."""
    page.on("console", lambda msg: check.console_errors.append(msg.text) if msg.type == "error" else None)
    page.on("pageerror", lambda exc: check.console_errors.append(str(exc)))
    page.on("requestfailed", lambda req: check.failed_requests.append(req.url))


def open_page(page, path: Path, check: PageCheck) -> None:
    """Load ``path`` from file:// and wait until its images are in; broken ones go into ``check``."""
    page.goto(path.resolve().as_uri(), wait_until="load", timeout=TIMEOUT_MS)
    check.broken_images.extend(page.evaluate(BROKEN_IMAGES_JS))


def top_flagged_sheet(page) -> str | None:
    """Href of the first sheet in the index table that has flags (the table is ranked by suspicion)."""
    page.wait_for_selector("#sheets-table tbody a", timeout=TIMEOUT_MS)
    page.check("#filter-flagged")
    link = page.query_selector("#sheets-table tbody a")
    href = link.get_attribute("href") if link else None
    page.uncheck("#filter-flagged")
    return href


def inspect_report(browser, report: Path, shots: Path) -> PageCheck:
    """With a running ``browser``: open ``report/index.html`` and its top flagged sheet, screenshot both."""
    index = Path(report) / "index.html"
    if not index.is_file():
        raise InputFileError(f"{index}: no report here (run `python -m pipeline report` first)")
    check = PageCheck()
    page = browser.new_page(viewport=VIEWPORT)
    try:
        watch(page, check)
        open_page(page, index, check)
        href = top_flagged_sheet(page)
        page.screenshot(path=str(shots / INDEX_SHOT), full_page=True)
        check.screenshots.append(shots / INDEX_SHOT)
        if href:
            open_page(page, index.parent / href, check)
            page.screenshot(path=str(shots / SHEET_SHOT), full_page=True)
            check.screenshots.append(shots / SHEET_SHOT)
    finally:
        page.close()
    return check


def check_report(report: Path, shots: Path | None = None) -> PageCheck:
    """Start Chromium, run :func:`inspect_report` (screenshots into ``shots``, default ``report``), stop it."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = launch(p)
        try:
            return inspect_report(browser, Path(report), Path(shots or report))
        finally:
            browser.close()


def main(argv: list[str] | None = None) -> int:
    """Command line: check a report folder, print what went wrong, exit 1 on problems."""
    parser = argparse.ArgumentParser(prog="python -m pipeline.report.browser", description=__doc__.split("\n")[0])
    parser.add_argument("report", type=Path, nargs="?", default=Path("reports"), help="report folder")
    parser.add_argument("--shots", type=Path, help="where to save the screenshots (default: the report folder)")
    args = parser.parse_args(argv)
    check = check_report(args.report, args.shots)
    for label, items in (("console error", check.console_errors), ("failed request", check.failed_requests),
                         ("broken image", check.broken_images)):
        for item in items:
            print(f"{label}: {item}", file=sys.stderr)
    for shot in check.screenshots:
        print(f"screenshot: {shot}")
    return 0 if check.ok else 1


if __name__ == "__main__":
    sys.exit(main())
