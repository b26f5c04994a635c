"""Streaming a batch-wide stage a few sheets at a time, so its memory stays flat as the batch grows.

The run folder's per-row tables (``crops.parquet``, ``fields.parquet``) hold the rows of one sheet next to each
other (the reader and the recogniser write them sheet by sheet). :func:`parquet_sheet_chunks` reads such a table
in record batches and regroups them into chunks of whole sheets; :class:`ParquetSink` appends each chunk's result
to a temporary Parquet file that :meth:`ParquetSink.commit` renames into place, so a reader never sees half a
table and the result is the same as one written in one go.
"""

from __future__ import annotations

import csv
from collections.abc import Iterable, Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from pipeline.atomic import temp_path
from pipeline.errors import InputFileError

SHEET_COLUMN = "sheet_id"
#: Smallest row group :class:`ParquetSink` writes, in bytes of Arrow memory (few row groups, a small buffer).
ROW_GROUP_BYTES = 4 * 2**20
#: What a missing run-folder table asks of the user, unless the caller knows the exact command.
EARLIER_STAGE = "run the earlier stage first (see docs/DATA.md)"
#: First characters that make a spreadsheet read a text cell as a formula (OWASP, "CSV Injection").
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
#: What goes before such a cell so that a spreadsheet shows it as text (OWASP's advice).
FORMULA_ESCAPE = "'"
#: Quoting of CSV files for people: every text cell quoted (OWASP's advice, and pandas would leave a carriage
#: return in a cell unquoted, which splits the row).
PEOPLE_QUOTING = csv.QUOTE_NONNUMERIC


def require_file(path: Path, missing_hint: str = EARLIER_STAGE) -> None:
    """Raise :class:`InputFileError` (ending with ``missing_hint``) when the run-folder table ``path`` is missing."""
    if not path.is_file():
        raise InputFileError(f"{path}: not found; {missing_hint}")


def unreadable_table(path: Path, exc: Exception) -> InputFileError:
    """The error for a table at ``path`` that its parser refused with ``exc``."""
    return InputFileError(f"{path}: cannot read table ({exc})")


def require_columns(path: Path, names: Iterable[str], needed: Iterable[str]) -> None:
    """Raise :class:`InputFileError` naming the ``needed`` columns missing from the table ``path`` (``names``)."""
    names = set(names)
    missing = [c for c in needed if c not in names]
    if missing:
        raise InputFileError(f"{path}: missing column(s) {', '.join(missing)} (see docs/DATA.md)")


def check_parquet_columns(path: Path, needed: Iterable[str], missing_hint: str = EARLIER_STAGE) -> Path:
    """``path``, after checking it is a readable Parquet table with the ``needed`` columns (no row is read).

    Raises:
        InputFileError: the file is missing (the message ends with ``missing_hint``), unreadable, or lacks columns.
    """
    require_file(path, missing_hint)
    try:
        names = pq.read_schema(path).names
    except Exception as exc:  # pyarrow raises many types for a corrupt file
        raise unreadable_table(path, exc) from exc
    require_columns(path, names, needed)
    return path


def sheet_chunks(frames: Iterable[pd.DataFrame], max_sheets: int, source: str = "table") -> Iterator[pd.DataFrame]:
    """Regroup consecutive row blocks into chunks of at most ``max_sheets`` whole sheets, in row order.

    A sheet's rows may span several blocks; they are carried over until the sheet ends.

    Raises:
        InputFileError: a sheet's rows are not contiguous (the sheet shows up again after other sheets).
    """
    if max_sheets < 1:
        raise ValueError(f"max_sheets must be >= 1, got {max_sheets}")
    seen: set[str] = set()
    pending: list[pd.DataFrame] = []
    for frame in frames:
        if len(frame):
            pending.append(frame)
        if not pending:
            continue
        held = pd.concat(pending, ignore_index=True) if len(pending) > 1 else pending[0].reset_index(drop=True)
        starts = _sheet_starts(held)
        # Every sheet but the last may be complete; the last one may continue in the next block.
        while len(starts) > max_sheets:
            cut = starts[max_sheets]
            yield _checked(held.iloc[:cut].reset_index(drop=True), seen, source)
            held = held.iloc[cut:].reset_index(drop=True)
            starts = _sheet_starts(held)
        pending = [held]
    if pending and len(pending[0]):
        yield _checked(pending[0], seen, source)


def _sheet_starts(frame: pd.DataFrame) -> list[int]:
    """Row positions where a new sheet begins (the first row always does)."""
    ids = frame[SHEET_COLUMN].to_numpy()
    return [0, *(np.flatnonzero(ids[1:] != ids[:-1]) + 1).tolist()]


def _checked(chunk: pd.DataFrame, seen: set[str], source: str) -> pd.DataFrame:
    """``chunk``, after checking none of its sheets was in an earlier chunk (then records them as seen)."""
    ids = set(chunk[SHEET_COLUMN].astype(str).unique())
    again = ids & seen
    if again:
        raise InputFileError(f"{source}: the rows of sheet '{sorted(again)[0]}' are not contiguous; tables of a run "
                             "folder list each sheet's rows together (docs/DATA.md)")
    seen |= ids
    return chunk


def parquet_sheet_chunks(path: Path, max_sheets: int, columns: list[str] | None = None) -> Iterator[pd.DataFrame]:
    """The rows of the Parquet table at ``path`` (only ``columns`` if given) in chunks of whole sheets."""
    parquet = pq.ParquetFile(path)
    batches = (batch.to_pandas() for batch in parquet.iter_batches(columns=columns))
    yield from sheet_chunks(batches, max_sheets, str(path))


def empty_frame(path: Path, columns: list[str] | None = None) -> pd.DataFrame:
    """A zero-row frame with the columns and types of the Parquet table at ``path``."""
    schema = pq.read_schema(path)
    table = schema.empty_table()
    return table.select(columns).to_pandas() if columns else table.to_pandas()


class ParquetSink:
    """Appends data frames with one schema to a hidden temporary file; :meth:`commit` renames it onto ``path``.

    Frames are gathered into row groups of at least ``row_group_bytes`` (in memory): a writer keeps every row
    group's metadata until the file is closed, so one row group per small chunk would grow with the batch.
    """

    def __init__(self, path: Path, row_group_bytes: int = ROW_GROUP_BYTES) -> None:
        self.path = Path(path)
        self.tmp = temp_path(self.path)
        self.row_group_bytes = row_group_bytes
        self.writer: pq.ParquetWriter | None = None
        self.pending: list[pa.Table] = []

    def write(self, frame: pd.DataFrame) -> None:
        """Append ``frame`` (the first frame fixes the schema; later ones are cast to it)."""
        table = pa.Table.from_pandas(frame, preserve_index=False)
        if self.writer is None:
            self.writer = pq.ParquetWriter(self.tmp, table.schema)
        self.pending.append(table.cast(self.writer.schema))
        if sum(t.nbytes for t in self.pending) >= self.row_group_bytes:
            self._flush()

    def _flush(self) -> None:
        if self.pending:
            self.writer.write_table(pa.concat_tables(self.pending))
            self.pending = []

    def commit(self) -> Path:
        """Write what is pending, close the file and rename it into place; returns ``path``."""
        if self.writer is None:
            raise ValueError(f"{self.path}: nothing was written")
        self._flush()
        self.writer.close()
        self.tmp.replace(self.path)
        return self.path

    def discard(self) -> None:
        """Drop the temporary file (after a failure)."""
        if self.writer is not None:
            self.writer.close()
        self.pending = []
        self.tmp.unlink(missing_ok=True)


def neutralise_cell(value: object) -> object:
    """``value``, with :data:`FORMULA_ESCAPE` in front when it is text a spreadsheet would run as a formula."""
    return FORMULA_ESCAPE + value if isinstance(value, str) and value.startswith(FORMULA_STARTS) else value


def spreadsheet_safe(frame: pd.DataFrame) -> pd.DataFrame:
    """``frame`` with every text cell that a spreadsheet would execute neutralised (:func:`neutralise_cell`);
    number columns are left alone (``-3`` is a number, not a formula). For CSV files written for people."""
    text = [c for c in frame.columns if pd.api.types.is_object_dtype(frame[c]) or
            pd.api.types.is_string_dtype(frame[c])]
    if not text:
        return frame
    return frame.assign(**{c: frame[c].map(neutralise_cell, na_action="ignore") for c in text})


def csv_text(frame: pd.DataFrame) -> str:
    """``frame`` as CSV text for people (no index), its cells made :func:`spreadsheet_safe` and text quoted."""
    return spreadsheet_safe(frame).to_csv(index=False, quoting=PEOPLE_QUOTING)


class CsvSink:
    """Appends data frames to a hidden temporary CSV file, the header before the first rows; :meth:`commit`
    renames it onto ``path``. Every frame is written with the first one's columns, in their order.

    ``for_people``: the file is meant to be opened in a spreadsheet (``sheets.csv``, ``flags.csv``), so text cells
    a spreadsheet would execute are neutralised (:func:`spreadsheet_safe`) and text is quoted. Run-folder tables
    that later stages read back (``pages.csv``, ``marks.csv``) keep their values as they are.
    """

    def __init__(self, path: Path, columns: list[str] | None = None, for_people: bool = False) -> None:
        self.path = Path(path)
        self.tmp = temp_path(self.path)
        self.columns = list(columns) if columns is not None else None
        self.for_people = for_people
        self.started = False

    def write(self, frame: pd.DataFrame) -> None:
        """Append ``frame``'s rows (the first call also writes the header)."""
        if self.columns is None:
            self.columns = list(frame.columns)
        quoting = PEOPLE_QUOTING if self.for_people else csv.QUOTE_MINIMAL
        if self.for_people:
            frame = spreadsheet_safe(frame)
        frame.to_csv(self.tmp, index=False, columns=self.columns, mode="a" if self.started else "w",
                     header=not self.started, quoting=quoting)
        self.started = True

    def commit(self) -> Path:
        """Rename the file into place; returns ``path``."""
        if not self.started:
            raise ValueError(f"{self.path}: nothing was written")
        self.tmp.replace(self.path)
        return self.path

    def discard(self) -> None:
        """Drop the temporary file (after a failure)."""
        self.tmp.unlink(missing_ok=True)


#: Zero rows written at a time when :meth:`NpyWriter.close` fills the rows nobody wrote.
PAD_ROWS = 4096


class NpyWriter:
    """Writes a ``.npy`` file of a shape known in advance, block of rows after block of rows, with plain file
    writes: unlike a writable memory map, whose touched pages stay in the writer's resident memory until it is
    closed, nothing of the array stays in memory. The header is NumPy's (``np.save`` writes the same bytes).
    """

    def __init__(self, path: Path, shape: tuple[int, ...], dtype: np.dtype) -> None:
        self.shape, self.dtype = tuple(shape), np.dtype(dtype)
        self.row_shape, self.written = self.shape[1:], 0
        self.fh = Path(path).open("wb")
        header = {"descr": np.lib.format.dtype_to_descr(self.dtype), "fortran_order": False, "shape": self.shape}
        np.lib.format.write_array_header_1_0(self.fh, header)

    def write(self, rows: np.ndarray) -> None:
        """Append ``rows`` (shape ``(k, *row_shape)``, cast to the file's type).

        Raises:
            ValueError: their shape does not fit, or they would go past the rows the header announced.
        """
        rows = np.ascontiguousarray(rows, self.dtype)
        if rows.shape[1:] != self.row_shape or self.written + len(rows) > self.shape[0]:
            raise ValueError(f"{self.fh.name}: cannot write {rows.shape} after {self.written} of {self.shape} rows")
        self.fh.write(rows.tobytes())
        self.written += len(rows)

    def close(self) -> None:
        """Fill the rows not written with zeros (as a new memory-mapped array would hold) and close the file."""
        while self.written < self.shape[0]:
            self.write(np.zeros((min(PAD_ROWS, self.shape[0] - self.written), *self.row_shape), self.dtype))
        self.fh.close()


def npy_layout(path: Path) -> tuple[tuple[int, ...], np.dtype, int]:
    """Shape, type and data offset of the ``.npy`` file at ``path``, from its header alone (no pickles).

    Raises:
        ValueError: not an ``.npy`` file, or one stored in Fortran order or with object items.
    """
    with Path(path).open("rb") as fh:
        version = np.lib.format.read_magic(fh)
        read_header = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
        shape, fortran_order, dtype = read_header(fh)
        offset = fh.tell()
    if fortran_order or dtype.hasobject:
        raise ValueError(f"{path}: only C-ordered arrays of plain items can be read by rows")
    return shape, dtype, offset


def read_npy_rows(path: Path, rows: np.ndarray) -> np.ndarray:
    """Rows ``rows`` (ascending, no repeats) of the ``.npy`` file at ``path``, in that order.

    Each run of consecutive rows is read with one seek and one read. Unlike indexing a memory map, this leaves no
    file page in the caller's resident memory, so reading a large file chunk by chunk keeps memory flat.

    Raises:
        ValueError: ``rows`` are not ascending, or not inside the file (or :func:`npy_layout` refuses it).
    """
    shape, dtype, offset = npy_layout(path)
    rows = np.asarray(rows, np.int64)
    if rows.size and (rows[0] < 0 or rows[-1] >= shape[0] or (np.diff(rows) <= 0).any()):
        raise ValueError(f"{path}: rows must be ascending and inside its {shape[0]} rows")
    row_items = int(np.prod(shape[1:], dtype=np.int64))
    out = np.empty((len(rows), *shape[1:]), dtype)
    flat = out.reshape(len(rows), row_items)
    breaks = np.flatnonzero(np.diff(rows) > 1) + 1
    with Path(path).open("rb") as fh:
        for first, last in zip([0, *breaks], [*breaks, len(rows)], strict=True):
            if first == last:
                continue
            fh.seek(offset + int(rows[first]) * row_items * dtype.itemsize)
            data = np.fromfile(fh, dtype, (last - first) * row_items)
            if data.size != (last - first) * row_items:
                raise ValueError(f"{path}: file ends before row {rows[last - 1]}")
            flat[first:last] = data.reshape(last - first, row_items)
    return out
