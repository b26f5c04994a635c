"""Hand-built stage outputs that follow docs/DATA.md (sections 1-4), so the report is tested without the
other stages: a run folder (registered scans, field images, reads), an audit folder, truth and two models."""

from __future__ import annotations

import json
import os
import zipfile
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest

from pipeline.forms import render_blank

DPI = 80
ODD_ID = 'odd <b>&"id"'  # a file stem may hold any character but '/'
#: (sheet_id, status, suspicion, alteration_score); the unreadable one has no scan. s004 has no flag but a high
#: score and s001 only a statistical flag: the ranking must still put every sheet to check above them.
SHEETS = [("s001", "ok", 0.60, 0.05), ("s002", "ok", 0.95, 0.90), (ODD_ID, "ok", 0.50, 0.20),
          ("s004", "ok", 0.70, 0.01), ("s005", "not_a_form", 0.30, None)]
VERDICTS = {"s001": "suspicious", "s002": "altered", ODD_ID: "needs_review", "s004": "ok", "s005": "needs_review"}
#: The order the report must rank them in (tier, then severity, then score).
RANKED = ["s002", "s005", ODD_ID, "s001", "s004"]
#: Flagged sheets with a page of their own in :func:`built_report`: the first three of :data:`RANKED`.
STATIC_PAGES = 3
PARTY_VOTES = {"pan": 31, "pri": 142, "pps": 7, "parm": 5, "pfcrn": 12, "pms": 18, "pdm": 2, "prt": 0}
VOTE_FIELDS = (*PARTY_VOTES, "unregistered", "null_votes", "total_votes")
FLAGS = [
    ("s002", ";".join(VOTE_FIELDS), "votes_add_up", "high", "needs_review",
     "PAN+PRI+... = 217 but total votes says 271; no alternative reading at least 1/5000 as likely",
     {"sum_of_parts": 217, "total_votes": 271, "difference": 54,
      "values": {**PARTY_VOTES, "unregistered": 0, "null_votes": 0, "total_votes": 271},
      "confidence": {f: 0.75 if f == "pri" else 0.98 for f in VOTE_FIELDS}, "fix": None,
      "read_right_probability": 0.6}),
    ("s002", "pri", "visible_alteration", "medium", "altered", "PRI (score 0.90) looks altered (threshold 0.50)",
     {"scores": {f: 0.9 if f == "pri" else 1.2e-05 for f in VOTE_FIELDS}, "threshold": 0.5,
      "values": {"pri": 149}}),
    (ODD_ID, "pan", "unreadable", "low", "needs_review", "PAN read as <31> with low confidence & no check.",
     {"confidence": {"pan": 0.41}, "candidates": {"pan": [[31, 0.41], [37, 0.3]]}}),
    ("s005", "", "page_not_read", "medium", "needs_review", "page was not read (status not_a_form)",
     {"status": "not_a_form"}),
    ("s001", "pan", "district_outlier", "low", "suspicious", "PAN share 0.40 vs district median 0.20 (robust z +4.1)",
     {"value": {"share_pan": 0.4}, "district_median": {"share_pan": 0.2}}),
]
@dataclass(frozen=True)
class Fixture:
    """Paths of one hand-built batch."""

    processed: Path
    rundir: Path
    truth: Path
    models: Path


def counts_for(i: int) -> dict[str, int]:
    """Plausible counts for sheet ``i`` (varied so the digit figures have something to show)."""
    votes = {p: v + 7 * i for p, v in PARTY_VOTES.items()}
    total = sum(votes.values()) + 3
    return {**votes, "unregistered": 0, "null_votes": 3, "total_votes": total, "ballots_received": 450,
            "ballots_left_over": 450 - total, "registered_voters": 480}


def draw_sheet(template, values: dict[str, int]) -> np.ndarray:
    """A blank form with ``values`` printed in the digit boxes (stand-in for a registered scan)."""
    img = render_blank(template, DPI)
    for f in template.fields:
        if f.name in values:
            for box, ch in zip(f.boxes[-len(str(values[f.name])):], str(values[f.name]), strict=True):
                x0, y0, x1, y1 = box.to_px(DPI)
                cv2.putText(img, ch, (x0 + 3, y1 - 5), cv2.FONT_HERSHEY_SIMPLEX, 0.6, 0, 2)
    return img


def write_rundir(rundir: Path, template, values: dict[str, dict[str, int]]) -> None:
    """pages.csv, registered/*.jpg, fields/<id>/<field>.png, fields.parquet, digits_read.parquet."""
    pages, fields, digits = [], [], []
    for sid, status, *_ in SHEETS:
        pages.append({"sheet_id": sid, "source": f"{sid}.png", "page": 1, "status": status if status == "not_a_form"
                      else "ok", "reason": "no fiducials found" if status == "not_a_form" else "",
                      "registration_score": 0.0 if status == "not_a_form" else 0.97})
        if sid not in values:
            continue
        img = draw_sheet(template, values[sid])
        (rundir / "registered").mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(rundir / "registered" / f"{sid}.jpg"), img)
        for f in template.fields:
            if not f.is_numeric:
                continue
            x0, y0, x1, y1 = f.bounds.to_px(DPI)
            (rundir / "fields" / sid).mkdir(parents=True, exist_ok=True)
            cv2.imwrite(str(rundir / "fields" / sid / f"{f.name}.png"), img[y0:y1, x0:x1])
            value = values[sid].get(f.name, 1)
            conf = 0.45 if (sid == ODD_ID and f.name == "pan") else 0.75 if f.name == "pri" else 0.98
            fields.append({"sheet_id": sid, "field": f.name, "text": str(value), "value": value, "confidence": conf,
                           "n_digits": len(str(value)), "min_digit_confidence": conf, "needs_review": conf < 0.5,
                           "alternatives": json.dumps([[value, conf], [value + 6, 1 - conf]])})
            for box, ch in enumerate(str(value).rjust(len(f.boxes))):
                digits.append({"sheet_id": sid, "field": f.name, "box": box, "slot": 0,
                               "label": -1 if ch == " " else int(ch), "prob": conf, "label2": 0, "prob2": 0.01,
                               "confidence": conf})
    pd.DataFrame(pages).to_csv(rundir / "pages.csv", index=False)
    fields_df = pd.DataFrame(fields).astype({"value": "Int64"})
    fields_df.to_parquet(rundir / "fields.parquet")
    digits_df = pd.DataFrame(digits)
    digits_df = digits_df[digits_df["label"] >= 0]
    digits_df.to_parquet(rundir / "digits_read.parquet")
    digits_df.assign(box_status="digit", digit_row=range(len(digits_df))).to_parquet(rundir / "crops.parquet")


def write_processed(processed: Path, rundir: Path, values: dict[str, dict[str, int]]) -> None:
    """sheets.parquet/csv, flags.parquet/csv, forensics.json, cantu.json."""
    processed.mkdir(parents=True, exist_ok=True)
    rows = []
    for i, (sid, status, suspicion, alteration) in enumerate(SHEETS):
        row = {"sheet_id": sid, "state": 9, "district": 12, "section": 1000 + i, "station": i + 1,
               "station_type": "B", "status": status, "alteration_score": alteration, "suspicion": suspicion,
               "n_flags": sum(f[0] == sid for f in FLAGS), "verdict": VERDICTS[sid],
               "evidence_dir": os.path.relpath(rundir / "fields" / sid, processed)}
        for name, v in values.get(sid, {}).items():
            row[name], row[f"{name}_conf"] = v, (0.75 if name == "pri" else 0.98)
        row.update({f"rep_{p}": int(p != "pan" or i % 2 == 0) for p in PARTY_VOTES})
        rows.append(row)
    sheets = pd.DataFrame(rows)
    sheets.to_parquet(processed / "sheets.parquet")
    sheets.to_csv(processed / "sheets.csv", index=False)
    flags = pd.DataFrame([{"sheet_id": s, "fields": f, "rule": r, "severity": sev, "verdict": v, "reason": why,
                           "evidence": json.dumps(ev)} for s, f, r, sev, v, why, ev in FLAGS])
    flags.to_parquet(processed / "flags.parquet")
    flags.to_csv(processed / "flags.csv", index=False)
    (processed / "forensics.json").write_text(json.dumps({
        "alpha": 0.05, "correction": "holm", "winner": "pri", "interpretation": "an irregularity, not proof",
        "tests": [
            {"scope": "batch", "test": "last_digit_uniform", "n": 60, "statistic": 8.2, "p_value": 0.51,
             "effect_size": 0.04, "effect": "Cramer's V", "observed": [6] * 10, "expected": [6.0] * 10,
             "skipped": None, "p_adjusted": 0.51, "alarm": False},
            {"scope": "batch", "test": "second_digit_2bl", "n": 60, "statistic": 31.0, "p_value": 0.0003,
             "effect_size": 0.2, "effect": "Cramer's V", "observed": [6] * 10, "expected": [6.0] * 10,
             "skipped": None, "p_adjusted": 0.0009, "alarm": True},
            {"scope": "district 9-12", "test": "klimek_turnout_winner", "n": 4, "skipped": "only 4 stations (< 25)"}],
        "klimek": {"winner": "pri", "bins": 2, "histogram": [[1, 0], [0, 3]]},
        "summary": {"n_tests": 2, "n_skipped": 1, "n_alarms": 1}}))
    group = {"n": 3, "altered": 0, "rate": 0.0, "ci": [0.0, 0.56]}
    (processed / "cantu.json").write_text(json.dumps({"level": 0.95, "ruling_party": "pri", "detected": {
        "present": group, "absent": {"n": 2, "altered": 1, "rate": 0.5, "ci": [0.09, 0.91]}, "n_unknown": 1,
        "difference": 0.5, "ci": [-0.1, 0.9], "fisher_p": 0.4, "method": "Wilson / Newcombe"},
        "true": {"present": group, "absent": {"n": 0, "altered": 0, "rate": None, "ci": [None, None]},
                 "difference": None, "ci": [None, None], "skipped": "needs sheets both with and without"}}))
    (processed / "truth_eval.json").write_text(json.dumps({
        "n_truth": 4, "n_read_ok": 4, "alteration": {"n_altered": 1, "recall": 1.0, "precision": 1.0, "roc_auc": 1.0},
        "arithmetic": {"clean": {"n": 3, "false_inconsistent_rate": 0.0}, "inconsistent_all": {"n": 1,
                                                                                              "flagged_rate": 1.0}},
        "reading": {"all_fields": 0.986, "sheets_all_correct": 0.75, "per_field": {"pan": 1.0, "pri": 0.75}}}))


def write_truth(folder: Path, values: dict[str, dict[str, int]]) -> Path:
    """truth.csv and boxes.csv for the sheets with values; one field is 'written' differently from the read."""
    folder.mkdir(parents=True, exist_ok=True)
    rows, boxes = [], []
    for sid, vals in values.items():
        written = {**vals, "pri": vals["pri"] + 1} if sid == "s002" else vals
        rows.append({"sheet_id": sid, "altered": sid == "s002", **vals,
                     **{f"{k}_written": v for k, v in written.items()}})
        for field, v in written.items():
            for box, ch in enumerate(str(v).rjust(3)):
                boxes.append({"sheet_id": sid, "field": field, "box": box, "digit": -1 if ch == " " else int(ch)})
    pd.DataFrame(rows).to_csv(folder / "truth.csv", index=False)
    pd.DataFrame(boxes).to_csv(folder / "boxes.csv", index=False)
    return folder / "truth.csv"


def write_models(models: Path) -> None:
    """Two model versions (v2 retrained from v1, current) and an alteration detector."""
    for version, parent, acc in (("v1", None, 0.981), ("v2", "v1", 0.987)):
        (models / version).mkdir(parents=True)
        (models / version / "metadata.json").write_text(json.dumps({
            "version": version, "created": f"2024-01-0{version[1]}T10:00:00", "parent": parent, "kind": "train",
            "data": {"sha256_train": "abc"}, "temperature": 1.3, "reject_threshold": 0.6,
            "history": {"loss": [0.9, 0.3, 0.2], "val_loss": [0.5, 0.3, 0.25], "accuracy": [0.8, 0.95, 0.97]},
            "metrics": {"test_accuracy": acc, "test_ece_after": 0.01}}))
    (models / "current").symlink_to("v2")
    layers = [{"class_name": "InputLayer", "config": {"name": "digit", "batch_shape": [None, 28, 28, 1]}},
              {"class_name": "Conv2D", "config": {"name": "conv0", "filters": 8, "kernel_size": [3, 3],
                                                  "strides": [1, 1], "padding": "same", "use_bias": False}},
              {"class_name": "MaxPooling2D", "config": {"name": "pool0", "pool_size": [2, 2], "strides": [2, 2],
                                                        "padding": "valid"}},
              {"class_name": "Flatten", "config": {"name": "flat"}},
              {"class_name": "Dense", "config": {"name": "logits", "units": 10}}]
    with zipfile.ZipFile(models / "v2" / "model.keras", "w") as archive:
        archive.writestr("config.json", json.dumps({"class_name": "Functional", "config": {"layers": layers}}))
    cv2.imwrite(str(models / "v2" / "calibration_curve.png"), np.full((60, 80), 200, np.uint8))
    (models / "alteration").mkdir()
    (models / "alteration" / "detector.json").write_text(json.dumps({"threshold": 0.5, "metrics": {
        "auc": 0.93, "fabricated_only_flagged_rate_on_the_heldout_evaluation_batch": 0.0}}))


@pytest.fixture(scope="session")
def batch(tmp_path_factory, template) -> Fixture:
    """A five-sheet audited batch with scans, reads, flags, truth and models."""
    root = tmp_path_factory.mktemp("batch")
    values = {sid: {**counts_for(i), "state": 9, "district": 12, "section": 1000 + i, "station": i + 1}
              for i, (sid, status, *_) in enumerate(SHEETS) if status != "not_a_form"}
    rundir, processed = root / "interim" / "b", root / "processed" / "b"
    rundir.mkdir(parents=True)
    write_rundir(rundir, template, values)
    write_processed(processed, rundir, values)
    truth = write_truth(root / "synthetic" / "b", values)
    write_models(root / "models")
    return Fixture(processed, rundir, truth, root / "models")


@pytest.fixture(scope="session")
def built_report(batch, tmp_path_factory) -> Path:
    """The report of :func:`batch`, built once with two rows per table page and per data chunk (so paging and
    chunk loading are exercised), and pages of their own for the first :data:`STATIC_PAGES` flagged sheets only
    (so s001, flagged, and s004, clean, are drawn by sheets/view.html from two-sheet data buckets); returns the
    report folder."""
    from pipeline.report import ReportSettings, build_report

    out = tmp_path_factory.mktemp("report")
    build_report(batch.processed, out, truth=batch.truth, models_dir=batch.models,
                 settings=ReportSettings(page_size=2, table_chunk_rows=2, static_pages=STATIC_PAGES,
                                         detail_chunk_rows=2))
    return out


def detail_records(report: Path) -> dict[str, dict]:
    """Every sheet record of a report's ``data/detail-NNN.js`` buckets, by slug."""
    records = {}
    for path in sorted((report / "data").glob("detail-*.js")):
        text = path.read_text(encoding="utf-8")
        records.update(json.loads(text[text.index(",") + 1:text.rindex(")")]))
    return records


def view_link(report: Path, slug: str) -> str:
    """The link of ``sheets.csv`` to a sheet drawn by the view page (relative to the index)."""
    sheets = pd.read_csv(report / "data" / "sheets.csv")
    return sheets.loc[sheets["sheet_id"] == slug, "page"].item()
