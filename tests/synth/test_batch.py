"""The batch folder (docs/DATA.md section 1), determinism across runs and worker counts, formats and the CLI."""

from __future__ import annotations

import hashlib
import json

import cv2
import numpy as np
import pandas as pd
import pypdfium2

from pipeline.cli import main
from pipeline.errors import ExitCode
from pipeline.synth import SynthSettings, generate_batch
from pipeline.synth.bench import run_bench
from tests.synth.common import FAST, folder_hashes

COUNTS = ("pan", "pri", "pps", "parm", "pfcrn", "pms", "pdm", "prt", "unregistered", "null_votes", "total_votes",
          "ballots_received", "ballots_left_over", "registered_voters")
DOCUMENTED = ["sheet_id", "file", "state", "district", "section", "station", "station_type", "altered", "fabricated",
              "alteration_kinds", "arithmetic_error", "opposition_present", "dpi", "rotation_deg", "perspective",
              "jpeg_quality", "blur_sigma"]


def test_batch_has_the_documented_files_and_columns(batch, truth, boxes, tampered):
    assert sorted(p.name for p in batch.iterdir()) == ["boxes.csv", "gallery.png", "manifest.json", "sheets",
                                                       "truth.csv"]
    assert len(list((batch / "sheets").glob("*.jpg"))) == tampered.sheets == len(truth)
    expected = DOCUMENTED + [f"{f}{suffix}" for f in COUNTS for suffix in ("", "_written", "_alteration")]
    expected += [f"rep_{p}" for p in COUNTS[:8]]
    assert set(expected) <= set(truth.columns)
    assert {"sheet_id", "field", "box", "digit", "mnist_index", "altered", "alteration"} <= set(boxes.columns)
    assert truth["sheet_id"].is_unique and set(boxes["sheet_id"]) == set(truth["sheet_id"])


def test_files_open_at_the_recorded_resolution(batch, truth):
    for row in truth.itertuples():
        img = cv2.imread(str(batch / row.file), cv2.IMREAD_UNCHANGED)
        assert img is not None and row.file == f"sheets/{row.sheet_id}.jpg"
        assert abs(img.shape[0] - 297 / 25.4 * row.dpi) < 12 / 25.4 * row.dpi * 2


def test_manifest_records_settings_source_and_truth_hash(batch, tampered):
    manifest = json.loads((batch / "manifest.json").read_text())
    assert manifest["truth_sha256"] == hashlib.sha256((batch / "truth.csv").read_bytes()).hexdigest()
    assert manifest["seed"] == tampered.seed and manifest["settings"]["altered_rate_absent"] == 1.0
    assert manifest["mnist"]["split"] == "test" and manifest["version"]


def test_boxes_spell_what_is_written(truth, boxes):
    written = boxes[boxes["digit"] >= 0].sort_values("box").groupby(["sheet_id", "field"])["digit"]
    spelled = written.apply(lambda d: int("".join(map(str, d))))
    for row in truth.itertuples():
        for f in COUNTS:
            value = getattr(row, f"{f}_written")
            assert (pd.isna(value) and (row.sheet_id, f) not in spelled) or spelled[(row.sheet_id, f)] == value


def test_altered_fields_are_recorded_and_changed(truth, boxes):
    assert truth["altered"].all()  # every sheet was tampered with in this batch
    kinds = {k for ks in truth["alteration_kinds"] for k in ks.split(";")}
    assert {"overwrite", "erase", "fluid", "crossout"} & kinds
    for row in truth.itertuples():
        changed = [f for f in COUNTS if getattr(row, f"{f}_alteration") != "none"]
        assert changed
        assert all(getattr(row, f"{f}_written") != getattr(row, f) for f in changed
                   if f in COUNTS[:8] and not row.arithmetic_error)
        visible = boxes[(boxes["sheet_id"] == row.sheet_id) & boxes["altered"]]
        assert set(visible["alteration"]) <= {"overwrite", "erase", "fluid", "crossout"}
        assert set(visible["field"]) <= set(changed)


def test_clean_sheets_keep_the_arithmetic(tmp_path, digits):
    out = generate_batch(SynthSettings(sheets=4, seed=2, **FAST, altered_rate_absent=0, altered_rate_present=0,
                                       fabricated_rate=0, arithmetic_error_rate=0), tmp_path / "clean", digits)
    t = pd.read_csv(out / "truth.csv")
    w = {f: t[f"{f}_written"].fillna(0) for f in COUNTS}
    assert (sum(w[p] for p in COUNTS[:10]) == w["total_votes"]).all()
    assert (w["ballots_received"] - w["total_votes"] == w["ballots_left_over"]).all()
    assert not t["altered"].any() and (t["alteration_kinds"].isna() | (t["alteration_kinds"] == "")).all()


def test_mnist_indices_are_test_split_images_of_the_recorded_digit(boxes, mnist):
    drawn = boxes[boxes["mnist_index"] >= 0]
    assert drawn["mnist_index"].max() < len(mnist.x_test)
    assert (mnist.y_test[drawn["mnist_index"].to_numpy()] == drawn["digit"].to_numpy()).all()
    old = boxes[boxes["old_mnist_index"] >= 0]
    assert (mnist.y_test[old["old_mnist_index"].to_numpy()] == old["old_digit"].to_numpy()).all()


def test_same_seed_gives_byte_identical_batches_for_any_worker_count(tmp_path, digits):
    settings = SynthSettings(sheets=3, seed=4, **{**FAST, "workers": 1})
    one = folder_hashes(generate_batch(settings, tmp_path / "one", digits))
    again = folder_hashes(generate_batch(settings, tmp_path / "again", digits))
    two = folder_hashes(generate_batch(SynthSettings(sheets=3, seed=4, **{**FAST, "workers": 2}), tmp_path / "two",
                                       digits))
    assert one == again == two and len(one) == 7
    other = folder_hashes(generate_batch(SynthSettings(sheets=3, seed=5, **FAST), tmp_path / "other", digits))
    assert other["truth.csv"] != one["truth.csv"]


def test_pdf_batch_is_one_multipage_file_with_page_ids(tmp_path, digits):
    out = generate_batch(SynthSettings(sheets=3, seed=1, image_format="pdf", **FAST), tmp_path / "pdf", digits)
    assert [p.name for p in (out / "sheets").iterdir()] == ["sheets.pdf"]
    t = pd.read_csv(out / "truth.csv")
    assert t["sheet_id"].tolist() == ["sheets", "sheets-p2", "sheets-p3"] and t["page"].tolist() == [1, 2, 3]
    pdf = pypdfium2.PdfDocument(out / "sheets" / "sheets.pdf")
    assert len(pdf) == 3
    page = pdf[1].render(scale=t["dpi"][1] / 72).to_numpy()
    assert abs(page.shape[0] - 297 / 25.4 * t["dpi"][1]) < 30
    assert set(pd.read_csv(out / "boxes.csv")["sheet_id"]) == set(t["sheet_id"])


def test_png_format_and_rerun_replaces_old_sheets(tmp_path, digits):
    out = tmp_path / "b"
    generate_batch(SynthSettings(sheets=3, seed=1, **FAST), out, digits)
    generate_batch(SynthSettings(sheets=2, seed=1, image_format="png", **FAST), out, digits)
    assert sorted(p.name for p in (out / "sheets").iterdir()) == ["s000001.png", "s000002.png"]
    assert cv2.imread(str(out / "sheets" / "s000001.png")) is not None


def test_cli_writes_the_batch(tmp_path):
    out = tmp_path / "cli"
    assert main(["synth", "--sheets", "2", "--seed", "3", "--out", str(out), "--dpi", "100", "--workers", "1"]) == 0
    assert (out / "truth.csv").is_file() and len(list((out / "sheets").glob("*.jpg"))) == 2
    assert np.asarray(cv2.imread(str(out / "gallery.png"))).ndim == 3


def test_cli_rejects_bad_settings(tmp_path, capsys):
    cfg = tmp_path / "c.yaml"
    cfg.write_text("synth: {altered_rate_absent: 2}\n")
    assert main(["--config", str(cfg), "synth", "--sheets", "1", "--out", str(tmp_path / "x")]) == ExitCode.config_error
    assert "altered_rate_absent" in capsys.readouterr().err
    assert main(["synth", "--sheets", "0", "--out", str(tmp_path / "x")]) == ExitCode.config_error


def test_output_path_that_is_a_file_is_refused(tmp_path, digits):
    (tmp_path / "f").write_text("x")
    assert main(["synth", "--sheets", "1", "--out", str(tmp_path / "f")]) == ExitCode.input_file


def test_quick_bench_reports_measured_figures():
    result = run_bench({"synth": {"workers": 1}}, quick=True)
    assert result["sheets"] == 6 and result["dpi"] == 200 and result["sheets_per_s"] > 0
    assert result["meets_target"] == (result["sheets_per_s"] >= result["target_sheets_per_s"])
    assert result["heldout_cpu_ms_per_sheet"] > 0
