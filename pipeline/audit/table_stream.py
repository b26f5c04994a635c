"""Helpers that let ``audit-table`` stream a results table in chunks with flat memory.

What a streamed audit must remember across chunks is kept as small typed NumPy arrays, never as text per
station: :class:`SeenIds` (which station ids were seen, as 128-bit hashes and their first row),
:class:`ScopeCoder` (each forensic level's scope code per station, numbered in order of first appearance) and
:func:`compact_counts` (vote counts in 32 bits when they fit). :class:`RowCursor` reads back, chunk by chunk, rows
a first pass wrote to a temporary Parquet file, and :func:`merge_counts` / :func:`ordered_counts` count
categories over chunks in the order ``pandas.Series.value_counts`` gives for the whole column.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq

#: The two SipHash keys of a station id's 128-bit hash (any two different 16-character keys will do). Two
#: different ids are taken for the same station only if both 64-bit hashes collide: with a million stations the
#: chance is about 1e-27.
HASH_KEYS = ("tally-audit-id-a", "tally-audit-id-b")
#: Largest count stored in 32 bits by :func:`compact_counts` (larger ones keep 64 bits).
INT32_MAX = np.iinfo(np.int32).max


def id_hashes(ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Two independent 64-bit hashes of each text id (``pandas.util.hash_array``, deterministic across runs)."""
    values = np.asarray(ids, dtype=object)
    return tuple(pd.util.hash_array(values, hash_key=key, categorize=False) for key in HASH_KEYS)


class SeenIds:
    """The station ids seen so far, as sorted 128-bit hashes with the row where each was first seen.

    24 bytes per distinct id instead of the id's text in a dictionary (a few hundred bytes with Python's overhead),
    so a million stations need 24 MB.
    """

    def __init__(self) -> None:
        self.h1 = np.zeros(0, np.uint64)
        self.h2 = np.zeros(0, np.uint64)
        self.row = np.zeros(0, np.int64)

    def __len__(self) -> int:
        return int(self.h1.size)

    def _lookup(self, q1: np.ndarray, q2: np.ndarray) -> np.ndarray:
        """For each query hash pair, the row where it was first seen, or 0 when it was not."""
        left = np.searchsorted(self.h1, q1, side="left")
        right = np.searchsorted(self.h1, q1, side="right")
        found = np.zeros(q1.size, np.int64)
        one = np.flatnonzero(right - left == 1)
        match = self.h2[left[one]] == q2[one]
        found[one[match]] = self.row[left[one[match]]]
        for i in np.flatnonzero(right - left > 1):  # the first 64-bit hash collided: compare the second one
            hits = np.flatnonzero(self.h2[left[i]:right[i]] == q2[i])
            if hits.size:
                found[i] = self.row[left[i] + hits[0]]
        return found

    def _insert(self, h1: np.ndarray, h2: np.ndarray, rows: np.ndarray) -> None:
        """Add new ids (none of them seen before), merged into the sorted arrays in one linear pass (no re-sort of
        what is there)."""
        order = np.argsort(h1, kind="stable")
        at = np.searchsorted(self.h1, h1[order], side="right")
        self.h1 = np.insert(self.h1, at, h1[order])
        self.h2 = np.insert(self.h2, at, h2[order])
        self.row = np.insert(self.row, at, rows[order])

    def first_rows(self, ids: np.ndarray, rows: np.ndarray, valid: np.ndarray) -> np.ndarray:
        """For each of a chunk's rows, in order: the earlier row with the same id (0 when the id is new, or when
        the row's ``valid`` is false); the chunk's new ids are remembered with their first row.

        Same as walking the rows one by one with a dictionary of ``id -> first row``, only the rows with a
        ``valid`` id taking part.
        """
        out = np.zeros(len(ids), np.int64)
        where = np.flatnonzero(valid)
        if where.size == 0:
            return out
        codes, uniques = pd.factorize(np.asarray(ids, dtype=object)[where])
        _, first = np.unique(codes, return_index=True)  # first occurrence of each id in the chunk
        first_row = rows[where][first]
        h1, h2 = id_hashes(np.asarray(uniques, dtype=object))
        earlier = self._lookup(h1, h2)
        new = earlier == 0
        self._insert(h1[new], h2[new], first_row[new])
        origin = np.where(new, first_row, earlier)[codes]  # the row each occurrence repeats (itself if first)
        mine = rows[where]
        out[where] = np.where(origin == mine, 0, origin)
        return out


class ScopeCoder:
    """Each forensic level's scope as an integer code per station, codes numbered in order of first appearance
    over all chunks (as ``pandas.factorize`` numbers the whole column)."""

    def __init__(self, levels: tuple[str, ...]) -> None:
        self.levels = tuple(levels)
        self.index: dict[str, dict[str, int]] = {lv: {} for lv in self.levels}
        self.parts: dict[str, list[np.ndarray]] = {lv: [] for lv in self.levels}

    def add(self, frame: pd.DataFrame) -> None:
        """Append the codes of ``frame``'s rows (one column per level, text)."""
        for lv in self.levels:
            local, uniques = pd.factorize(frame[lv].to_numpy(dtype=object))
            known = self.index[lv]
            table = np.array([known.setdefault(str(u), len(known)) for u in uniques], dtype=np.int32)
            self.parts[lv].append(table[local] if local.size else np.zeros(0, np.int32))

    def scopes(self) -> dict[str, tuple[np.ndarray, list[str]]]:
        """``{level: (codes, names)}`` as :class:`pipeline.audit.table_forensics.Stations` takes them."""
        return {lv: (np.concatenate(self.parts[lv]) if self.parts[lv] else np.zeros(0, np.int32),
                     list(self.index[lv])) for lv in self.levels}


def compact_counts(values: np.ndarray) -> np.ndarray:
    """Whole, non-negative counts (as floats) in the smallest of int32 / int64 that holds them exactly."""
    fits = values.size == 0 or float(np.max(values)) <= INT32_MAX
    return values.astype(np.int32 if fits else np.int64)


def concat_arrays(parts: list[np.ndarray], empty_shape: tuple[int, ...], dtype) -> np.ndarray:
    """``parts`` joined along the first axis (NumPy promotes int32 and int64 parts to int64), or an empty array."""
    return np.concatenate(parts) if parts else np.zeros(empty_shape, dtype)


def merge_counts(total: dict[str, int], values: Iterable) -> None:
    """Add the counts of ``values`` to ``total``, new categories appended in order of first appearance."""
    for key, n in pd.Series(list(values), dtype=object).value_counts(sort=False).items():
        total[str(key)] = total.get(str(key), 0) + int(n)


def ordered_counts(total: dict[str, int]) -> dict[str, int]:
    """``total`` ordered as ``value_counts()`` orders the whole column: by count, descending, ties in order of
    first appearance (pandas sorts the counts stably)."""
    return dict(sorted(total.items(), key=lambda kv: -kv[1]))


class RowCursor:
    """Reads a Parquet file whose ``row`` column ascends, handing out its rows up to a given row at a time (the
    rows a first pass wrote, matched to the stations of a second pass's chunk). A missing file has no rows."""

    def __init__(self, path: Path | None, columns: list[str], batch_rows: int) -> None:
        self.columns = columns
        self.batches: Iterator | None = (pq.ParquetFile(path).iter_batches(batch_size=batch_rows)
                                         if path is not None and Path(path).is_file() else None)
        self.buffer = pd.DataFrame(columns=columns)

    def upto(self, last_row: int) -> pd.DataFrame:
        """The rows with ``row <= last_row`` not handed out yet."""
        while self.batches is not None and (self.buffer.empty or int(self.buffer["row"].iloc[-1]) <= last_row):
            batch = next(self.batches, None)
            if batch is None:
                self.batches = None
                break
            frame = batch.to_pandas()
            self.buffer = frame if self.buffer.empty else pd.concat([self.buffer, frame], ignore_index=True)
        take = self.buffer["row"].to_numpy() <= last_row
        out, self.buffer = self.buffer[take], self.buffer[~take].reset_index(drop=True)
        return out.reset_index(drop=True)
