"""Hand-made features of one count field's image for the visible-alteration detector.

The reader writes each count field as a grey image registered onto the template: the three digit boxes with a
margin, extended to the right over the area where a crossed-out number's replacement is written. The features
describe what any alteration leaves on paper, whoever made it and however it was drawn (after Cantu 2019), and
each one is measured **inside one box** (or over the field's own paper), never against the sheet's other fields
or at a fixed position in the image: an honest writer whose digits differ in stroke weight or pressure from box to
box must not look altered, and a detector that learned where our generator puts its traces would not generalise.

* two layers of writing in one box (overwriting): the stroke width and the ink darkness along the strokes' centre
  lines spread wide or split in two, a lighter layer of ink under a darker one, more stroke ends and junctions,
  enclosed holes and pieces than one digit has, a longer stroke skeleton;
* erasing: faint grey remains, paper darker than the field's own paper (a smudge) or its texture disturbed;
* correction fluid: flat patches brighter than the paper, covering the printed box outline;
* scratching out or hatching: ink density far above a digit's, many parallel strokes (a high coherence of the
  stroke orientations over the box);
* crossing out: a long straight stroke through the boxes (level or slanted), ink in the gaps between the boxes
  and above or below them, and a new number written beside them.

The per-box measures are summarised over the field's boxes by their maximum and their mean, so no feature says
which box it came from.

What honestly varies from writer to writer and scan to scan (pen colour and pressure, pencil, ink bleed, toner
banding, shadows) must not look like a trace, so the darkness-based measures are **relative to the box's own
writing**: a box's ink is what is darker than a share (:data:`INK_SHARE`) of its darkest writing (a light pencil or
blue pen is still ink, not "faint remains"), faint grey is faint against that writing and lies away from the strokes'
own soft edges (a halo as wide as the box's median stroke), the ink tone along the stroke centre lines is measured
as a share of the box's darkest centre-line ink, and darkness is measured against the paper around each pixel
(:func:`local_darkness`), so toner bands and shadows running across the field are paper, not smudge or remains.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

from pipeline.config import MAX_IMAGE_PIXELS
from pipeline.errors import InputFileError
from pipeline.forms import load_template
from pipeline.forms.template import Field

#: Version of how the features are computed, recorded with a trained detector and checked when one is loaded: a
#: change in a feature's computation that keeps its name bumps it, so a detector trained on the old values is not
#: fed the new ones. 1: until 2026-12-07 17:00 (``detector.json`` without the key); 2: printed box lines trimmed
#: out of each box's inside (:func:`clear_of_outline`).
FEATURES_VERSION = 2
#: Ink darkness levels (0 paper, 1 the page's darkest print): stroke ink, and faint grey remains.
INK = 0.5
GREY = (0.08, 0.35)
#: A box's ink is darker than this share of its own darkest writing (its :data:`WRITING_QUANTILE` darkness), but
#: never needs to be darker than :data:`INK` nor may be lighter than :data:`INK_FLOOR` (an empty box's paper noise).
INK_SHARE = 0.5
INK_FLOOR = 0.12
WRITING_QUANTILE = 0.99
#: Faint grey in a box counts only below this share of the darkness of the box's own writing (its stroke centre
#: lines' 90th percentile) as well as below ``GREY[1]``.
FAINT_SHARE = 0.5
#: Percentile of the field's grey levels taken as paper white, and the smallest paper-to-ink contrast assumed.
PAPER_PERCENTILE = 90
BLACK_PERCENTILE = 0.5
MIN_CONTRAST = 40.0
#: Length (box heights) of the row and column closings that give the local paper a stroke's darkness is measured
#: against: longer than a digit is wide or tall.
LOCAL_PAPER = 1.2
#: Smallest half-width (pixels) of the halo around a box's strokes left out of its faint grey and its paper.
HALO_MIN = 1
#: A pixel is "flat" when the grey-level standard deviation of its 5x5 neighbourhood is below this (fluid).
FLAT_STD = 1.2
FLAT_WINDOW = 5
#: Brighter than paper by this many grey levels (fluid is whiter than the page).
BRIGHT_DELTA = 6.0
#: Rows (fractions of the height) inside the boxes, clear of their printed top and bottom lines.
MIDDLE_BAND = (0.3, 0.7)
#: Where the comb ends and the area beside it begins, and where that area ends (a crossed-out number's
#: replacement is written next to the comb; stamps, signatures and the page edge lie further right), as
#: fractions of the field image's width.
BESIDE_FROM = 0.45
BESIDE_TO = 0.9
#: Smallest ink component or enclosed hole counted, as a fraction of the box height squared.
MIN_COMPONENT = 0.01
MIN_HOLE = 0.004
#: Fraction of a box's width and height left out at its edges, so the printed outline is not counted as ink.
BOX_INSET = 0.14
#: An edge row or column of a box's inside is printed outline when this share of it is darker than ``GREY[0]``;
#: at most this fraction of the box's height (rows) or width (columns) is trimmed a side for it.
OUTLINE_FILL = 0.9
MAX_OUTLINE_TRIM = 0.1
#: A column is a printed vertical box line when this fraction of the box height is ink.
LINE_FILL = 0.7
#: Printed vertical lines are taken as found when each box's two lie within this fraction of its template width.
LINE_TOLERANCE = 0.15
#: Half-width (fraction of the box height) of the band searched for a printed box line around its expected place.
LINE_BAND = 0.05
#: Lighting flattening: the background is estimated at 1/BACKGROUND_SCALE resolution with a maximum filter
#: this fraction of the field image's height across (about half a box: wider than any stroke).
BACKGROUND_SCALE = 4
BACKGROUND_WINDOW = 0.35
#: Grey levels of an 8-bit field image.
GREY_LEVELS = 256
#: A stroke centre line pixel is "lighter" (a second, fainter layer) below this fraction of the box's darkest
#: centre-line ink (its 90th percentile).
LIGHT_LAYER = 0.65
#: Straight-stroke probes: lengths (fractions of a box width) of the level one and of the slanted ones (long enough
#: to cross a gap between boxes, which no honest digit does) and the slants (degrees) of the line kernels.
STRAIGHT_LENGTH = 1.3
SLANT_LENGTH = 2.0
STRAIGHT_ANGLES = (-20.0, 20.0)
#: Smallest paper texture (grey levels) a box's paper is compared with, so clean scans do not divide by ~0.
MIN_TEXTURE = 0.5
MAX_TEXTURE = 10.0
#: Straight-stroke probes shorter than twice this (pixels) run at full resolution.
MIN_PROBE = 12
#: Most thinning passes of the skeleton (a stroke this many pixels thick is thinned completely).
MAX_THINNING = 40
#: Neighbourhood of the ridge test (a pixel at least as far from paper as its 8 neighbours).
_RIDGE_KERNEL = np.ones((3, 3), np.uint8)
#: Bit of each 8-neighbour in a neighbourhood code: N, NE, E, SE, S, SW, W, NW (clockwise from north).
_NEIGHBOUR_BITS = np.array([[128, 1, 2], [64, 0, 4], [32, 16, 8]], np.float32)
SCALARS = ("ink", "flat", "beside_ink", "beside_components", "strike_run", "strike_long", "slant_long", "gutter_ink",
           "outside_ink", "paper_std")
BOX_MEASURES = ("ink", "grey", "components", "holes", "endpoints", "junctions", "skeleton", "stroke",
                "stroke_cv", "stroke_spread", "dark_std", "dark_spread", "light_layer", "coherence",
                "paper_drop", "paper_texture", "flat", "bright", "line_gap")
BOX_AGGREGATES = ("max", "mean")
#: Length (fraction of the field image's width) of the horizontal strokes taken as printed lines of a comb
#: without a replacement area (:func:`long_rows`).
LONG_ROW = 0.4
#: Two box edges of a layout closer than this fraction of the narrowest box are one printed wall (a comb whose
#: boxes share their walls).
SHARED_WALL = 0.01


@dataclass(frozen=True)
class FieldLayout:
    """Where a count field's boxes lie, in its template's units (millimetres): each box's left edge (from the first
    box's) and width, and the box height; ``beside``: the field image extends right of the boxes over the area where
    a crossed-out number's replacement is written (the acta). A field without it (a comb filling a table column)
    has no replacement area: its image is the comb with a margin, and table rules may lie in that margin."""

    boxes: tuple[tuple[float, float], ...]
    height: float
    beside: bool = True

    @classmethod
    def of(cls, field: Field) -> FieldLayout:
        """The layout of a template's count field."""
        first = field.boxes[0]
        return cls(tuple((b.x - first.x, b.w) for b in field.boxes), float(first.h), bool(field.beside))

    @property
    def comb_to(self) -> float:
        """Where the comb's side of the field image ends, as a fraction of its width."""
        return BESIDE_FROM if self.beside else 1.0

    @property
    def edges(self) -> tuple[tuple[float, ...], tuple[tuple[int, int], ...]]:
        """The printed vertical walls (template units, from the first box's left edge, walls shared by neighbouring
        boxes counted once) and each box's (left, right) wall index."""
        tol = SHARED_WALL * min(w for _, w in self.boxes)
        walls: list[float] = []
        for x in sorted(e for a, w in self.boxes for e in (a, a + w)):
            if not walls or x - walls[-1] > tol:
                walls.append(x)
        index = [int(np.argmin([abs(w - x) for w in walls])) for a, w in self.boxes for x in (a, a + w)]
        return tuple(walls), tuple(zip(index[::2], index[1::2], strict=True))

    def to_json(self) -> dict:
        """The layout as plain JSON (``detector.json``)."""
        return {"boxes": [list(b) for b in self.boxes], "height": self.height, "beside": self.beside}

    @classmethod
    def from_json(cls, raw: dict) -> FieldLayout:
        """The layout :meth:`to_json` wrote."""
        return cls(tuple((float(a), float(w)) for a, w in raw["boxes"]), float(raw["height"]), bool(raw["beside"]))


#: The acta's count field layout (every count field of the acta has it): the features of a detector that records
#: no layout (every detector saved before layouts were recorded was trained on the acta).
ACTA_LAYOUT = FieldLayout.of(load_template().fields_of_kind("count")[0])
N_BOXES = len(ACTA_LAYOUT.boxes)


def feature_names() -> list[str]:
    """Names of the features :func:`field_features` returns, in order."""
    return list(SCALARS) + [f"box_{m}_{agg}" for m in BOX_MEASURES for agg in BOX_AGGREGATES]


def read_field_image(path: Path) -> np.ndarray:
    """Greyscale uint8 image of a field, refusing files larger than ``MAX_IMAGE_PIXELS`` before decoding."""
    try:
        with Image.open(path) as img:
            if img.width * img.height > MAX_IMAGE_PIXELS:
                raise InputFileError(f"{path}: {img.width}x{img.height} pixels is more than {MAX_IMAGE_PIXELS}")
            grey = np.asarray(img if img.mode == "L" else img.convert("L"))
    except (OSError, ValueError, Image.DecompressionBombError) as exc:
        raise InputFileError(f"{path}: cannot read field image ({exc})") from exc
    if min(grey.shape) < 8:
        raise InputFileError(f"{path}: field image of {grey.shape[1]}x{grey.shape[0]} pixels is too small")
    return grey


def grey_histogram(grey: np.ndarray) -> np.ndarray:
    """Pixel count of each of the 256 grey levels of a uint8 image."""
    return np.bincount(grey.ravel(), minlength=GREY_LEVELS)


def sorted_percentile(values: np.ndarray, counts: np.ndarray, q: float) -> float:
    """``np.percentile(sample, q)`` (linear method) of the sample holding ``counts[i]`` copies of ``values[i]``.

    ``values`` must be ascending and float32, as the pixel quantities are. The arithmetic is NumPy's own (virtual
    index ``(n - 1) q / 100``, float32 interpolation between its two neighbours), so the result is equal to the
    last bit while the sample is neither expanded nor partitioned.
    """
    cum = np.cumsum(counts)
    n = int(cum[-1])
    virtual = (n - 1) * (q / 100)
    if virtual >= n - 1:
        return float(values[np.searchsorted(cum, n - 1, side="right")])
    below = int(np.floor(virtual))
    t = virtual - below
    a, b = values[np.searchsorted(cum, [below, below + 1], side="right")]
    step = b - a
    return float(b - step * (1 - t) if t >= 0.5 else a + step * t)


def darkness_levels(hist: np.ndarray) -> tuple[np.ndarray, float, float]:
    """Ink darkness (0 paper .. 1 darkest print) of each grey level against the field's own paper white (the
    :data:`PAPER_PERCENTILE` of its grey levels); also that paper level and the contrast used.
    ``levels[grey]`` is the darkness image."""
    g = np.arange(GREY_LEVELS, dtype=np.float32)
    paper = sorted_percentile(g, hist, PAPER_PERCENTILE)
    black = sorted_percentile(g, hist, BLACK_PERCENTILE)
    contrast = max(paper - black, MIN_CONTRAST)
    return np.clip((paper - g) / contrast, 0.0, 1.0), paper, contrast


def local_std(grey: np.ndarray) -> np.ndarray:
    """Grey-level standard deviation of each pixel's :data:`FLAT_WINDOW` square neighbourhood."""
    g = grey.astype(np.float32)
    mean = cv2.blur(g, (FLAT_WINDOW, FLAT_WINDOW))
    var = cv2.blur(g * g, (FLAT_WINDOW, FLAT_WINDOW)) - mean * mean
    return np.sqrt(np.clip(var, 0, None))


def label_type(shape: tuple[int, int]) -> int:
    """OpenCV label type for an image of ``shape``: 16-bit (about three times faster to label) when even the
    most fragmented 8-connected mask cannot run out of 16-bit labels, 32-bit otherwise."""
    most_labels = ((shape[0] + 1) // 2) * ((shape[1] + 1) // 2) + 1
    return cv2.CV_16U if most_labels <= np.iinfo(np.uint16).max else cv2.CV_32S


def _components(mask: np.ndarray, min_area: float) -> int:
    _, _, stats, _ = cv2.connectedComponentsWithStats(mask.view(np.uint8), connectivity=8,
                                                      ltype=label_type(mask.shape))
    return int((stats[1:, cv2.CC_STAT_AREA] >= min_area).sum())


def longest_run(mask: np.ndarray) -> int:
    """Longest horizontal run of True in any row of ``mask``.

    Each row is padded with False at both ends, so in the flattened row-wise differences every run's start (+1)
    is followed by its own end (-1) in the same row, and a run's length is the distance between the two.
    """
    padded = np.zeros((mask.shape[0], mask.shape[1] + 2), np.int8)
    padded[:, 1:-1] = mask
    edges = np.diff(padded, axis=1).ravel()
    starts, ends = np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)
    return int((ends - starts).max()) if starts.size else 0


def line_centres(profile: np.ndarray, fill: float) -> list[float]:
    """Centres of the runs of ``profile`` (ink fraction per row or column) at or above ``fill``."""
    padded = np.concatenate([[False], profile >= fill, [False]]).astype(np.int8)
    edges = np.diff(padded)
    starts, ends = np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)
    return [(a + b - 1) / 2 for a, b in zip(starts, ends, strict=True)]


def comb_rows(rows: np.ndarray) -> tuple[int, int]:
    """The top and bottom box lines from the ink fraction of each row: the inkiest row of each half (the centre of
    the rows at least :data:`LINE_FILL` as inky as the inkiest)."""
    half = len(rows) // 2
    top_runs = line_centres(rows[:half], LINE_FILL * rows[:half].max()) if rows[:half].max() > 0 else []
    bottom_runs = line_centres(rows[half:], LINE_FILL * rows[half:].max()) if rows[half:].max() > 0 else []
    top = round(max(top_runs, key=lambda c: rows[round(c)])) if top_runs else int(np.argmax(rows[:half]))
    bottom = half + (round(max(bottom_runs, key=lambda c: rows[half + round(c)])) if bottom_runs
                     else int(np.argmax(rows[half:])))
    return top, bottom


def outer_rows(ink: np.ndarray) -> tuple[int, int]:
    """The top and bottom lines of a comb without a replacement area (its image is the comb with a narrow margin):
    the outermost horizontal strokes at least :data:`LONG_ROW` of the image's width long (three rows thick, so a
    line a little off level stays whole) in each half, so neither a filler dash or a digit's bar nor a number
    struck through is taken for them; a half without one falls back to :func:`comb_rows`."""
    u8 = cv2.dilate(ink.view(np.uint8), np.ones((3, 1), np.uint8))
    lines = cv2.morphologyEx(u8, cv2.MORPH_OPEN, np.ones((1, max(3, round(ink.shape[1] * LONG_ROW))), np.uint8))
    long = np.flatnonzero(np.count_nonzero(lines, axis=1))
    top, bottom = comb_rows(np.count_nonzero(ink, axis=1) / max(ink.shape[1], 1))
    half = ink.shape[0] // 2
    upper, lower = long[long < half], long[long >= half]
    if upper.size:  # the centre of the first run of long-line rows
        run = upper[: int(np.argmax(np.diff(np.append(upper, upper[-1] + 2)) > 1)) + 1]
        top = round(float(run.mean()))
    if lower.size:
        rev = lower[::-1]
        run = rev[: int(np.argmax(np.diff(np.append(rev, rev[-1] - 2)) < -1)) + 1]
        bottom = round(float(run.mean()))
    return top, bottom


def fitted_walls(verticals: list[float], layout: FieldLayout, scale: float, top: int, bottom: int
                 ) -> list[tuple[int, int, int, int]] | None:
    """The boxes on the printed vertical lines found (``verticals``, pixels) where every box's walls are among them
    with its width within :data:`LINE_TOLERANCE` at ``scale``: the first lines found (with a replacement area, as
    the acta always did) or, without one, the first run of them that fits (table rules may lie in the margin)."""
    walls, index = layout.edges
    runs = len(verticals) - len(walls) + 1
    for start in range(runs if not layout.beside else min(runs, 1)):
        found = verticals[start: start + len(walls)]
        width = np.array([found[r] - found[q] for q, r in index])
        want = np.array([bw * scale for _, bw in layout.boxes])
        if np.all(np.abs(width - want) < np.array([LINE_TOLERANCE * bw * scale for _, bw in layout.boxes])):
            return [(round(found[q]), top, round(found[r]), bottom) for q, r in index]
    return None


def placed_by_size(shape: tuple[int, int], layout: FieldLayout) -> list[tuple[int, int, int, int]] | None:
    """The boxes of a comb without a replacement area placed from its image's size alone: the image is the comb
    with one margin all round, so its width and height give the scale and the margin. None where they do not
    (a comb as wide as tall, an image clipped at the page's edge)."""
    h, w = shape
    comb_w = max(a + bw for a, bw in layout.boxes)
    if comb_w - layout.height <= 0:
        return None
    scale = (w - h) / (comb_w - layout.height)
    margin = (w / scale - comb_w) / 2 if scale > 0 else -1.0
    if not 0 <= margin <= layout.height / 2:
        return None
    top, bottom = round(margin * scale), round((margin + layout.height) * scale)
    return [(round((margin + a) * scale), top, round((margin + a + bw) * scale), bottom) for a, bw in layout.boxes]


def locate_boxes(ink: np.ndarray, layout: FieldLayout = ACTA_LAYOUT) -> list[tuple[int, int, int, int]]:
    """The digit boxes ``(x0, y0, x1, y1)`` in the field image (centres of their printed lines), from the printed
    lines and the field's ``layout``.

    The top and bottom box lines are the inkiest rows of each half of the comb's side of the image (the centre of
    the rows at least :data:`LINE_FILL` as inky as the inkiest); their distance is the box height, which gives the
    scale. The vertical lines are the columns inked over :data:`LINE_FILL` of that height: where every box's walls
    are found (the first of them; for a comb without a replacement area, whose margin may hold table rules, the
    first run of them that fits) they are used as they are, otherwise the first one places the layout.
    """
    h, w = ink.shape
    side = int(w * layout.comb_to)
    if layout.beside:
        rows = np.count_nonzero(ink[:, :side], axis=1) / max(side, 1)
        top, bottom = comb_rows(rows)
    else:
        placed = placed_by_size(ink.shape, layout)
        if placed is not None:
            verticals = line_centres(np.count_nonzero(ink[placed[0][1]:placed[0][3] + 1, :], axis=0)
                                     / (placed[0][3] + 1 - placed[0][1]), LINE_FILL)
            return fitted_walls(verticals, layout, (placed[0][3] - placed[0][1]) / layout.height,
                                placed[0][1], placed[0][3]) or placed
        top, bottom = outer_rows(ink)
    scale = max(bottom - top, 1) / layout.height
    verticals = line_centres(np.count_nonzero(ink[top:bottom + 1, :], axis=0) / (bottom + 1 - top), LINE_FILL)
    found = fitted_walls(verticals, layout, scale, top, bottom)
    if found is not None:
        return found
    left = verticals[0] if verticals else 0.0
    return [(round(left + a * scale), top, round(left + (a + bw) * scale), bottom) for a, bw in layout.boxes]


def _thinning_tables() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Per 8-neighbourhood code: deletable in Zhang-Suen's first and second sub-pass, the number of set
    neighbours, and the crossing number (paper-to-ink transitions going once round the pixel)."""
    codes = np.arange(256)
    p = [(codes >> k) & 1 for k in range(8)]  # P2 (N) .. P9 (NW), clockwise
    n = sum(p)
    crossings = sum((p[k] == 0) & (p[(k + 1) % 8] == 1) for k in range(8))
    p2, _, p4, _, p6, _, p8, _ = p
    base = (n >= 2) & (n <= 6) & (crossings == 1)
    first = base & (p2 * p4 * p6 == 0) & (p4 * p6 * p8 == 0)
    second = base & (p2 * p4 * p8 == 0) & (p2 * p6 * p8 == 0)
    return first, second, n.astype(np.uint8), crossings.astype(np.uint8)


_DELETE_FIRST, _DELETE_SECOND, _NEIGHBOURS, _CROSSINGS = _thinning_tables()


def neighbour_codes(mask: np.ndarray) -> np.ndarray:
    """The 8-neighbourhood code (bits as in :data:`_NEIGHBOUR_BITS`) of every pixel of a boolean mask."""
    return cv2.filter2D(mask.view(np.uint8), -1, _NEIGHBOUR_BITS, borderType=cv2.BORDER_CONSTANT)


def skeleton(mask: np.ndarray) -> np.ndarray:
    """One-pixel-wide centre lines of the ink in ``mask`` (Zhang-Suen thinning through lookup tables)."""
    skel = mask.copy()
    for _ in range(MAX_THINNING):
        changed = False
        for table in (_DELETE_FIRST, _DELETE_SECOND):
            delete = skel & table[neighbour_codes(skel)]
            if delete.any():
                skel &= ~delete
                changed = True
        if not changed:
            break
    return skel


def skeleton_points(skel: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Stroke ends (one neighbour) and junctions (three or more branches) of a skeleton, as masks."""
    codes = neighbour_codes(skel)
    return skel & (_NEIGHBOURS[codes] == 1), skel & (_CROSSINGS[codes] >= 3)


def inner_box(box: tuple[int, int, int, int], shape: tuple[int, int], darkness: np.ndarray | None = None
              ) -> tuple[slice, slice]:
    """Row and column slices of a box with its printed outline left out (:data:`BOX_INSET`); with ``darkness``
    (the field's darkness image) also any outline still inside them (:func:`clear_of_outline`)."""
    x0, y0, x1, y1 = box
    dx, dy = round((x1 - x0) * BOX_INSET), round((y1 - y0) * BOX_INSET)
    rows = slice(min(max(y0 + dy, 0), shape[0] - 1), max(min(y1 - dy, shape[0]), 1))
    cols = slice(min(max(x0 + dx, 0), shape[1] - 1), max(min(x1 - dx, shape[1]), 1))
    if darkness is None:
        return rows, cols
    limit = (max(1, round((y1 - y0) * MAX_OUTLINE_TRIM)), max(1, round((x1 - x0) * MAX_OUTLINE_TRIM)))
    return clear_of_outline(darkness, rows, cols, limit)


def outline_lines(lines: np.ndarray, limit: int, length: int | None = None) -> int:
    """How many of ``lines`` (rows of an array, the box's edge first) are, one after another from the first, printed
    outline: :data:`OUTLINE_FILL` of each darker than ``GREY[0]``. At most ``limit``, and two of the box's
    ``length`` lines (default: all of ``lines``) are always kept."""
    n, most = 0, min(limit, (len(lines) if length is None else length) - 2)
    while n < most and float(np.mean(lines[n] > GREY[0])) >= OUTLINE_FILL:
        n += 1
    return n


def clear_of_outline(darkness: np.ndarray, rows: slice, cols: slice, limit: tuple[int, int]
                     ) -> tuple[slice, slice]:
    """``rows, cols`` moved in, side by side, past every edge row or column that is printed outline: at least
    :data:`OUTLINE_FILL` of it darker than the faint-grey floor ``GREY[0]``; at most ``limit`` (rows, columns)
    pixels a side.

    Why: ink bleed thickens the printed box lines and a box placed a pixel or two off (perspective, a curled page)
    leaves one inside the inset. Left in, the line is the box's darkest "writing": the box's ink threshold rises
    over a light digit, which then counts as grey remains on darkened paper, an eraser's trace.
    """
    top, bottom, left, right = rows.start, rows.stop, cols.start, cols.stop
    columns = darkness[top:bottom, left:right].T
    left += outline_lines(columns, limit[1])
    right -= outline_lines(columns[::-1], limit[1], columns.shape[0] - (left - cols.start))
    lines = darkness[top:bottom, left:right]
    top += outline_lines(lines, limit[0])
    bottom -= outline_lines(lines[::-1], limit[0], lines.shape[0] - (top - rows.start))
    return slice(top, bottom), slice(left, right)


def outline_gap(ink: np.ndarray, box: tuple[int, int, int, int]) -> float:
    """Fraction of a box's printed outline (top, bottom, left, right) that shows no ink (covered by fluid)."""
    h, w = ink.shape
    x0, y0, x1, y1 = box
    r = max(1, round((y1 - y0) * LINE_BAND))
    present = []
    for y in (y0, y1):
        band = ink[max(y - r, 0): min(y + r + 1, h), max(x0, 0): min(x1, w)]
        if band.size:
            present.append(band.any(axis=0))
    for x in (x0, x1):
        band = ink[max(y0, 0): min(y1, h), max(x - r, 0): min(x + r + 1, w)]
        if band.size:
            present.append(band.any(axis=1))
    return 1.0 - float(np.concatenate(present).mean()) if present else 0.0


def fraction(mask: np.ndarray) -> float:
    """Fraction of ``mask``'s pixels that are set (``mask.mean()`` to the last bit, without a float pass)."""
    return np.count_nonzero(mask) / mask.size


def quantiles(values: np.ndarray, qs: tuple[float, ...]) -> np.ndarray:
    """Quantiles ``qs`` (0-1) of a non-empty sample, linear between order statistics (``np.quantile``'s default
    method, without its per-call overhead on the few hundred values of a box)."""
    ordered = np.sort(values)
    position = np.asarray(qs) * (len(ordered) - 1)
    below = np.floor(position).astype(int)
    above = np.minimum(below + 1, len(ordered) - 1)
    return ordered[below] + (ordered[above] - ordered[below]) * (position - below)


def spread(values: np.ndarray) -> float:
    """``(p90 - p10) / median`` of positive values: how far a box's stroke widths are from one pen's."""
    p10, p50, p90 = quantiles(values, (0.1, 0.5, 0.9))
    return float((p90 - p10) / p50) if p50 > 0 else 0.0


def median_grey(values: np.ndarray) -> float:
    """Median of uint8 grey levels, from their histogram (the lower middle value for an even count)."""
    cum = np.cumsum(np.bincount(values, minlength=GREY_LEVELS))
    return float(np.searchsorted(cum, (cum[-1] + 1) // 2))


def box_stroke_measures(dist: np.ndarray, ridge: np.ndarray, dark: np.ndarray, height: int) -> np.ndarray:
    """Stroke width (relative to the box height), its coefficient of variation and spread, and the darkness along
    the strokes' centre lines (``ridge`` of the distance to paper ``dist``) as shares of its 90th percentile (the
    box's own darkest writing, so a light pen and a dark one compare): standard deviation, p90 - p10 spread and the
    share lighter than :data:`LIGHT_LAYER` of it (a second layer of ink). All inside one box; zeros when it holds
    no ink."""
    if not ridge.any():
        return np.zeros(6)
    widths = 2.0 * dist[ridge]
    tone = dark[ridge]
    low, top = quantiles(tone, (0.1, 0.9))
    if top <= 0:
        return np.array([widths.mean() / height, widths.std() / widths.mean(), spread(widths), 0.0, 0.0, 0.0])
    return np.array([widths.mean() / height, widths.std() / widths.mean(), spread(widths), tone.std() / top,
                     (top - low) / top, fraction(tone < LIGHT_LAYER * top)])


def coherence(gxx: float, gyy: float, gxy: float) -> float:
    """How much a box's strokes share one direction, from its summed gradient structure tensor: 0 no preferred
    direction, 1 all strokes parallel. Hatching is near 1 over a dense box."""
    energy = gxx + gyy
    return float(np.sqrt((gxx - gyy) ** 2 + 4 * gxy * gxy) / energy) if energy > 0 else 0.0


@dataclass(frozen=True)
class CombMaps:
    """Maps of the inked part of the comb, computed once for all its boxes: the ink inside the boxes (printed
    outlines left out), its skeleton, stroke ends and junctions, distance to paper and its ridge, the gradient
    structure tensor's products, and the centroids of ink pieces and of enclosed holes with their areas."""

    ink: np.ndarray
    skel: np.ndarray
    ends: np.ndarray
    junctions: np.ndarray
    dist: np.ndarray
    ridge: np.ndarray
    gxx: np.ndarray
    gyy: np.ndarray
    gxy: np.ndarray
    pieces: np.ndarray
    holes: np.ndarray


def blobs(mask: np.ndarray, connectivity: int, enclosed: bool) -> np.ndarray:
    """``(x, y, area)`` of the connected components of ``mask``; with ``enclosed``, only those not touching the
    image's edge (on the paper of an ink mask, with 4-connectivity: the holes the strokes enclose; a single digit
    has at most two, an 8, while strokes written over strokes or a scribble make more)."""
    _, _, stats, centroids = cv2.connectedComponentsWithStats(mask.view(np.uint8), connectivity=connectivity,
                                                              ltype=label_type(mask.shape))
    s, c = stats[1:], centroids[1:]
    keep = np.ones(len(s), bool)
    if enclosed:
        h, w = mask.shape
        keep = ((s[:, cv2.CC_STAT_LEFT] > 0) & (s[:, cv2.CC_STAT_TOP] > 0)
                & (s[:, cv2.CC_STAT_LEFT] + s[:, cv2.CC_STAT_WIDTH] < w)
                & (s[:, cv2.CC_STAT_TOP] + s[:, cv2.CC_STAT_HEIGHT] < h))
    return np.column_stack([c[keep], s[keep, cv2.CC_STAT_AREA]])


def writing_darkness(dark: np.ndarray, box: tuple[int, int, int, int],
                     inside: tuple[slice, slice] | None = None) -> float:
    """Darkness of a box's own writing: the :data:`WRITING_QUANTILE` of the darkness inside it (outline left out;
    ``inside``: its :func:`inner_box` on ``dark``, if already cut)."""
    rows, cols = inside or inner_box(box, dark.shape, dark)
    inner = dark[rows, cols]
    return float(quantiles(inner.ravel(), (WRITING_QUANTILE,))[0]) if inner.size else 0.0


def ink_threshold(writing: float) -> float:
    """Darkness above which a pixel is ink in a box whose own writing is ``writing`` dark (see :data:`INK_SHARE`)."""
    return float(np.clip(INK_SHARE * writing, INK_FLOOR, INK))


def comb_maps(ink: np.ndarray, dark: np.ndarray, boxes: list[tuple[int, int, int, int]],
              thresholds: list[float] | None = None, insides: list[tuple[slice, slice]] | None = None) -> CombMaps:
    """The :class:`CombMaps` of a field, over the smallest rectangle holding the ink inside its boxes (zeros
    elsewhere; blob coordinates are the field image's). With ``thresholds`` (one per box), a box's ink is its own
    darkness over its threshold rather than ``ink``. ``insides``: each box's :func:`inner_box` on ``dark``, if
    already cut."""
    inner = np.zeros_like(ink)
    for i, box in enumerate(boxes):
        rows, cols = insides[i] if insides else inner_box(box, ink.shape, dark)
        inner[rows, cols] = ink[rows, cols] if thresholds is None else dark[rows, cols] > thresholds[i]
    maps = {k: np.zeros_like(ink) for k in ("skel", "ends", "junctions", "ridge")}
    maps.update({k: np.zeros(ink.shape, np.float32) for k in ("dist", "gxx", "gyy", "gxy")})
    ys, xs = np.nonzero(inner)
    if not ys.size:
        return CombMaps(inner, **maps, pieces=np.zeros((0, 3)), holes=np.zeros((0, 3)))
    y0, x0 = max(ys.min() - 2, 0), max(xs.min() - 2, 0)
    crop = (slice(y0, ys.max() + 3), slice(x0, xs.max() + 3))
    mask = inner[crop]
    maps["skel"][crop] = skeleton(mask)
    maps["ends"][crop], maps["junctions"][crop] = skeleton_points(maps["skel"][crop])
    dist = cv2.distanceTransform(mask.view(np.uint8), cv2.DIST_L2, 3)  # the crop's edge rows are paper
    maps["dist"][crop] = dist
    maps["ridge"][crop] = (dist >= cv2.dilate(dist, _RIDGE_KERNEL)) & mask
    d = dark[crop]
    gx, gy = cv2.Sobel(d, cv2.CV_32F, 1, 0, ksize=3), cv2.Sobel(d, cv2.CV_32F, 0, 1, ksize=3)
    maps["gxx"][crop], maps["gyy"][crop], maps["gxy"][crop] = gx * gx, gy * gy, gx * gy
    offset = np.array([x0, y0, 0])
    return CombMaps(inner, **maps, pieces=blobs(mask, 8, False) + offset, holes=blobs(~mask, 4, True) + offset)


def _count_in(blobs: np.ndarray, rows: slice, cols: slice, min_area: float) -> int:
    """Blobs of at least ``min_area`` pixels whose centroid lies in the rectangle ``rows`` x ``cols``."""
    x, y, a = blobs[:, 0], blobs[:, 1], blobs[:, 2]
    return int(np.count_nonzero((a >= min_area) & (x >= cols.start) & (x < cols.stop) & (y >= rows.start)
                                & (y < rows.stop)))


def stroke_halo(ink: np.ndarray, dist: np.ndarray, ridge: np.ndarray) -> np.ndarray:
    """The ink of a box widened by half its median stroke width (at least :data:`HALO_MIN` pixels): where the
    strokes' soft edges lie."""
    if not ink.any():
        return ink
    half = float(np.median(dist[ridge])) if ridge.any() else 1.0
    r = max(HALO_MIN, round(half))
    return cv2.dilate(ink.view(np.uint8), cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * r + 1, 2 * r + 1))
                      ).view(bool)


def box_measures(grey: np.ndarray, dark: np.ndarray, flat: np.ndarray, maps: CombMaps,
                 box: tuple[int, int, int, int], paper: dict, rel: np.ndarray | None = None,
                 inside: tuple[slice, slice] | None = None) -> np.ndarray:
    """:data:`BOX_MEASURES` of one box (its printed outline left out); ``paper`` holds the field's paper level,
    contrast and texture, ``maps`` the field's :func:`comb_maps`. With ``rel`` (:func:`local_darkness`) the ink,
    faint grey and paper measures use the darkness against the local paper: the paper drop is the median of it over
    the box's paper away from its strokes (an eraser's smudge, filled by the closings like a digit, is darker than
    the paper around the box; a toner band or shadow is not), the paper texture its spread against the field's;
    without it, ``dark`` and the box's paper grey against the field's paper level. ``inside``: the box's
    :func:`inner_box` on that darkness, if already cut."""
    darkness = dark if rel is None else rel
    rows, cols = inside or inner_box(box, dark.shape, darkness)
    inner, g = darkness[rows, cols], grey[rows, cols]
    height = max(box[3] - box[1], 1)
    ink = maps.ink[rows, cols]
    ridge = maps.ridge[rows, cols]
    # faint grey counts up to a share of the box's own darkest writing, so a light pen is not "erased remains"
    faint_top = min(GREY[1], FAINT_SHARE * float(quantiles(inner[ridge], (0.9,))[0])) if ridge.any() else GREY[1]
    area = height * height
    # the strokes' own soft edges (anti-aliasing, bleed, pencil grain) are neither faint remains nor paper
    near = stroke_halo(ink, maps.dist[rows, cols], ridge)
    blank = ~near & (inner < GREY[1])
    paper_dark = inner[blank] if blank.any() else np.zeros(1, np.float32)
    has_ink = ink.any()
    strokes = (box_stroke_measures(maps.dist[rows, cols], ridge, inner, height) if has_ink
               else np.zeros(6))
    return np.array([
        fraction(ink), fraction((inner > GREY[0]) & (inner < faint_top) & ~near),
        _count_in(maps.pieces, rows, cols, MIN_COMPONENT * area), _count_in(maps.holes, rows, cols, MIN_HOLE * area),
        np.count_nonzero(maps.ends[rows, cols]), np.count_nonzero(maps.junctions[rows, cols]),
        np.count_nonzero(maps.skel[rows, cols]) / height, *strokes,
        coherence(float(maps.gxx[rows, cols].sum()), float(maps.gyy[rows, cols].sum()),
                  float(maps.gxy[rows, cols].sum())) if has_ink else 0.0,
        float(np.median(paper_dark)) if rel is not None else
        (paper["level"] - median_grey(g[blank] if blank.any() else np.full(1, round(paper["level"]), np.uint8)))
        / paper["contrast"],
        float(paper_dark.std()) * paper["contrast"] / paper["texture"], fraction(flat[rows, cols]),
        fraction(g > paper["bright"]), outline_gap(dark > INK, box),
    ], dtype=np.float64)


def straight_strokes(ink: np.ndarray, length: int, angles: tuple[float, ...]) -> float:
    """Fraction of the image covered by straight ink strokes at least ``length`` pixels long at one of
    ``angles`` (degrees): a slanted line struck through the boxes."""
    best = 0.0
    u8 = ink.view(np.uint8)
    if length > 2 * MIN_PROBE:  # half resolution is plenty for a line this long, and four times cheaper
        u8 = (cv2.resize(u8, (u8.shape[1] // 2, u8.shape[0] // 2), interpolation=cv2.INTER_AREA) > 0).view(
            np.uint8)
        length //= 2
    for angle in angles:
        t = np.deg2rad(angle)
        dx, dy = length * np.cos(t) / 2, length * np.sin(t) / 2
        size = (2 * int(np.ceil(abs(dx))) + 1, 2 * int(np.ceil(abs(dy))) + 1)
        kernel = np.zeros((size[1], size[0]), np.uint8)
        cx, cy = size[0] // 2, size[1] // 2
        cv2.line(kernel, (round(cx - dx), round(cy - dy)), (round(cx + dx), round(cy + dy)), 1, 1)
        best = max(best, fraction(cv2.morphologyEx(u8, cv2.MORPH_OPEN, kernel)))
    return best


def comb_masks(shape: tuple[int, int], boxes: list[tuple[int, int, int, int]]) -> tuple[np.ndarray, np.ndarray]:
    """The gaps between neighbouring boxes (between their top and bottom lines) and the margins above and below
    the comb, with the printed lines' own band left out."""
    h, w = shape
    gutter, outside = np.zeros(shape, bool), np.zeros(shape, bool)
    y0, y1 = boxes[0][1], boxes[0][3]
    r = max(1, round((y1 - y0) * LINE_BAND))
    for (_, _, a, _), (b, _, _, _) in zip(boxes[:-1], boxes[1:], strict=True):
        gutter[max(y0 + 2 * r, 0): max(y1 - 2 * r, 0), max(a + r + 1, 0): max(b - r, 0)] = True
    x0, x1 = max(boxes[0][0] - r, 0), min(boxes[-1][2] + r + 1, w)
    outside[: max(y0 - 2 * r, 0), x0:x1] = True
    outside[min(y1 + 2 * r + 1, h):, x0:x1] = True
    return gutter, outside


def scalar_features(dark: np.ndarray, ink: np.ndarray, flat: np.ndarray, boxes: list[tuple[int, int, int, int]],
                    paper: dict, beside: bool = True) -> np.ndarray:
    """The :data:`SCALARS` of one field image (fractions of its area or width, so any resolution compares). Grey
    remains and bright paint are measured per box only: over the whole field, toner banding and shadows look
    the same. ``ink`` is the field's ink (darker than :data:`INK`). ``beside``: the image extends right of the comb
    over a replacement area (:data:`BESIDE_FROM` - :data:`BESIDE_TO` of its width); without one the whole image is
    the comb's side and the area's two measures are 0."""
    h, w = dark.shape
    split = int(w * BESIDE_FROM) if beside else w
    area = ink[:, split: max(int(w * BESIDE_TO), split + 1)] if beside else np.zeros((1, 1), bool)
    band = ink[int(h * MIDDLE_BAND[0]): int(h * MIDDLE_BAND[1]), :split]
    box_h = max(boxes[0][3] - boxes[0][1], 1)
    box_w = max(boxes[0][2] - boxes[0][0], 1)
    long_kernel = cv2.getStructuringElement(cv2.MORPH_RECT, (max(3, round(box_w * STRAIGHT_LENGTH)), 1))
    gutter, outside = comb_masks(ink.shape, boxes)
    return np.array([
        fraction(ink), fraction(flat), fraction(area), _components(area, MIN_COMPONENT * box_h * box_h),
        longest_run(band) / box_w, fraction(cv2.morphologyEx(band.view(np.uint8), cv2.MORPH_OPEN, long_kernel)),
        straight_strokes(ink[:, :split], round(box_w * SLANT_LENGTH), STRAIGHT_ANGLES),
        fraction(ink[gutter]) if gutter.any() else 0.0, fraction(ink[outside]) if outside.any() else 0.0,
        paper["texture"] / paper["contrast"],
    ], dtype=np.float64)


def paper_texture(texture: np.ndarray, paper_px: np.ndarray) -> float:
    """Typical local grey-level standard deviation of the field's paper (mean over every other row and column, each
    value capped at :data:`MAX_TEXTURE` so stroke edges do not count; at least :data:`MIN_TEXTURE`): the reference
    a box's paper texture is compared with."""
    sample = texture[::2, ::2][paper_px[::2, ::2]]
    return max(float(np.minimum(sample, MAX_TEXTURE).mean()) if sample.size else MIN_TEXTURE, MIN_TEXTURE)


def odd(n: float) -> int:
    """The odd integer at or just above ``n`` (at least 3): a filter window."""
    return max(3, int(np.ceil(n)) | 1)


def flatten_lighting(grey: np.ndarray) -> np.ndarray:
    """The field image with uneven lighting taken out: divided by its paper background and scaled back to the
    background's median, so a shadow, a fold's shade or a darker scan over the field is not read as grey remains
    or smudged paper.

    The background is the image with the ink filtered out (a maximum filter :data:`BACKGROUND_WINDOW` of the
    image height across, wider than any stroke or printed line), smoothed over twice that, computed at a quarter
    of the resolution. Changes of the paper smaller than the window (an eraser's smudge on one digit) stay.
    """
    h, w = grey.shape
    small = cv2.resize(grey, (max(w // BACKGROUND_SCALE, 1), max(h // BACKGROUND_SCALE, 1)),
                       interpolation=cv2.INTER_AREA)
    window = odd(h * BACKGROUND_WINDOW / BACKGROUND_SCALE)
    background = cv2.dilate(small, np.ones((window, window), np.uint8))
    background = cv2.blur(background, (2 * window + 1, 2 * window + 1)).astype(np.float32)
    background = cv2.resize(background, (w, h), interpolation=cv2.INTER_LINEAR)
    level = float(np.median(background))
    return np.clip(grey * (level / np.maximum(background, 1.0)) + 0.5, 0, GREY_LEVELS - 1).astype(np.uint8)


def field_features(grey: np.ndarray, layout: FieldLayout = ACTA_LAYOUT) -> np.ndarray:
    """Every feature of one field image (its lighting flattened first), in the order of :func:`feature_names`;
    ``layout``: the field's boxes and whether it has a replacement area beside them (default: the acta's)."""
    grey = flatten_lighting(grey)
    hist = grey_histogram(grey)
    levels, level, contrast = darkness_levels(hist)
    dark = levels[grey]
    texture = local_std(grey)
    paper_px = dark < GREY[0]
    flat = (texture < FLAT_STD) & paper_px
    paper = {"level": level, "contrast": contrast, "texture": paper_texture(texture, paper_px),
             "bright": int(np.floor(level + BRIGHT_DELTA))}
    boxes = locate_boxes(dark > INK, layout)
    rel = local_darkness(grey, contrast, boxes[0][3] - boxes[0][1])
    insides = [inner_box(b, rel.shape, rel) for b in boxes]  # each box's inside, cut once for all its measures
    thresholds = [ink_threshold(writing_darkness(rel, b, inside)) for b, inside in zip(boxes, insides, strict=True)]
    ink = dark > INK
    maps = comb_maps(ink, rel, boxes, thresholds, insides)
    per_box = np.array([box_measures(grey, dark, flat, maps, b, paper, rel, inside)
                        for b, inside in zip(boxes, insides, strict=True)])
    aggregates = np.column_stack([per_box.max(axis=0), per_box.mean(axis=0)]).ravel()
    return np.concatenate([scalar_features(dark, ink, flat, boxes, paper, layout.beside), aggregates])


def local_darkness(grey: np.ndarray, contrast: float, box_height: int) -> np.ndarray:
    """Darkness of each pixel against the paper around it rather than the field's paper, over ``contrast``.

    The local paper is the darker of the image's closings along rows and along columns over :data:`LOCAL_PAPER`
    box heights: each closing fills a digit (shorter than that both ways) with the paper beside it, but a toner
    band or a shadow's edge running along the rows (or columns) survives the closing along them, so it stays in
    the paper. Faint grey remains of an erased digit stay dark against it; a band does not look like them, and a
    box's ink is measured above its own paper."""
    k = odd(LOCAL_PAPER * max(box_height, 1))
    paper = np.minimum(cv2.morphologyEx(grey, cv2.MORPH_CLOSE, np.ones((1, k), np.uint8)),
                       cv2.morphologyEx(grey, cv2.MORPH_CLOSE, np.ones((k, 1), np.uint8)))
    return np.clip((paper.astype(np.float32) - grey) / np.float32(contrast), 0.0, 1.0)
