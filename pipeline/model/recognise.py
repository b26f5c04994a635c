"""``python -m pipeline recognise RUNDIR``: read every crop of a run folder in one batched pass.

Reads ``crops.parquet`` + ``digits.npy`` (docs/DATA.md section 2) and writes ``digits_read.parquet`` (every crop
row with its top-2 reads and calibrated confidence) and ``fields.parquet`` (one number per sheet x field, see
:mod:`pipeline.model.fields`) into the same folder, atomically.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from pipeline.atomic import write_atomic
from pipeline.errors import InputFileError
from pipeline.forms import load_template
from pipeline.model.fields import build_fields
from pipeline.model.recogniser import DIGIT_SHAPE, DigitRecogniser, Predictions
from pipeline.model.settings import RecogniseSettings

log = logging.getLogger(__name__)

CROPS_FILE = "crops.parquet"
DIGITS_FILE = "digits.npy"
DIGITS_READ_FILE = "digits_read.parquet"
FIELDS_FILE = "fields.parquet"
CROP_COLUMNS = ("sheet_id", "field", "box", "slot", "box_status", "digit_row")
PREDICTION_COLUMNS = ("label", "prob", "label2", "prob2", "confidence", "confidence2")


@dataclass(frozen=True)
class RecogniseSummary:
    """What one ``recognise`` run did, for the console."""

    rundir: Path
    n_digits: int
    n_sheets: int
    n_fields: int
    n_review: int
    seconds: float
    model_version: str | None

    def __str__(self) -> str:
        rate = self.n_digits / self.seconds if self.seconds else float("nan")
        return (f"read {self.n_digits} digits of {self.n_sheets} sheets in {self.seconds:.1f} s ({rate:.0f} digits/s) "
                f"with model {self.model_version}; {self.n_fields} fields, {self.n_review} need review; wrote "
                f"{self.rundir / DIGITS_READ_FILE} and {self.rundir / FIELDS_FILE}")


def load_crops(rundir: Path) -> pd.DataFrame:
    """``crops.parquet`` with its required columns checked."""
    path = rundir / CROPS_FILE
    if not path.is_file():
        raise InputFileError(f"{path}: missing; run `python -m pipeline read SCANS --out {rundir}` first")
    try:
        crops = pd.read_parquet(path)
    except Exception as exc:  # pyarrow raises several types for a corrupt file
        raise InputFileError(f"{path}: not a readable parquet file ({exc})") from exc
    missing = [c for c in CROP_COLUMNS if c not in crops.columns]
    if missing:
        raise InputFileError(f"{path}: missing column(s) {', '.join(missing)}")
    return crops


def load_digits(rundir: Path, crops: pd.DataFrame) -> np.ndarray:
    """``digits.npy`` (no pickles), checked against the crops' ``digit_row`` values."""
    path = rundir / DIGITS_FILE
    try:
        digits = np.load(path, allow_pickle=False, mmap_mode="r")
    except (OSError, ValueError) as exc:
        raise InputFileError(f"{path}: cannot read digit images ({exc})") from exc
    if digits.ndim != 3 or digits.shape[1:] != DIGIT_SHAPE or digits.dtype != np.uint8:
        raise InputFileError(f"{path}: expected uint8 (N, 28, 28), got {digits.dtype} {digits.shape}")
    top = int(crops["digit_row"].max()) if len(crops) else -1
    if top >= len(digits):
        raise InputFileError(f"{path}: has {len(digits)} digits but {CROPS_FILE} refers to row {top}")
    return digits


def predict_rows(recogniser: DigitRecogniser, digits: np.ndarray, rows: np.ndarray, batch_size: int) -> pd.DataFrame:
    """Predictions for each value of ``rows`` (-1 = no image gives NA), reading each distinct image once."""
    wanted = np.unique(rows[rows >= 0])
    preds: Predictions = recogniser.predict(np.asarray(digits[wanted]), batch_size)
    # One spare slot at the end: digit_row -1 (no image) indexes it and finds -1, "no prediction".
    position = np.full(len(digits) + 1, -1)
    position[wanted] = np.arange(len(wanted))
    where = position[rows]
    have = where >= 0
    table = {}
    for name in PREDICTION_COLUMNS:
        values = getattr(preds, name)
        column = np.full(len(rows), np.nan)
        column[have] = values[where[have]]
        table[name] = column
    out = pd.DataFrame(table)
    return out.astype({"label": "Int64", "label2": "Int64"})


def write_parquet_atomic(table: pd.DataFrame, path: Path) -> None:
    """Write ``table`` via a temporary file and a rename, so readers never see half a file."""
    write_atomic(path, lambda tmp: table.to_parquet(tmp, index=False))


def recognise_frames(crops: pd.DataFrame, digits: np.ndarray, recogniser: DigitRecogniser,
                     settings: RecogniseSettings, field_names: list[str]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """``(digits_read, fields)`` tables for the crops of a run (no file I/O)."""
    rows = crops["digit_row"].to_numpy(dtype=np.int64)
    preds = predict_rows(recogniser, digits, rows, settings.batch_size)
    digits_read = pd.concat([crops.reset_index(drop=True), preds], axis=1)
    threshold = recogniser.reject_threshold if settings.review_below is None else settings.review_below
    digits_read["needs_review"] = (digits_read["confidence"].fillna(1.0) < threshold).astype(bool)
    digits_read["model_version"] = recogniser.version or ""
    fields = build_fields(digits_read, field_names, threshold, settings.n_alternatives)
    return digits_read, fields


def recognise_run(rundir: Path, model_path: Path | None, settings: RecogniseSettings) -> RecogniseSummary:
    """Read every crop of ``rundir`` with the model at ``model_path`` and write both tables."""
    crops = load_crops(rundir)
    digits = load_digits(rundir, crops)
    recogniser = DigitRecogniser.load(model_path)
    names = [f.name for f in load_template().fields if f.is_numeric]
    start = time.perf_counter()
    digits_read, fields = recognise_frames(crops, digits, recogniser, settings, names)
    seconds = time.perf_counter() - start
    write_parquet_atomic(digits_read, rundir / DIGITS_READ_FILE)
    write_parquet_atomic(fields, rundir / FIELDS_FILE)
    n_digits = int((crops["digit_row"] >= 0).sum())
    return RecogniseSummary(rundir, n_digits, int(crops["sheet_id"].nunique()), len(fields),
                            int(fields["needs_review"].sum()), seconds, recogniser.version)
