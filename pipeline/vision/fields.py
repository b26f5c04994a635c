"""Reading the fields of a registered page: field images, digit crops and tick marks.

Works on the page already warped onto the template at the reading dpi, so every field is where the template
says, give or take the pixel or two that line removal searches for.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache

import cv2
import numpy as np

from pipeline.forms.template import Field, Rect, Template
from pipeline.vision.lines import crossing_lines, remove_lines, strokes_on_lines
from pipeline.vision.medians import line_shifts, row_medians
from pipeline.vision.normalise import IDENTITY_STYLE, WriterStyle, binary_shape, estimate_writer_style, to_mnist
from pipeline.vision.segment import BoxRead, Piece, SegmentParams, segment_field
from pipeline.vision.settings import BOX_AMBIGUOUS, BOX_DIGIT, BOX_EMPTY, ReadSettings

#: Share of a component's pixels that must lie within the rows of a table-column comb's boxes for it to be read.
IN_BOXES_FRACTION = 0.5
#: A faint mark in a box read empty is writing only if it fills at most this share of its bounding box (strokes
#: are sparse; a smudge, a band or mottled paper fills it), the box's short side taken as at least
#: :data:`MIN_MARK_ASPECT` of its long one: a "1" is one stroke, so its own narrow box is full of it.
MAX_WRITING_FILL = 0.6
MIN_MARK_ASPECT = 0.5
#: ... and runs along the inside's edges for at most this share of its length: the box outline bled or blurred
#: inwards lies along an edge all the way, a digit that comes close only touches it (a large "0" may touch the
#: inside's edge over a third of its height).
MAX_EDGE_CONTACT = 0.4
#: A band across a box (toner banding, a fold's shade) spans at least this share of the inside's width and is at
#: most :data:`BAND_ASPECT` as tall as it is wide: no trace of a digit (:func:`faint_traces`).
BAND_SPAN = 0.9
BAND_ASPECT = 0.25
#: Darkness of the faintest band worth following across a skewed page (:func:`flatten_rows`): a fraction of the
#: faintest ink a faint writer's sheet is read with (0.12 x 0.6); the paper's own noise is about 0.01-0.03.
BAND_MIN_DARKNESS = 0.05
#: Padding of the lines of a sheared image (:func:`flatten_skewed_rows`): above any darkness, so it sorts last.
PAST_DARKEST = 2.0
#: Pixels of anti-aliased edge kept around a digit's thresholded ink when its grey levels are cut out.
EDGE_PAD = 1


@dataclass(frozen=True)
class FieldGeometry:
    """Where a field is on the registered page (template pixels at the reading dpi)."""

    field: Field
    region: tuple[int, int, int, int]
    boxes: tuple[tuple[int, int, int, int], ...]
    beside_x0: int | None

    def local_boxes(self) -> list[tuple[int, int, int, int]]:
        """The boxes in field-image coordinates."""
        rx, ry = self.region[:2]
        return [(x0 - rx, y0 - ry, x1 - rx, y1 - ry) for x0, y0, x1, y1 in self.boxes]


@dataclass(frozen=True)
class FieldDigit:
    """One crop of a numeric field: the box decision, the crop's and its box's template-pixel rectangles (a digit
    beside the boxes is its own box), ink statistics and the MNIST image."""

    field: str
    box: int
    slot: int
    status: str
    bbox: tuple[int, int, int, int]
    box_rect: tuple[int, int, int, int]
    ink_pixels: int
    ink_mean: float
    n_components: int
    image: np.ndarray | None
    filler: str = ""
    struck: bool = False


@dataclass(frozen=True)
class SegmentedField:
    """One numeric field cut into box decisions, with the ink darkness (printed lines removed) they index into, and
    the filler marks (``{box: kind}``) found in its leading boxes (:mod:`pipeline.vision.filler`)."""

    geom: FieldGeometry
    reads: list[BoxRead]
    dark: np.ndarray
    fillers: dict[int, str] = field(default_factory=dict)


@dataclass(frozen=True)
class TickRead:
    """One tick box: the option it stands for and how much of its interior is inked."""

    field: str
    option: str
    ink_ratio: float
    ticked: bool


def _region(field: Field, page_px: tuple[int, int], settings: ReadSettings) -> tuple[int, int, int, int]:
    """Field image rectangle: the boxes with a margin, for count fields extended right over the beside area."""
    b = field.bounds
    right = settings.beside_right_mm if field.kind == "count" and field.beside else b.x + b.w
    m = settings.field_margin_mm
    x0, y0, x1, y1 = Rect(b.x - m, b.y - m, right - b.x + 2 * m, b.h + 2 * m).to_px(settings.dpi)
    return max(0, x0), max(0, y0), min(page_px[0], x1), min(page_px[1], y1)


@lru_cache(maxsize=256)
def field_geometry(field: Field, page_px: tuple[int, int], settings: ReadSettings) -> FieldGeometry:
    """Pixel geometry of ``field`` on a ``page_px`` (width, height) page (cached: fields and settings are frozen)."""
    boxes = tuple(b.to_px(settings.dpi) for b in field.boxes)
    region = _region(field, page_px, settings)
    beside = None
    if field.kind == "count" and field.beside:
        beside = boxes[-1][2] + round(settings.px(settings.beside_gap_mm)) - region[0]
    return FieldGeometry(field, region, boxes, beside)


def geometry_of(field: Field, template: Template, settings: ReadSettings) -> FieldGeometry:
    """Pixel geometry of ``field`` of ``template``."""
    return field_geometry(field, template.size_px(settings.dpi), settings)


def paper_window_px(settings: ReadSettings) -> int:
    """Side (odd, pixels) of the neighbourhood whose lightest grey is the local paper white (``paper_window_mm``)."""
    return 2 * round(settings.px(settings.paper_window_mm) / 2) + 1


def darkness(grey: np.ndarray, black: float, settings: ReadSettings) -> np.ndarray:
    """Ink darkness, 0 (paper) to 1 (print black), of a field image against its local paper white.

    The paper white around each pixel is a grey closing wider than any pen stroke, so shading, stains and fold
    lines (all broader than a stroke) drop out while strokes and printed lines keep their full contrast.
    """
    side = paper_window_px(settings)
    paper = cv2.morphologyEx(grey, cv2.MORPH_CLOSE, cv2.getStructuringElement(cv2.MORPH_RECT, (side, side)))
    contrast = np.maximum(paper.astype(np.float32) - black, settings.min_contrast)
    return np.clip(cv2.subtract(paper, grey).astype(np.float32) / contrast, 0.0, 1.0)


def ink_mask(dark: np.ndarray, settings: ReadSettings, boxes: list[tuple[int, int, int, int]], clear: int,
             search: int) -> np.ndarray:
    """Ink by hysteresis: pixels above ``faint_ink_threshold`` connected to one above ``ink_threshold``.

    Thin, blurred pen strokes are only faintly dark along parts of their length; hysteresis keeps them whole
    without letting in faint marks (erasure smudges, paper texture) that nowhere reach the ink threshold. Faint
    lines crossing the whole field (paper folds: :func:`crossing_lines`) are taken out of the faint ink first, so
    they cannot join digits together.
    """
    strong = dark > settings.ink_threshold
    weak = dark > settings.faint_ink_threshold
    rows, cols = crossing_lines(weak, boxes, clear, search)
    weak[rows, :] &= strong[rows, :]
    weak[:, cols] &= strong[:, cols]
    # The components are labelled on the bounding box of the faint ink alone (a third of a count field's image,
    # most of which is the empty area beside its boxes): nothing outside it is ink, so nothing changes.
    out = np.zeros_like(weak)
    ys, xs = np.flatnonzero(weak.any(1)), np.flatnonzero(weak.any(0))
    if ys.size == 0:
        return out
    win = (slice(ys[0], ys[-1] + 1), slice(xs[0], xs[-1] + 1))
    weak, strong = weak[win], strong[win]
    n, labels = cv2.connectedComponents(weak.astype(np.uint8), connectivity=8)
    keep = np.zeros(n, bool)
    keep[labels[strong & weak]] = True
    keep[0] = False
    out[win] = keep[labels]
    return out


def piece_ink(dark: np.ndarray, piece: Piece) -> np.ndarray:
    """Darkness of a piece's pixels plus an anti-aliased rim of ``EDGE_PAD`` px; everything else black."""
    p = EDGE_PAD
    y0, x0 = max(0, piece.y0 - p), max(0, piece.x0 - p)
    y1, x1 = min(dark.shape[0], piece.y1 + p), min(dark.shape[1], piece.x1 + p)
    mask = np.zeros((y1 - y0, x1 - x0), np.uint8)
    mask[piece.y0 - y0: piece.y1 - y0, piece.x0 - x0: piece.x1 - x0] = piece.mask
    rim = cv2.dilate(mask, np.ones((2 * p + 1, 2 * p + 1), np.uint8)).astype(bool)
    return np.where(rim, dark[y0:y1, x0:x1], 0.0)


def struck_readable(geom: FieldGeometry) -> bool:
    """Whether a box taken for struck through may still be read as the digit in it (``struck`` in the crops): in
    an id, or in a count whose replacement the reader looks for beside its boxes (and reads instead, when there is
    one). A count with no room beside its boxes (a comb filling a table column) has its replacement written
    somewhere the reader does not look, so its struck number is no reading: the box stays unreadable."""
    return geom.field.kind != "count" or geom.beside_x0 is not None


def readable_or_filler(read: BoxRead, geom: FieldGeometry) -> bool:
    """Whether a box the reader took for struck through is one the recogniser reads anyway (``struck`` in the
    crops): an ``ambiguous`` one where :func:`struck_readable`, or a leading box whose "strike" was a filler X
    (its field goes to review: the X may have been a struck digit)."""
    return read.struck and (read.status != BOX_AMBIGUOUS or struck_readable(geom))


def _digit(geom: FieldGeometry, read: BoxRead, dark: np.ndarray, style: WriterStyle,
           fillers: dict[int, str] | None = None, ink: np.ndarray | None = None) -> FieldDigit:
    name = geom.field.name
    if read.piece is None:
        box = geom.boxes[read.box]
        return FieldDigit(name, read.box, read.slot, read.status, box, box, 0, 0.0, 0, None,
                          (fillers or {}).get(read.box, ""), readable_or_filler(read, geom))
    p, (rx, ry) = read.piece, geom.region[:2]
    bbox = (rx + p.x0, ry + p.y0, rx + p.x1, ry + p.y1)
    values = dark[p.y0:p.y1, p.x0:p.x1][p.mask]
    return FieldDigit(name, read.box, read.slot, read.status, bbox, geom.boxes[read.box] if read.box >= 0 else bbox,
                      int(p.mask.sum()), float(values.mean()), p.n_components,
                      to_mnist(piece_ink(dark, p) if ink is None else ink, style),
                      struck=readable_or_filler(read, geom))


def clear_outside(clean: np.ndarray, boxes: list[tuple[int, int, int, int]]) -> np.ndarray:
    """``clean`` without the ink beside a comb that fills a table column (no digits are written beside it): ink
    left of the first box and right of the last is the table's rules or the next column's print, and a component
    with less than ``IN_BOXES_FRACTION`` of its pixels within the boxes' rows belongs to the rows above or below
    (their walls, a stray stroke)."""
    out = clean.copy()
    out[:, :min(b[0] for b in boxes)] = False
    out[:, max(b[2] for b in boxes):] = False
    n, labels = cv2.connectedComponents(out.astype(np.uint8), connectivity=8)
    if n <= 1:
        return out
    total = np.bincount(labels.ravel(), minlength=n)
    y0, y1 = min(b[1] for b in boxes), max(b[3] for b in boxes)
    inside = np.bincount(labels[y0:y1].ravel(), minlength=n)
    drop = inside < IN_BOXES_FRACTION * total
    drop[0] = False
    out[drop[labels]] = False
    return out


def segment_numeric(registered: np.ndarray, geom: FieldGeometry, black: float, settings: ReadSettings,
                    params: SegmentParams, flat: np.ndarray | None = None, blank_traces: bool = True
                    ) -> tuple[np.ndarray, SegmentedField]:
    """The field image of one id/count field and its box decisions.

    A box read empty that still holds a faint mark shaped like writing (:func:`faint_writing`: one light digit
    among dark ones, a pen running dry) is read again with the ink thresholds lowered by ``faint_writer_floor``;
    if that finds no clean digit there either, the box is ``ambiguous``, so the field goes to review instead of
    silently losing a digit.

    A box after the first digit that is still read empty but holds a visible trace too faint or broken to read
    (:func:`faint_traces`) is ``ambiguous`` too; ``blank_traces``: so is any such box of a field read with no digit
    at all (off for a form whose users fill unused boxes with filler marks: a faint dash is no lost digit).

    ``flat`` is the field's :func:`field_darkness`, if known: it does not depend on the ink thresholds, so a field
    read again with them lowered (here, or a faint writer's whole sheet) reuses it.
    """
    x0, y0, x1, y1 = geom.region
    image = registered[y0:y1, x0:x1]
    if flat is None:
        flat = field_darkness(image, geom, black, settings)
    dark, reads = _segment_flat(flat, geom, settings, params)
    faint = faint_writing(dark, reads, geom.local_boxes(), settings, params)
    if faint:
        dark, rescued = _segment_flat(flat, geom, settings.with_ink_scaled(settings.faint_writer_floor), params)
        reads = rescue_faint(reads, rescued, faint)
    traced = faint_traces(dark, reads, geom.local_boxes(), settings, params, blank_traces)
    reads = [BoxRead(r.box, r.slot, BOX_AMBIGUOUS, None) if r.box in traced else r for r in reads]
    return image, SegmentedField(geom, reads, dark)


def field_darkness(image: np.ndarray, geom: FieldGeometry, black: float, settings: ReadSettings,
                   band_slope: float = 0.0, streaks: np.ndarray | None = None) -> np.ndarray:
    """The ink darkness of a field image with the bands across its rows taken out (:func:`darkness`,
    :func:`flatten_rows`); the ink thresholds play no part in it. ``band_slope`` is the slope (rows per column) of
    the scanner's rows across the field image: a page fed in skewed has its toner bands skewed the same way.
    ``streaks`` is the darkness of the streaks down the page over the field image, measured on the page
    (:mod:`pipeline.vision.streaks`), taken out first."""
    dark = darkness(image, black, settings)
    if streaks is not None:
        dark = np.clip(dark - streaks, 0.0, 1.0)
    return flatten_rows(dark, geom.local_boxes(), round(settings.px(settings.fold_clear_mm)),
                        round(settings.px(settings.band_sample_mm)), band_slope)


def _segment_dark(image: np.ndarray, geom: FieldGeometry, black: float, settings: ReadSettings,
                  params: SegmentParams) -> tuple[np.ndarray, list[BoxRead]]:
    """Darkness (printed lines taken out) and box decisions of a field image under ``settings``' ink thresholds."""
    return _segment_flat(field_darkness(image, geom, black, settings), geom, settings, params)


def _segment_flat(dark: np.ndarray, geom: FieldGeometry, settings: ReadSettings,
                  params: SegmentParams) -> tuple[np.ndarray, list[BoxRead]]:
    """:func:`_segment_dark` of a field's :func:`field_darkness` ``dark`` (left as it is)."""
    boxes = geom.local_boxes()
    search = round(settings.px(settings.line_search_mm))
    ink = ink_mask(dark, settings, boxes, round(settings.px(settings.fold_clear_mm)) + search, search)
    clean, removed, band = remove_lines(ink, boxes, search, settings.line_min_fill,
                                        round(settings.px(settings.line_halo_mm)))
    kept = strokes_on_lines(dark, removed, clean, boxes, search, settings.ink_threshold)
    clean, removed = clean | kept, removed & ~kept
    if not geom.field.beside:
        clean = clear_outside(clean, boxes)
    return np.where(removed, 0.0, dark), segment_field(clean, boxes, geom.beside_x0, params, band)


def flatten_rows(dark: np.ndarray, boxes: list[tuple[int, int, int, int]], clear: int, min_sample: int,
                 slope: float = 0.0) -> np.ndarray:
    """``dark`` less, in each row, the median darkness of that row away from the boxes.

    A band runs along the scanner's rows, which cross a page fed in skewed at ``slope`` (rows per column) to the
    form's rows: the rows are then taken along that slope (:func:`flatten_skewed_rows`). A slope that moves no
    pixel by half a row across the image is no slope; and where no line along it can hold a band of at least
    :data:`BAND_MIN_DARKNESS` (fewer than half of ``min_sample`` pixels away from the boxes are that dark, so no
    line's median is), the rows are taken as they are, as cheaply as on an unskewed page: what is left there is
    the paper's noise, the same along any line.

    Toner bands and scanner streaks run across the whole page; where they are narrower than the paper window they
    survive :func:`darkness` and, cut by the box walls and rejoined, read as a strike-through of every box. Their
    level is measured where nothing is written: the row's pixels more than ``clear`` px left or right of the
    boxes (the area beside a count's boxes, the margins). A row with fewer than ``min_sample`` such pixels is
    left as it is; the median ignores the few strokes of a replacement number or a stamp written there.

    Only the rows where a band can be measured are worked on (skipping the rest is safe: nothing changes): ``dark``
    is never negative, so a row's median is above 0 only when at least half of its pixels away from the boxes are
    (``(n + 1) // 2`` of ``n``); every other row's level is exactly 0, and taking 0 out of a row in 0-1 leaves it
    as it is. Paper rows are nearly all of them, so the medians (the costly part) are mostly not taken, and a page
    without bands comes back unchanged (``dark`` itself).
    """
    x0, x1 = min(b[0] for b in boxes) - clear, max(b[2] for b in boxes) + clear
    left, right = dark[:, :max(0, x0)], dark[:, max(0, x1):]
    if row_shifts(dark.shape[1], slope).any() and (np.count_nonzero(left > BAND_MIN_DARKNESS)
                                                   + np.count_nonzero(right > BAND_MIN_DARKNESS)
                                                   >= (min_sample + 1) // 2):
        return flatten_skewed_rows(dark, (x0, x1), min_sample, slope)
    n = left.shape[1] + right.shape[1]
    if n < min_sample:
        return dark
    inked = np.count_nonzero(left, axis=1) + np.count_nonzero(right, axis=1)
    banded = np.flatnonzero(inked >= (n + 1) // 2)
    if banded.size == 0:
        return dark
    level = np.zeros(dark.shape[0], np.float32)
    level[banded] = row_medians(np.concatenate([left[banded], right[banded]], axis=1))
    return np.clip(dark - level[:, None], 0.0, 1.0)


def row_shifts(width: int, slope: float) -> np.ndarray:
    """Rows (whole pixels) by which a line of ``slope`` (rows per column) through the middle of an image ``width``
    columns wide lies off each column's row."""
    return line_shifts(np.arange(width), slope, (width - 1) / 2)


def flatten_skewed_rows(dark: np.ndarray, boxed: tuple[int, int], min_sample: int, slope: float) -> np.ndarray:
    """:func:`flatten_rows` along lines of ``slope``: each pixel belongs to the line through it, and a line's level
    is the median of its pixels outside the columns ``boxed`` (x0, x1), taken where it has at least
    ``min_sample`` of them and at least half of them are dark (as :func:`flatten_rows` takes it).

    The lines are the rows of the image sheared by whole pixels: the columns fall in runs that move by the same
    number of rows, so the shear is a few slice copies. Lines cut short by the image's top or bottom are padded
    with a value above any darkness (:data:`PAST_DARKEST`), which sorts last, so each line's median is taken from
    its sorted row at the middle of its own pixels, all lines at once."""
    height, width = dark.shape
    shifts = row_shifts(width, slope)
    offset = shifts.max() - shifts  # how far down each column's pixels sit in the sheared image
    starts = np.flatnonzero(np.diff(offset, prepend=offset[0] - 1))
    runs = [(int(a), int(b), int(offset[a])) for a, b in zip(starts, [*starts[1:], width], strict=True)]
    away = [(max(a, lo), min(b, hi)) for a, b, _ in runs for lo, hi in ((0, boxed[0]), (max(0, boxed[1]), width))]
    away_offsets = [int(offset[a]) for a, b in away if b > a]
    away = [(a, b) for a, b in away if b > a]
    sheared = np.full((height + int(offset.max()), sum(b - a for a, b in away)), PAST_DARKEST, np.float32)
    n = np.zeros(sheared.shape[0], np.int64)
    col = 0
    for (a, b), off in zip(away, away_offsets, strict=True):
        sheared[off:off + height, col:col + b - a] = dark[:, a:b]
        n[off:off + height] += b - a
        col += b - a
    inked = np.count_nonzero(sheared > 0, axis=1) - (sheared.shape[1] - n)  # less the padding
    banded = np.flatnonzero((n >= min_sample) & (inked >= (n + 1) // 2))
    if banded.size == 0:
        return dark
    level = np.zeros(sheared.shape[0], np.float32)
    level[banded] = row_medians(sheared[banded], n[banded])
    out = np.empty_like(dark)
    for a, b, off in runs:
        out[:, a:b] = dark[:, a:b] - level[off:off + height, None]
    return np.clip(out, 0.0, 1.0)


def faint_ink(dark: np.ndarray, settings: ReadSettings) -> tuple[np.ndarray, int]:
    """The pixels darker than the faint-ink threshold lowered by ``faint_writer_floor`` (where a faint digit's
    strokes show), and the inset (``line_search_mm``) that keeps a box's inside clear of its printed outline."""
    low = dark > settings.faint_ink_threshold * settings.faint_writer_floor
    return low, round(settings.px(settings.line_search_mm))


def box_inside(box: tuple[int, int, int, int], inset: int) -> tuple[slice, slice]:
    """Rows and columns of a box's inside, ``inset`` pixels clear of its printed outline."""
    bx0, by0, bx1, by1 = box
    return slice(by0 + inset, by1 - inset), slice(bx0 + inset, bx1 - inset)


def without_folds(low: np.ndarray, boxes: list[tuple[int, int, int, int]], settings: ReadSettings,
                  inset: int) -> None:
    """Take the faint lines crossing the whole field (paper folds, :func:`crossing_lines`) out of the faint ink
    ``low``, in place."""
    fold_rows, fold_cols = crossing_lines(low, boxes, round(settings.px(settings.fold_clear_mm)) + inset, inset)
    low[fold_rows, :] = False
    low[:, fold_cols] = False


def faint_writing(dark: np.ndarray, reads: list[BoxRead], boxes: list[tuple[int, int, int, int]],
                  settings: ReadSettings, params: SegmentParams) -> set[int]:
    """Boxes read empty whose inside (clear of the printed outline by ``line_search_mm``) holds a mark darker
    than the faint-ink threshold lowered by ``faint_writer_floor``, a pen stroke thick somewhere (``min_stroke_mm``)
    and shaped like writing (:func:`is_writing_mark`). Faint lines crossing the whole field (paper folds:
    :func:`crossing_lines`) are no mark.

    The folds are looked for only when an empty box holds enough faint ink for a mark (safe to skip otherwise: a
    mark has at least ``min_area`` pixels over at least ``min_digit_height`` rows of the inside, and taking the
    folds out only removes ink); most empty boxes are clean paper, and most fields have none, so this step
    usually costs one threshold.
    """
    empty = [r.box for r in reads if r.status == BOX_EMPTY and r.box >= 0]
    if not empty:
        return set()
    low, inset = faint_ink(dark, settings)
    candidates = []
    for box in empty:
        inside = low[box_inside(boxes[box], inset)]
        if (inside.size and np.count_nonzero(inside) >= params.min_area
                and np.count_nonzero(inside.any(1)) >= params.min_digit_height):
            candidates.append(box)
    if not candidates:
        return set()
    without_folds(low, boxes, settings, inset)
    found = set()
    for box in candidates:
        inside = low[box_inside(boxes[box], inset)].astype(np.uint8)
        n, labels, stats, _ = cv2.connectedComponentsWithStats(inside, connectivity=8)
        solid = np.bincount(labels[cv2.erode(inside, np.ones((params.stroke_px,) * 2, np.uint8)) > 0], minlength=n)
        edge = np.ones_like(inside, bool)
        edge[1:-1, 1:-1] = False
        contact = np.bincount(labels[edge], minlength=n)
        if any(deep and is_writing_mark(w, h, area, touch, params)
               for (_, _, w, h, area), deep, touch in zip(stats[1:], solid[1:], contact[1:], strict=True)):
            found.add(box)
    return found


def faint_traces(dark: np.ndarray, reads: list[BoxRead], boxes: list[tuple[int, int, int, int]],
                 settings: ReadSettings, params: SegmentParams, blank: bool = True) -> set[int]:
    """Boxes read empty after the first box read as writing whose inside (clear of the printed outline by
    ``line_search_mm``) still holds a trace of writing: a component of at least ``min_area`` pixels over the
    lowered faint-ink threshold (as in :func:`faint_writing`) that is darker somewhere than ``trace_darkness`` and
    is no band across the box (:data:`BAND_SPAN`). Faint lines crossing the whole field (folds) are no trace.
    ``blank``: in a field with no box read as writing, every box is looked at.

    Why: a digit too light or too broken to be read, or shaped unlike writing to :func:`is_writing_mark` (a faint
    "7" showing only its bar, a light "4" blurred into a blob), left its box empty and the field was read short
    (184 as 18) with full confidence; such a box is sent to review instead. Clean paper, specks and toner bands
    stay empty. The unused boxes before a number are not looked at: there a shadow or a curl's shade over an empty
    box passed for a trace more often than a lost leading digit did (held-out tuning and check batches, 600
    sheets: 7 right fields sent to review, none wrong caught).
    """
    written = [r.box for r in reads if r.status != BOX_EMPTY and r.box >= 0]
    first = min(written, default=-1 if blank else len(boxes))
    empty = [r.box for r in reads if r.status == BOX_EMPTY and r.box > first]
    if not empty:
        return set()
    low, inset = faint_ink(dark, settings)
    insides = {b: box_inside(boxes[b], inset) for b in empty}
    candidates = [b for b in empty if np.count_nonzero(low[insides[b]]) >= params.min_area
                  and float(dark[insides[b]].max()) >= settings.trace_darkness]
    if not candidates:
        return set()
    without_folds(low, boxes, settings, inset)
    found = set()
    for box in candidates:
        mask, darkness = low[insides[box]], dark[insides[box]]
        n, labels, stats, _ = cv2.connectedComponentsWithStats(mask.astype(np.uint8), connectivity=8)
        peak = np.zeros(n)
        np.maximum.at(peak, labels[mask], darkness[mask])
        if any(area >= params.min_area and peak[k] >= settings.trace_darkness
               and not (w >= BAND_SPAN * mask.shape[1] and h <= BAND_ASPECT * w)
               for k, (_, _, w, h, area) in enumerate(stats[1:], start=1)):
            found.add(box)
    return found


def is_writing_mark(w: int, h: int, area: int, touch: int, params: SegmentParams) -> bool:
    """Whether a faint component ``w`` x ``h`` px of ``area`` px, ``touch`` px of which lie on the box inside's
    edges, can be a digit: a digit tall, sparse like strokes (:data:`MAX_WRITING_FILL`, :data:`MIN_MARK_ASPECT`)
    and not lying along the edges (:data:`MAX_EDGE_CONTACT`). Not a mark only a digit *wide* (a faint 7's bar):
    that took the dashes written in unused boxes of the C1 forms for faint digits (synthetic Lampiran sheets
    96.4% -> 85.6% exact)."""
    return (h >= params.min_digit_height and touch <= MAX_EDGE_CONTACT * max(w, h)
            and params.min_area <= area <= MAX_WRITING_FILL * h * max(w, MIN_MARK_ASPECT * h))


def rescue_faint(reads: list[BoxRead], rescued: list[BoxRead], faint: set[int]) -> list[BoxRead]:
    """``reads`` with each ``faint`` box replaced by its reading under lowered thresholds when that is clean
    digits, else by an ``ambiguous`` box (with the faint ink, if any was cut)."""
    out = []
    for r in reads:
        if r.box not in faint:
            out.append(r)
            continue
        again = [x for x in rescued if x.box == r.box]
        if again and all(x.status == BOX_DIGIT for x in again):
            out.extend(again)
        else:
            piece = next((x.piece for x in again if x.piece is not None), None)
            out.append(BoxRead(r.box, 0, BOX_AMBIGUOUS, piece))
    return out


def field_digits(field: SegmentedField, style: WriterStyle = IDENTITY_STYLE,
                 inks: dict[int, np.ndarray] | None = None) -> list[FieldDigit]:
    """The crops of one segmented field, normalised with the writer's ``style`` undone; ``inks`` holds the
    :func:`piece_ink` of reads already cut out (by their index in ``field.reads``)."""
    inks = inks or {}
    return [_digit(field.geom, r, field.dark, style, field.fillers, inks.get(i)) for i, r in enumerate(field.reads)]


def is_single_digit(read: BoxRead) -> bool:
    """A single digit in a box: what tells the writer's style (ambiguous crops and digits beside do not)."""
    return read.status == BOX_DIGIT and read.box >= 0 and read.piece is not None


def sheet_digits(fields: list[SegmentedField], settings: ReadSettings) -> list[FieldDigit]:
    """All crops of one sheet, normalised with the writer's style undone (``writer_normalisation``): the style is
    estimated from the shapes of the sheet's single digits."""
    style = IDENTITY_STYLE
    inks: list[dict[int, np.ndarray]] = [{} for _ in fields]
    if settings.writer_normalisation:
        # the single digits' ink is cut out once, for their shapes here and for their MNIST images below
        for f, cut in zip(fields, inks, strict=True):
            cut.update((i, piece_ink(f.dark, r.piece)) for i, r in enumerate(f.reads) if is_single_digit(r))
        shapes = [binary_shape(ink) for cut in inks for ink in cut.values()]
        style = estimate_writer_style(shapes, settings.writer_min_digits, settings.writer_max_width_factor,
                                      settings.writer_max_shear)
    return [d for f, cut in zip(fields, inks, strict=True) for d in field_digits(f, style, cut)]


def read_ticks(registered: np.ndarray, geom: FieldGeometry, black: float,
               settings: ReadSettings) -> tuple[np.ndarray, list[TickRead]]:
    """The field image and the tick reading of one tick/choice field (its box outlines excluded)."""
    x0, y0, x1, y1 = geom.region
    image = registered[y0:y1, x0:x1]
    ink = darkness(image, black, settings) > settings.ink_threshold
    inset = round(settings.px(settings.tick_inset_mm))
    options = geom.field.options or ("SI",)
    ticks = []
    for option, (bx0, by0, bx1, by1) in zip(options, geom.local_boxes(), strict=True):
        ratio = float(ink[by0 + inset: by1 - inset, bx0 + inset: bx1 - inset].mean())
        ticks.append(TickRead(geom.field.name, option, ratio, ratio >= settings.tick_threshold))
    return image, ticks
