"""Streaks along the scan's columns: toner bands and dust on a sheet-fed scanner's glass run down the whole page.

A band across the form's rows is taken out of each field from the field's own paper beside its boxes
(:func:`pipeline.vision.fields.flatten_rows`). A streak down the page crosses the boxes where a field image has
no paper of its own to measure it on, so it is measured on the page: on rows the blank form leaves blank (away
from its print and its fields), each line down the scanner's columns gets the median grey of its paper samples;
its darkness is what :func:`pipeline.vision.fields.darkness` would make of that profile (the same paper window).
Only lines at least ``BAND_MIN_DARKNESS`` dark are streaks; a page without any has none worth taking out, and
nothing changes.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from pipeline.forms.template import Template
from pipeline.vision.fields import BAND_MIN_DARKNESS, geometry_of, paper_window_px
from pipeline.vision.medians import line_shifts, row_medians
from pipeline.vision.register import print_mask
from pipeline.vision.settings import ReadSettings
from pipeline.vision.unbend import template_key

#: Rows of blank paper sampled down the page (the most blank rows of the form, spread over its height): enough
#: for a median that a signature or a stray stroke in a few of them does not move.
SAMPLE_ROWS = 48
#: Print and boxes are kept this far (mm) from the paper samples: registration error, bleed, writing that
#: overflows its boxes.
PAPER_CLEAR_MM = 0.8
#: A line down the page needs paper samples on this share of the sampled rows to be measured.
MIN_PAPER_SHARE = 0.5
#: Grey above any 8-bit grey: the padding of the sheared samples, sorted after every real sample.
PAST_WHITE = 256.0

_PAPER_ROWS: dict[tuple, tuple[np.ndarray, np.ndarray, tuple[int, int]]] = {}


@dataclass(frozen=True)
class Streaks:
    """The darkness (0 paper, 1 print black) of the streaks down a registered page: ``level[k]`` is that of the
    line through column ``k - pad`` at row ``centre``, which runs ``slope`` columns to the right per row down."""

    level: np.ndarray
    slope: float
    centre: float
    pad: int

    def over(self, region: tuple[int, int, int, int]) -> np.ndarray:
        """The streaks' darkness over ``region`` (x0, y0, x1, y1) of the page, float32 of its shape."""
        x0, y0, x1, y1 = region
        shift = line_shifts(np.arange(y0, y1), self.slope, self.centre)
        index = np.arange(x0, x1)[None, :] - shift[:, None] + self.pad
        return self.level[np.clip(index, 0, self.level.size - 1)]


def paper_rows(template: Template, settings: ReadSettings) -> tuple[np.ndarray, np.ndarray, tuple[int, int]]:
    """The ``SAMPLE_ROWS`` rows of the blank form with the most paper (away from print and the fields' boxes by
    ``PAPER_CLEAR_MM``), one from each of as many equal bands down the page, their paper mask, and the columns
    (x0, x1) the numeric fields span: only streaks there are worth taking out (the form's frame and the page's
    edge lie outside them)."""
    key = (*template_key(template), settings.dpi)
    if key not in _PAPER_ROWS:
        busy = cv2.dilate(print_mask(template, settings.dpi), np.ones((3, 3), np.uint8),
                          iterations=max(1, round(settings.px(PAPER_CLEAR_MM))))
        busy = busy.astype(bool)
        clear = round(settings.px(PAPER_CLEAR_MM))
        geoms = [geometry_of(f, template, settings) for f in template.fields]
        for x0, y0, x1, y1 in (box for g in geoms for box in g.boxes):
            busy[max(0, y0 - clear):y1 + clear, max(0, x0 - clear):x1 + clear] = True
        numeric = [g.region for g in geoms if g.field.is_numeric]
        span = (min(r[0] for r in numeric), max(r[2] for r in numeric)) if numeric else (0, 0)
        paper = ~busy
        bands = np.array_split(np.arange(paper.shape[0]), SAMPLE_ROWS)
        rows = np.array([band[np.argmax(paper[band].sum(1))] for band in bands if band.size])
        rows.setflags(write=False)
        mask = paper[rows]
        mask.setflags(write=False)
        _PAPER_ROWS[key] = (rows, mask, span)
    return _PAPER_ROWS[key]


def find_streaks(registered: np.ndarray, black: float, template: Template, settings: ReadSettings,
                 slope: float) -> Streaks | None:
    """The streaks down ``registered`` along lines of ``slope`` (columns per row), or ``None`` if none is as dark
    as ``BAND_MIN_DARKNESS`` (see the module docstring)."""
    rows, paper, (left, right) = paper_rows(template, settings)
    height, width = registered.shape[:2]
    inside = rows < height
    rows, paper = rows[inside], paper[inside, :width]
    centre = (height - 1) / 2
    shifts = line_shifts(rows, slope, centre)
    pad = int(np.abs(shifts).max(initial=0))
    samples = np.full((rows.size, width + 2 * pad), PAST_WHITE, np.float32)
    for i, (row, shift) in enumerate(zip(rows, shifts, strict=True)):
        line = np.where(paper[i], registered[row].astype(np.float32), PAST_WHITE)
        samples[i, pad - shift:pad - shift + width] = line
    counts = np.count_nonzero(samples < PAST_WHITE, axis=0)
    measured = counts >= MIN_PAPER_SHARE * rows.size
    if not measured.any():
        return None
    profile = np.interp(np.arange(samples.shape[1]), np.flatnonzero(measured),
                        row_medians(samples[:, measured].T, counts[measured])).astype(np.float32)
    side = paper_window_px(settings)
    white = cv2.morphologyEx(profile[None, :], cv2.MORPH_CLOSE, np.ones((1, side), np.uint8))[0]
    level = np.clip((white - profile) / np.maximum(white - black, settings.min_contrast), 0.0, 1.0)
    # line k crosses the centre row at column k - pad and the page within pad of it: keep the fields' lines
    level[:max(0, left)] = 0.0
    level[right + 2 * pad:] = 0.0
    # a line fainter than that is the paper's own mottle as sampled, not a streak: taken out of a faint writer's
    # strokes it would thin them
    level[level < BAND_MIN_DARKNESS] = 0.0
    if not level.any():
        return None
    return Streaks(level.astype(np.float32), slope, centre, pad)
