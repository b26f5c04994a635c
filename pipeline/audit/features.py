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
            grey = np.asarray(img.convert("L"))
    except (OSError, ValueError, Image.DecompressionBombError) as exc:
        raise InputFileError(f"{path}: cannot read field image ({exc})") from exc
    if min(grey.shape) < 8:
        raise InputFileError(f"{path}: field image of {grey.shape[1]}x{grey.shape[0]} pixels is too small")
    return grey


def darkness(grey: np.ndarray) -> tuple[np.ndarray, float]:
    """Ink darkness (0 paper .. 1 darkest print) against the field's own paper white; also that paper level."""
    g = grey.astype(np.float32)
    paper = float(np.percentile(g, PAPER_PERCENTILE))
    black = float(np.percentile(g, BLACK_PERCENTILE))
    return np.clip((paper - g) / max(paper - black, MIN_CONTRAST), 0.0, 1.0), paper


def flat_mask(grey: np.ndarray, dark: np.ndarray) -> np.ndarray:
    """Paper-coloured pixels with almost no texture or noise around them (correction fluid is smooth)."""
    g = grey.astype(np.float32)
    mean = cv2.blur(g, (FLAT_WINDOW, FLAT_WINDOW))
    var = cv2.blur(g * g, (FLAT_WINDOW, FLAT_WINDOW)) - mean * mean
    return (np.sqrt(np.clip(var, 0, None)) < FLAT_STD) & (dark < GREY[0])


def _components(mask: np.ndarray, min_area: float) -> int:
    _, _, stats, _ = cv2.connectedComponentsWithStats(mask.astype(np.uint8), connectivity=8)
    return int((stats[1:, cv2.CC_STAT_AREA] >= min_area).sum())


def longest_run(mask: np.ndarray) -> int:
    """Longest horizontal run of True in any row of ``mask``."""
    best = 0
    for row in mask:
        padded = np.concatenate(([0], row.astype(np.int8), [0]))
        edges = np.flatnonzero(np.diff(padded))
        if edges.size:
            best = max(best, int((edges[1::2] - edges[::2]).max()))
    return best


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
    if mask.sum() == 0:
        return 0.0
    padded = np.pad(mask, 1).astype(np.uint8)  # paper all round, so an all-ink patch has finite distances
    dist = cv2.distanceTransform(padded, cv2.DIST_L2, 3)
    ridge = (dist >= cv2.dilate(dist, np.ones((3, 3), np.uint8))) & padded.astype(bool)
    return float(2.0 * dist[ridge].mean()) if ridge.any() else 0.0


def box_measures(dark: np.ndarray, box: tuple[int, int, int, int], min_area: float) -> np.ndarray:
    """:data:`BOX_MEASURES` inside one box (its printed outline left out)."""
    x0, y0, x1, y1 = box
    dx, dy = round((x1 - x0) * BOX_INSET), round((y1 - y0) * BOX_INSET)
    inner = dark[max(y0 + dy, 0): max(y1 - dy, 1), max(x0 + dx, 0): max(x1 - dx, 1)]
    if inner.size == 0:
        return np.zeros(len(BOX_MEASURES))
    ink = inner > INK
    return np.array([ink.mean(), (inner > HEAVY).mean(), ((inner > GREY[0]) & (inner < GREY[1])).mean(),
                     _components(ink, min_area), stroke_width(ink), inner[ink].mean() if ink.any() else 0.0])


def scalar_features(grey: np.ndarray, dark: np.ndarray, paper: float) -> np.ndarray:
    """The :data:`SCALARS` of one field image (fractions of its area or width, so any resolution compares)."""
    h, w = dark.shape
    ink, flat = dark > INK, flat_mask(grey, dark)
    ink_values = dark[ink] if ink.any() else np.zeros(1, np.float32)
    split = int(w * BESIDE_FROM)
    band = ink[int(h * MIDDLE_BAND[0]): int(h * MIDDLE_BAND[1])]
    min_area = MIN_COMPONENT * h * h
    long_kernel = cv2.getStructuringElement(cv2.MORPH_RECT, (max(3, w // 8), 1))
    return np.array([
        ink.mean(), (dark > HEAVY).mean(), ((dark > GREY[0]) & (dark < GREY[1])).mean(), dark.mean(),
        ink_values.mean(), ink_values.std(), np.percentile(ink_values, 10), np.percentile(ink_values, 90),
        flat.mean(), (grey.astype(np.float32) > paper + BRIGHT_DELTA).mean(),
        ink[:, split:].mean(), _components(ink[:, split:], min_area), _components(ink[:, :split], min_area),
        longest_run(band) / w, cv2.morphologyEx(band.astype(np.uint8), cv2.MORPH_OPEN, long_kernel).mean(),
    ], dtype=np.float64)


def grid_features(grey: np.ndarray, dark: np.ndarray) -> np.ndarray:
    """Mean darkness, grey-remains fraction and flat fraction on a :data:`GRID` over the resized image."""
    layers = [dark, ((dark > GREY[0]) & (dark < GREY[1])).astype(np.float32),
              flat_mask(grey, dark).astype(np.float32)]
    rows, cols = GRID
    out = []
    for layer in layers:
        small = cv2.resize(layer, (CANONICAL[1], CANONICAL[0]), interpolation=cv2.INTER_AREA)
        out.append(small.reshape(rows, CANONICAL[0] // rows, cols, CANONICAL[1] // cols).mean(axis=(1, 3)).ravel())
    return np.concatenate(out).astype(np.float64)


def field_features(grey: np.ndarray) -> np.ndarray:
    """Every per-field feature of one field image (all of :func:`feature_names` but the sheet comparisons)."""
    dark, paper = darkness(grey)
    min_area = MIN_COMPONENT * dark.shape[0] ** 2
    boxes = np.array([box_measures(dark, b, min_area) for b in locate_boxes(dark > INK)])
    aggregates = np.column_stack([boxes.max(axis=0), boxes.mean(axis=0)]).ravel()
    return np.concatenate([scalar_features(grey, dark, paper), boxes.ravel(), aggregates,
                           grid_features(grey, dark)])


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
