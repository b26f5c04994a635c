"""``python -m pipeline recognise RUNDIR``: read every crop of a run folder in one batched pass.

Reads ``crops.parquet`` + ``digits.npy`` (docs/DATA.md section 2) and writes ``digits_read.parquet`` (every crop
row with its top-2 reads and calibrated confidence) and ``fields.parquet`` (one number per sheet x field, see
:mod:`pipeline.model.fields`) into the same folder, atomically. The fields are those of the template the run was
read with (``template.yaml`` in the run folder, recorded by the reader; the packaged acta when there is none:
:func:`pipeline.forms.template.run_template`). A run read with several templates (``templates/<name>.yaml``) gets
each page's fields from its own template (``page_type`` in ``pages.csv``: :mod:`pipeline.forms.runs`); a page of
such a run that ``pages.csv`` does not name a template for is refused. It streams: a chunk of whole sheets at a time is
read from ``crops.parquet``, its images from ``digits.npy`` (only that chunk's rows, with plain file reads: see
:class:`DigitFile`), and its rows appended to both tables, so memory stays flat however large the batch.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
from tqdm import tqdm

from pipeline.engine.lock import folder_lock
from pipeline.engine.settings import EngineSettings
from pipeline.engine.stream import (
    ParquetSink,
    check_parquet_columns,
    empty_frame,
    parquet_sheet_chunks,
    read_npy_rows,
)
from pipeline.errors import InputFileError
from pipeline.forms.runs import page_templates, run_templates
from pipeline.model.fields import LABEL_PROB_COLUMNS, build_fields, review_unwritten
from pipeline.model.recogniser import DIGIT_SHAPE, DigitRecogniser, Predictions
from pipeline.model.settings import RecogniseSettings
from pipeline.progress import SettledBar

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


def crops_path(rundir: Path) -> Path:
    """``crops.parquet`` of ``rundir``, with its required columns checked (the rows themselves are not loaded)."""
    return check_parquet_columns(rundir / CROPS_FILE, CROP_COLUMNS,
                                 f"run `python -m pipeline read SCANS --out {rundir}` first")


def open_digits(rundir: Path) -> np.ndarray:
    """``digits.npy`` memory-mapped (no pickles; images are read only when indexed), its shape and type checked."""
    path = rundir / DIGITS_FILE
    try:
        digits = np.load(path, allow_pickle=False, mmap_mode="r")
    except (OSError, ValueError) as exc:
        raise InputFileError(f"{path}: cannot read digit images ({exc})") from exc
    if digits.ndim != 3 or digits.shape[1:] != DIGIT_SHAPE or digits.dtype != np.uint8:
        raise InputFileError(f"{path}: expected uint8 (N, 28, 28), got {digits.dtype} {digits.shape}")
    return digits


@dataclass(frozen=True)
class DigitFile:
    """``digits.npy`` read on demand: indexing with ascending row numbers reads just those rows from the file.

    It stands for the array in :func:`predict_rows` (which asks for each distinct image once, in order): the
    stage holds a chunk's images as one plain array, and no mapping of the whole file whose resident pages would
    depend on how the kernel keeps them.
    """

    path: Path
    n_rows: int

    def __len__(self) -> int:
        return self.n_rows

    def __getitem__(self, rows: np.ndarray) -> np.ndarray:
        return read_npy_rows(self.path, rows)


def check_digit_rows(rundir: Path, digits: np.ndarray | DigitFile, crops: pd.DataFrame) -> None:
    """Refuse crops whose ``digit_row`` points past the end of ``digits.npy``."""
    top = int(crops["digit_row"].max()) if len(crops) else -1
    if top >= len(digits):
        raise InputFileError(f"{rundir / DIGITS_FILE}: has {len(digits)} digits but {CROPS_FILE} refers to row {top}")


def load_digits(rundir: Path, crops: pd.DataFrame) -> np.ndarray:
    """:func:`open_digits`, checked against the ``digit_row`` values of ``crops``."""
    digits = open_digits(rundir)
    check_digit_rows(rundir, digits, crops)
    return digits


#: Digits read between two updates of the progress bar (a few Keras batches: the bar moves without slowing reads).
PROGRESS_STEP = 8192
def concat_predictions(parts: list[Predictions]) -> Predictions:
    """One :class:`Predictions` from the reads of consecutive slices."""
    if len(parts) == 1:
        return parts[0]
    names = Predictions.__dataclass_fields__
    return Predictions(**{name: np.concatenate([getattr(p, name) for p in parts]) for name in names})


def predict_rows(recogniser: DigitRecogniser, digits: np.ndarray | DigitFile, rows: np.ndarray,
                 batch_size: int, progress: tqdm | None = None) -> pd.DataFrame:
    """Predictions for each value of ``rows`` (-1 = no image gives NA), reading each distinct image once, in slices
    of :data:`PROGRESS_STEP` that advance ``progress`` (a bar over digits) when given."""
    wanted = np.unique(rows[rows >= 0])
    parts = []
    for start in range(0, max(len(wanted), 1), PROGRESS_STEP):
        part = wanted[start:start + PROGRESS_STEP]
        parts.append(recogniser.predict(np.asarray(digits[part]), batch_size))
        if progress is not None:
            progress.update(len(part))
    preds: Predictions = concat_predictions(parts)
    # Position of each row's image among ``wanted`` (sorted); rows without an image (-1) get no prediction.
    have = rows >= 0
    where = np.searchsorted(wanted, rows)
    columns = {name: getattr(preds, name) for name in PREDICTION_COLUMNS}
    columns |= {name: preds.probs[:, label] for label, name in enumerate(LABEL_PROB_COLUMNS)}
    table = {}
    for name, values in columns.items():
        column = np.full(len(rows), np.nan)
        column[have] = values[where[have]]
        table[name] = column
    out = pd.DataFrame(table)
    return out.astype({"label": "Int64", "label2": "Int64"})


#: The field names of a run: one list for every sheet, or each sheet's own list by ``sheet_id`` (several templates).
FieldNames = Sequence[str] | Mapping[str, Sequence[str]]


def sheet_field_names(types: Mapping[str, str], names: Mapping[str, Sequence[str]]) -> dict[str, list[str]]:
    """Each sheet's numeric field names (``names`` by template) from its template's name (``types`` by sheet)."""
    return {sheet: list(names[name]) for sheet, name in types.items()}


def build_sheet_fields(digits_read: pd.DataFrame, names: Mapping[str, Sequence[str]], threshold: float,
                       n_alternatives: int, field_threshold: float | None = None) -> pd.DataFrame:
    """:func:`build_fields` for sheets whose templates differ: each sheet's rows with its own field names
    (``names`` by ``sheet_id``), sheets in the order of ``digits_read``.

    Raises:
        InputFileError: a sheet of ``digits_read`` has no field names (``pages.csv`` names no template for it).
    """
    sheets = pd.unique(digits_read["sheet_id"])
    missing = [s for s in sheets if s not in names]
    if missing:
        raise InputFileError(f"{CROPS_FILE}: sheet(s) {', '.join(map(repr, missing[:5]))} have crops but no template "
                             "in pages.csv (page_type); read the scans again")
    groups: dict[tuple[str, ...], list[str]] = {}
    for sheet in sheets:
        groups.setdefault(tuple(names[sheet]), []).append(sheet)
    order = {sheet: i for i, sheet in enumerate(sheets)}
    tables = [build_fields(digits_read[digits_read["sheet_id"].isin(group)], list(field_names), threshold,
                           n_alternatives, field_threshold) for field_names, group in groups.items()]
    table = pd.concat(tables, ignore_index=True) if len(tables) > 1 else tables[0]
    if len(tables) == 1:
        return table
    rank = table["sheet_id"].map(order)
    return table.iloc[np.argsort(rank.to_numpy(), kind="stable")].reset_index(drop=True)


def recognise_frames(crops: pd.DataFrame, digits: np.ndarray | DigitFile, recogniser: DigitRecogniser,
                     settings: RecogniseSettings, field_names: FieldNames,
                     progress: tqdm | None = None, required: FieldNames = ()) -> tuple[pd.DataFrame, pd.DataFrame]:
    """``(digits_read, fields)`` tables for the crops of a run (no file I/O); ``progress`` advances per digit.

    ``field_names``: the numeric fields of the run's template, or each sheet's own (by ``sheet_id``) in a run of
    several templates (:func:`build_sheet_fields`); ``required``: those of them that are always written (the
    ids), in the same shape: read blank, they go to review (:func:`pipeline.model.fields.review_unwritten`)."""
    rows = crops["digit_row"].to_numpy(dtype=np.int64)
    preds = predict_rows(recogniser, digits, rows, settings.batch_size, progress)
    digits_read = pd.concat([crops.reset_index(drop=True), preds], axis=1)
    threshold = recogniser.reject_threshold if settings.review_below is None else settings.review_below
    digits_read["needs_review"] = (digits_read["confidence"].fillna(1.0) < threshold).astype(bool)
    digits_read["model_version"] = recogniser.version or ""
    if isinstance(field_names, Mapping):
        fields = build_sheet_fields(digits_read, field_names, threshold, settings.n_alternatives,
                                    field_threshold(settings, threshold))
    else:
        fields = build_fields(digits_read, list(field_names), threshold, settings.n_alternatives,
                              field_threshold(settings, threshold))
    return digits_read, review_unwritten(fields, required)


def field_threshold(settings: RecogniseSettings, digit_threshold: float) -> float:
    """The lowest joint probability a field may have without review: ``min_field_confidence``, or the digit
    threshold when it is not set."""
    return digit_threshold if settings.min_field_confidence is None else settings.min_field_confidence


def crop_rows(path: Path) -> int | None:
    """Rows of ``crops.parquet`` (from its footer, nothing read), the progress bar's total; ``None`` if unknown."""
    try:
        return pq.ParquetFile(path).metadata.num_rows
    except (OSError, ValueError, pq.lib.ArrowException):
        return None


def crop_chunks(path: Path, max_sheets: int) -> Iterator[pd.DataFrame]:
    """``crops.parquet`` in chunks of whole sheets; an empty table gives one empty chunk (so both outputs exist)."""
    chunks = parquet_sheet_chunks(path, max_sheets)
    first = next(chunks, None)
    if first is None:
        yield empty_frame(path)
        return
    yield first
    yield from chunks


def run_field_names(rundir: Path, always_written: bool = False) -> FieldNames:
    """The numeric field names of the template ``rundir`` was read with (``always_written``: only those never left
    blank, :attr:`pipeline.forms.template.Field.always_written`); for a run of several templates, each read page's
    own by ``sheet_id`` (:func:`pipeline.forms.runs.page_templates`)."""
    templates = run_templates(rundir)
    names = {name: [f.name for f in t.fields if f.is_numeric and (f.always_written or not always_written)]
             for name, t in templates.items()}
    if len(names) == 1:
        return next(iter(names.values()))
    return sheet_field_names(page_templates(rundir), names)


def recognise_run(rundir: Path, model_path: Path | None, settings: RecogniseSettings,
                  stream_sheets: int | None = None) -> RecogniseSummary:
    """Read every crop of ``rundir`` with the model at ``model_path`` and write both tables.

    The crops are read ``stream_sheets`` sheets at a time (default: the engine's) and each chunk's rows are
    appended to both tables, so memory does not grow with the batch; the tables are renamed into place at the end.

    Raises:
        OutputError: another run is writing ``rundir``, or it cannot be written.
    """
    with folder_lock(Path(rundir)):
        return _recognise_run(Path(rundir), model_path, settings, stream_sheets)


def _recognise_run(rundir: Path, model_path: Path | None, settings: RecogniseSettings,
                   stream_sheets: int | None) -> RecogniseSummary:
    """:func:`recognise_run`, with the lock of ``rundir`` held."""
    path = crops_path(rundir)
    digits = DigitFile(rundir / DIGITS_FILE, len(open_digits(rundir)))  # a bad file is refused before the model
    recogniser = DigitRecogniser.load(model_path, settings.tta_below)
    names = run_field_names(rundir)  # the template(s) the run was read with
    required = run_field_names(rundir, always_written=True)
    sinks = ParquetSink(rundir / DIGITS_READ_FILE), ParquetSink(rundir / FIELDS_FILE)
    n_digits = n_sheets = n_fields = n_review = 0
    seconds = 0.0
    bar = SettledBar(total=crop_rows(path), desc="recognise", unit="digit", unit_scale=True, mininterval=1.0,
                     disable=None)  # disable=None: shown on a terminal only
    try:
        for crops in crop_chunks(path, stream_sheets or EngineSettings().stream_sheets):
            check_digit_rows(rundir, digits, crops)
            start = time.perf_counter()
            digits_read, fields = recognise_frames(crops, digits, recogniser, settings, names, bar, required)
            bar.update(len(crops) - int(np.unique(crops["digit_row"][crops["digit_row"] >= 0]).size))
            seconds += time.perf_counter() - start
            for sink, table in zip(sinks, (digits_read, fields), strict=True):
                sink.write(table)
            n_digits += int((crops["digit_row"] >= 0).sum())
            n_sheets += int(crops["sheet_id"].nunique())
            n_fields += len(fields)
            n_review += int(fields["needs_review"].sum())
        for sink in sinks:
            sink.commit()
    except BaseException:
        for sink in sinks:
            sink.discard()
        raise
    finally:
        bar.close()
    return RecogniseSummary(rundir, n_digits, n_sheets, n_fields, n_review, seconds, recogniser.version)
