"""Read a run folder's three tables a few sheets at a time, every chunk holding all the rows of the same sheets.

``pages.csv`` (one row per page) fixes the order of the sheets and the chunks: its first ``n`` sheets form chunk 0,
the next ``n`` chunk 1, and so on. ``fields.parquet`` and ``marks.csv`` are read block by block alongside and cut
at the same sheets. The reader and the recogniser write the three tables in one sheet order (docs/DATA.md), so a
chunk's rows lie together in every file and the audit holds one chunk at a time, whatever the batch size. Only
the list of sheet ids is held whole. Rows of sheets that ``pages.csv`` does not list are kept aside and come last,
in a chunk of their own (the audit reports them as sheets with no page row).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq

from pipeline.audit.schema import OK_STATUS
from pipeline.audit.table import PAGES_COLUMNS
from pipeline.engine.stream import (
    SHEET_COLUMN,
    check_parquet_columns,
    empty_frame,
    require_columns,
    require_file,
    unreadable_table,
)
from pipeline.errors import InputFileError

#: Rows read from a table at a time, before they are cut into chunks of whole sheets.
BLOCK_ROWS = 20_000


@dataclass(frozen=True)
class PageOrder:
    """Where each sheet of ``pages.csv`` goes: ``chunk_of[sheet_id]`` (by the sheet's first row), which rows of the
    file are the first of their sheet (later repeats are dropped), how many chunks and how many read pages."""

    chunk_of: dict[str, int]
    first_rows: np.ndarray
    n_chunks: int
    n_read: int


@dataclass(frozen=True)
class RunChunk:
    """The ``pages.csv``, ``fields.parquet`` and ``marks.csv`` rows of the same few sheets."""

    pages: pd.DataFrame
    fields: pd.DataFrame
    marks: pd.DataFrame


def csv_columns(path: Path, needed: tuple[str, ...]) -> pd.DataFrame:
    """A zero-row, all-text frame with the columns of the CSV at ``path``, after checking it has ``needed``.

    Raises:
        InputFileError: the file is missing, unreadable or lacks a needed column.
    """
    require_file(path)
    try:
        header = pd.read_csv(path, nrows=0, dtype="string")
    except Exception as exc:  # the CSV parser raises many types for a corrupt file
        raise unreadable_table(path, exc) from exc
    require_columns(path, header.columns, needed)
    return header


def csv_blocks(path: Path, columns: list[str] | None = None) -> Iterator[pd.DataFrame]:
    """The CSV at ``path`` as all-text frames of :data:`BLOCK_ROWS` rows (only ``columns`` if given), so every
    block gets the same column types whatever its values."""
    try:
        yield from pd.read_csv(path, dtype="string", usecols=columns, chunksize=BLOCK_ROWS)
    except Exception as exc:  # a file corrupt further down fails only when that block is parsed
        raise unreadable_table(path, exc) from exc


def page_order(path: Path, chunk_sheets: int) -> PageOrder:
    """The chunk of every sheet of ``pages.csv``: its ``chunk_sheets`` first sheets are chunk 0, and so on."""
    if chunk_sheets < 1:
        raise ValueError(f"chunk_sheets must be >= 1, got {chunk_sheets}")
    header = csv_columns(path, PAGES_COLUMNS)[list(PAGES_COLUMNS)]
    pages = pd.concat([header, *csv_blocks(path, list(PAGES_COLUMNS))], ignore_index=True)
    first = ~pages[SHEET_COLUMN].duplicated().to_numpy()
    ids = pages.loc[first, SHEET_COLUMN].astype(str)
    chunk_of = dict(zip(ids, np.arange(len(ids)) // chunk_sheets, strict=True))
    n_read = int((pages.loc[first, "status"] == OK_STATUS).sum())
    return PageOrder(chunk_of, first, -(-len(ids) // chunk_sheets), n_read)


def by_chunk(blocks: Iterable[pd.DataFrame], order: PageOrder, source: str) -> Iterator[tuple[int, pd.DataFrame]]:
    """``(chunk, rows)`` of consecutive row blocks, chunk by chunk in increasing order; rows of sheets that
    ``pages.csv`` does not list come last, as chunk ``order.n_chunks``.

    Raises:
        InputFileError: a sheet's rows come after those of a sheet that ``pages.csv`` lists later.
    """
    current, pending, orphans = -1, [], []
    for block in blocks:
        chunk = block[SHEET_COLUMN].astype(str).map(order.chunk_of)
        if chunk.isna().any():
            orphans.append(block[chunk.isna()])
        block, chunk = block[chunk.notna()], chunk[chunk.notna()].astype(int).to_numpy()
        if len(chunk) and (chunk[0] < current or (np.diff(chunk) < 0).any()):
            late = block[SHEET_COLUMN].iloc[int(np.argmax(np.diff(np.r_[current, chunk]) < 0))]
            raise InputFileError(f"{source}: the rows of sheet '{late}' come after those of sheets that pages.csv "
                                 "lists later; the tables of a run folder list sheets in one order (docs/DATA.md)")
        for k in np.unique(chunk):
            if k != current and pending:
                yield current, pd.concat(pending, ignore_index=True)
                pending = []
            current = int(k)
            pending.append(block[chunk == k])
    if pending:
        yield current, pd.concat(pending, ignore_index=True)
    if orphans:
        yield order.n_chunks, pd.concat(orphans, ignore_index=True)


class _Cursor:
    """Hands out one table's chunks in increasing chunk order; a chunk with no rows there gets ``empty``."""

    def __init__(self, chunks: Iterator[tuple[int, pd.DataFrame]], empty: pd.DataFrame) -> None:
        self.chunks, self.empty = chunks, empty
        self.next = next(self.chunks, None)

    def take(self, k: int) -> pd.DataFrame:
        if self.next is None or self.next[0] != k:
            return self.empty
        rows, self.next = self.next[1], next(self.chunks, None)
        return rows

    @property
    def exhausted(self) -> bool:
        return self.next is None


def _first_rows_only(blocks: Iterable[pd.DataFrame], first_rows: np.ndarray) -> Iterator[pd.DataFrame]:
    """Each block without the rows that repeat an earlier sheet (``first_rows`` covers the whole file)."""
    start = 0
    for block in blocks:
        yield block[first_rows[start:start + len(block)]]
        start += len(block)


def parquet_blocks(path: Path, columns: list[str]) -> Iterator[pd.DataFrame]:
    """The Parquet table at ``path`` (only ``columns``) as frames of at most :data:`BLOCK_ROWS` rows."""
    for batch in pq.ParquetFile(path).iter_batches(batch_size=BLOCK_ROWS, columns=columns):
        yield batch.to_pandas()


def run_chunks(rundir: Path, order: PageOrder, fields_columns: tuple[str, ...],
               marks_columns: tuple[str, ...]) -> Iterator[RunChunk]:
    """The run folder's pages, fields (only ``fields_columns``) and marks, chunk by chunk as ``order`` cuts them;
    at least one chunk, possibly empty, so a caller always sees every column.

    Raises:
        InputFileError: a table is missing, unreadable, lacks a column or is not in the sheet order of pages.csv.
    """
    pages_path, fields_path, marks_path = rundir / "pages.csv", rundir / "fields.parquet", rundir / "marks.csv"
    fields_empty = empty_frame(check_parquet_columns(fields_path, fields_columns), list(fields_columns))
    marks_empty = csv_columns(marks_path, marks_columns)
    cursors = [
        _Cursor(by_chunk(_first_rows_only(csv_blocks(pages_path), order.first_rows), order, str(pages_path)),
                csv_columns(pages_path, ())),
        _Cursor(by_chunk(parquet_blocks(fields_path, list(fields_columns)), order, str(fields_path)), fields_empty),
        _Cursor(by_chunk(csv_blocks(marks_path), order, str(marks_path)), marks_empty)]
    for k in range(max(order.n_chunks, 1)):
        yield RunChunk(*(c.take(k) for c in cursors))
    if not all(c.exhausted for c in cursors):
        yield RunChunk(*(c.take(order.n_chunks) for c in cursors))
