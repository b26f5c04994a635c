"""Hand-made features of one count field's image for the visible-alteration detector.

The reader writes each count field as a grey image registered onto the template: the three digit boxes with a
margin, extended to the right over the area where a crossed-out number's replacement is written. What the
features look for, after Cantu (2019):

* overwriting: more and darker ink in a box, strokes over strokes (more components, thicker strokes), and a pen
  or hand that differs from the rest of the sheet;
* erasing: faint grey remains and smudges (ink far lighter than the pen);
* correction fluid: patches smoother and brighter than the paper, covering the printed box lines;
* crossing out: a long horizontal stroke through the boxes, and a new number written beside them.

Three groups: scalars over the whole field, the same per digit box (boxes located from the printed lines and the
template's box layout), and a coarse grid of darkness, grey and flat fractions on the image resized to a fixed
size (all fields share one template geometry). :func:`sheet_context` then adds, per field, how its pen (stroke
width, ink darkness) differs from the sheet's other fields: an altering hand stands out against the sheet's own
writer better than against every writer.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pandas as pd
from PIL import Image

from pipeline.config import MAX_IMAGE_PIXELS
from pipeline.errors import InputFileError
from pipeline.forms import load_template

#: Ink darkness levels (0 paper, 1 the page's darkest print): stroke ink, heavy ink, and faint grey remains.
INK = 0.5
HEAVY = 0.85
GREY = (0.08, 0.35)
#: Percentile of the field's grey levels taken as paper white, and the smallest paper-to-ink contrast assumed.
PAPER_PERCENTILE = 90
BLACK_PERCENTILE = 0.5
MIN_CONTRAST = 40.0
#: A pixel is "flat" when the grey-level standard deviation of its 5x5 neighbourhood is below this (fluid).
FLAT_STD = 1.2
FLAT_WINDOW = 5
#: Brighter than paper by this many grey levels (fluid is whiter than the page).
BRIGHT_DELTA = 6.0
#: Rows (fractions of the height) inside the boxes, clear of their printed top and bottom lines.
MIDDLE_BAND = (0.3, 0.7)
#: Where the comb ends and the area beside it begins, as a fraction of the field image's width.
BESIDE_FROM = 0.45
#: Smallest ink component counted, as a fraction of the image height squared.
MIN_COMPONENT = 0.004
#: Fraction of a box's width and height left out at its edges, so the printed outline is not counted as ink.
BOX_INSET = 0.14
#: A column is a printed vertical box line when this fraction of the box height is ink.
LINE_FILL = 0.7
#: Grid (rows, columns) of the position-aware features, and the fixed size images are resized to for it.
GRID = (4, 20)
CANONICAL = (32, 160)
#: Grey levels of an 8-bit field image.
GREY_LEVELS = 256
#: Neighbourhood of the ridge test in :func:`stroke_width` (a pixel at least as far from paper as its 8 neighbours).
_RIDGE_KERNEL = np.ones((3, 3), np.uint8)
SCALARS = ("ink", "heavy", "grey", "mean_dark", "ink_dark_mean", "ink_dark_std", "ink_dark_p10", "ink_dark_p90",
           "flat", "bright", "beside_ink", "beside_components", "box_components", "strike_run", "strike_long")
BOX_MEASURES = ("ink", "heavy", "grey", "components", "stroke", "dark")
#: Box measures compared with the median over every inked box of the sheet (see :func:`sheet_context`).
PEN_MEASURES = ("ink", "heavy", "components", "stroke", "dark")
_BOX = load_template().fields_of_kind("count")[0]
N_BOXES = len(_BOX.boxes)


def feature_names() -> list[str]:
    """Names of the features :func:`sheet_context` returns, in order."""
    boxes = [f"box{i}_{m}" for i in range(N_BOXES) for m in BOX_MEASURES]
    aggregates = [f"box_{m}_{agg}" for m in BOX_MEASURES for agg in ("max", "mean")]
    cells = [f"{m}_r{r}c{c}" for m in ("dark", "grey", "flat") for r in range(GRID[0]) for c in range(GRID[1])]
    context = [f"{m}_vs_sheet_max" for m in PEN_MEASURES] + [f"{m}_vs_sheet_min" for m in PEN_MEASURES]
    return list(SCALARS) + boxes + aggregates + cells + context


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
    """Pixel count of each of the 256 grey levels of a uint8 image.

    Every per-pixel quantity below is a function of the grey level alone, so its order statistics and the
    fractions of pixels over a threshold follow from this histogram without sorting or scanning the image again.
    """
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


def darkness_levels(hist: np.ndarray) -> tuple[np.ndarray, float]:
    """Ink darkness (0 paper .. 1 darkest print) of each grey level against the field's own paper white (the
    :data:`PAPER_PERCENTILE` of its grey levels); also that paper level. ``levels[grey]`` is the darkness image."""
    g = np.arange(GREY_LEVELS, dtype=np.float32)
    paper = sorted_percentile(g, hist, PAPER_PERCENTILE)
    black = sorted_percentile(g, hist, BLACK_PERCENTILE)
    return np.clip((paper - g) / max(paper - black, MIN_CONTRAST), 0.0, 1.0), paper


def flat_mask(grey: np.ndarray, dark: np.ndarray) -> np.ndarray:
    """Paper-coloured pixels with almost no texture or noise around them (correction fluid is smooth)."""
    g = grey.astype(np.float32)
    mean = cv2.blur(g, (FLAT_WINDOW, FLAT_WINDOW))
    var = cv2.blur(g * g, (FLAT_WINDOW, FLAT_WINDOW)) - mean * mean
    return (np.sqrt(np.clip(var, 0, None)) < FLAT_STD) & (dark < GREY[0])


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


def locate_boxes(ink: np.ndarray) -> list[tuple[int, int, int, int]]:
    """The digit boxes ``(x0, y0, x1, y1)`` in the field image, from its printed lines and the template layout.

    The top and bottom box lines are the inkiest rows of the comb's half of the image; their distance is the
    box height, which gives the scale; the first printed vertical line gives the left edge.
    """
    h, w = ink.shape
    rows = ink[:, : int(w * BESIDE_FROM)].mean(axis=1)
    top = int(np.argmax(rows[: h // 2]))
    bottom = h // 2 + int(np.argmax(rows[h // 2:]))
    scale = max(bottom - top, 1) / _BOX.boxes[0].h
    cols = ink[top:bottom + 1, :].mean(axis=0)
    lines = np.flatnonzero(cols >= LINE_FILL)
    left = int(lines[0]) if lines.size else int(round((_BOX.boxes[0].x - _BOX.bounds.x) * scale))
    return [(left + round((b.x - _BOX.boxes[0].x) * scale), top, left + round((b.x - _BOX.boxes[0].x + b.w) * scale),
             bottom) for b in _BOX.boxes]


def stroke_width(mask: np.ndarray) -> float:
    """Mean stroke width of the ink in ``mask``: twice the mean distance of ink pixels' ridge to the paper."""
    if not mask.any():
        return 0.0
    # paper all round, so an all-ink patch has finite distances
    padded = cv2.copyMakeBorder(mask.view(np.uint8), 1, 1, 1, 1, cv2.BORDER_CONSTANT, value=0)
    dist = cv2.distanceTransform(padded, cv2.DIST_L2, 3)
    ridge = (dist >= cv2.dilate(dist, _RIDGE_KERNEL)) & padded.view(bool)
    return float(2.0 * dist[ridge].mean()) if ridge.any() else 0.0


def box_measures(dark: np.ndarray, box: tuple[int, int, int, int], min_area: float) -> np.ndarray:
    """:data:`BOX_MEASURES` inside one box (its printed outline left out)."""
    x0, y0, x1, y1 = box
    dx, dy = round((x1 - x0) * BOX_INSET), round((y1 - y0) * BOX_INSET)
    inner = dark[max(y0 + dy, 0): max(y1 - dy, 1), max(x0 + dx, 0): max(x1 - dx, 1)]
    if inner.size == 0:
        return np.zeros(len(BOX_MEASURES))
    ink = inner > INK
    return np.array([fraction(ink), fraction(inner > HEAVY), fraction((inner > GREY[0]) & (inner < GREY[1])),
                     _components(ink, min_area), stroke_width(ink), inner[ink].mean() if ink.any() else 0.0])


def fraction(mask: np.ndarray) -> float:
    """Fraction of ``mask``'s pixels that are set (``mask.mean()`` to the last bit, without a float pass)."""
    return np.count_nonzero(mask) / mask.size


def level_fraction(hist: np.ndarray, selected: np.ndarray) -> float:
    """Fraction of the image's pixels whose grey level is ``selected`` (a boolean per level)."""
    return float(hist[selected].sum() / hist.sum())


def scalar_features(grey: np.ndarray, dark: np.ndarray, flat: np.ndarray, hist: np.ndarray, levels: np.ndarray,
                    paper: float) -> np.ndarray:
    """The :data:`SCALARS` of one field image (fractions of its area or width, so any resolution compares).

    ``hist`` is the image's :func:`grey_histogram` and ``levels`` the darkness of each grey level, so whole-image
    fractions and the ink's darkness percentiles come from 256 numbers rather than every pixel.
    """
    h, w = dark.shape
    ink = dark > INK
    inked_levels = levels > INK
    if inked_levels @ hist:
        ink_values = dark[ink]
        order = np.flatnonzero(inked_levels)[::-1]  # darkness falls as the grey level rises
        ink_p10, ink_p90 = (sorted_percentile(levels[order], hist[order], q) for q in (10, 90))
    else:
        ink_values, ink_p10, ink_p90 = np.zeros(1, np.float32), 0.0, 0.0
    split = int(w * BESIDE_FROM)
    band = ink[int(h * MIDDLE_BAND[0]): int(h * MIDDLE_BAND[1])]
    min_area = MIN_COMPONENT * h * h
    long_kernel = cv2.getStructuringElement(cv2.MORPH_RECT, (max(3, w // 8), 1))
    bright = np.arange(GREY_LEVELS, dtype=np.float32) > paper + BRIGHT_DELTA
    return np.array([
        level_fraction(hist, inked_levels), level_fraction(hist, levels > HEAVY),
        level_fraction(hist, (levels > GREY[0]) & (levels < GREY[1])), dark.mean(),
        ink_values.mean(), ink_values.std(), ink_p10, ink_p90,
        fraction(flat), level_fraction(hist, bright),
        fraction(ink[:, split:]), _components(ink[:, split:], min_area), _components(ink[:, :split], min_area),
        longest_run(band) / w, fraction(cv2.morphologyEx(band.view(np.uint8), cv2.MORPH_OPEN, long_kernel)),
    ], dtype=np.float64)


def grid_features(dark: np.ndarray, grey_remains: np.ndarray, flat: np.ndarray) -> np.ndarray:
    """Mean darkness, grey-remains fraction and flat fraction on a :data:`GRID` over the resized image."""
    rows, cols = GRID
    out = []
    for layer in (dark, grey_remains.astype(np.float32), flat.astype(np.float32)):
        small = cv2.resize(layer, (CANONICAL[1], CANONICAL[0]), interpolation=cv2.INTER_AREA)
        out.append(small.reshape(rows, CANONICAL[0] // rows, cols, CANONICAL[1] // cols).mean(axis=(1, 3)).ravel())
    return np.concatenate(out).astype(np.float64)


def field_features(grey: np.ndarray) -> np.ndarray:
    """Every per-field feature of one field image (all of :func:`feature_names` but the sheet comparisons)."""
    hist = grey_histogram(grey)
    levels, paper = darkness_levels(hist)
    dark = levels[grey]
    flat = flat_mask(grey, dark)
    min_area = MIN_COMPONENT * dark.shape[0] ** 2
    boxes = np.array([box_measures(dark, b, min_area) for b in locate_boxes(dark > INK)])
    aggregates = np.column_stack([boxes.max(axis=0), boxes.mean(axis=0)]).ravel()
    return np.concatenate([scalar_features(grey, dark, flat, hist, levels, paper), boxes.ravel(), aggregates,
                           grid_features(dark, (dark > GREY[0]) & (dark < GREY[1]), flat)])


def sheet_context(keys: pd.DataFrame, x: np.ndarray) -> np.ndarray:
    """Append, per field, the largest and smallest ratio of its boxes' :data:`PEN_MEASURES` to the sheet's median.

    The median runs over every inked box of the sheet's count fields: the honest writer fills most of them, so a
    box written over (more ink, thicker or darker strokes, more pieces) or in another pen stands out. Blank boxes
    take no part and give ratio 1, as does a measure whose sheet median is 0.
    """
    names = feature_names()
    columns = {m: [names.index(f"box{i}_{m}") for i in range(N_BOXES)] for m in PEN_MEASURES}
    inked = x[:, columns["ink"]] > 0
    sheets = keys["sheet_id"].to_numpy()
    out = []
    for agg in (np.max, np.min):
        for m in PEN_MEASURES:
            values = pd.DataFrame(np.where(inked, x[:, columns[m]], np.nan))
            median = values.stack().groupby(sheets[values.stack().index.get_level_values(0)]).median()
            ref = median.reindex(sheets).to_numpy()[:, None]
            ratio = np.where(inked & (ref > 0), values.to_numpy() / np.where(ref > 0, ref, 1.0), 1.0)
            out.append(agg(ratio, axis=1))
    return np.column_stack([x, *out])
