"""A handwriting style the MNIST-trained model reads worse, for the retraining demonstration.

"Felt pen": strokes about twice as thick as MNIST's and a strong rightward slant, as a different writer with a
different pen would produce, made with the synthetic generator's :func:`pipeline.synth.pen.style_digit` (the same
style knobs as the synthetic sheets).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from pipeline.synth.pen import style_digit

STYLE_SOURCE = "pipeline.synth.pen.style_digit"


@dataclass(frozen=True)
class FeltPen:
    """The demo style: stroke width relative to MNIST, slant in degrees, and how much each digit varies."""

    stroke_scale: float = 2.2
    slant_deg: float = 28.0
    jitter: float = 1.0


def felt_pen(digits: np.ndarray, seed: int, style: FeltPen = FeltPen()) -> tuple[np.ndarray, str]:
    """Restyle a uint8 ``(N, 28, 28)`` stack; returns the digits and which implementation made them."""
    rng = np.random.default_rng(seed)
    out = [style_digit(d, rng, stroke_scale=style.stroke_scale, slant_deg=style.slant_deg, jitter=style.jitter)
           for d in digits]
    return np.stack(out).astype(np.uint8), STYLE_SOURCE
