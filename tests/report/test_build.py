"""The report built from a hand-made batch: files, escaping, links, data chunks, exports, errors."""

from __future__ import annotations

import html
import json
import re
import shutil
import zlib
from pathlib import Path

import pandas as pd
import pytest

from pipeline.cli import main
from pipeline.errors import ExitCode, InputFileError
from pipeline.report import ReportSettings, build_report
from pipeline.report.build import format_number
from pipeline.report.tables import sheet_slug
from tests.report.conftest import ODD_ID, RANKED, SHEETS, STATIC_PAGES, detail_records, view_link

MAX_PAGE_BYTES = 3_000_000
LINK = re.compile(r'(?:href|src)="([^"]*)"')


def read(path) -> str:
    return path.read_text(encoding="utf-8")


def test_every_page_and_export_exists(built_report):
    for name in ("index.html", "forensics.html", "model.html", "static/report.css", "static/report.js",
                 "data/sheets.csv", "data/flags.csv", "data/sheets-000.js", "data/manifest.json"):
        assert (built_report / name).is_file(), name
    pages = sorted(p.stem for p in (built_report / "sheets").glob("*.html"))
    assert pages == sorted([*(sheet_slug(s) for s in RANKED[:STATIC_PAGES]), "view"])
    assert sorted(detail_records(built_report)) == sorted(RANKED[STATIC_PAGES:])
    assert [p.name for p in (built_report / "data").glob("crops-*.js")] != []  # s001's PAN, packed


def test_user_text_is_escaped_everywhere(built_report):
    html = [read(p) for p in built_report.rglob("*.html")]
    assert not any("<b>&" in h for h in html), "a raw sheet id reached the HTML"
    sheet = read(built_report / "sheets" / f"{sheet_slug(ODD_ID)}.html")
    assert "odd &lt;b&gt;&amp;&#34;id&#34;" in sheet
    assert "PAN read as &lt;31&gt; with low confidence &amp; no check." in sheet


def test_links_are_relative_and_resolve(built_report):
    for page in built_report.rglob("*.html"):
        for link in LINK.findall(read(page)):
            if link.startswith("data:image/jpeg;base64,"):  # an inlined crop
                continue
            assert not re.match(r"^[a-z]+:|^/", link), f"{page.name}: non-relative link {link}"
            assert (page.parent / link.split("#")[0]).exists(), f"{page.name}: broken link {link}"


def test_sheet_pages_link_in_ranked_order(built_report):
    first, second = (built_report / "sheets" / f"{sheet_slug(s)}.html" for s in RANKED[:2])
    assert 'id="prev-sheet"' not in read(first)
    assert f'href="{sheet_slug(RANKED[1])}.html" rel="next"' in read(first)
    assert f'href="{sheet_slug(RANKED[0])}.html" rel="prev"' in read(second)
    # the last page of its own leads on to the first sheet drawn from data
    last = read(built_report / "sheets" / f"{sheet_slug(RANKED[STATIC_PAGES - 1])}.html")
    assert re.search(r'href="view\.html#b=\d+&amp;at=4&amp;id=s001" rel="next"', last)


def test_every_sheet_page_says_why_it_ranks_where_it_does(built_report):
    page = read(built_report / "sheets" / f"{sheet_slug(ODD_ID)}.html")
    assert "Ranked 3 of 5: group 3 of 5" in page and 'href="../index.html#ranking-rule"' in page
    records = detail_records(built_report)  # the view page puts "Ranked N of 5: " before these
    assert records["s004"]["basis"].startswith("no check flagged this sheet, so it comes after every flagged sheet")
    assert records["s001"]["basis"].startswith("group 4 of 5 (statistical outlier)")
    assert "score 0.600" in records["s001"]["basis"]


def test_flagged_sheet_shows_each_finding_with_the_fields_that_caused_it(built_report):
    page = read(built_report / "sheets" / "s002.html")
    assert ("Party votes + unregistered + null = total votes does not hold: 217 against 271 (54 off); PRI may be "
            "misread") in page
    assert "PRI looks altered: overwritten, erased, covered or crossed out" in page
    assert "Field to look at:\n          PRI" in page
    # only the doubtful or altered field is outlined and cropped, not every addend of the sum
    # crops are inlined (grey JPEG data URIs), never one file each
    assert page.count('src="data:image/jpeg;base64,') == 2 and 'alt="PAN as scanned"' not in page
    assert not any(p.suffix == ".png" for p in (built_report / "sheets").rglob("*"))
    assert page.count('class="box ') == 18 and page.count('flagged"') == 1
    # the evidence holds only what supports the finding: the altered field's score, none of the other 12
    assert "<th>sum of parts</th><td>217</td>" in page and "1.2e-05" not in page
    assert "read right probability" not in page and "the audit's wording" in page
    # one name per field, the form's printed label: the table, overlay and findings never use the column name
    assert "<td>VOTACION TOTAL</td>" in page and "<td>total votes</td>" not in page and "<td>total_votes" not in page
    # the evidence names the form's rule by its label and its text
    assert "<th>rule</th><td>party votes + unregistered + null = total votes</td>" in page
    assert "<th>rule text</th><td>sum(candidate) + other_votes + invalid == total</td>" in page


def test_clean_sheet_shows_the_checks_that_pass(built_report):
    record = detail_records(built_report)["s004"]
    assert record["flags"] == [] and record["verdict"] == "ok"
    assert "52 + 163 + 28 + 26 + 33 + 39 + 23 + 21 + 0 + 3 = 388 = total_votes (VOTACION TOTAL)" in record["passed"]
    assert "388 + 62 = 450 = ballots_received (BOLETAS RECIBIDAS)" in record["passed"]


def test_sheets_without_a_page_of_their_own_are_drawn_from_data(built_report, batch):
    records = detail_records(built_report)
    s001 = records["s001"]
    assert [c[0] for f in s001["flags"] for c in f["crops"]] == ["pan"]
    pack = "".join(read(p) for p in (built_report / "data").glob("crops-*.js"))
    assert '"s001":{"pan":"data:image/jpeg;base64,' in pack and '"s004"' not in pack
    # the scan is linked in place in the run folder, not copied
    assert (built_report / "sheets" / s001["scan"]).resolve() == (batch.rundir / "registered" / "s001.jpg").resolve()
    assert not list((built_report / "sheets").glob("files/s001*"))
    # the same geometry as a page of its own: one value per numeric field and tick box
    config = json.loads(html.unescape(re.search(r'data-config="([^"]+)"', read(built_report / "sheets" /
                                                                               "view.html")).group(1)))
    assert len(s001["f"]) == len(config["fields"]) == 18 and len(s001["t"]) == len(config["ticks"])
    assert config["total"] == len(SHEETS) and config["chunks"][0] == "../data/sheets-000.js"


def test_alternatives_below_the_display_threshold_are_hidden(built_report):
    page = read(built_report / "sheets" / "s002.html")
    assert "(0.02)" not in page and "(0.25)" in page


def test_unreadable_sheet_has_a_page_without_scan(built_report):
    page = read(built_report / "sheets" / "s005.html")
    assert "No registered scan" in page and "no fiducials found" in page


def test_data_chunks_hold_every_sheet_in_rank_order(built_report):
    chunks = sorted((built_report / "data").glob("sheets-*.js"))
    assert [p.name for p in chunks] == ["sheets-000.js", "sheets-001.js", "sheets-002.js"]
    rows = [r for p in chunks for r in json.loads(read(p)[read(p).index("(") + 1:read(p).rindex(")")])]
    assert [r[1] for r in rows] == RANKED
    assert rows[0][-2:] == ["s002", "sheets/s002.html"] and rows[-1][-1].startswith("sheets/view.html#b=")


def test_exports_match_the_audit_tables(built_report, batch):
    sheets = pd.read_csv(built_report / "data" / "sheets.csv")
    flags = pd.read_csv(built_report / "data" / "flags.csv")
    assert len(sheets) == len(SHEETS) and len(flags) == len(pd.read_parquet(batch.processed / "flags.parquet"))
    assert sheets.loc[0, "page"] == "sheets/s002.html" and sheets["rank"].tolist() == list(range(1, 6))
    assert view_link(built_report, "s004").startswith("sheets/view.html#b=")
    assert "static" not in sheets.columns and "bucket" not in sheets.columns


def test_summary_pages_show_the_audit_results(built_report):
    index = read(built_report / "index.html")
    assert "opposition absent" in index and "50.0%" in index and "needs sheets both with and without" in index
    assert 'id="truth-summary"' in index
    forensics = read(built_report / "forensics.html")
    assert 'class="test-card alarm" id="test-second_digit_2bl"' in forensics
    assert "Whether the second digits of the counts follow Benford&#39;s second-digit law." in forensics
    assert "Alarm: a deviation this large would be rare in honest counts (adjusted p &lt; 0.001" in forensics
    assert "Source: Mebane (2006)" in forensics and "Digit tests are weak evidence" in forensics
    assert "Not run: only 4 stations (&lt; 25)." in forensics
    # alarms first
    assert forensics.index('id="test-second_digit_2bl"') < forensics.index('id="test-last_digit_uniform"')
    for fig in ("last_digits", "second_digits", "fingerprint", "confidence", "confusion", "accuracy"):
        assert f'src="figures/{fig}.png"' in forensics, fig
    model = read(built_report / "model.html")
    assert "<code>v2</code> <span class=\"badge sev-info\">current</span>" in model
    assert 'src="figures/model_training.png"' in model and "0.9810" in model
    assert 'src="figures/model/calibration_curve.png"' in model
    assert 'id="architecture-table"' in model and "W = (28 + 2·1 − 3) / 1 + 1 = 28" in model
    assert "14 x 14 x 8" in model and "15,762" in model  # 72 + (1,568 + 1) x 10


def test_no_page_is_large(built_report):
    assert max(p.stat().st_size for p in built_report.rglob("*") if p.suffix in (".html", ".js")) < MAX_PAGE_BYTES


def test_rebuild_with_linked_scans_removes_stale_pages_and_copies(built_report, batch, tmp_path):
    out = tmp_path / "r"
    shutil.copytree(built_report, out)
    (out / "sheets" / "gone.html").write_text("stale")
    build_report(batch.processed, out, models_dir=batch.models, settings=ReportSettings(copy_scans=False))
    assert not (out / "sheets" / "gone.html").exists()
    assert sorted(p.name for p in (out / "data").glob("sheets-*.js")) == ["sheets-000.js"]
    page = read(out / "sheets" / "s001.html")
    src = re.search(r'<img src="([^"]+)" alt="registered scan', page).group(1)
    assert src.endswith("registered/s001.jpg") and (out / "sheets" / src).resolve().is_file()
    assert not (out / "sheets" / "files" / "s002.jpg").exists() and (out / "sheets" / "s001.html").is_file()


def test_report_without_run_folder_or_truth_still_builds(batch, tmp_path):
    processed = tmp_path / "alone"
    shutil.copytree(batch.processed, processed)
    sheets = pd.read_parquet(processed / "sheets.parquet").drop(columns=["evidence_dir"])
    sheets.to_parquet(processed / "sheets.parquet")
    for optional in ("truth_eval.json", "forensics.json", "cantu.json"):
        (processed / optional).unlink()
    index = build_report(processed, tmp_path / "r", models_dir=tmp_path / "no-models")
    assert "No comparison available" in read(index)
    assert "No digit tests ran" in read(tmp_path / "r" / "forensics.html")
    assert "No registered scan" in read(tmp_path / "r" / "sheets" / "s001.html")
    assert "No trained models" in read(tmp_path / "r" / "model.html")


def test_missing_or_broken_inputs_name_the_file(batch, tmp_path):
    with pytest.raises(InputFileError, match="audit output folder not found"):
        build_report(tmp_path / "nope", tmp_path / "r")
    broken = tmp_path / "broken"
    shutil.copytree(batch.processed, broken)
    pd.read_parquet(broken / "flags.parquet").drop(columns=["reason"]).to_parquet(broken / "flags.parquet")
    with pytest.raises(InputFileError, match=r"flags\.parquet: lacks column\(s\) reason"):
        build_report(broken, tmp_path / "r")


def test_cli_builds_and_reports_errors_with_exit_codes(batch, tmp_path, capsys):
    code = main(["report", str(batch.processed), "--out", str(tmp_path / "r"), "--rundir", str(batch.rundir),
                 "--truth", str(batch.truth), "--models", str(batch.models), "--link-scans"])
    assert code == 0 and (tmp_path / "r" / "index.html").is_file()
    assert main(["report", str(tmp_path / "missing"), "--out", str(tmp_path / "r")]) == ExitCode.input_file
    assert "missing: audit output folder not found" in capsys.readouterr().err


@pytest.mark.parametrize(("value", "text"), [(1.0, "1.000"), (0.0, "0.000"), (886.0, "886"), (12345, "12,345"),
                                             (0.4567, "0.457"), (3.2e-8, "3.2e-08"), (None, "–"),
                                             (float("nan"), "–"), ("x", "x")])
def test_numbers_are_formatted_for_reading(value, text):
    assert format_number(value) == text


def test_the_report_names_its_inputs_relative_to_itself_never_absolute(built_report, batch):
    root = str(batch.processed.parent.parent)  # the folder holding interim/, processed/, models/
    leaks = [p.relative_to(built_report) for p in built_report.rglob("*")
             if p.is_file() and p.suffix in (".html", ".csv", ".js", ".json") and root in read(p)]
    assert not leaks, f"absolute input paths in {leaks}"
    manifest = json.loads(read(built_report / "data" / "manifest.json"))
    assert not manifest["processed"].startswith("/") and manifest["processed"].endswith("processed/b")


def test_the_first_screen_says_when_the_alteration_check_did_not_run(built_report, batch, tmp_path):
    from pipeline.audit.alteration import NO_CHECK

    assert 'id="alteration-off"' not in read(built_report / "index.html")
    processed = tmp_path / "processed"
    shutil.copytree(batch.processed, processed)
    cantu = json.loads(read(processed / "cantu.json"))
    (processed / "cantu.json").write_text(json.dumps({**cantu, "detected": {"skipped": NO_CHECK}}))
    build_report(processed, tmp_path / "report", batch.rundir, models_dir=batch.models)
    index = read(tmp_path / "report" / "index.html")
    assert 'id="alteration-off"' in index and "--no-alteration" in index


def chip_counts(index: str) -> dict[str, int]:
    """The verdict chips of the index page: ``{verdict: sheets}``."""
    found = re.findall(r'data-verdict="([^"]+)"[^>]*>.*?<span class="chip-n">([\d,]+)</span>', index, re.S)
    return {v: int(n.replace(",", "")) for v, n in found}


def test_chips_table_filter_summary_and_csv_count_the_same_sheets(built_report, batch):
    from pipeline.report.triage import VERDICT_LABELS
    from pipeline.run import summary_text

    chips = chip_counts(read(built_report / "index.html"))
    assert chips == {"altered": 1, "suspicious": 1, "needs_review": 2, "ok": 1}
    assert sum(chips.values()) == len(SHEETS)  # sheets, not flags: 5 flags on 4 flagged sheets
    chunks = sorted((built_report / "data").glob("sheets-*.js"))
    rows = [r for p in chunks for r in json.loads(read(p)[read(p).index("(") + 1:read(p).rindex(")")])]
    filtered = pd.Series([r[2] for r in rows]).value_counts().to_dict()  # the filter compares the verdict column
    assert filtered == chips
    assert pd.read_csv(built_report / "data" / "sheets.csv")["verdict"].value_counts().to_dict() == chips
    flagged = {v: n for v, n in chips.items() if v != "ok"}
    parts = ", ".join(f"{VERDICT_LABELS[v]} {n}" for v, n in flagged.items())
    assert f"flagged sheets   {sum(flagged.values())} ({parts})" in summary_text(batch.processed, built_report)


def test_check_these_first_comes_before_everything_with_reasons_and_crops(built_report):
    index = read(built_report / "index.html")
    block = index[index.index('id="check-first"'):index.index('id="verdict-chips"')]
    assert index.index('id="check-first"') < index.index('id="sheets"') < index.index('id="cantu"')
    items = re.findall(r'data-sheet="([^"]+)"', block)
    assert items == ["s002", "s005", "odd &lt;b&gt;&amp;&#34;id&#34;"]  # outliers and clean sheets stay out
    assert "PRI looks altered: overwritten, erased, covered or crossed out (+1 other finding)" in block
    assert block.count('src="data:image/jpeg;base64,') == 2  # s005 was never read: no crop
    assert 'id="ranking-rule"' in index and "A sheet with no finding never ranks above a flagged one" in index


def test_flagged_csv_holds_the_flagged_sheets_in_rank_order_with_reasons(built_report):
    flagged = pd.read_csv(built_report / "data" / "flagged.csv")
    assert flagged["sheet_id"].tolist() == [s for s in RANKED if s != "s004"]
    assert flagged["reason"].str.len().min() > 10 and (flagged["verdict"] != "ok").all()


def test_a_rebuild_rewrites_only_the_sheet_pages_that_changed(batch, tmp_path):
    processed, out = tmp_path / "processed", tmp_path / "r"
    shutil.copytree(batch.processed, processed)

    def build() -> None:
        build_report(processed, out, batch.rundir, truth=batch.truth, models_dir=batch.models)

    build()
    scan = out / "sheets" / "files" / "s001.jpg"
    before = scan.stat().st_mtime_ns
    build()
    assert json.loads(read(out / "data" / "manifest.json"))["sheet_pages"] == {"written": 0, "kept": 4, "removed": 0}
    assert scan.stat().st_mtime_ns == before
    flags = pd.read_parquet(processed / "flags.parquet")
    flags.loc[flags["sheet_id"] == "s001", "reason"] = "PAN share 0.41 vs district median 0.20 (robust z +4.2)"
    flags.to_parquet(processed / "flags.parquet")
    build()
    assert json.loads(read(out / "data" / "manifest.json"))["sheet_pages"] == {"written": 1, "kept": 3, "removed": 0}
    assert "robust z +4.2" in read(out / "sheets" / "s001.html")


def snapshot(folder: Path) -> dict[str, int]:
    """``{path: mtime_ns}`` of every file under ``folder``."""
    return {p.relative_to(folder).as_posix(): p.stat().st_mtime_ns for p in folder.rglob("*") if p.is_file()}


def test_a_rebuild_after_one_sheet_changes_rewrites_only_its_data(batch, tmp_path):
    processed, out = tmp_path / "processed", tmp_path / "r"
    shutil.copytree(batch.processed, processed)

    def build() -> dict:
        build_report(processed, out, batch.rundir, truth=batch.truth, models_dir=batch.models,
                     settings=ReportSettings(static_pages=0, detail_chunk_rows=1))
        return json.loads(read(out / "data" / "manifest.json"))

    first = build()
    assert first["sheet_data"]["written"] == 5 and first["sheet_data"]["crops_written"] >= 1
    before = snapshot(out)
    again = build()
    assert again["sheet_data"] == {"written": 0, "kept": 5, "crops_written": 0, "crops_kept":
                                   first["sheet_data"]["crops_written"], "removed": 0}
    unchanged = snapshot(out)
    # only the pages that carry the build time, and the manifest, are rewritten when nothing changed
    assert sorted(k for k in unchanged if unchanged[k] != before[k]) == ["data/manifest.json", "forensics.html",
                                                                           "index.html", "model.html"]
    sheets = pd.read_parquet(processed / "sheets.parquet")
    sheets.loc[sheets["sheet_id"] == "s004", "station_type"] = "C"  # one sheet changes, its rank does not
    sheets.to_parquet(processed / "sheets.parquet")
    changed = build()
    after = snapshot(out)
    rewritten = sorted(k for k in after if after[k] != unchanged.get(k))
    assert changed["sheet_data"]["written"] == 1 and changed["sheet_data"]["crops_written"] == 0
    assert [k for k in rewritten if k.startswith("data/detail-")] == [
        f"data/detail-{zlib.crc32(b's004') % 5:03d}.js"]
    assert not [k for k in rewritten if k.startswith(("sheets/", "data/crops-", "figures/"))], rewritten
    assert detail_records(out)["s004"]["meta"][4] == ["TIPO", "C"]


def test_detail_records_carry_the_evidence_of_a_page_of_its_own(built_report):
    """A flagged sheet drawn from data (s001, ranked below ``static_pages``) has its evidence tables formatted as
    its page of its own would show them; a flag without evidence carries none."""
    records = detail_records(built_report)
    (outlier,) = records["s001"]["flags"]
    assert outlier["ev"] == [[], ["value", "district median"], [["share_pan", ["0.400", "0.200"]]]]
    assert outlier["causes"] == ["PAN"] and records["s001"]["passed"]
    assert "ev" not in json.dumps(records["s004"]["flags"])
