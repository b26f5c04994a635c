"""Snapping a field's explicit boxes onto the printed lines of the registered page (reference-image templates).

A page registered by local features (:mod:`pipeline.vision.align`) lands within a millimetre or two of the
reference, more than the line search of :func:`pipeline.vision.lines.remove_lines` allows for. Each field's boxes
(a comb that shares its walls, or separate boxes) are therefore moved as one by the shift that puts the most
printed ink on their walls: the vertical walls (every distinct left and right box edge) and the top and bottom
edges, searched within ``SNAP_SEARCH_MM`` in each direction, up and down at most ``MAX_ROW_SHIFT`` of the lowest
box's height (registration is far closer than that, and half a row away lie the next row's line and the middle of
the boxes, where a row of dashes is written). Handwriting touches one wall at a time and rarely fills a column,
so it cannot outweigh the vertical walls.

The top and bottom edges are found on line ink of their own, not the pen's: a printed row line can be thin and
light (the C1 certificate's reach the pen threshold along as little as a tenth of their length), while a row of
handwritten dashes, one per box, is as dark as any pen stroke and crosses most of each box. Row ink is every pixel
darker than ``LINE_INK`` of the pen's ink threshold that lies on an unbroken horizontal run of at least
``LINE_RUN`` of the field's width: a printed line spans the whole comb, a dash stops at its box's walls.

A field whose walls find no line (less than ``MIN_WALL_FILL`` of their length inked at the best shift) keeps its
registered position. Then each wall on its own moves within ``WALL_REFINE_MM`` to the most inked column if that is
inked along ``MIN_LINE_FILL`` of it, each edge to the darkest row of the nearest row line (rows inked along
``MIN_LINE_FILL``): printings of a form differ by a millimetre or so in their row heights and column widths, and
a value struck through with a line across the whole field must not take an edge off a lighter printed line.
"""

from __future__ import annotations

from dataclasses import replace

import cv2
import numpy as np
from scipy.ndimage import maximum_filter1d

from pipeline.vision.fields import FieldGeometry, darkness
from pipeline.vision.settings import ReadSettings

#: How far (mm) a field's boxes are searched for around where registration puts them.
SNAP_SEARCH_MM = 3.0
#: Largest vertical shift of a field, as a fraction of its lowest box's height (a shift of half a row would put the
#: top edge on the middle of the box, where a row of dashes lies, or the other edge on a neighbouring row's line).
MAX_ROW_SHIFT = 0.3
#: Darkness of row line ink, as a fraction of the pen's ink threshold (``ReadSettings.ink_threshold``): a light
#: printed line can stay below even the faint-ink threshold along much of its length.
LINE_INK = 0.5
#: Shortest horizontal run of line ink, as a fraction of the field's width, that counts as a printed row line: more
#: than two of a three-box comb's boxes, so two dashes joined through the wall between them do not count either.
LINE_RUN = 0.75
#: How far (mm) each wall is refined on its own after the field's common shift.
WALL_REFINE_MM = 2.5
#: Edges closer than this (px) are one shared wall.
SHARED_WALL_PX = 2
#: Pixels either side of a wall over which its fill is taken (a wall drawn a pixel or two from its rounded place).
WALL_TOLERANCE_PX = 2
#: Smallest mean ink fill of the walls at the best shift for the shift to be taken.
MIN_WALL_FILL = 0.4
#: Smallest fill of a single wall's column (row) for the wall to move there (a "1" fills half a box's height).
MIN_LINE_FILL = 0.7


def walls(boxes: tuple[tuple[int, int, int, int], ...]) -> tuple[list[int], list[int]]:
    """The distinct vertical wall columns and horizontal edge rows of ``boxes`` (shared walls counted once)."""
    def distinct(values: list[int]) -> list[int]:
        out: list[int] = []
        for v in sorted(values):
            if not out or v - out[-1] > SHARED_WALL_PX:
                out.append(v)
        return out
    xs = distinct([b[0] for b in boxes] + [b[2] - 1 for b in boxes])
    ys = distinct([b[1] for b in boxes] + [b[3] - 1 for b in boxes])
    return xs, ys


def best_shift(profile: np.ndarray, positions: list[int], search: int) -> tuple[int, float]:
    """The shift within ``search`` that maximises the mean of ``profile`` at ``positions``, each taken as the
    largest fill within ``WALL_TOLERANCE_PX`` (ties: the smallest shift), and that mean."""
    n = len(profile)
    profile = maximum_filter1d(profile, 2 * WALL_TOLERANCE_PX + 1, mode="constant")
    best, best_fill = 0, -1.0
    for shift in sorted(range(-search, search + 1), key=abs):
        idx = np.array(positions) + shift
        fill = float(np.where((idx >= 0) & (idx < n), profile[np.clip(idx, 0, n - 1)], 0.0).mean())
        if fill > best_fill + 1e-9:
            best, best_fill = shift, fill
    return best, best_fill


def snap_geometry(registered: np.ndarray, geom: FieldGeometry, black: float,
                  settings: ReadSettings) -> FieldGeometry:
    """``geom`` with its boxes (and field image region) moved onto the printed walls found near them."""
    search = round(settings.px(SNAP_SEARCH_MM))
    h, w = registered.shape
    x0 = max(0, min(b[0] for b in geom.boxes) - search)
    y0 = max(0, min(b[1] for b in geom.boxes) - search)
    x1 = min(w, max(b[2] for b in geom.boxes) + search)
    y1 = min(h, max(b[3] for b in geom.boxes) + search)
    dark = darkness(registered[y0:y1, x0:x1], black, settings)
    ink = dark > settings.ink_threshold
    xs, ys = walls(geom.boxes)
    inner_y = slice(min(b[1] for b in geom.boxes) - y0, max(b[3] for b in geom.boxes) - y0)
    inner_x = slice(min(b[0] for b in geom.boxes) - x0, max(b[2] for b in geom.boxes) - x0)
    col_fill = ink[inner_y].mean(axis=0) if ink[inner_y].size else np.zeros(ink.shape[1])
    row_fill, row_dark = row_lines(dark[:, inner_x], LINE_INK * settings.ink_threshold)
    row_search = min(search, round(MAX_ROW_SHIFT * min(b[3] - b[1] for b in geom.boxes)))
    dx, fx = best_shift(col_fill, [x - x0 for x in xs], search)
    dy, fy = best_shift(row_fill, [y - y0 for y in ys], row_search)
    dx, dy = (dx if fx >= MIN_WALL_FILL else 0), (dy if fy >= MIN_WALL_FILL else 0)
    refine = round(settings.px(WALL_REFINE_MM))
    new_x = {x: x0 + refined(col_fill, x - x0 + dx, refine) for x in xs}
    new_y = {y: y0 + refined(row_fill, y - y0 + dy, refine, darkest=row_dark) for y in ys}
    boxes = tuple((_moved(a, new_x), _moved(b, new_y), _moved(c - 1, new_x) + 1, _moved(d - 1, new_y) + 1)
                  for a, b, c, d in geom.boxes)
    if boxes == geom.boxes:
        return geom
    sx = round(np.mean([bn[0] - bo[0] for bn, bo in zip(boxes, geom.boxes, strict=True)]))
    sy = round(np.mean([bn[1] - bo[1] for bn, bo in zip(boxes, geom.boxes, strict=True)]))
    rx0, ry0, rx1, ry1 = geom.region
    region = (max(0, min(rx0 + sx, min(b[0] for b in boxes))), max(0, min(ry0 + sy, min(b[1] for b in boxes))),
              min(w, max(rx1 + sx, max(b[2] for b in boxes))), min(h, max(ry1 + sy, max(b[3] for b in boxes))))
    return replace(geom, region=region, boxes=boxes)


def row_lines(dark: np.ndarray, threshold: float) -> tuple[np.ndarray, np.ndarray]:
    """Per row of ``dark`` (a field's width of darkness), the share of it darker than ``threshold`` on horizontal
    runs of at least ``LINE_RUN`` of that width (printed row lines fill their rows, handwriting, strokes and dashes
    within a box, leaves them empty), and the mean darkness of those pixels (the middle of a line is its darkest
    row, where a faint threshold finds the line several rows thick)."""
    if dark.size == 0:
        return np.zeros(dark.shape[0]), np.zeros(dark.shape[0])
    run = max(1, round(LINE_RUN * dark.shape[1]))
    lines = cv2.morphologyEx((dark > threshold).astype(np.uint8), cv2.MORPH_OPEN,
                             cv2.getStructuringElement(cv2.MORPH_RECT, (run, 1)),
                             borderType=cv2.BORDER_CONSTANT, borderValue=0).astype(bool)
    count = lines.sum(axis=1)
    return count / dark.shape[1], np.where(lines, dark, 0.0).sum(axis=1) / np.maximum(count, 1)


def refined(profile: np.ndarray, position: int, reach: int, darkest: np.ndarray | None = None) -> int:
    """``position`` moved within ``reach`` to the most inked index of ``profile``, if that is a line
    (``MIN_LINE_FILL``); ties go to the nearest. With ``darkest`` (a darkness per index): to the darkest index of
    the line nearest to ``position`` instead (a run of indices inked along ``MIN_LINE_FILL``), so that a row edge
    stays on its printed line even where a stroke across the whole field (a value struck through) lies within
    reach and fills its row better than a light line."""
    lo, hi = max(0, position - reach), min(len(profile), position + reach + 1)
    if lo >= hi:
        return position
    if darkest is not None:
        lines = np.flatnonzero(profile[lo:hi] >= MIN_LINE_FILL) + lo
        if lines.size == 0:
            return position
        start = end = int(lines[np.argmin(np.abs(lines - position))])
        while start - 1 >= lo and profile[start - 1] >= MIN_LINE_FILL:
            start -= 1
        while end + 1 < hi and profile[end + 1] >= MIN_LINE_FILL:
            end += 1
        return max(range(start, end + 1), key=lambda i: (darkest[i], -abs(i - position)))
    window = profile[lo:hi]
    best = lo + max(range(len(window)), key=lambda i: (window[i], -abs(lo + i - position)))
    return best if profile[best] >= MIN_LINE_FILL else position


def _moved(edge: int, walls_moved: dict[int, int]) -> int:
    """Where an edge goes: with the wall it belongs to (the nearest one)."""
    wall = min(walls_moved, key=lambda v: abs(v - edge))
    return walls_moved[wall] + (edge - wall)
