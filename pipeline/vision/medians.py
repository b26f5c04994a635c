"""Medians of many short rows at once, and the whole-pixel shifts of a sloping line: the small numerics that band,
streak and line-edge removal share (:mod:`pipeline.vision.fields`, :mod:`pipeline.vision.lines`,
:mod:`pipeline.vision.streaks`)."""

from __future__ import annotations

import numpy as np


def row_medians(values: np.ndarray, counts: np.ndarray | None = None) -> np.ndarray:
    """``np.median(values, axis=1)`` of a float32 array, as float32, bit for bit: the middle of each sorted row
    (the mean of the two middle values, in float32 as ``np.median`` takes it, for an even row length). Sorting the
    rows is several times faster than the partition ``np.median`` runs on rows of a few hundred values.

    With ``counts``, row ``i`` holds ``counts[i]`` values of its own and is padded with values that sort after
    all of them (a line cut short by an image's edge); its median is that of its own values."""
    ordered = np.sort(values, axis=1)
    if counts is None:
        counts = np.full(values.shape[0], values.shape[1])
    rows = np.arange(values.shape[0])
    return (ordered[rows, (counts - 1) // 2] + ordered[rows, counts // 2]) / np.float32(2)


def line_shifts(positions: np.ndarray, slope: float, centre: float) -> np.ndarray:
    """Whole pixels by which a line of ``slope`` through ``centre`` lies off its place there, at each of
    ``positions`` along it."""
    return np.rint(slope * (positions - centre)).astype(np.int64)
