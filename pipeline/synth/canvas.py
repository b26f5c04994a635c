"""The scan being made: every mark is drawn as a small patch in template coordinates and warped into place.

The printed form is warped onto the scanner image once; after that, ink, stamps, stains and correction fluid are
drawn as small opacity patches laid out in *template* pixels and mapped through the same homography. Warping a
few small patches is far cheaper than warping the whole page after drawing, and the geometry stays exact.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from pipeline.forms.template import MM_PER_INCH

#: BGR weights of the luminance used for greyscale scans.
LUMA_BGR = np.array([0.114, 0.587, 0.299], np.float32)


@dataclass(frozen=True)
class Canvas:
    """A scan image (uint8, grey or BGR, modified in place), the homography from template pixels at ``dpi``,
    and the scanner's optical blur, applied to every mark so ink is as soft as the printed form around it."""

    image: np.ndarray
    homography: np.ndarray
    dpi: float
    blur_sigma: float = 0.0

    def px(self, mm: float) -> float:
        """Millimetres to template pixels."""
        return mm * self.dpi / MM_PER_INCH

    def _colour(self, bgr: tuple[float, float, float]) -> np.ndarray:
        c = np.asarray(bgr, np.float32)
        return c if self.image.ndim == 3 else np.float32(c @ LUMA_BGR)

    def _warp(self, alpha: np.ndarray, x0: float, y0: float) -> tuple[tuple[slice, slice], np.ndarray] | None:
        """``alpha`` (placed at template pixel ``(x0, y0)``) warped into scan pixels, with its image region."""
        if self.blur_sigma > 0:
            alpha = cv2.GaussianBlur(alpha, (0, 0), self.blur_sigma)
        h, w = alpha.shape
        corners = np.array([[[x0, y0], [x0 + w, y0], [x0 + w, y0 + h], [x0, y0 + h]]], np.float64)
        mapped = cv2.perspectiveTransform(corners, self.homography)[0]
        ih, iw = self.image.shape[:2]
        bx0, by0 = (max(0, int(np.floor(v)) - 1) for v in mapped.min(axis=0))
        bx1, by1 = min(iw, int(np.ceil(mapped[:, 0].max())) + 1), min(ih, int(np.ceil(mapped[:, 1].max())) + 1)
        if bx1 <= bx0 or by1 <= by0:
            return None
        shift = np.array([[1, 0, x0], [0, 1, y0], [0, 0, 1.0]])
        to_roi = np.array([[1, 0, -bx0], [0, 1, -by0], [0, 0, 1.0]])
        warped = cv2.warpPerspective(alpha, to_roi @ self.homography @ shift, (bx1 - bx0, by1 - by0),
                                     flags=cv2.INTER_LINEAR, borderValue=0)
        return (slice(by0, by1), slice(bx0, bx1)), warped

    def ink(self, alpha: np.ndarray, x0: float, y0: float, colour: tuple[float, float, float]) -> None:
        """Lay translucent ink of ``colour`` with opacity ``alpha`` (float32 0-1) over what is there."""
        placed = self._warp(alpha, x0, y0)
        if placed is None:
            return
        region, a = placed
        roi = self.image[region]
        absorb = 1 - self._colour(colour) / 255
        factor = 1 - a[..., None] * absorb if roi.ndim == 3 else 1 - a * absorb
        roi[...] = cv2.multiply(roi, factor, dtype=cv2.CV_8U)

    def paint(self, alpha: np.ndarray, x0: float, y0: float, colour: tuple[float, float, float]) -> None:
        """Cover what is there with opaque paint (correction fluid) of ``colour`` with coverage ``alpha``."""
        placed = self._warp(alpha, x0, y0)
        if placed is None:
            return
        region, a = placed
        roi = self.image[region]
        a = a[..., None] if roi.ndim == 3 else a
        roi[...] = np.clip(roi * (1 - a) + self._colour(colour) * a + 0.5, 0, 255).astype(np.uint8)
