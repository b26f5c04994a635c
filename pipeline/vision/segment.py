"""Segmentation of one numeric field's ink (printed lines already removed) into digits, box by box.

Rules, in order (all sizes come from :class:`SegmentParams`):

1. Connected components that do not reach the boxes' rows are ignored (printed labels, the row above or below),
   and so are components lying mostly on a printed line (remnants of it).
2. A component crossing two or more boxes makes each of them ``ambiguous``, its crop holding the box's share of
   the ink (digits touching across boxes). Ink at least ``strike_px`` wide that spans every box it crosses from
   edge to edge (one box is enough) is a strike-through, a line or zigzag drawn through the number: the boxes it
   crosses are ``ambiguous``. Line removal cuts zigzags where they turn on a box line, so strikes are sought in
   the ink grown by ``bridge_px``.
3. Every other component belongs to the box it overlaps most. Within a box, components that share a column,
   whose bounding boxes intersect, or that are stacked one above the other within ``join_px`` form one digit
   (a digit broken by a faint stroke or a lifted pen). A component shorter than half the tallest one or than
   ``min_digit_height`` (a detached bar, a dot) and specks below ``min_area`` join the nearest digit within
   ``join_px`` or are dropped as dirt; so are hairlines thinner than ``stroke_px`` everywhere (paper folds).
4. One digit in a box is a ``digit``. If it is wider than ``touching_widths`` boxes it is taken for touching
   digits and split at the thinnest column when the cut is clean (little ink cut, both halves tall), else kept
   whole as ``ambiguous``. Two digits side by side in one box are two slots when a clear gap (``join_px``)
   separates them, else one ``ambiguous`` crop (one odd digit or two squeezed ones); three or more are one
   ``ambiguous`` crop.
5. When the boxes hold a strike-through, the ink of a count field right of the boxes (from ``beside_x0``) is cut
   into digits by the same grouping, numbered ``box`` = -1, -2, ... from left to right: that is where the
   replacement of a crossed-out count is written. Ink there that runs from the top to the bottom of the field
   image is a fold or rule crossing the row, not writing. Without a strike-through, ink beside the boxes (notes,
   stamps, stains) is not read.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import cv2
import numpy as np
from scipy import ndimage

from pipeline.vision.settings import BOX_AMBIGUOUS, BOX_DIGIT, BOX_EMPTY, ReadSettings

#: Fraction of a box's width a component must cover to count as crossing it.
CROSS_BOX_COVER = 1 / 3
#: Fraction of the width of every box it crosses that a strike-through covers (it is drawn edge to edge).
STRIKE_BOX_COVER = 0.85
#: Fraction of the narrower of two components' widths that must overlap for them to be one digit.
SAME_DIGIT_OVERLAP = 0.5
#: A component shorter than this fraction of the tallest one in its box is part of a digit, not a digit.
SECOND_DIGIT_HEIGHT = 0.5
#: A component with at least this fraction of its pixels on a printed-line band is a remnant of the line.
REMNANT_FRACTION = 0.5
#: Fraction of its height a component cut by the top or bottom of the field image must have within the boxes'
#: rows to count as a digit whose tail strays out (see :func:`_foreign`).
IN_ROW_FRACTION = 0.5
#: Each half of a split must be at least this fraction of the whole's height (else it is not two digits).
SPLIT_MIN_HEIGHT = 0.5

Box = tuple[int, int, int, int]


@dataclass(frozen=True)
class SegmentParams:
    """The segmentation thresholds in field-image pixels (see :class:`ReadSettings` for their meaning)."""

    min_area: int
    join_px: int
    touching_widths: float
    split_max_ink: int
    strike_px: int
    min_digit_height: int
    stroke_px: int
    bridge_px: int

    @classmethod
    def from_settings(cls, settings: ReadSettings) -> SegmentParams:
        """Convert the millimetre settings to pixels at the reading dpi."""
        px = settings.px
        return cls(min_area=max(1, round(settings.min_component_mm2 * settings.px_per_mm ** 2)),
                   join_px=round(px(settings.fragment_join_mm)), touching_widths=settings.touching_box_widths,
                   split_max_ink=round(px(settings.split_max_ink_mm)),
                   strike_px=round(px(settings.strike_min_mm)),
                   min_digit_height=round(px(settings.min_digit_height_mm)),
                   stroke_px=max(1, round(px(settings.min_stroke_mm))),
                   bridge_px=max(1, round(px(settings.strike_bridge_mm))))


@dataclass(frozen=True)
class Component:
    """One connected component: label in the label image, bounding box (end-exclusive), pixel count, and how many
    of its pixels lie a full pen stroke deep inside it (0 for hairlines such as paper folds)."""

    label: int
    x0: int
    y0: int
    x1: int
    y1: int
    area: int
    solid: int = 0

    @property
    def width(self) -> int:
        return self.x1 - self.x0

    @property
    def height(self) -> int:
        return self.y1 - self.y0


@dataclass(frozen=True, eq=False)
class Piece:
    """The ink of one crop: its bounding box in the field image and the boolean mask inside that box."""

    x0: int
    y0: int
    mask: np.ndarray = field(repr=False)
    n_components: int = 1

    @property
    def x1(self) -> int:
        return self.x0 + self.mask.shape[1]

    @property
    def y1(self) -> int:
        return self.y0 + self.mask.shape[0]

    @property
    def width(self) -> int:
        return self.mask.shape[1]

    @property
    def height(self) -> int:
        return self.mask.shape[0]


@dataclass(frozen=True)
class BoxRead:
    """The decision for one box (or one digit beside the boxes): status and the ink piece, if any.
    ``strike_boxes``: how many boxes the strike-through that seems to cross this ``ambiguous`` box crosses (rule 2;
    0: none). With no replacement written beside the boxes, the recogniser reads a struck box's ink as a digit for
    review (:mod:`pipeline.model.fields`); a strike through one leading box alone may be a filler X
    (:mod:`pipeline.vision.filler`)."""

    box: int
    slot: int
    status: str
    piece: Piece | None
    strike_boxes: int = 0

    @property
    def struck(self) -> bool:
        """Whether a strike-through seems to cross the box."""
        return self.strike_boxes > 0


def find_components(clean: np.ndarray, stroke_px: int = 1) -> tuple[np.ndarray, list[Component]]:
    """Label image and components (8-connected) of a boolean ink mask.

    ``stroke_px`` is the thinnest pen stroke: a component's ``solid`` pixels survive an erosion of that size.

    The image is labelled whole (labels are numbered in the order the labelling meets them, which cropping can
    change), but the counts, the erosion and the bounding boxes are worked out on the bounding box of the ink
    widened by ``stroke_px`` (a count field's ink leaves most of its image blank; the margin keeps the erosion at
    the box's edge as it is in the whole image): the same components.
    """
    ink = clean.astype(np.uint8)
    n, labels = cv2.connectedComponents(ink, connectivity=8)  # with stats it is ~10x slower on small images
    if n <= 1:
        return labels, []
    ys, xs = np.flatnonzero(clean.any(1)), np.flatnonzero(clean.any(0))
    y0, x0 = max(0, int(ys[0]) - stroke_px), max(0, int(xs[0]) - stroke_px)
    win = (slice(y0, int(ys[-1]) + 1 + stroke_px), slice(x0, int(xs[-1]) + 1 + stroke_px))
    part = labels[win]
    area = np.bincount(part.ravel(), minlength=n)
    solid = np.bincount(part[cv2.erode(ink[win], np.ones((stroke_px, stroke_px), np.uint8)) > 0], minlength=n)
    return labels, [Component(i + 1, x0 + sl[1].start, y0 + sl[0].start, x0 + sl[1].stop, y0 + sl[0].stop,
                              int(area[i + 1]), int(solid[i + 1]))
                    for i, sl in enumerate(ndimage.find_objects(part)) if sl is not None]


def _mask_of(labels: np.ndarray, comps: Sequence[Component]) -> np.ndarray:
    """Boolean mask of the pixels of ``comps`` in the label image."""
    wanted = np.zeros(int(labels.max()) + 1, bool)
    wanted[[c.label for c in comps]] = True
    return wanted[labels]


def make_piece(labels: np.ndarray, comps: Sequence[Component], clip: tuple[int, int] | None = None) -> Piece | None:
    """The piece made of ``comps``, optionally clipped to columns ``clip = (x0, x1)``; ``None`` if nothing is left."""
    x0, x1 = min(c.x0 for c in comps), max(c.x1 for c in comps)
    if clip is not None:
        x0, x1 = max(x0, clip[0]), min(x1, clip[1])
    y0, y1 = min(c.y0 for c in comps), max(c.y1 for c in comps)
    if x1 <= x0:
        return None
    mask = _mask_of(labels[y0:y1, x0:x1], comps)
    rows, cols = np.flatnonzero(mask.any(1)), np.flatnonzero(mask.any(0))
    if rows.size == 0:
        return None
    mask = mask[rows[0]:rows[-1] + 1, cols[0]:cols[-1] + 1]
    return Piece(x0 + int(cols[0]), y0 + int(rows[0]), mask, len(comps))


def _overlap(a0: int, a1: int, b0: int, b1: int) -> int:
    return max(0, min(a1, b1) - max(a0, b0))


def _bounds(group: Sequence[Component]) -> tuple[int, int, int, int]:
    return (min(c.x0 for c in group), min(c.y0 for c in group), max(c.x1 for c in group), max(c.y1 for c in group))


def _gap(c: Component, group: Sequence[Component]) -> int:
    """Chessboard distance (px) between ``c``'s bounding box and the group's; 0 when they overlap."""
    gx0, gy0, gx1, gy1 = _bounds(group)
    return max(gx0 - c.x1, c.x0 - gx1, gy0 - c.y1, c.y0 - gy1, 0)


def _overlap_frac(a0: int, a1: int, b0: int, b1: int) -> float:
    """Overlap of two intervals as a fraction of the shorter one."""
    return _overlap(a0, a1, b0, b1) / max(1, min(a1 - a0, b1 - b0))


def same_digit(a: Component, b: Component, params: SegmentParams, in_box: bool = True) -> bool:
    """Whether two components are parts of one digit (rule 3).

    They are if they share a column, if (within one box) their bounding boxes intersect, or if they are within
    ``join_px`` and either stacked one above the other or one of them is too short to be a digit. Beside the
    boxes, slanted neighbours' bounding boxes often intersect, so that alone does not join them there.
    """
    gap = max(a.x0 - b.x1, b.x0 - a.x1, a.y0 - b.y1, b.y0 - a.y1, 0)
    if (in_box and gap == 0) or _overlap_frac(a.x0, a.x1, b.x0, b.x1) >= SAME_DIGIT_OVERLAP:
        return True
    stacked = _overlap_frac(a.y0, a.y1, b.y0, b.y1) < SAME_DIGIT_OVERLAP
    return gap <= params.join_px and (stacked or min(a.height, b.height) < params.min_digit_height)


def _clusters(comps: Sequence[Component], params: SegmentParams, in_box: bool) -> list[list[Component]]:
    """Transitive closure of :func:`same_digit` over ``comps`` (single linkage)."""
    clusters: list[list[Component]] = []
    for c in comps:
        linked = [g for g in clusters if any(same_digit(c, m, params, in_box) for m in g)]
        merged = [c] + [m for g in linked for m in g]
        clusters = [g for g in clusters if not any(g is k for k in linked)] + [merged]
    return clusters


def _height(group: Sequence[Component]) -> int:
    _, y0, _, y1 = _bounds(group)
    return y1 - y0


def group_digits(comps: Sequence[Component], params: SegmentParams, in_box: bool = True) -> list[list[Component]]:
    """Group components into digits (rule 3), returned left to right.

    Components of ``min_area`` or more are clustered with :func:`same_digit`; a cluster is a digit if it is at
    least ``min_digit_height`` tall, half as tall as the tallest cluster, and not only hairlines (thinner than a
    pen stroke, like paper folds). Other clusters and specks join the nearest digit within ``join_px``, or are
    dropped as dirt.
    """
    clusters = _clusters([c for c in comps if c.area >= params.min_area], params, in_box)
    tallest = max((_height(g) for g in clusters), default=0)
    floor = max(SECOND_DIGIT_HEIGHT * tallest, params.min_digit_height)
    digits = [g for g in clusters if _height(g) >= floor and any(c.solid for c in g)]
    rest = [c for g in clusters if not any(g is d for d in digits) for c in g]
    rest += [c for c in comps if c.area < params.min_area]
    for c in rest:
        home = min(digits, key=lambda g: _gap(c, g), default=None)
        if home is not None and _gap(c, home) <= params.join_px:
            home.append(c)
    return sorted(digits, key=lambda g: _bounds(g)[0])


def split_touching(piece: Piece, params: SegmentParams) -> list[Piece] | None:
    """Two pieces if ``piece`` is cleanly two touching digits side by side (rule 4), else ``None``."""
    profile = piece.mask.sum(0)
    lo, hi = piece.width // 3, 2 * piece.width // 3
    if hi <= lo:
        return None
    cut = lo + int(np.argmin(profile[lo:hi]))
    if profile[cut] > params.split_max_ink:
        return None
    halves = []
    for x0, part in ((0, piece.mask[:, :cut]), (cut + 1, piece.mask[:, cut + 1:])):
        rows, cols = np.flatnonzero(part.any(1)), np.flatnonzero(part.any(0))
        if rows.size == 0 or rows[-1] + 1 - rows[0] < SPLIT_MIN_HEIGHT * piece.height:
            return None
        sub = part[rows[0]:rows[-1] + 1, cols[0]:cols[-1] + 1]
        halves.append(Piece(piece.x0 + x0 + int(cols[0]), piece.y0 + int(rows[0]), sub, piece.n_components))
    return halves


def _decide_box(box: int, width: int, labels: np.ndarray, groups: list[list[Component]],
                params: SegmentParams) -> list[BoxRead]:
    """Rule 4 for the digit groups of one box ``width`` px wide."""
    if not groups:
        return [BoxRead(box, 0, BOX_EMPTY, None)]
    if len(groups) == 2 and _bounds(groups[1])[0] - _bounds(groups[0])[2] > params.join_px:
        return [BoxRead(box, slot, BOX_DIGIT, make_piece(labels, g)) for slot, g in enumerate(groups)]
    whole = make_piece(labels, [c for g in groups for c in g])
    if len(groups) > 1:
        return [BoxRead(box, 0, BOX_AMBIGUOUS, whole)]
    if whole.width <= params.touching_widths * width:
        return [BoxRead(box, 0, BOX_DIGIT, whole)]
    halves = split_touching(whole, params)
    if halves is None:
        return [BoxRead(box, 0, BOX_AMBIGUOUS, whole)]
    return [BoxRead(box, slot, BOX_DIGIT, p) for slot, p in enumerate(halves)]


def _home_box(c: Component, boxes: Sequence[Box]) -> int | None:
    overlaps = [_overlap(c.x0, c.x1, x0, x1) for x0, _, x1, _ in boxes]
    best = int(np.argmax(overlaps))
    return best if overlaps[best] > 0 else None


def _crossed(c: Component, boxes: Sequence[Box]) -> list[int]:
    """Indices of the boxes a component covers a good part (``CROSS_BOX_COVER``) of the width of."""
    return [i for i, (x0, _, x1, _) in enumerate(boxes) if _overlap(c.x0, c.x1, x0, x1) >= CROSS_BOX_COVER * (x1 - x0)]


def is_strike(c: Component, boxes: Sequence[Box], params: SegmentParams) -> bool:
    """Whether ``c`` is a strike-through: at least ``strike_px`` wide and spanning every box it crosses from edge
    to edge (a line or zigzag drawn through the number); digits touching across boxes do not reach both edges."""
    crossed = [boxes[i] for i in _crossed(c, boxes)]
    return c.width >= params.strike_px and bool(crossed) and all(
        _overlap(c.x0, c.x1, x0, x1) >= STRIKE_BOX_COVER * (x1 - x0) for x0, _, x1, _ in crossed)


def struck_boxes(labels: np.ndarray, comps: Sequence[Component], boxes: Sequence[Box],
                 params: SegmentParams, band: np.ndarray | None = None) -> dict[int, int]:
    """Boxes crossed by a strike-through (:func:`is_strike`) made of some of ``comps``, each with how many boxes
    its strike crosses (the most, where two cross it).

    Removing the box lines cuts a strike where it runs along or turns on a line (zigzags do), so strikes are
    looked for among the components of their ink grown by ``bridge_px``, which rejoins pieces across a line.
    Hairline specks (no pixel a full pen stroke deep: the blurred edge of a box line left by its removal) take no
    part: bridging through them joins neighbouring digits into a false strike. Bridging also joins large digits
    that touch their walls from both sides, so a strike through several boxes must have ink of its own in every
    gap between them (:func:`inks_gutters`) that the printed lines (``band``) leave open: a pen drawn through
    the number crosses them, digits kept to their boxes do not. Ink that runs out of the field image on the left
    or right is no strike: a pen stroke through the number ends near it, a toner band or fold crosses the page.
    """
    k = params.bridge_px
    comps = [c for c in comps if c.solid]
    if not comps or not _may_strike(labels, comps, boxes, params):
        return {}
    ink = _mask_of(labels, comps)
    grown_labels, grown = find_components(cv2.dilate(ink.astype(np.uint8), np.ones((2 * k + 1, 2 * k + 1), np.uint8)))
    shrunk = [Component(c.label, c.x0 + k, c.y0 + k, c.x1 - k, c.y1 - k, c.area, c.solid) for c in grown]
    open_ink = ink if band is None else ink & ~band
    edges = set(grown_labels[:, [0, -1]][ink[:, [0, -1]]].tolist())  # grown pieces whose ink leaves the image
    struck: dict[int, int] = {}
    for c in _in_rows(shrunk, boxes):
        crossed = _crossed(c, boxes)
        if is_strike(c, boxes, params) and c.label not in edges and inks_gutters(
                open_ink & (grown_labels == c.label), crossed, boxes, band):
            for i in crossed:
                struck[i] = max(struck.get(i, 0), len(crossed))
    return struck


def inks_gutters(ink: np.ndarray, crossed: Sequence[int], boxes: Sequence[Box], band: np.ndarray | None) -> bool:
    """Whether ``ink`` reaches into every gap between consecutive ``crossed`` boxes that has columns clear of the
    printed lines (``band``) within the boxes' rows; shared walls leave no gap, and then nothing is asked."""
    row0, row1 = min(b[1] for b in boxes), max(b[3] for b in boxes)
    for left, right in zip(crossed, crossed[1:], strict=False):
        x0, x1 = boxes[left][2], boxes[right][0]
        if x1 <= x0:
            continue
        open_cols = np.ones(x1 - x0, bool) if band is None else ~band[row0:row1, x0:x1].all(axis=0)
        if open_cols.any() and not ink[row0:row1, x0:x1][:, open_cols].any():
            return False
    return True


def _may_strike(labels: np.ndarray, comps: Sequence[Component], boxes: Sequence[Box],
                params: SegmentParams) -> bool:
    """Cheap necessary condition for a strike: the ink's column projection, gaps up to ``2 bridge_px`` closed,
    has a run ``strike_px`` long covering most of a box (a connected shape projects onto an unbroken run).

    That projection is the union of the components' column spans: a component is 8-connected, so its pixels
    fill every column from its first to its last (no pixel mask needs to be built).
    """
    k = params.bridge_px
    cols = np.zeros(labels.shape[1], np.uint8)
    for c in comps:
        cols[c.x0:c.x1] = 1
    cols = cv2.morphologyEx(cols[None, :], cv2.MORPH_CLOSE, np.ones((1, 2 * k + 1), np.uint8))[0] > 0
    edges = np.flatnonzero(np.diff(np.concatenate([[0], cols.astype(np.int8), [0]])))
    for start, stop in zip(edges[::2], edges[1::2], strict=True):
        run = Component(0, int(start), 0, int(stop), 1, 0)
        if is_strike(run, boxes, params):
            return True
    return False


def _in_rows(comps: Sequence[Component], boxes: Sequence[Box]) -> list[Component]:
    """Components reaching into the boxes' rows (rule 1)."""
    row0, row1 = min(b[1] for b in boxes), max(b[3] for b in boxes)
    return [c for c in comps if c.y1 > row0 and c.y0 < row1]


def _columns(boxes: Sequence[Box]) -> list[tuple[int, int]]:
    """Each box's columns extended to the middle of the gaps beside it (where its digit may stray)."""
    half = (boxes[1][0] - boxes[0][2]) // 2 if len(boxes) > 1 else 0
    return [(x0 - half, x1 + half) for x0, _, x1, _ in boxes]


def _foreign(c: Component, boxes: Sequence[Box], shape: tuple[int, ...]) -> bool:
    """Whether ``c`` belongs to something larger than a digit written in or beside the boxes (a fold crossing
    the row, the rim of a stamp, a signature): it runs out of the field image on the right (the end of the area
    beside the boxes), or out at the top or bottom while lying mostly outside the boxes' rows or running past
    both of them. A digit whose tail strays out of the image stays: most of it is in its box."""
    height, width = shape[:2]
    if c.x1 >= width:
        return True
    if c.y0 > 0 and c.y1 < height:
        return False
    row0, row1 = min(b[1] for b in boxes), max(b[3] for b in boxes)
    return _overlap(c.y0, c.y1, row0, row1) < IN_ROW_FRACTION * c.height or (c.y0 < row0 and c.y1 > row1)


def _off_lines(labels: np.ndarray, comps: list[Component], band: np.ndarray | None) -> list[Component]:
    """Components not lying mostly on the printed-line ``band`` (those are remnants of the lines), and the solid
    ones on it whose bounding box meets an off-line component's: a stroke running along a line, such as the base
    of a 2 drawn on the box's bottom edge, cut off from its digit by the line removal."""
    if band is None or not comps:
        return comps
    on_band = np.bincount(labels[band], minlength=int(labels.max()) + 1)
    off = [c for c in comps if on_band[c.label] < REMNANT_FRACTION * c.area]
    return [c for c in comps if c in off or (c.solid and any(_gap(c, [o]) == 0 for o in off))]


def segment_field(clean: np.ndarray, boxes: Sequence[Box], beside_x0: int | None, params: SegmentParams,
                  band: np.ndarray | None = None) -> list[BoxRead]:
    """Decide every box of a numeric field, and cut digits written beside it (module rules 1-5).

    Args:
        clean: boolean ink of the field image with the printed lines removed.
        boxes: the field's boxes ``(x0, y0, x1, y1)`` in field-image pixels, in reading order.
        beside_x0: first column of the area beside the boxes read for replacements, or ``None``.
        params: thresholds in pixels.
        band: where the printed lines were found (:func:`pipeline.vision.lines.remove_lines`), if known.
    """
    labels, comps = find_components(clean, params.stroke_px)
    in_rows = _in_rows(comps, boxes)
    comps = [c for c in in_rows if not _foreign(c, boxes, clean.shape)]
    # line remnants count here (they bridge a strike's pieces), and so does ink running out of the image: joined to
    # it, a band or fold crossing the page is seen whole and not taken for a strike
    struck = struck_boxes(labels, in_rows, boxes, params, band)
    comps = _off_lines(labels, comps, band)
    spanning = [c for c in comps if len(_crossed(c, boxes)) >= 2]
    members: list[list[Component]] = [[] for _ in boxes]
    beside: list[Component] = []
    for c in (c for c in comps if c not in spanning):
        home = _home_box(c, boxes)
        if home is not None:
            members[home].append(c)
        elif beside_x0 is not None and c.x0 >= beside_x0:
            beside.append(c)
    reads: list[BoxRead] = []
    for i, (box, columns) in enumerate(zip(boxes, _columns(boxes), strict=True)):
        over = [c for c in spanning if i in _crossed(c, boxes)]
        if over or i in struck:
            ink = over + members[i]
            reads.append(BoxRead(i, 0, BOX_AMBIGUOUS, make_piece(labels, ink, clip=columns) if ink else None,
                                 strike_boxes=struck.get(i, 0)))
        else:
            reads.extend(_decide_box(i, box[2] - box[0], labels, group_digits(members[i], params), params))
    if struck:
        reads += read_beside(labels, beside, boxes[-1][2] - boxes[-1][0], params)
    return reads


def read_beside(labels: np.ndarray, comps: Sequence[Component], box_width: int,
                params: SegmentParams) -> list[BoxRead]:
    """The digits written beside the boxes (rule 5), numbered -1, -2, ... left to right.

    Touching digits wider than ``touching_widths`` boxes are split where the cut is clean, else kept as one
    ``ambiguous`` crop.
    """
    pieces: list[tuple[str, Piece]] = []
    for group in group_digits(comps, params, in_box=False):
        piece = make_piece(labels, group)
        if piece.width <= params.touching_widths * box_width:
            pieces.append((BOX_DIGIT, piece))
            continue
        halves = split_touching(piece, params)
        pieces += [(BOX_DIGIT, h) for h in halves] if halves else [(BOX_AMBIGUOUS, piece)]
    return [BoxRead(-1 - k, 0, status, piece) for k, (status, piece) in enumerate(pieces)]
