"""A handwriting style the MNIST-trained model reads worse, for the retraining demonstration.

"Felt pen": strokes about twice as thick as MNIST's and a strong rightward slant, as a different writer with a
different pen would produce. The synthetic generator's :func:`pipeline.synth.pen.style_digit` is used when that
package is installed (same style knobs as the synthetic sheets); otherwise an equivalent OpenCV transform:
dilation with an elliptical kernel (thick strokes), a horizontal shear (slant) and a slight Gaussian blur (felt
ink bleeding).
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass

import cv2
import numpy as np


@dataclass(frozen=True)
class FeltPen:
    """The demo style: stroke width relative to MNIST, slant in degrees, blur sigma in pixels (fallback only)."""

    stroke_scale: float = 2.2
    slant_deg: float = 28.0
    blur_sigma: float = 0.6
    jitter: float = 1.0


#: Fallback dilation kernel side for ``stroke_scale`` ~2 at 28 px (MNIST strokes are ~2.5 px wide).
FALLBACK_KERNEL = 3
CENTRE = 14.0


def _synth_style():
    """``pipeline.synth.pen.style_digit`` when the synthetic generator is present, else ``None``."""
    try:
        return importlib.import_module("pipeline.synth.pen").style_digit
    except (ImportError, AttributeError):
        return None


def _fallback(digit: np.ndarray, style: FeltPen, rng: np.random.Generator) -> np.ndarray:
    """Thicken, slant and blur one 28x28 digit with OpenCV."""
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (FALLBACK_KERNEL, FALLBACK_KERNEL))
    thick = cv2.dilate(digit, kernel)
    shear = -np.tan(np.radians(style.slant_deg + rng.normal(0.0, 4.0 * style.jitter)))
    matrix = np.float32([[1.0, shear, -shear * CENTRE], [0.0, 1.0, 0.0]])
    slanted = cv2.warpAffine(thick, matrix, (28, 28), flags=cv2.INTER_LINEAR, borderValue=0)
    return cv2.GaussianBlur(slanted, (0, 0), style.blur_sigma)


def felt_pen(digits: np.ndarray, seed: int, style: FeltPen = FeltPen()) -> tuple[np.ndarray, str]:
    """Restyle a uint8 ``(N, 28, 28)`` stack; returns the digits and which implementation made them."""
    rng = np.random.default_rng(seed)
    synth = _synth_style()
    if synth is not None:
        out = [synth(d, rng, stroke_scale=style.stroke_scale, slant_deg=style.slant_deg, jitter=style.jitter)
               for d in digits]
        return np.stack(out).astype(np.uint8), "pipeline.synth.pen.style_digit"
    return np.stack([_fallback(d, style, rng) for d in digits]).astype(np.uint8), "opencv fallback (dilate+shear+blur)"
