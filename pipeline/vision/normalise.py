"""MNIST-style normalisation of one digit.

MNIST (LeCun et al.) took each binary NIST digit, scaled it so its longer side is 20 px keeping the aspect ratio
(the anti-aliasing of that scaling makes the grey levels), and pasted it into a 28x28 field so that its centre of
mass sits at the centre. Digits are white on black, 0-255, with saturated stroke cores. The recogniser is trained
on MNIST, so the reader hands it digits made the same way. A scanned stroke is grey and blurred rather than
binary, so two steps recover what MNIST saw: the 20 px box is the box of the digit's *binary* shape (pixels at
``BBOX_LEVEL`` of its stroke cores' darkness or more), not of its faint blurred rim; and grey levels are stretched
so that, as in MNIST, the darker ``100 - WHITE_PERCENTILE`` % of the ink pixels are full white.

Writer normalisation. MNIST keeps each digit's aspect ratio and slant, so a writer who squeezes every digit into
the narrow boxes or slants them all more than MNIST's writers did hands the recogniser digits from the edge of
what it was trained on. One person fills a whole sheet, so the sheet's digits tell that person's style:
:func:`estimate_writer_style` compares the median aspect and slant (second moments, :func:`shape_style`) of a
sheet's digits with those of MNIST's (:data:`MNIST_ASPECT`, :data:`MNIST_SLANT`, measured by
:func:`mnist_style_reference`) and :func:`to_mnist` undoes the difference (a horizontal stretch and a shear)
before the MNIST steps. Each digit's own variation around its writer's style is kept, as in MNIST; only the
writer's offset is removed.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import cv2
import numpy as np

MNIST_SIZE = 28
MNIST_BOX = 20
#: Centre of mass of MNIST digits in (row, column) pixel-index coordinates: measured on the test split as
#: (13.99, 14.00), i.e. the centre pixel at index 14.
MNIST_CENTRE = 14.0
MNIST_WHITE = 255.0
#: Fraction of the darkest ink at which the digit's outline (its binary shape, hence its box) is taken.
BBOX_LEVEL = 0.3
#: Percentile of a digit's ink darkness taken as its stroke cores' darkness (:func:`ink_peak`). With a faint
#: pencil digit touching a box line, the line's remnant (a few % of the pixels, three times darker) set the
#: maximum, and the digit's outline was cut at a level only the remnant reached: the crop was the remnant, a blob.
PEAK_PERCENTILE = 95.0
#: Percentile of the ink grey levels stretched to full white. Measured on the MNIST test split: 36 % of the
#: non-zero pixels are >= 250, so the 64th percentile sits at white.
WHITE_PERCENTILE = 64.0
#: Digits narrower than this (:func:`shape_style` aspect) are ones, whose width says nothing about how much a
#: writer squeezes: they are left out of the writer's width estimate. On MNIST-train, 90 % of ones are below
#: 0.29 and 90 % of every other digit above 0.42.
NARROW_ASPECT = 0.35
#: Median aspect (:func:`shape_style`) of MNIST-train digits wider than ``NARROW_ASPECT`` and their median
#: slant, as measured by :func:`mnist_style_reference` on all 60,000 MNIST-train digits.
MNIST_ASPECT = 0.664
MNIST_SLANT = -0.103
#: Side (px) MNIST digits are enlarged to for the reference: about a written digit's size on a 200 dpi scan.
REFERENCE_SIZE = 75


@dataclass(frozen=True)
class WriterStyle:
    """How one writer's digits differ from MNIST's: ``width_factor`` widens them back to MNIST proportions and
    ``shear`` (horizontal shift per unit of height, after widening) straightens their slant to MNIST's."""

    width_factor: float = 1.0
    shear: float = 0.0

    @property
    def is_identity(self) -> bool:
        return self.width_factor == 1.0 and self.shear == 0.0


IDENTITY_STYLE = WriterStyle()


def tight_bbox(ink: np.ndarray) -> tuple[int, int, int, int] | None:
    """``(x0, y0, x1, y1)``, end-exclusive, of the non-zero pixels of ``ink``; ``None`` if there are none."""
    rows, cols = np.flatnonzero(ink.any(1)), np.flatnonzero(ink.any(0))
    if rows.size == 0:
        return None
    return int(cols[0]), int(rows[0]), int(cols[-1]) + 1, int(rows[-1]) + 1


def ink_peak(ink: np.ndarray) -> float:
    """The darkness of a digit's stroke cores: the ``PEAK_PERCENTILE`` of its ink pixels, not their maximum, so a
    few far darker pixels (the remnant of a printed line that a faint digit touches) do not set the level."""
    values = ink[ink > 0]
    return percentile(values.astype(np.float32), PEAK_PERCENTILE) if values.size else 0.0


def binary_shape(ink: np.ndarray) -> np.ndarray:
    """The digit's binary shape: its pixels at ``BBOX_LEVEL`` of its stroke cores' darkness (:func:`ink_peak`) or
    more."""
    return ink >= BBOX_LEVEL * ink_peak(ink)


def shape_style(mask: np.ndarray) -> tuple[float, float] | None:
    """``(aspect, slant)`` of a boolean digit shape, from its second moments.

    Slant is ``mu11 / mu02``, the horizontal shift per unit of height (negative leans right); aspect is the
    horizontal spread once that slant is taken out over the vertical spread, ``sqrt((mu20 - mu11^2 / mu02) /
    mu02)``, so that slanting a digit does not make it look wider. ``None`` for an empty or one-row shape.
    """
    m = cv2.moments(mask.astype(np.uint8), binaryImage=True)
    if m["mu02"] <= 0:
        return None
    slant = m["mu11"] / m["mu02"]
    return float(np.sqrt(max(m["mu20"] - slant * m["mu11"], 0.0) / m["mu02"])), slant


def mnist_shape(digit: np.ndarray, size: int = REFERENCE_SIZE) -> np.ndarray:
    """Binary shape of a 28x28 MNIST-format digit enlarged to ``size`` px, so that its proportions are measured
    finer than on the 28 px grid, as those of a digit on a scan are."""
    return binary_shape(cv2.resize(digit, (size, size), interpolation=cv2.INTER_CUBIC).astype(np.float32))


@dataclass(frozen=True)
class StyleMedians:
    """Medians of a set of digit shapes' proportions (see :func:`shape_style`): ``aspect`` over the ``n_wide``
    digits wider than ``NARROW_ASPECT``, ``slant`` over all ``n``."""

    aspect: float
    slant: float
    n_wide: int
    n: int


def style_medians(shapes: Iterable[np.ndarray]) -> StyleMedians | None:
    """:class:`StyleMedians` of boolean digit shapes (any resolution: the measures are scale-free); ``None`` if
    none can be measured."""
    styles = np.array([s for s in map(shape_style, shapes) if s is not None]).reshape(-1, 2)
    if not len(styles):
        return None
    wide = styles[styles[:, 0] >= NARROW_ASPECT, 0]
    return StyleMedians(float(np.median(wide)) if wide.size else float("nan"), float(np.median(styles[:, 1])),
                        int(wide.size), len(styles))


def estimate_writer_style(shapes: Iterable[np.ndarray], min_digits: int, max_width_factor: float,
                          max_shear: float) -> WriterStyle:
    """The writer's offset from MNIST, from the binary shapes (:func:`binary_shape`) of one sheet's digits.

    Width: MNIST's median aspect over the median of the sheet's digits wider than ``NARROW_ASPECT``;
    slant: the shear that moves the sheet's median slant (after widening) to MNIST's. Both are measured exactly as
    :func:`mnist_style_reference` measures MNIST. Nothing is changed when fewer than ``min_digits`` digits inform
    it, and both corrections are bounded (``max_width_factor`` either way, ``max_shear``), so a sheet of odd marks
    cannot distort every digit on it.
    """
    found = style_medians(shapes)
    if found is None or found.n < min_digits:
        return IDENTITY_STYLE
    factor = 1.0
    if found.n_wide >= min_digits:
        factor = float(np.clip(MNIST_ASPECT / found.aspect, 1 / max_width_factor, max_width_factor))
    shear = float(np.clip(factor * found.slant - MNIST_SLANT, -max_shear, max_shear))
    return WriterStyle(width_factor=factor, shear=shear)


def mnist_style_reference(images: np.ndarray) -> tuple[float, float]:
    """``(median aspect of digits wider than NARROW_ASPECT, median slant)`` of MNIST-format ``images``:
    the source of :data:`MNIST_ASPECT` and :data:`MNIST_SLANT`."""
    found = style_medians(mnist_shape(d) for d in images)
    return found.aspect, found.slant


def restyle_writer(ink: np.ndarray, style: WriterStyle) -> np.ndarray:
    """``ink`` widened by ``style.width_factor`` and sheared by ``style.shear`` about its centre (float32)."""
    h, w = ink.shape
    matrix = np.array([[style.width_factor, -style.shear], [0.0, 1.0]])
    corners = np.array([[0, 0], [w, 0], [0, h], [w, h]], float) - (w / 2, h / 2)
    moved = corners @ matrix.T
    lo, hi = moved.min(0), moved.max(0)
    size = np.ceil(hi - lo).astype(int) + 1
    offset = -lo - matrix @ (w / 2, h / 2)
    affine = np.hstack([matrix, offset[:, None]])
    return cv2.warpAffine(ink.astype(np.float32), affine, (int(size[0]), int(size[1])), flags=cv2.INTER_LINEAR)


def fit_box(ink: np.ndarray, box: int = MNIST_BOX) -> np.ndarray:
    """Scale the digit's box (its pixels at ``BBOX_LEVEL`` of :func:`ink_peak` or more) so its longer side is ``box``
    px, keeping the aspect ratio (float32; area averaging when shrinking gives MNIST-like anti-aliasing)."""
    x0, y0, x1, y1 = tight_bbox(binary_shape(ink))
    crop = ink[y0:y1, x0:x1].astype(np.float32)
    h, w = crop.shape
    scale = box / max(h, w)
    size = (min(box, max(1, round(w * scale))), min(box, max(1, round(h * scale))))
    shrinking = scale < 1
    return cv2.resize(crop, size, interpolation=cv2.INTER_AREA if shrinking else cv2.INTER_LINEAR)


def percentile(values: np.ndarray, q: float) -> float:
    """``np.percentile(values, q)`` (linear interpolation) by partial sorting: several times faster on the few
    hundred pixels of a digit, which matters when every digit of every sheet goes through here."""
    rank = (values.size - 1) * q / 100
    lo = int(np.floor(rank))
    hi = min(lo + 1, values.size - 1)
    part = np.partition(values, (lo, hi))
    return float(part[lo] + (part[hi] - part[lo]) * (rank - lo))


def stretch(digit: np.ndarray) -> np.ndarray:
    """Grey levels scaled so the ``WHITE_PERCENTILE`` of the ink is full white (clipped), as in MNIST."""
    ink = digit[digit > 0]
    white = percentile(ink, WHITE_PERCENTILE) if ink.size else 1.0
    return np.clip(digit * (MNIST_WHITE / max(white, np.finfo(np.float32).tiny)), 0, MNIST_WHITE)


def centre_of_mass(img: np.ndarray) -> tuple[float, float]:
    """(row, column) centre of mass of a non-negative image (not ``cv2.moments``: it reads an N x 2 array as a
    contour)."""
    img = img.astype(np.float64)
    total = img.sum()
    return (float(img.sum(1) @ np.arange(img.shape[0]) / total), float(img.sum(0) @ np.arange(img.shape[1]) / total))


def paste_centred(digit: np.ndarray, size: int = MNIST_SIZE, centre: float = MNIST_CENTRE) -> np.ndarray:
    """Place ``digit`` in a ``size`` x ``size`` field with its centre of mass on ``centre`` (whole-pixel shift)."""
    h, w = digit.shape
    cy, cx = centre_of_mass(digit)
    top = min(max(round(centre - cy), 0), size - h)  # np.clip's order: the upper bound wins; plain ints are faster
    left = min(max(round(centre - cx), 0), size - w)
    out = np.zeros((size, size), np.float32)
    out[top: top + h, left: left + w] = digit
    return out


def to_mnist(ink: np.ndarray, style: WriterStyle = IDENTITY_STYLE) -> np.ndarray:
    """One digit's ink image (white on black, any size and range) as a uint8 28x28 MNIST-style digit, its
    writer's ``style`` undone first.

    An image without ink gives an all-black digit.
    """
    if not np.any(ink > 0):
        return np.zeros((MNIST_SIZE, MNIST_SIZE), np.uint8)
    ink = np.where(ink > 0, ink, 0)
    if not style.is_identity:
        ink = restyle_writer(ink, style)
    fitted = stretch(np.clip(fit_box(ink), 0, None))
    return np.round(paste_centred(fitted)).astype(np.uint8)
