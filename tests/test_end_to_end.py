"""The whole pipeline on a handful of generated sheets with a tiny model: synth -> train (tiny) -> run (read,
recognise, audit, report) -> summary. Read accuracy is not asserted (the model is tiny); what must agree with
the ground truth does: the sheet ids, the ticks the reader sees without the model, and the arithmetic verdict
of every sheet whose numbers were read right."""

from __future__ import annotations

import json
import re
from dataclasses import replace

import pandas as pd
import pytest

from pipeline.cli import main
from pipeline.forms import load_template
from pipeline.report.tables import sheet_slug
from pipeline.report.triage import NO_FIELD_RULES

SHEETS = 5
SEED = 11
DPI = 150
TINY_SUBSET = 3000
TINY_EPOCHS = 3


@pytest.fixture(scope="module")
def e2e(tmp_path_factory, mnist):
    """Generate, train a tiny model, run the pipeline; returns the folders."""
    from pipeline.model.settings import TrainSettings, tiny
    from pipeline.model.train import train
    from pipeline.synth import DigitSource, SynthSettings, generate_batch

    root = tmp_path_factory.mktemp("e2e")
    syn = generate_batch(SynthSettings(sheets=SHEETS, seed=SEED, dpi=DPI, gallery_sheets=2, workers=1),
                         root / "synthetic", DigitSource.from_mnist(mnist))
    train(replace(tiny(TrainSettings()), subset=TINY_SUBSET, epochs=TINY_EPOCHS), root / "models",
          root / "model_reports", mnist)
    # One reader process: forking a pool after TensorFlow has started its threads (training above) can hang.
    config = root / "config.yaml"
    config.write_text("read: {workers: 1}\naudit: {alteration_model: null}\n")
    dirs = {"syn": syn, "interim": root / "interim" / "e2e", "processed": root / "processed" / "e2e",
            "report": root / "report"}
    code = main(["--config", str(config), "run", str(syn / "sheets"), "--out", str(dirs["processed"]),
                 "--interim", str(dirs["interim"]), "--report", str(dirs["report"]),
                 "--model", str(root / "models" / "current"), "--truth", str(syn / "truth.csv")])
    assert code == 0
    return dirs


def test_every_stage_wrote_its_outputs(e2e):
    for name in ("pages.csv", "crops.parquet", "digits.npy", "digits_read.parquet", "fields.parquet"):
        assert (e2e["interim"] / name).is_file(), name
    for name in ("sheets.parquet", "flags.csv", "forensics.json", "cantu.json", "truth_eval.json", "run.json"):
        assert (e2e["processed"] / name).is_file(), name
    for name in ("index.html", "forensics.html", "model.html", "data/sheets.csv", "data/flags.csv"):
        assert (e2e["report"] / name).is_file(), name
    record = json.loads((e2e["processed"] / "run.json").read_text())
    assert list(record["seconds"]) == ["read", "recognise", "audit", "report"]


def test_ids_and_ticks_agree_with_the_truth(e2e):
    truth = pd.read_csv(e2e["syn"] / "truth.csv", dtype={"sheet_id": str})
    sheets = pd.read_parquet(e2e["processed"] / "sheets.parquet").set_index("sheet_id")
    assert sorted(sheets.index) == sorted(truth["sheet_id"])
    assert (sheets["status"] == "ok").all()
    t = truth.set_index("sheet_id").loc[sheets.index]
    for party in load_template().parties:
        assert sheets[f"rep_{party}"].astype(int).tolist() == t[f"rep_{party}"].astype(int).tolist(), party
    assert sheets["station_type"].astype(str).tolist() == t["station_type"].astype(str).tolist()


def test_arithmetic_verdicts_agree_with_the_truth_where_reads_are_right(e2e):
    arithmetic = json.loads((e2e["processed"] / "truth_eval.json").read_text())["arithmetic"]
    read_right = arithmetic["inconsistent_read_correctly"]
    assert read_right["n"] == 0 or read_right["inconsistent_rate"] == 1.0


def test_every_sheet_has_a_page_with_its_scan_and_reads(e2e):
    """A flagged sheet has a page of its own (scan copied, crops inlined); every other sheet is drawn by the view
    page from its data record (scan linked in place in the run folder); both show exactly what was read."""
    from tests.report.conftest import detail_records

    report = e2e["report"]
    fields = pd.read_parquet(e2e["interim"] / "fields.parquet")
    flags = pd.read_csv(e2e["processed"] / "flags.csv", dtype=str, keep_default_na=False)
    records = detail_records(report)
    numeric = [f.name for f in load_template().fields if f.is_numeric]
    for sid, group in fields.groupby("sheet_id"):
        read = dict(zip(group["field"], group["text"].fillna(""), strict=True))
        mine = flags[(flags["sheet_id"] == sid) & (flags["fields"] != "") & ~flags["rule"].isin(NO_FIELD_RULES)]
        path = report / "sheets" / f"{sheet_slug(sid)}.html"
        if path.is_file():
            page = path.read_text(encoding="utf-8")
            scan = re.search(r'<img src="([^"]+)" alt="registered scan', page).group(1)
            assert (report / "sheets" / scan).stat().st_size > 0
            tags = dict(re.findall(r'data-field="([a-z_]+)"[^>]*>\s*<span class="tag">([^<]*)</span>', page))
            assert all(tags[field] == (text or "·") for field, text in read.items()), sid
            crops = re.findall(r'<img src="data:image/jpeg;base64,[A-Za-z0-9+/=]+"', page)
        else:
            record = records[sheet_slug(sid)]
            assert (report / "sheets" / record["scan"]).stat().st_size > 0
            assert [row[0] for row in record["f"]] == [read.get(name, "") for name in numeric], sid
            crops = [c for flag in record["flags"] for c in flag.get("crops", [])]
        assert crops or mine.empty, sid  # a finding about fields shows their crops under it


def test_summary_reports_the_run(e2e, capsys):
    assert main(["summary", str(e2e["processed"])]) == 0
    out = capsys.readouterr().out
    assert f"sheets           {SHEETS}  (read {SHEETS})" in out
    assert "time per stage   read" in out and "not timed" not in out
    assert str(e2e["report"] / "index.html") in out
