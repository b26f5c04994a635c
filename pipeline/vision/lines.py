"""Printed box-line removal that keeps the handwriting.

Lines are looked for near where the template puts them (registration leaves a fraction of a pixel to a pixel
or two of error): a row or column counts as printed line when it is inked along most of the box edge, which
strokes never are, and a thin halo around the template position always counts (a line faded or partly covered
by correction fluid). Those pixels are removed; then ink is restored inside the line bands wherever a stroke
crosses the line, i.e. where a closing across the band joins ink on both sides, and where a stroke running
beside the line spills into its band: band ink reached straight across the band from the stroke, up to the
line's core (only pixels that were ink to begin with are restored). Faint lines crossing a whole field (paper
folds) are found by :func:`crossing_lines`. Where a line's blurred edge (a bled or blurred print) swallows a stroke
running along it, the stroke is told from the line by its darkness: :func:`strokes_on_lines`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np

from pipeline.vision.medians import row_medians

#: Pixels beyond a printed line's core that may still be its blurred edge.
LINE_EDGE_PX = 2
#: Fraction of the line fill at which a row/column next to a line still belongs to it (its blurred edge).
EDGE_FILL = 0.25
#: Fill along the field outside the boxes (rows; also the margins above and below the boxes for columns) or
#: along its whole height (columns) that marks a faint line crossing the field: a paper fold.
CROSSING_ROW_FILL = 0.5
CROSSING_COLUMN_FILL = 0.6
#: Rows (columns) judged together when looking for a crossing line.
CROSSING_SPREAD = 3
#: Extra pixels beyond a line band that a crossing stroke may be missing and still be rejoined.
BRIDGE_SLACK = 3

Box = tuple[int, int, int, int]


def hysteresis(profile: np.ndarray, high: float, low: float) -> np.ndarray:
    """Boolean mask of the runs of ``profile >= low`` that contain a value ``>= high`` (1-D hysteresis)."""
    weak = profile >= low
    run = np.cumsum(~weak)
    strong_runs = np.zeros(run[-1] + 1 if run.size else 1, bool)
    strong_runs[run[profile >= high]] = True
    return weak & strong_runs[run]


def line_core(profile: np.ndarray, expected: int, search: int, min_fill: float) -> list[int]:
    """Indices within ``search`` of ``expected`` inked along ``min_fill`` of the box edge (the printed line
    itself, not its blurred edges), and ``expected`` itself, where registration puts the line even when faded."""
    lo, hi = max(0, expected - search), min(len(profile), expected + search + 1)
    return sorted({expected, *(lo + np.flatnonzero(profile[lo:hi] >= min_fill)).tolist()})


def line_positions(profile: np.ndarray, expected: int, search: int, min_fill: float, halo: int = 0) -> list[int]:
    """Indices within ``search`` of ``expected`` that belong to a printed line, judged by the ink ``profile``.

    Indices whose fill reaches ``min_fill`` are the line's core; up to ``LINE_EDGE_PX`` neighbours still filled
    to ``EDGE_FILL`` of that are its blurred edges (so no dotted remnants stay behind). The edge is bounded, so a
    stroke running alongside the line is not taken for more line. The ``halo`` indices either side of
    ``expected`` always count: registration puts the line there even where it is faded or painted over.
    """
    lo, hi = max(0, expected - search), min(len(profile), expected + search + 1)
    window = profile[lo:hi]
    core = (window >= min_fill).astype(np.uint8)
    near = cv2.dilate(core[None, :], np.ones((1, 2 * LINE_EDGE_PX + 1), np.uint8))[0] > 0
    found = near & (window >= EDGE_FILL * min_fill)
    found[max(0, expected - halo - lo):max(0, expected + halo + 1 - lo)] = True
    return (lo + np.flatnonzero(found)).tolist()


def _crossing_rows(weak: np.ndarray, boxes: Sequence[Box], clear: int) -> np.ndarray:
    outside = np.ones(weak.shape[1], bool)
    for x0, _, x1, _ in boxes:
        outside[max(0, x0 - clear):x1 + clear] = False
    if not outside.any():
        return np.zeros(weak.shape[0], bool)
    near = cv2.dilate(weak[:, outside].astype(np.uint8), np.ones((CROSSING_SPREAD, 1), np.uint8))
    return hysteresis(near.mean(1), CROSSING_ROW_FILL, EDGE_FILL * CROSSING_ROW_FILL)


def _crossing_columns(weak: np.ndarray, boxes: Sequence[Box], search: int) -> np.ndarray:
    near = cv2.dilate(weak.astype(np.uint8), np.ones((1, CROSSING_SPREAD), np.uint8))
    top, bottom = max(0, min(b[1] for b in boxes) - search), min(weak.shape[0], max(b[3] for b in boxes) + search)
    if top == 0 or bottom == weak.shape[0]:
        return np.zeros(weak.shape[1], bool)
    margins = np.minimum(near[:top].mean(0), near[bottom:].mean(0))
    return (near.mean(0) >= CROSSING_COLUMN_FILL) & (margins >= CROSSING_ROW_FILL)


def crossing_lines(weak: np.ndarray, boxes: Sequence[Box], clear: int,
                   search: int) -> tuple[list[int], list[int]]:
    """Rows and columns of faint lines crossing the whole field image (paper folds), wherever they are.

    A row counts when it is inked along much of the field more than ``clear`` px away from the boxes (writing
    there is sparse, and a strike-through stays over the boxes); a column when it is inked over most of the
    field height including the margins more than ``search`` px above and below the boxes, which digits and box
    edges keep out of. Faint folds come out
    dashed and a little tilted, so neighbouring rows (columns) are judged together.

    Columns are first bounded from above with plain pixel counts in the margins, and judged in full only when
    that bound reaches the fill a fold needs there (safe to skip otherwise: spreading over ``CROSSING_SPREAD``
    neighbours inks at most the ink of those neighbours together, and the fills are compared as the same float
    divisions); nearly every field has no ink across both margins, and its column search costs two small counts.
    """
    rows = _crossing_rows(weak, boxes, clear)
    if not _may_cross_columns(weak, boxes, search):
        return np.flatnonzero(rows).tolist(), []
    cols = _crossing_columns(weak, boxes, search)
    return np.flatnonzero(rows).tolist(), np.flatnonzero(cols).tolist()


def _spread_sums(counts: np.ndarray) -> np.ndarray:
    """``counts`` summed over each index and its neighbours within ``CROSSING_SPREAD // 2``: an upper bound of
    the count of a dilation by ``CROSSING_SPREAD`` along that axis."""
    half = CROSSING_SPREAD // 2
    padded = np.concatenate([np.zeros(half, np.int64), counts.astype(np.int64), np.zeros(half, np.int64)])
    total = np.cumsum(np.concatenate([[0], padded]))
    return total[CROSSING_SPREAD:] - total[:-CROSSING_SPREAD]


def _may_cross_columns(weak: np.ndarray, boxes: Sequence[Box], search: int) -> bool:
    """Whether :func:`_crossing_columns` can find a column: an upper bound of the fill of some column's
    neighbourhood reaches ``CROSSING_ROW_FILL`` in both margins (the box walls fill the height, not the margins)."""
    top, bottom = max(0, min(b[1] for b in boxes) - search), min(weak.shape[0], max(b[3] for b in boxes) + search)
    if top == 0 or bottom == weak.shape[0]:
        return False
    bound = _spread_sums(np.count_nonzero(weak[:top], axis=0)) / top >= CROSSING_ROW_FILL
    bound &= _spread_sums(np.count_nonzero(weak[bottom:], axis=0)) / (weak.shape[0] - bottom) >= CROSSING_ROW_FILL
    return bool(bound.any())


def _lines(profile: np.ndarray, expected: Sequence[int], search: int, min_fill: float,
           halo: int) -> tuple[list[int], list[int]]:
    """(band, core) indices of the lines expected at ``expected`` in an ink ``profile``: the union of
    :func:`line_positions` (band) and of :func:`line_core` (core) over ``expected``, index for index.

    The profile is thresholded once, and each window (``expected`` +- ``search``, clipped to the profile) is then
    worked on as a few Python ints: a window holds a handful of line indices, and numpy's per-call cost on such
    tiny arrays was most of the line search. As there, the blurred edge is grown within the window only.
    """
    n = len(profile)
    cores = np.flatnonzero(profile >= min_fill).tolist()
    edges = set(np.flatnonzero(profile >= EDGE_FILL * min_fill).tolist())
    band: set[int] = set()
    core: set[int] = set(expected)
    for e in expected:
        lo, hi = max(0, e - search), min(n, e + search + 1)
        window_core = [j for j in cores if lo <= j < hi]
        core.update(window_core)
        for j in window_core:
            band.update(i for i in range(max(lo, j - LINE_EDGE_PX), min(hi, j + LINE_EDGE_PX + 1)) if i in edges)
        band.update(range(max(lo, e - halo), min(hi, e + halo + 1)))
    return sorted(band), sorted(core)


def _row_lines(ink: np.ndarray, boxes: Sequence[Box], search: int, min_fill: float,
               halo: int) -> tuple[list[int], list[int]]:
    """Rows (band, core) of the horizontal box edges; the fill is measured over the boxes' columns only."""
    spans = [(max(0, x0), min(ink.shape[1], x1)) for x0, _, x1, _ in boxes]
    n_cols = sum(max(0, x1 - x0) for x0, x1 in spans)
    expected = sorted({y for _, y0, _, y1 in boxes for y in (y0, y1 - 1)})
    if n_cols == 0:
        return _lines(np.full(ink.shape[0], np.nan), expected, search, min_fill, halo)
    # the share of the boxes' columns inked in each row (ink[:, columns].mean(1) bit for bit, without the copy)
    filled = sum(np.count_nonzero(ink[:, x0:x1], axis=1) for x0, x1 in spans if x1 > x0)
    return _lines(filled / n_cols, expected, search, min_fill, halo)


def _column_lines(ink: np.ndarray, box: Box, search: int, min_fill: float, halo: int,
                  profile: np.ndarray | None = None) -> tuple[list[int], list[int]]:
    """Columns (band, core) of the box's vertical edges; ``profile`` is the fill of the box's rows if known."""
    x0, y0, x1, y1 = box
    if profile is None:
        profile = ink[max(0, y0):max(0, y1)].mean(0)
    return _lines(profile, (x0, x1 - 1), search, min_fill, halo)


def longest_run(indices: Sequence[int]) -> int:
    """Length of the longest run of consecutive integers in sorted ``indices`` (a line's thickness)."""
    best = run = 0
    previous = None
    for value in indices:
        run = run + 1 if previous is not None and value == previous + 1 else 1
        if run > best:
            best = run
        previous = value
    return best


@dataclass(frozen=True)
class LineMasks:
    """Where the printed box lines are: ``horizontal`` and ``vertical`` bands (the whole line with its blurred
    edges and halo, paper pixels too, so that ink lying on them can be told apart), ``core`` (the lines proper)
    and the thickest band (px)."""

    horizontal: np.ndarray
    vertical: np.ndarray
    core: np.ndarray
    thickness: int


def line_masks(ink: np.ndarray, boxes: Sequence[Box], search: int, min_fill: float, halo: int = 0) -> LineMasks:
    """The printed horizontal and vertical box lines found in the boolean ``ink`` (see :class:`LineMasks`).

    The boxes of a field share their rows, so each distinct row range's column profile is measured once, and only
    over the columns the boxes' edge searches look at (a column's fill does not depend on its neighbours).
    """
    horizontal, vertical, core = np.zeros_like(ink), np.zeros_like(ink), np.zeros_like(ink)
    rows, core_rows = _row_lines(ink, boxes, search, min_fill, halo)
    thickness = longest_run(rows)
    spans = np.zeros(ink.shape[1], bool)  # the columns of every box with its search margin
    for x0, _, x1, _ in boxes:
        spans[max(0, x0 - search):x1 + search] = True
    horizontal[rows] = spans  # the masks start empty: same as setting each box's span of these rows
    core[core_rows] = spans
    lo = max(0, min(b[0] for b in boxes) - search)
    hi = min(ink.shape[1], max(b[2] for b in boxes) + search)
    profiles: dict[tuple[int, int], np.ndarray] = {}
    for x0, y0, x1, y1 in boxes:
        key = (max(0, y0), max(0, y1))
        if key not in profiles:
            profile = np.zeros(ink.shape[1])
            profile[lo:hi] = ink[key[0]:key[1], lo:hi].mean(0)
            profiles[key] = profile
        cols, core_cols = _column_lines(ink, (x0, y0, x1, y1), search, min_fill, halo, profiles[key])
        vertical[max(0, y0 - search):y1 + search, cols] = True
        core[max(0, y0 - search):y1 + search, core_cols] = True
        thickness = max(thickness, longest_run(cols))
    return LineMasks(horizontal, vertical, core, thickness)


def _bridge(clean: np.ndarray, ink: np.ndarray, band: np.ndarray, length: int, vertical: bool) -> np.ndarray:
    """Ink pixels of ``band`` that a closing of ``clean`` along the stroke direction fills in."""
    kernel = np.ones((length, 1) if vertical else (1, length), np.uint8)
    closed = cv2.morphologyEx(clean.astype(np.uint8), cv2.MORPH_CLOSE, kernel).astype(bool)
    return closed & band & ink


def _spill(clean: np.ndarray, allowed: np.ndarray, steps: int, vertical: bool) -> np.ndarray:
    """Pixels of ``allowed`` reached from ``clean`` by at most ``steps`` moves along rows (``vertical=False``) or
    columns: a stroke's ink reaching into a band straight across it, the line's core excluded from ``allowed``."""
    out = np.zeros(allowed.shape, bool)
    rows, cols = np.flatnonzero(allowed.any(1)), np.flatnonzero(allowed.any(0))
    if rows.size == 0:
        return out
    # Only pixels of ``allowed`` are ever added, each next to (along the kernel) one reached before, so the
    # growth stays in the bounding box of ``allowed`` widened by one pixel along the kernel: worked there, exactly.
    y0, y1, x0, x1 = rows[0], rows[-1] + 1, cols[0], cols[-1] + 1
    if vertical:
        y0, y1 = max(0, y0 - 1), min(allowed.shape[0], y1 + 1)
    else:
        x0, x1 = max(0, x0 - 1), min(allowed.shape[1], x1 + 1)
    kernel = np.ones((3, 1) if vertical else (1, 3), np.uint8)
    reached = clean[y0:y1, x0:x1].astype(np.uint8)
    allowed = allowed[y0:y1, x0:x1].astype(np.uint8)
    for _ in range(steps):
        grown = cv2.dilate(reached, kernel) & (allowed | reached)
        if np.array_equal(grown, reached):
            break
        reached = grown
    out[y0:y1, x0:x1] = reached.astype(bool) & allowed.astype(bool)
    return out


def remove_lines(ink: np.ndarray, boxes: Sequence[Box], search: int, min_fill: float,
                 halo: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Remove printed box lines from the boolean ``ink`` image, keeping strokes that cross them.

    Args:
        ink: boolean ink mask of a field image.
        boxes: the field's boxes ``(x0, y0, x1, y1)`` in that image's pixels, as the template draws them.
        search: how far (px) from its template position a line may be found.
        min_fill: fraction of a box edge that must be inked for a row/column to be a printed line.
        halo: rows/columns either side of each line's template position that are line whatever their fill.

    Returns:
        The cleaned ink mask, the mask of removed line pixels, and the line bands (where lines were found).
    """
    lines = line_masks(ink, boxes, search, min_fill, halo)
    length = lines.thickness + BRIDGE_SLACK
    # The line masks are empty beyond ``search`` of the boxes, and a closing by ``length`` changes nothing farther
    # than twice its length from them; outside that window nothing is removed or restored (a count field's area
    # beside the boxes, most of its image), so the work is done on the window alone, with the same result.
    win = _window(ink.shape, boxes, search + 2 * length)
    ink_w, horizontal, vertical = ink[win], lines.horizontal[win], lines.vertical[win]
    band_w = horizontal | vertical
    clean_w = ink_w & ~band_w
    # A stroke crossing a horizontal line is rejoined vertically, one crossing a vertical line horizontally.
    crossing = (_bridge(clean_w, ink_w, horizontal, length, vertical=True)
                | _bridge(clean_w, ink_w, vertical, length, vertical=False))
    # A stroke beside a line keeps what spills into the band, straight across it and short of the line itself.
    beside = ink_w & ~lines.core[win]
    spill = (_spill(clean_w, beside & horizontal & ~vertical, lines.thickness, vertical=True)
             | _spill(clean_w, beside & vertical & ~horizontal, lines.thickness, vertical=False))
    clean_w |= crossing | spill
    clean, removed, band = ink.copy(), np.zeros_like(ink), np.zeros_like(ink)
    clean[win], removed[win], band[win] = clean_w, ink_w & ~clean_w, band_w
    return clean, removed, band


def _window(shape: tuple[int, ...], boxes: Sequence[Box], margin: int) -> tuple[slice, slice]:
    """The boxes' bounding box widened by ``margin`` px, clipped to an image of ``shape``."""
    return (slice(max(0, min(b[1] for b in boxes) - margin), min(shape[0], max(b[3] for b in boxes) + margin)),
            slice(max(0, min(b[0] for b in boxes) - margin), min(shape[1], max(b[2] for b in boxes) + margin)))


def strokes_on_lines(dark: np.ndarray, removed: np.ndarray, clean: np.ndarray, boxes: Sequence[Box], search: int,
                     threshold: float) -> np.ndarray:
    """Pixels of ``removed`` (taken out as printed line) that are darker than the line itself there by more than
    ``threshold``: a stroke lying on a line's blurred edge.

    A printed line is the same all along a box edge, so its darkness profile across the edge is the median, along
    the edge, of each column (vertical edges: along the box's rows) or row (horizontal edges: along the boxes'
    columns) within ``search`` of where the template draws it, clear of the crossing edges (a corner is line both
    ways); a pen stroke adds to that profile where it runs. Where the line is print black nothing can be darker,
    so only its edges give strokes back; a crossing stroke is rejoined by :func:`remove_lines` anyway. Only the
    edges of boxes where removed ink touches ``clean`` ink (what is left of the writing) are looked at: a stroke
    on an edge runs on from the digit's other strokes (the sides of a 0, the bar of a 7). Boxes on the same rows
    are measured together (the median of each column is its own), one call per row of boxes.
    """
    out = np.zeros_like(removed)
    touching = removed & cv2.dilate(clean.view(np.uint8), np.ones((3, 3), np.uint8)).astype(bool)
    if not touching.any():
        return out
    height, width = dark.shape
    walls: dict[tuple[int, int], list[np.ndarray]] = {}
    edges: dict[int, list[np.ndarray]] = {}
    for x0, y0, x1, y1 in boxes:
        if not touching[max(0, y0 - search):max(0, y1 + search), max(0, x0 - search):max(0, x1 + search)].any():
            continue
        inner_rows = (max(0, y0 + search + 1), min(height, y1 - 1 - search))
        walls.setdefault(inner_rows, []).extend(
            np.arange(max(0, x - search), min(width, x + search + 1)) for x in (x0, x1 - 1))
        inner_cols = np.arange(max(0, x0 + search + 1), min(width, x1 - 1 - search))
        for y in (y0, y1 - 1):
            edges.setdefault(y, []).append(inner_cols)
    for (top, bottom), cols in walls.items():
        columns = np.unique(np.concatenate(cols))
        if bottom > top and columns.size:
            out[top:bottom, columns] |= _above_profile(dark[top:bottom, columns], removed[top:bottom, columns],
                                                       threshold, axis=0)
    for y, cols in edges.items():
        columns = np.unique(np.concatenate(cols))
        top, bottom = max(0, y - search), min(height, y + search + 1)
        if bottom > top and columns.size:
            out[top:bottom, columns] |= _above_profile(dark[top:bottom, columns], removed[top:bottom, columns],
                                                       threshold, axis=1)
    return out


def _above_profile(dark: np.ndarray, removed: np.ndarray, threshold: float, axis: int) -> np.ndarray:
    """``removed`` pixels darker by more than ``threshold`` than the median of their row/column along ``axis``."""
    # the median is at least the least value: where nothing stands that far above the least, nothing stands that
    # far above the median either (safe to skip; most edges hold no stroke, and the least is cheap)
    if not (removed & (dark - dark.min(axis=axis, keepdims=True) > threshold)).any():
        return np.zeros_like(removed)
    profile = row_medians(dark.T if axis == 0 else dark)
    return removed & (dark - (profile[None, :] if axis == 0 else profile[:, None]) > threshold)
