"""Filler marks: the X or dash a form's users write in the unused leading boxes of a count ("no digit here").

MNIST has no such marks, so the recogniser would read an X as a 4 or 7 and a dash as a 1. A check runs before it,
on the ink of each box (printed lines removed), and only for templates that declare the marks
(``filler_marks: [x, dash]``) and only on the leading boxes (those before the field's first digit):
:func:`filler_kind`, a geometric dash test, then a **learned** filler-vs-digit check
(:mod:`pipeline.vision.filler_model`: trained on drawn X's and dashes against MNIST-train digits) for the rest.

* **dash** (geometric): one wide, flat stroke: at least ``DASH_ASPECT`` times as wide as tall and at most
  ``DASH_MAX_HEIGHT`` of the box's height. (A dash lower than the segmentation's smallest digit is dropped as dirt
  before this.)
* **X** (geometric, :func:`is_x`; no longer decides, see :func:`geometric_kind`, but its measures are features of
  the learned check): two crossing diagonal strokes: the ink's bounding box is neither narrow nor flat
  (``X_ASPECT``), both of its diagonals are inked along at least ``X_DIAGONAL_COVER`` of their length (within a
  pen's reach, ``X_REACH`` of the ink's smaller side), and the four wedges between the diagonals (top, bottom,
  left, right) are empty: at most ``X_WEDGE_INK`` of the ink's skeleton (:func:`skeleton`: the strokes thinned to
  one pixel, whatever the pen's width) lies in any one of them away from both diagonals. A 2 or 7 has a bar in
  the top or bottom wedge, a 4 its bar and stem in the side wedges, a 1 is too narrow. These rules describe one
  clean X: a curved, cursive or lopsided one slips through them (9 of the 15 real X's of the development set were
  found), hence the learned check.

A leading ``0`` (``filler_marks: [zero]``) needs no check: the recogniser reads it and it does not change the value.
"""

from __future__ import annotations

import cv2
import numpy as np

from pipeline.vision.segment import BoxRead
from pipeline.vision.settings import BOX_DIGIT, BOX_EMPTY

#: A dash is at least this many times as wide as it is tall ...
DASH_ASPECT = 2.0
#: ... and at most this fraction of its box's height.
DASH_MAX_HEIGHT = 0.3
#: Range of an X's width / height.
X_ASPECT = (0.55, 2.0)
#: Share of each diagonal's length that must be inked for an X.
X_DIAGONAL_COVER = 0.8
#: Largest share of the ink in one wedge between the diagonals, farther than the pen's reach from both.
X_WEDGE_INK = 0.08
#: Reach around a diagonal, as a fraction of the ink's smaller side (a stroke is not a perfect line).
X_REACH = 0.15
#: Fewest stroke ends an X shows (a cursive X may join two arms), after spurs shorter than ``X_SPUR`` of the
#: ink's smaller side are pruned.
X_MIN_ARMS, X_SPUR = 3, 0.2
#: Smallest reach (pixels) around a diagonal.
MIN_REACH_PX = 1.5
#: Points sampled along each diagonal.
DIAGONAL_SAMPLES = 24
#: Filler kinds recognised geometrically.
FILLER_X, FILLER_DASH = "x", "dash"


def _diagonal_offsets(h: int, w: int) -> tuple[np.ndarray, np.ndarray]:
    """Signed distance of every pixel of an ``h`` x ``w`` box from its main and its anti-diagonal."""
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
    norm = np.hypot(h - 1, w - 1) or 1.0
    main = ((h - 1) * xs - (w - 1) * ys) / norm
    anti = ((h - 1) * (w - 1 - xs) - (w - 1) * ys) / norm
    return main, anti


def wedge_ink(mask: np.ndarray, reach: float) -> float:
    """The largest share of the ink lying in one of the four wedges between the diagonals, farther than ``reach``
    from both (0 for a clean X)."""
    h, w = mask.shape
    main, anti = _diagonal_offsets(h, w)
    away = (np.minimum(np.abs(main), np.abs(anti)) > reach) & mask
    total = float(mask.sum()) or 1.0
    wedges = [(main > 0) & (anti > 0), (main < 0) & (anti < 0), (main > 0) & (anti < 0), (main < 0) & (anti > 0)]
    return max(float((away & wedge).sum()) for wedge in wedges) / total


def _cover(reach_mask: np.ndarray, points: np.ndarray) -> float:
    """Share of ``points`` (x, y) that fall on ``reach_mask``."""
    xs, ys = np.round(points[:, 0]).astype(int), np.round(points[:, 1]).astype(int)
    return float(reach_mask[ys, xs].mean())


def _transitions(n: list[np.ndarray]) -> np.ndarray:
    """0 -> 1 changes around a ring of neighbours P2..P9 (clockwise from north; 1 at a stroke's end, 2 along it,
    3+ at a fork)."""
    ring = n + n[:1]
    return sum(((a == 0) & (b == 1)).astype(np.uint8) for a, b in zip(ring[:-1], ring[1:], strict=True))


#: Weights of the 8 neighbours P2..P9 in a pixel's neighbourhood code (bit i for neighbour P(i+2)).
_CODE_KERNEL = np.array([[128, 1, 2], [64, 0, 4], [32, 16, 8]], np.float32)


def _lookup_tables() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """For each of the 256 neighbourhood codes: whether Zhang-Suen's first and second sub-steps remove the pixel,
    and whether it is a stroke's end."""
    bits = [((np.arange(256) >> i) & 1).astype(np.uint8) for i in range(8)]
    count, transitions = sum(bits), _transitions(bits)
    p2, p4, p6, p8 = bits[0], bits[2], bits[4], bits[6]
    base = (count >= 2) & (count <= 6) & (transitions == 1)
    first = base & (p2 * p4 * p6 == 0) & (p4 * p6 * p8 == 0)
    second = base & (p2 * p4 * p8 == 0) & (p2 * p6 * p8 == 0)
    end = (count >= 1) & (count <= 2) & (transitions == 1)
    return first, second, end


def _codes(img: np.ndarray) -> np.ndarray:
    """The neighbourhood code (0-255, :data:`_CODE_KERNEL`) of every pixel of a 0/1 image (zero outside)."""
    code = cv2.filter2D(img.astype(np.float32), -1, _CODE_KERNEL, borderType=cv2.BORDER_CONSTANT)
    return np.rint(code).astype(np.uint8)


_THIN_FIRST, _THIN_SECOND, _END = _lookup_tables()


def stroke_ends(img: np.ndarray) -> np.ndarray:
    """Pixels of a skeleton where a stroke ends (one run of neighbours, at most two of them)."""
    img = img.astype(np.uint8)
    return (img == 1) & _END[_codes(img)]


def skeleton(mask: np.ndarray) -> np.ndarray:
    """The one-pixel-wide skeleton of a boolean mask (Zhang-Suen thinning, by lookup tables of the neighbourhood
    codes), so that shape tests do not depend on the pen's width."""
    img = mask.astype(np.uint8)
    changed = True
    while changed:
        changed = False
        for table in (_THIN_FIRST, _THIN_SECOND):
            remove = (img == 1) & table[_codes(img)]
            if remove.any():
                img[remove] = 0
                changed = True
    return img.astype(bool)


def arm_count(skel: np.ndarray, spur: int) -> int:
    """Stroke ends of a skeleton that remain after every branch is shortened by ``spur`` pixels (spurs of a thick
    stroke's thinning vanish; an X keeps its four arms, a 2 or 7 its two ends)."""
    img = skel.astype(np.uint8)
    for _ in range(spur):
        ends = stroke_ends(img)
        if not ends.any():
            break
        img[ends] = 0
    return int(stroke_ends(img).sum())


def is_x(mask: np.ndarray) -> bool:
    """Whether the ink ``mask`` (cropped to its bounding box) is an X (module rules)."""
    h, w = mask.shape
    if h < 5 or w < 5 or not X_ASPECT[0] <= w / h <= X_ASPECT[1]:
        return False
    reach = max(MIN_REACH_PX, X_REACH * min(h, w))
    side = 2 * int(np.ceil(reach)) + 1
    near_ink = cv2.dilate(mask.astype(np.uint8), cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (side, side)))
    t = np.linspace(0.08, 0.92, DIAGONAL_SAMPLES)
    main_pts = np.stack([t * (w - 1), t * (h - 1)], axis=1)
    anti_pts = np.stack([(1 - t) * (w - 1), t * (h - 1)], axis=1)
    if min(_cover(near_ink, main_pts), _cover(near_ink, anti_pts)) < X_DIAGONAL_COVER:
        return False
    skel = skeleton(mask)
    if arm_count(skel, max(1, round(X_SPUR * min(h, w)))) < X_MIN_ARMS:
        return False
    return wedge_ink(skel, reach) <= X_WEDGE_INK


def is_dash(mask: np.ndarray, box_height: int) -> bool:
    """Whether the ink ``mask`` (cropped to its bounding box) is a dash in a box ``box_height`` pixels tall."""
    h, w = mask.shape
    return w >= DASH_ASPECT * h and h <= DASH_MAX_HEIGHT * box_height


def geometric_kind(mask: np.ndarray, box_height: int, marks: tuple[str, ...]) -> str:
    """The filler mark the geometric rules alone (:func:`is_dash`, :func:`is_x`) take the ink for; ``""`` if
    none (the check before the learned one; kept to compare with it)."""
    mask = mask.astype(bool)
    if FILLER_DASH in marks and is_dash(mask, box_height):
        return FILLER_DASH
    if FILLER_X in marks and is_x(mask):
        return FILLER_X
    return ""


def filler_kind(mask: np.ndarray, box_height: int, marks: tuple[str, ...]) -> str:
    """The filler mark the ink ``mask`` is (``"x"``, ``"dash"``), among the template's ``marks``; ``""`` if none:
    a dash by its geometry (:func:`is_dash`), else whatever the learned check
    (:func:`pipeline.vision.filler_model.learned_kind`) finds."""
    from pipeline.vision.filler_model import learned_kind

    mask = mask.astype(bool)
    if not mask.any() or not {FILLER_X, FILLER_DASH} & set(marks):
        return ""
    if FILLER_DASH in marks and is_dash(mask, box_height):
        return FILLER_DASH
    return learned_kind(mask, marks)


def may_be_struck_filler(read: BoxRead, n_boxes: int) -> bool:
    """Whether a box taken for struck through may hold a filler X instead: an X drawn corner to corner spans its
    box like a strike, but only its own box, and never the field's last (a number's units are always written). A
    strike through a number crosses its boxes together; one through a single-digit number crosses the last box.
    Left out, a crossed-out number would read as the writer's zero (every box a filler mark, no review)."""
    return read.strike_boxes == 1 and read.box < n_boxes - 1


def mark_fillers(reads: list[BoxRead], box_heights: list[int], marks: tuple[str, ...]
                 ) -> tuple[list[BoxRead], dict[int, str]]:
    """The box decisions with leading filler marks turned into empty boxes, and ``{box: kind}`` of those marks.

    Only boxes before the first real digit (in reading order) are checked: a filler fills unused leading boxes.
    Boxes taken for struck through are checked too where an X may be what was seen (:func:`may_be_struck_filler`).
    """
    out, kinds = list(reads), {}
    for i, read in enumerate(reads):
        if read.box < 0:
            break
        if read.status == BOX_EMPTY:
            continue
        kind = ""
        if (read.status == BOX_DIGIT or may_be_struck_filler(read, len(box_heights))) and read.piece is not None:
            kind = filler_kind(read.piece.mask, box_heights[read.box], marks)
        if not kind:
            break
        out[i] = BoxRead(read.box, read.slot, BOX_EMPTY, None, read.strike_boxes)
        kinds[read.box] = kind
    return out, kinds
