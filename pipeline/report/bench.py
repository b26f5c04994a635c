"""Benchmark of the report stage at scale: size on disk, number of files, build and rebuild time, and how the
index and a sheet behave in Chromium.

A random audit output of ``n`` sheets (tables following docs/DATA.md section 4) and a run folder beside it are
written to a temporary folder: every sheet has a registered scan and every flagged sheet its flagged fields'
images, as hard links to one real-sized scan and one field image (so the run folder costs no disk, while the
report copies, shrinks and encodes them as it would real ones). Measured:

- ``build_s``: a build into an empty folder; ``files``, ``bytes`` (sum of file sizes) and ``disk_bytes`` (blocks
  used) of the report;
- ``rebuild_unchanged_s`` and ``rebuild_one_sheet_s``: a rebuild with nothing changed, and after one sheet's
  count changes, each with the files it rewrote (``rewritten_*``, by modification time);
- with Chromium installed (``browser``): the index loading all its rows, a sort by sheet id (both directions), a
  search typed key by key while so sorted (each the time from the key to the table's new rows, the 150 ms
  debounce of tables over 5,000 rows included), and opening a sheet drawn from data.

Run with ``python -m pipeline.report.bench [--sheets N]`` or through ``python -m pipeline bench --only report``.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np
import pandas as pd

from pipeline.forms import Template, load_template, render_blank
from pipeline.report.build import ReportSettings, build_report

FULL_SHEETS = 50_000
QUICK_SHEETS = 2_000
SEED = 0
FLAG_RATE = 0.2
#: Flags drawn at random besides the form's own rules (the audit's rules about any form).
AUDIT_RULES = ("visible_alteration", "unreadable", "page_not_read")
#: How many of the form's rules the random flags name.
FORM_RULES = 2
SEVERITIES = ("info", "low", "medium", "high")
VERDICTS = ("inconsistent", "needs_review", "altered", "suspicious")
#: Largest random count.
MAX_COUNT = 400
#: The scan stand-in: the blank form at this resolution (A4 at 200 dpi is 1654 x 2339 px, like the real scans).
SCAN_DPI = 200
SEARCH_TEXT = "acta-0012"
#: The issue's targets for the index in Chromium (milliseconds).
SORT_TARGET_MS = 500
SEARCH_TARGET_MS = 300


def flag_fields(template: Template) -> tuple[str, str]:
    """The two fields every random flag names, from the form's roles: its total (else its last count) and its
    leader (else its first candidate, else its first count)."""
    counts = [f.name for f in template.fields_of_kind("count")]
    total = template.role_fields("total")
    candidates = template.role_fields("candidate")
    return (total[0] if total else counts[-1]), (template.leader or (candidates or counts)[0])


def bench_rules(template: Template) -> tuple[str, ...]:
    """The rules the random flags are drawn from: the form's first :data:`FORM_RULES` rules and the audit's."""
    return (*(r.name for r in template.rules[:FORM_RULES]), *AUDIT_RULES)


def random_sheets(n: int, rng: np.random.Generator, template: Template) -> pd.DataFrame:
    """``n`` sheets of ``template`` with ids, every count and its confidence, ticks, status and scores."""
    table = {"sheet_id": [f"acta-{i:06d}" for i in range(n)], "status": rng.choice(["ok"] * 30 + ["unreadable"], n)}
    for f in template.fields_of_kind("id"):
        table[f.name] = rng.integers(1, f.max_value + 1, n)
    for f in template.fields_of_kind("count"):
        table[f.name] = rng.integers(0, MAX_COUNT, n)
        table[f"{f.name}_conf"] = rng.beta(20, 1, n)
    for f in template.fields_of_kind("tick"):
        table[f.name] = rng.integers(0, 2, n)
    table["alteration_score"] = rng.random(n)
    table["suspicion"] = rng.random(n)
    return pd.DataFrame(table)


def random_flags(sheets: pd.DataFrame, rng: np.random.Generator, template: Template) -> pd.DataFrame:
    """About :data:`FLAG_RATE` flags per sheet, with reasons and JSON evidence (the values of the flag's fields)."""
    ids = rng.choice(sheets["sheet_id"], int(len(sheets) * FLAG_RATE))
    fields = flag_fields(template)
    return pd.DataFrame({"sheet_id": ids, "fields": ";".join(fields),
                         "rule": rng.choice(bench_rules(template), len(ids)),
                         "severity": rng.choice(SEVERITIES, len(ids)), "verdict": rng.choice(VERDICTS, len(ids)),
                         "reason": "the parts add up to 301 but the total says 310",
                         "evidence": json.dumps({"values": dict(zip(fields, (310, 301), strict=True))})})


def write_audit(folder: Path, n: int, seed: int = SEED) -> Path:
    """A random audit output folder of ``n`` sheets; returns it."""
    rng = np.random.default_rng(seed)
    template = load_template()
    sheets = random_sheets(n, rng, template)
    flags = random_flags(sheets, rng, template)
    sheets["n_flags"] = sheets["sheet_id"].map(flags["sheet_id"].value_counts()).fillna(0).astype(int)
    folder.mkdir(parents=True, exist_ok=True)
    sheets.to_parquet(folder / "sheets.parquet")
    flags.to_parquet(folder / "flags.parquet")
    return folder


def write_rundir(rundir: Path, processed: Path) -> Path:
    """A run folder for the audit in ``processed``: ``pages.csv``, a registered scan per sheet and the flagged
    fields' images per flagged sheet, all hard links to one sample of each (a copy where links fail)."""
    template = load_template()
    sheets = pd.read_parquet(processed / "sheets.parquet", columns=["sheet_id"])
    flags = pd.read_parquet(processed / "flags.parquet", columns=["sheet_id"])
    (rundir / "registered").mkdir(parents=True, exist_ok=True)
    scan = render_blank(template, SCAN_DPI)
    rng = np.random.default_rng(SEED)
    for f in template.fields_of_kind("count"):  # ink in the boxes, so the JPEG weighs what a filled form does
        x0, y0, x1, y1 = f.bounds.to_px(SCAN_DPI)
        cv2.putText(scan, str(rng.integers(0, 400)), (x0 + 8, y1 - 10), cv2.FONT_HERSHEY_SIMPLEX, 1.6, 0, 4)
    noisy = np.clip(scan.astype(np.int16) + rng.normal(0, 6, scan.shape), 0, 255).astype(np.uint8)
    sample_scan = rundir / "sample-scan.jpg"
    cv2.imwrite(str(sample_scan), noisy, [cv2.IMWRITE_JPEG_QUALITY, 90])
    fields = flag_fields(template)
    x0, y0, x1, y1 = template.field(fields[0]).bounds.to_px(SCAN_DPI)
    sample_crop = rundir / "sample-field.png"
    cv2.imwrite(str(sample_crop), noisy[y0:y1, x0:x1])
    for sid in sheets["sheet_id"]:
        link(sample_scan, rundir / "registered" / f"{sid}.jpg")
    for sid in flags["sheet_id"].unique():
        (rundir / "fields" / sid).mkdir(parents=True, exist_ok=True)
        for field in fields:
            link(sample_crop, rundir / "fields" / sid / f"{field}.png")
    pd.DataFrame({"sheet_id": sheets["sheet_id"], "status": "ok"}).to_csv(rundir / "pages.csv", index=False)
    return rundir


def link(src: Path, dst: Path) -> None:
    """Hard-link ``src`` to ``dst`` (copy where the file system refuses)."""
    try:
        os.link(src, dst)
    except OSError:
        dst.write_bytes(src.read_bytes())


def snapshot(folder: Path) -> dict[str, tuple[int, int]]:
    """``{path: (mtime_ns, size)}`` of every file under ``folder``."""
    return {str(p.relative_to(folder)): (p.stat().st_mtime_ns, p.stat().st_size) for p in folder.rglob("*")
            if p.is_file()}


def rewritten(before: dict, after: dict) -> list[str]:
    """Files new or changed between two :func:`snapshot` calls."""
    return sorted(k for k, v in after.items() if before.get(k) != v)


def disk_usage(folder: Path) -> tuple[int, int, int]:
    """``(files, bytes, disk bytes)`` of ``folder``: file count, sum of sizes, blocks used."""
    files = [p.stat() for p in folder.rglob("*") if p.is_file()]
    return len(files), sum(s.st_size for s in files), sum(s.st_blocks * 512 for s in files)


def timed(fn) -> float:
    """Seconds ``fn()`` took."""
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def browser_timings(out: Path, n: int) -> dict:
    """The index and one sheet in headless Chromium (milliseconds); ``{"skipped": why}`` without Chromium."""
    from pipeline.report.browser import chromium_path, launch

    if chromium_path() is None:
        return {"skipped": "chromium not installed"}
    from playwright.sync_api import sync_playwright

    count = "document.getElementById('table-count').textContent"
    with sync_playwright() as p:
        browser = launch(p)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            start = time.perf_counter()
            page.goto((out / "index.html").resolve().as_uri(), wait_until="load")
            page.wait_for_function(f"{count}.startsWith('{n:,} of {n:,}')", timeout=120_000)
            load_ms = 1000 * (time.perf_counter() - start)
            sort_ms = [page.evaluate("""() => {
                const th = document.querySelector("#sheets-table th[data-key='sheet_id']");
                const t = performance.now(); th.click(); return performance.now() - t; }""") for _ in range(2)]
            page.evaluate("document.querySelector(\"#sheets-table th[data-key='sheet_id']\").click()")  # ascending
            search_ms = []
            for i in range(1, len(SEARCH_TEXT) + 1):
                search_ms.append(page.evaluate("""(text) => new Promise(done => {
                    const box = document.getElementById('filter-text');
                    const body = document.querySelector('#sheets-table tbody'), t = performance.now();
                    const seen = new MutationObserver(() => { seen.disconnect(); done(performance.now() - t); });
                    seen.observe(body, { childList: true });
                    box.value = text; box.dispatchEvent(new Event('input')); })""", SEARCH_TEXT[:i]))
            filter_ms = page.evaluate("""() => { const box = document.getElementById('filter-flagged');
                const t = performance.now(); box.click(); return performance.now() - t; }""")
            link = page.evaluate("document.querySelector('#sheets-table tbody a[href*=\"view.html\"]')"
                                 "?.getAttribute('href') || null")
            view_ms = None
            if link is None:  # the flagged filter hides the view-page sheets: take one from the CSV instead
                sheets = pd.read_csv(out / "data" / "sheets.csv", usecols=["page"])
                views = sheets["page"][sheets["page"].str.startswith("sheets/view.html")]
                link = views.iloc[len(views) // 2] if len(views) else None
            if link:
                path, _, fragment = link.partition("#")
                start = time.perf_counter()
                page.goto((out / path).resolve().as_uri() + "#" + fragment, wait_until="load")
                page.wait_for_function("document.getElementById('sheet-id').textContent !== '…'")
                view_ms = 1000 * (time.perf_counter() - start)
            return {"index_load_ms": round(load_ms), "sort_sheet_id_ms": [round(v) for v in sort_ms],
                    "search_keystroke_ms": [round(v) for v in search_ms], "search_debounce_ms": 150,
                    "flagged_filter_ms": round(filter_ms), "view_sheet_ms": None if view_ms is None else round(view_ms),
                    "sort_ok": max(sort_ms) < SORT_TARGET_MS,
                    "search_ok": max(search_ms) < SEARCH_TARGET_MS + 150}
        finally:
            browser.close()


def measure(n: int, browser: bool = True, settings: ReportSettings | None = None) -> dict:
    """Build the report of ``n`` random sheets, rebuild it twice, and measure it."""
    settings = settings or ReportSettings()
    with tempfile.TemporaryDirectory() as tmp:
        processed = write_audit(Path(tmp) / "processed" / "bench", n)
        rundir = write_rundir(Path(tmp) / "interim" / "bench", processed)
        out, models = Path(tmp) / "report", Path(tmp) / "models"

        def build() -> None:
            build_report(processed, out, rundir, models_dir=models, settings=settings)

        build_s = timed(build)
        files, size, disk = disk_usage(out)
        manifest = json.loads((out / "data" / "manifest.json").read_text(encoding="utf-8"))
        before = snapshot(out)
        unchanged_s = timed(build)
        unchanged = snapshot(out)
        sheets = pd.read_parquet(processed / "sheets.parquet")
        middle = sheets["sheet_id"].iloc[n // 2]
        count = flag_fields(load_template())[1]
        sheets.loc[sheets["sheet_id"] == middle, count] += 1  # one count changes; no rank moves
        sheets.to_parquet(processed / "sheets.parquet")
        one_s = timed(build)
        changed = rewritten(unchanged, snapshot(out))
        result = {"sheets": n, "build_s": round(build_s, 1), "ms_per_sheet": round(1000 * build_s / n, 2),
                  "files": files, "bytes": size, "disk_bytes": disk,
                  "static_pages": manifest["sheet_pages"]["written"],
                  "largest_file": max(before, key=lambda k: before[k][1]),
                  "largest_file_bytes": max(v[1] for v in before.values()),
                  "table_data_bytes": sum(v[1] for k, v in before.items() if k.startswith("data/sheets-")),
                  "detail_data_bytes": sum(v[1] for k, v in before.items() if k.startswith("data/detail-")),
                  "crop_pack_bytes": sum(v[1] for k, v in before.items() if k.startswith("data/crops-")),
                  "scan_copy_bytes": sum(v[1] for k, v in before.items() if k.startswith("sheets/files/")),
                  "rebuild_unchanged_s": round(unchanged_s, 1), "rewritten_unchanged": rewritten(before, unchanged),
                  "rebuild_one_sheet_s": round(one_s, 1), "rewritten_one_sheet": changed,
                  "targets": {"bytes_lt_1GB": size < 1e9, "files_lt_5000": files < 5000}}
        if browser:
            result["browser"] = browser_timings(out, n)
        return result


def run_bench(config: dict, quick: bool) -> dict:
    """Entry point of ``python -m pipeline bench``: the report of 50,000 sheets (2,000 with ``quick``)."""
    return measure(QUICK_SHEETS if quick else FULL_SHEETS)


def main(argv: list[str] | None = None) -> None:
    """Command line: measure one size and print the figures as JSON."""
    parser = argparse.ArgumentParser(prog="python -m pipeline.report.bench", description=__doc__.split("\n")[0])
    parser.add_argument("--sheets", type=int, default=QUICK_SHEETS)
    parser.add_argument("--no-browser", action="store_true", help="skip the Chromium timings")
    args = parser.parse_args(argv)
    print(json.dumps(measure(args.sheets, browser=not args.no_browser), indent=2))


if __name__ == "__main__":
    main()
