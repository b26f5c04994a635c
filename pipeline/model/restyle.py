"""Sheet-like copies of MNIST train digits: the generator's pen styles plus a simulated scan and the reader's cut.

Digits read off the sheets differ from MNIST in ways the on-the-fly :class:`pipeline.model.augment.PenScanAugment`
does not imitate well: the synthetic generator restyles every digit (slant, stroke width, squeeze) with
:func:`pipeline.synth.pen.style_digit`, prints it at box size in grainy ink, the scanner blurs, adds noise and
JPEG-compresses it, and the reader cuts the ink out by hysteresis thresholds and normalises it with
:func:`pipeline.vision.normalise.to_mnist`. :func:`sheet_like` repeats those steps on train digits (never the
test split, whose digits the sheets are written with), once per training run, so training sees the same
distribution the reader produces. Each digit draws its own writer from the generator's default ranges
(:class:`pipeline.synth.settings.SynthSettings`); one seeded generator drives everything, so the copies are
identical for the same seed.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import cv2
import numpy as np
from tqdm import tqdm

from pipeline.errors import ConfigError
from pipeline.model.settings import SheetStyleSettings

log = logging.getLogger(__name__)

#: Paper white and the grey scale of the simulated scan (uint8 grey levels).
PAPER = 255.0


@dataclass(frozen=True)
class ScanDraw:
    """One digit's random draw: writer (slant, stroke, squeeze), size on the page, ink, and scan artefacts."""

    slant_deg: float
    stroke_scale: float
    width_scale: float
    side_px: int
    pressure: float
    ink_darkness: float
    blur_sigma: float
    noise_sigma: float
    jpeg_quality: int


def draw_scan(rng: np.random.Generator, style: SheetStyleSettings) -> ScanDraw:
    """A random writer and scan from the generator's default ranges (uniform, like the generator samples them)."""
    from pipeline.synth.settings import SynthSettings

    synth = SynthSettings()
    return ScanDraw(slant_deg=float(rng.uniform(*synth.slant_deg)),
                    stroke_scale=float(rng.uniform(*synth.stroke_scale)),
                    width_scale=float(rng.uniform(*synth.digit_width)),
                    side_px=int(rng.integers(style.side_px[0], style.side_px[1] + 1)),
                    pressure=float(rng.uniform(*synth.pressure)),
                    ink_darkness=float(rng.uniform(*style.ink_darkness)),
                    blur_sigma=float(rng.uniform(*synth.blur_sigma)),
                    noise_sigma=float(rng.uniform(*synth.noise_sigma)),
                    jpeg_quality=int(rng.integers(synth.jpeg_quality[0], synth.jpeg_quality[1] + 1)))


def scan_grey(alpha: np.ndarray, draw: ScanDraw, rng: np.random.Generator, margin: int) -> np.ndarray:
    """Ink opacity on white paper as a uint8 grey scan: padded by ``margin``, blurred, noisy, JPEG round trip."""
    grey = PAPER - PAPER * draw.ink_darkness * np.pad(alpha, margin)
    grey = cv2.GaussianBlur(grey.astype(np.float32), (0, 0), draw.blur_sigma)
    grey = np.clip(grey + rng.normal(0.0, draw.noise_sigma, grey.shape), 0, PAPER).astype(np.uint8)
    _, encoded = cv2.imencode(".jpg", grey, [cv2.IMWRITE_JPEG_QUALITY, draw.jpeg_quality])
    return cv2.imdecode(encoded, cv2.IMREAD_GRAYSCALE)


def cut_ink(grey: np.ndarray, style: SheetStyleSettings) -> np.ndarray:
    """The reader's cut: darkness against the paper, ink by hysteresis (faint pixels connected to strong ones),
    plus a one-pixel anti-aliased rim; everything else black."""
    dark = np.clip((PAPER - grey.astype(np.float32)) / PAPER, 0.0, 1.0)
    strong, weak = dark > style.ink_threshold, dark > style.faint_ink_threshold
    n, labels = cv2.connectedComponents(weak.astype(np.uint8), connectivity=8)
    keep = np.zeros(n, bool)
    keep[labels[strong & weak]] = True
    keep[0] = False
    rim = cv2.dilate(keep[labels].astype(np.uint8), np.ones((3, 3), np.uint8)).astype(bool)
    return np.where(rim, dark, 0.0)


def sheet_like_digit(digit: np.ndarray, rng: np.random.Generator, style: SheetStyleSettings) -> np.ndarray:
    """One MNIST digit as the reader would hand it over from a synthetic sheet (uint8 28x28)."""
    from pipeline.synth.pen import ink_alpha, style_digit
    from pipeline.vision.normalise import to_mnist

    draw = draw_scan(rng, style)
    styled = style_digit(digit, rng, size=draw.side_px, slant_deg=draw.slant_deg, stroke_scale=draw.stroke_scale,
                         width_scale=draw.width_scale)
    grey = scan_grey(ink_alpha(styled, draw.pressure, rng), draw, rng, style.margin_px)
    restyled = to_mnist(cut_ink(grey, style))
    return restyled if restyled.any() else digit


def sheet_like(digits: np.ndarray, seed: int, style: SheetStyleSettings) -> np.ndarray:
    """Sheet-like copies of a uint8 ``(N, 28, 28)`` stack, deterministic for ``seed``; a digit whose ink the cut
    loses entirely (too faint) is kept as it was."""
    rng = np.random.default_rng(seed)
    out = np.empty_like(digits)
    for i in tqdm(range(len(digits)), desc="sheet-like digits", unit="digit", mininterval=2.0, leave=False):
        out[i] = sheet_like_digit(digits[i], rng, style)
    return out


def restyle_fraction(x: np.ndarray, fraction: float, seed: int, style: SheetStyleSettings) -> np.ndarray:
    """``x`` with a seeded ``fraction`` of its digits replaced by sheet-like copies (same size, so an epoch costs
    the same); labels are unchanged."""
    if not 0.0 <= fraction <= 1.0:
        raise ConfigError(f"train setting 'sheet_style_fraction' = {fraction!r}: expected a fraction from 0 to 1")
    n = round(len(x) * fraction)
    if n == 0:
        return x
    pick = np.random.default_rng(seed).choice(len(x), n, replace=False)
    out = x.copy()
    out[pick] = sheet_like(x[pick], seed, style)
    log.info("replaced %d of %d training digits by sheet-like copies", n, len(x))
    return out
