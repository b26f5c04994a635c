"""Hand-built run folders (pages.csv, fields.parquet, marks.csv, field images) for the audit tests."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest

from pipeline.audit.schema import acta_schema

#: The packaged acta's schema: the hand-built runs below are acta sheets (no template.yaml in the run folder).
ACTA = acta_schema()
COUNT_FIELDS, ID_FIELDS, PARTIES, VOTE_PARTS = ACTA.count_fields, ACTA.id_fields, ACTA.candidates, ACTA.vote_parts

FIELD_IMAGE_SHAPE = (102, 488)


def clean_values(**changes) -> dict:
    """A consistent sheet: votes add up, ballots balance, nothing above the registered voters."""
    v = {"state": 9, "district": 12, "section": 345, "station": 1,
         "pan": 40, "pri": 120, "pps": 15, "parm": 10, "pfcrn": 20, "pms": 5, "pdm": 3, "prt": 0,
         "unregistered": 1, "null_votes": 6, "registered_voters": 500, "ballots_received": 505}
    v["total_votes"] = sum(v[f] for f in VOTE_PARTS)
    v["ballots_left_over"] = v["ballots_received"] - v["total_votes"]
    v.update(changes)
    return v


def field_rows(sheet_id: str, values: dict, confidence: dict | None = None, alternatives: dict | None = None,
               texts: dict | None = None) -> list[dict]:
    """fields.parquet rows of one sheet: every numeric field read as ``values`` (None = unreadable)."""
    rows = []
    for f in ID_FIELDS + COUNT_FIELDS:
        value = values.get(f)
        conf = (confidence or {}).get(f, 0.999)
        alts = (alternatives or {}).get(f, [] if value is None else [[value, conf]])
        text = (texts or {}).get(f, "" if value is None else str(value))
        rows.append({"sheet_id": sheet_id, "field": f, "text": text,
                     "value": pd.NA if value is None else value, "confidence": conf, "n_digits": len(text),
                     "min_digit_confidence": conf, "needs_review": conf < 0.9, "alternatives": json.dumps(alts)})
    return rows


def mark_rows(sheet_id: str, reps: dict | None = None, station_type: str | None = "B") -> list[dict]:
    """marks.csv rows of one sheet: representative ticks (default PRI only) and the station type."""
    reps = reps if reps is not None else {"pri": 1}
    rows = [{"sheet_id": sheet_id, "field": f"rep_{p}", "option": "", "ink_ratio": 0.3 if reps.get(p) else 0.0,
             "ticked": bool(reps.get(p))} for p in PARTIES]
    rows += [{"sheet_id": sheet_id, "field": "station_type", "option": o, "ink_ratio": 0.3 if o == station_type
              else 0.0, "ticked": o == station_type} for o in ("B", "C", "E")]
    return rows


def field_image(rng: np.random.Generator, altered: bool = False) -> np.ndarray:
    """A toy grey count-field image: three printed boxes and handwritten-looking strokes; ``altered`` adds a
    crossed-out number, a correction-fluid patch and a replacement written beside the boxes."""
    h, w = FIELD_IMAGE_SHAPE
    img = np.clip(rng.normal(225, 3, (h, w)), 0, 255).astype(np.uint8)
    for i in range(3):
        x0 = 16 + i * 67
        cv2.rectangle(img, (x0, 16), (x0 + 55, 86), 20, 2)
        cx = x0 + 27 + int(rng.integers(-4, 5))
        cv2.ellipse(img, (cx, 51), (10 + int(rng.integers(0, 6)), 22), 0, 0, 360, 40, 3)
    if altered:
        cv2.line(img, (10, 50 + int(rng.integers(-5, 6))), (210, 45 + int(rng.integers(-5, 6))), 30, 4)
        x = int(rng.integers(20, 140))
        cv2.rectangle(img, (x, 20), (x + 50, 80), 250, -1)
        bx = 260 + int(rng.integers(0, 100))
        cv2.ellipse(img, (bx, 51), (12, 22), 0, 0, 360, 40, 3)
    return img


def write_run(rundir: Path, sheets: dict[str, dict], statuses: dict[str, str] | None = None,
              images: dict[str, bool] | None = None, seed: int = 0) -> Path:
    """Write a run folder. ``sheets[sid]`` holds ``values`` and optional ``confidence``, ``alternatives``,
    ``texts``, ``reps``, ``station_type``; ``images[sid]`` (altered or not) adds its count field images."""
    rundir.mkdir(parents=True, exist_ok=True)
    statuses = statuses or {}
    pages = [{"sheet_id": sid, "source": f"{sid}.png", "page": 1, "status": statuses.get(sid, "ok"),
              "reason": "" if statuses.get(sid, "ok") == "ok" else "no fiducials found", "registration_score": 0.9,
              "rotation_fixed_deg": 0.0, "flipped": False} for sid in sheets]
    pd.DataFrame(pages).to_csv(rundir / "pages.csv", index=False)
    fields, marks = [], []
    for sid, spec in sheets.items():
        if statuses.get(sid, "ok") != "ok" or spec.get("values") is None:
            continue
        fields += field_rows(sid, spec["values"], spec.get("confidence"), spec.get("alternatives"),
                             spec.get("texts"))
        marks += mark_rows(sid, spec.get("reps"), spec.get("station_type", "B"))
    columns = ["sheet_id", "field", "text", "value", "confidence", "n_digits", "min_digit_confidence",
               "needs_review", "alternatives"]
    df = pd.DataFrame(fields, columns=columns)
    df["value"] = df["value"].astype("Int64")
    df.to_parquet(rundir / "fields.parquet", index=False)
    pd.DataFrame(marks, columns=["sheet_id", "field", "option", "ink_ratio", "ticked"]).to_csv(
        rundir / "marks.csv", index=False)
    rng = np.random.default_rng(seed)
    for sid, altered in (images or {}).items():
        folder = rundir / "fields" / sid
        folder.mkdir(parents=True, exist_ok=True)
        for i, f in enumerate(COUNT_FIELDS):
            cv2.imwrite(str(folder / f"{f}.png"), field_image(rng, altered and i == 1))
    return rundir


@pytest.fixture
def run_factory(tmp_path):
    """``make(sheets, **kw)`` writes a run folder under tmp_path and returns it."""
    counter = iter(range(1000))

    def make(sheets, **kw):
        return write_run(tmp_path / f"run{next(counter)}", sheets, **kw)
    return make
