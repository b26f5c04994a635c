"""``python -m pipeline review RUNDIR --out labels.csv``: a labelling sheet of the least confident reads.

Writes one PNG per crop (the 28x28 MNIST-normalised image the model saw) into ``<csv stem>_crops/`` next to the
CSV, and a CSV sorted by calibrated confidence, lowest first, with the crop keys, the image path (relative to
the CSV), the model's label and confidence, and a ``label`` column pre-filled with the model's label: the user
corrects the wrong ones, blanks out crops that are not a single digit, and runs ``retrain``.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
from tqdm import tqdm

from pipeline.atomic import write_atomic
from pipeline.engine.stream import spreadsheet_safe
from pipeline.errors import InputFileError
from pipeline.model.recognise import DIGITS_READ_FILE, load_digits
from pipeline.model.settings import ReviewSettings

log = logging.getLogger(__name__)

KEY_COLUMNS = ("sheet_id", "field", "box", "slot", "digit_row")
#: Columns of the labelling sheet that ``retrain`` reads back.
READ_BACK = ("image", "label")
SHEET_COLUMNS = (*KEY_COLUMNS, "image", "predicted", "predicted2", "confidence", "label")
#: Characters allowed in a PNG file name; anything else in a sheet id becomes ``_``.
SAFE_NAME = re.compile(r"[^A-Za-z0-9._-]+")


def crop_file_name(row) -> str:
    """A file name unique per crop: sheet, field, box, slot (sheet ids are sanitised)."""
    sheet = SAFE_NAME.sub("_", str(row.sheet_id))
    return f"{sheet}__{row.field}__{row.box}__{row.slot}__{row.digit_row}.png"


def least_confident(digits_read: pd.DataFrame, limit: int) -> pd.DataFrame:
    """The ``limit`` crops with an image and the lowest calibrated confidence, lowest first."""
    with_image = digits_read[digits_read["digit_row"] >= 0]
    return with_image.sort_values("confidence", kind="stable").head(limit).reset_index(drop=True)


def load_digits_read(rundir: Path) -> pd.DataFrame:
    """``digits_read.parquet`` of a run folder; tells the user to run ``recognise`` when it is missing."""
    path = rundir / DIGITS_READ_FILE
    if not path.is_file():
        raise InputFileError(f"{path}: missing; run `python -m pipeline recognise {rundir}` first")
    return pd.read_parquet(path)


def write_crops(rows: pd.DataFrame, digits: np.ndarray, crops_dir: Path) -> list[str]:
    """Write each row's 28x28 digit, exactly as the model saw it, as a PNG; returns the file names."""
    crops_dir.mkdir(parents=True, exist_ok=True)
    names = []
    for row in tqdm(rows.itertuples(index=False), total=len(rows), desc="review crops", unit="crop"):
        name = crop_file_name(row)
        if not cv2.imwrite(str(crops_dir / name), np.asarray(digits[row.digit_row])):
            raise InputFileError(f"{crops_dir / name}: cannot write PNG")
        names.append(name)
    return names


def export_review(rundir: Path, out_csv: Path, settings: ReviewSettings) -> tuple[Path, int]:
    """Write the labelling sheet and its crop images; returns the CSV path and the number of rows."""
    digits_read = load_digits_read(rundir)
    digits = load_digits(rundir, digits_read)
    rows = least_confident(digits_read, settings.limit)
    crops_dir = out_csv.parent / f"{out_csv.stem}{settings.crops_dir_suffix}"
    names = write_crops(rows, digits, crops_dir)
    sheet = rows[list(KEY_COLUMNS)].assign(
        image=[f"{crops_dir.name}/{n}" for n in names], predicted=rows["label"], predicted2=rows["label2"],
        confidence=rows["confidence"].round(4), label=rows["label"])
    sheet["run"] = str(rundir)
    # opened in a spreadsheet to be corrected: cells it would execute are neutralised, except the two columns
    # `retrain` reads back (image paths are written by us, labels are digits)
    people = [c for c in sheet.columns if c not in READ_BACK]
    sheet[people] = spreadsheet_safe(sheet[people])
    out_csv.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(out_csv, lambda tmp: sheet.to_csv(tmp, index=False))
    log.info("labelling sheet %s: %d crops, confidence %.3f-%.3f", out_csv, len(sheet),
             sheet["confidence"].min() if len(sheet) else float("nan"),
             sheet["confidence"].max() if len(sheet) else float("nan"))
    return out_csv, len(sheet)


def write_labelled_sheet(images: np.ndarray, labels: np.ndarray, out_csv: Path, suffix: str = "_crops") -> Path:
    """A labelling sheet for digits whose labels are already known (demos, tests): PNGs + ``image,label`` CSV."""
    crops_dir = out_csv.parent / f"{out_csv.stem}{suffix}"
    crops_dir.mkdir(parents=True, exist_ok=True)
    names = [f"digit_{i:06d}.png" for i in range(len(images))]
    for name, image in zip(names, images, strict=True):
        cv2.imwrite(str(crops_dir / name), image)
    pd.DataFrame({"image": [f"{crops_dir.name}/{n}" for n in names], "label": labels}).to_csv(out_csv, index=False)
    return out_csv
