"""The report built from a hand-made batch: files, escaping, links, data chunks, exports, errors."""

from __future__ import annotations

import json
import re
import shutil

import pandas as pd
import pytest

from pipeline.cli import main
from pipeline.errors import ExitCode, InputFileError
from pipeline.report import ReportSettings, build_report
from pipeline.report.build import format_number
from pipeline.report.tables import sheet_slug
from tests.report.conftest import ODD_ID, SHEETS

MAX_PAGE_BYTES = 3_000_000
LINK = re.compile(r'(?:href|src)="([^"]*)"')


def read(path) -> str:
    return path.read_text(encoding="utf-8")


def test_every_page_and_export_exists(built_report):
    for name in ("index.html", "forensics.html", "model.html", "static/report.css", "static/report.js",
                 "data/sheets.csv", "data/flags.csv", "data/sheets-000.js", "data/manifest.json"):
        assert (built_report / name).is_file(), name
    pages = sorted(p.stem for p in (built_report / "sheets").glob("*.html"))
    assert pages == sorted(sheet_slug(s[0]) for s in SHEETS)


def test_user_text_is_escaped_everywhere(built_report):
    html = [read(p) for p in built_report.rglob("*.html")]
    assert not any("<b>&" in h for h in html), "a raw sheet id reached the HTML"
    sheet = read(built_report / "sheets" / f"{sheet_slug(ODD_ID)}.html")
    assert "odd &lt;b&gt;&amp;&#34;id&#34;" in sheet
    assert "PAN read as &lt;31&gt; with low confidence &amp; no check." in sheet


def test_links_are_relative_and_resolve(built_report):
    for page in built_report.rglob("*.html"):
        for link in LINK.findall(read(page)):
            assert not re.match(r"^[a-z]+:|^/", link), f"{page.name}: non-relative link {link}"
            assert (page.parent / link.split("#")[0]).exists(), f"{page.name}: broken link {link}"


def test_sheet_pages_link_in_ranked_order(built_report):
    ranked = sorted(SHEETS, key=lambda s: -s[2])
    first, second = (built_report / "sheets" / f"{sheet_slug(s[0])}.html" for s in ranked[:2])
    assert 'id="prev-sheet"' not in read(first)
    assert f'href="{sheet_slug(ranked[1][0])}.html" rel="next"' in read(first)
    assert f'href="{sheet_slug(ranked[0][0])}.html" rel="prev"' in read(second)


def test_flagged_sheet_shows_crops_reasons_and_evidence(built_report):
    page = read(built_report / "sheets" / "s002.html")
    assert "The party votes add up to 217 but the total says 271." in page
    assert "<th>sum of parties</th><td>217</td>" in page
    for field in ("total_votes", "pan", "pri"):
        assert (built_report / "sheets" / "files" / "s002" / f"field-{field}.png").is_file()
        assert f'src="files/s002/field-{field}.png"' in page
    assert page.count('class="box ') == 18 and page.count("flagged\"") >= 3


def test_unreadable_sheet_has_a_page_without_scan(built_report):
    page = read(built_report / "sheets" / "s005.html")
    assert "No registered scan" in page and "no fiducials found" in page


def test_data_chunks_hold_every_sheet_in_rank_order(built_report):
    chunks = sorted((built_report / "data").glob("sheets-*.js"))
    assert [p.name for p in chunks] == ["sheets-000.js", "sheets-001.js", "sheets-002.js"]
    rows = [r for p in chunks for r in json.loads(read(p)[read(p).index("(") + 1:read(p).rindex(")")])]
    assert [r[1] for r in rows] == [s[0] for s in sorted(SHEETS, key=lambda s: -s[2])]
    assert rows[0][-1] == "s002"


def test_exports_match_the_audit_tables(built_report, batch):
    sheets = pd.read_csv(built_report / "data" / "sheets.csv")
    flags = pd.read_csv(built_report / "data" / "flags.csv")
    assert len(sheets) == len(SHEETS) and len(flags) == len(pd.read_parquet(batch.processed / "flags.parquet"))
    assert sheets.loc[0, "page"] == "sheets/s002.html" and sheets["rank"].tolist() == list(range(1, 6))


def test_summary_pages_show_the_audit_results(built_report):
    index = read(built_report / "index.html")
    assert "opposition absent" in index and "50.0%" in index and "needs sheets both with and without" in index
    assert 'id="truth-summary"' in index
    forensics = read(built_report / "forensics.html")
    assert 'class="alarm"' in forensics and "second_digit_2bl" in forensics
    assert "1 test(s) skipped for lack of data" in forensics and "only 4 stations (&lt; 25)" in forensics
    for fig in ("last_digits", "second_digits", "fingerprint", "confidence", "confusion", "accuracy"):
        assert f'src="figures/{fig}.png"' in forensics, fig
    model = read(built_report / "model.html")
    assert "<code>v2</code> <span class=\"badge sev-info\">current</span>" in model
    assert 'src="figures/model_training.png"' in model and "0.9810" in model
    assert 'src="figures/model/calibration_curve.png"' in model


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
    assert not (out / "sheets" / "files" / "s001" / "scan.jpg").exists()


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
