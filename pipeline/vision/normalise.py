"""MNIST-style normalisation of one digit.

MNIST (LeCun et al.) took each binary NIST digit, scaled it so its longer side is 20 px keeping the aspect ratio
(the anti-aliasing of that scaling makes the grey levels), and pasted it into a 28x28 field so that its centre of
mass sits at the centre. Digits are white on black, 0-255, with saturated stroke cores. The recogniser is trained
on MNIST, so the reader hands it digits made the same way. A scanned stroke is grey and blurred rather than
binary, so two steps recover what MNIST saw: the 20 px box is the box of the digit's *binary* shape (pixels at
``BBOX_LEVEL`` of its darkest ink or more), not of its faint blurred rim; and grey levels are stretched so that,
as in MNIST, the darker ``100 - WHITE_PERCENTILE`` % of the ink pixels are full white.
"""

from __future__ import annotations

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
#: Percentile of the ink grey levels stretched to full white. Measured on the MNIST test split: 36 % of the
#: non-zero pixels are >= 250, so the 64th percentile sits at white.
WHITE_PERCENTILE = 64.0


def tight_bbox(ink: np.ndarray) -> tuple[int, int, int, int] | None:
    """``(x0, y0, x1, y1)``, end-exclusive, of the non-zero pixels of ``ink``; ``None`` if there are none."""
    rows, cols = np.flatnonzero(ink.any(1)), np.flatnonzero(ink.any(0))
    if rows.size == 0:
        return None
    return int(cols[0]), int(rows[0]), int(cols[-1]) + 1, int(rows[-1]) + 1


def fit_box(ink: np.ndarray, box: int = MNIST_BOX) -> np.ndarray:
    """Scale the digit's box (its pixels at ``BBOX_LEVEL`` of the maximum or more) so its longer side is ``box``
    px, keeping the aspect ratio (float32; area averaging when shrinking gives MNIST-like anti-aliasing)."""
    x0, y0, x1, y1 = tight_bbox(ink >= BBOX_LEVEL * float(ink.max()))
    crop = ink[y0:y1, x0:x1].astype(np.float32)
    h, w = crop.shape
    scale = box / max(h, w)
    size = (min(box, max(1, round(w * scale))), min(box, max(1, round(h * scale))))
    shrinking = scale < 1
    return cv2.resize(crop, size, interpolation=cv2.INTER_AREA if shrinking else cv2.INTER_LINEAR)


def stretch(digit: np.ndarray) -> np.ndarray:
    """Grey levels scaled so the ``WHITE_PERCENTILE`` of the ink is full white (clipped), as in MNIST."""
    ink = digit[digit > 0]
    white = float(np.percentile(ink, WHITE_PERCENTILE)) if ink.size else 1.0
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
    top = int(np.clip(round(centre - cy), 0, size - h))
    left = int(np.clip(round(centre - cx), 0, size - w))
    out = np.zeros((size, size), np.float32)
    out[top: top + h, left: left + w] = digit
    return out


def to_mnist(ink: np.ndarray) -> np.ndarray:
    """One digit's ink image (white on black, any size and range) as a uint8 28x28 MNIST-style digit.

    An image without ink gives an all-black digit.
    """
    if not np.any(ink > 0):
        return np.zeros((MNIST_SIZE, MNIST_SIZE), np.uint8)
    fitted = stretch(np.clip(fit_box(np.where(ink > 0, ink, 0)), 0, None))
    return np.round(paste_centred(fitted)).astype(np.uint8)
