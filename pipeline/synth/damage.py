"""Scan damage of the wide generator, applied to the finished scan: ink bleed, toner banding, cast shadows, paper
curl, a faded or photocopied look, a stronger perspective, and quarter turns of the whole image.

Each sheet's damage is drawn from its own random stream (``damage`` in :mod:`pipeline.synth.sheet`), so the
classic generator's sheets are unchanged. Every rate is drawn for every sheet whatever the style group, so
excluding one style does not reshuffle the others. Full-size work is a few OpenCV calls; the smooth fields
(shadow, banding) are drawn at 1/4 resolution and scaled up.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

from pipeline.forms.template import MM_PER_INCH
from pipeline.synth.settings import SynthSettings

#: Smooth fields (shadow, banding) are drawn at 1/FIELD_GRID of the scan's resolution.
FIELD_GRID = 4
#: Banding: the band profile ``((1 + sin) / 2) ** sharpness``; higher is narrower bands.
BAND_SHARPNESS = (1.0, 4.0)
#: Shadow: how far from its edge the shadow reaches (fraction of the page), the softness of its border
#: (fraction of the page) and the wobble of that border.
SHADOW_REACH = (0.2, 0.6)
SHADOW_SOFTNESS = (0.03, 0.12)
SHADOW_WOBBLE = 0.08
#: Faded copy: the darkest and lightest grey levels left.
FADED_DARK = (35.0, 85.0)
FADED_LIGHT = (212.0, 240.0)
#: Photocopy: a steep tone curve (centre, width in grey levels) and toner speckle (dots per square mm).
COPY_CENTRE = (110.0, 150.0)
COPY_WIDTH = (8.0, 16.0)
SPECKLE_PER_MM2 = (0.005, 0.05)
SPECKLE_LEVEL = (0, 90)
QUARTER_TURNS = (1, 2, 3)


@dataclass(frozen=True)
class Damage:
    """One sheet's scan damage (zero / False / None = not applied); ``styles`` names what was applied."""

    styles: tuple[str, ...] = ()
    bleed_mm: float = 0.0
    banding_depth: float = 0.0
    banding_period_mm: float = 0.0
    banding_vertical: bool = False
    shadow_depth: float = 0.0
    curl_mm: float = 0.0
    curl_vertical: bool = False
    photocopy: bool = False
    faded: bool = False
    corner_shift: tuple[float, ...] | None = None
    quarter_turns: int = 0

    def record(self) -> dict:
        """The truth.csv columns describing the damage."""
        return {"scan_damage": ";".join(self.styles), "bleed_mm": round(self.bleed_mm, 3),
                "banding_depth": round(self.banding_depth, 3), "shadow_depth": round(self.shadow_depth, 3),
                "curl_mm": round(self.curl_mm, 2), "curl_vertical": self.curl_vertical, "photocopy": self.photocopy,
                "faded": self.faded,
                "quarter_turns": self.quarter_turns}


def _corners(rng: np.random.Generator, largest: float) -> tuple[float, ...]:
    """Eight corner shifts (fractions of the diagonal) whose largest magnitude is ``largest``."""
    c = rng.uniform(-1, 1, 8)
    return tuple(float(v) for v in c * largest / max(float(np.abs(c).max()), 1e-9))


def sample_damage(rng: np.random.Generator, settings: SynthSettings) -> Damage:
    """Draw one sheet's damage: each style of the active group with its rate, and the quarter turn."""
    active = settings.styles()
    turn = rng.random() < settings.quarter_turn_rate
    turns = int(rng.choice(QUARTER_TURNS))
    fired = {name: rng.random() < rate for name, rate in (
        ("bleed", settings.bleed_rate), ("banding", settings.banding_rate), ("shadow", settings.shadow_rate),
        ("curl", settings.curl_rate), ("photocopy", settings.photocopy_rate), ("faded", settings.faded_rate),
        ("tilt", settings.tilt_rate), ("strong_perspective", settings.strong_perspective_rate))}
    draws = rng.random(8)
    styles, values = [], {"quarter_turns": turns if turn else 0}
    bleeds = [s for s in ("light_bleed", "heavy_bleed") if s in active]
    if fired["bleed"] and bleeds:
        style = bleeds[int(draws[0] * len(bleeds))]
        styles.append(style)
        values["bleed_mm"] = float(rng.uniform(*getattr(settings, f"{style}_mm")))
    if fired["banding"] and "banding" in active:
        styles.append("banding")
        values.update(banding_depth=float(rng.uniform(*settings.banding_depth)),
                      banding_period_mm=float(rng.uniform(*settings.banding_period_mm)),
                      banding_vertical=bool(draws[1] < 0.3))
    if fired["shadow"] and "shadow" in active:
        styles.append("shadow")
        values["shadow_depth"] = float(rng.uniform(*settings.shadow_depth))
    if fired["curl"] and "curl" in active:
        styles.append("curl")
        values.update(curl_mm=float(rng.uniform(*settings.curl_mm)), curl_vertical=bool(draws[2] < 0.3))
    for name in ("photocopy", "faded"):
        if fired[name] and name in active:
            styles.append(name)
            values[name] = True
    for name in ("strong_perspective", "tilt"):  # the stronger one wins when both fire
        if fired[name] and name in active:
            styles.append(name)
            largest = float(rng.uniform(*getattr(settings, "tilt_perspective" if name == "tilt" else name)))
            values["corner_shift"] = _corners(rng, largest)
            break
    return Damage(styles=tuple(styles), **values)


def bleed(image: np.ndarray, radius_px: float) -> np.ndarray:
    """Dark strokes (ink and print) spread by ``radius_px`` (fractions of a pixel blend in) and soften."""
    if radius_px <= 0:
        return image
    k = max(1, math.ceil(radius_px))
    eroded = cv2.erode(image, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * k + 1, 2 * k + 1)))
    mixed = cv2.addWeighted(image, 1 - radius_px / k, eroded, radius_px / k, 0)
    return cv2.min(image, cv2.GaussianBlur(mixed, (0, 0), max(0.5, radius_px / 2)))


def band_profile(length: int, period_px: float, depth: float, phase: float, sharpness: float) -> np.ndarray:
    """Light multiplier (float32, ``1 - depth`` .. 1) along ``length`` pixels: periodic toner bands."""
    t = np.arange(length, dtype=np.float32)
    wave = ((1 + np.sin(2 * np.pi * t / period_px + phase)) / 2) ** sharpness
    return (1 - depth * wave).astype(np.float32)


def shadow_mask(rng: np.random.Generator, shape: tuple[int, int]) -> np.ndarray:
    """A soft shadow (float32 0-1, ``shape``) reaching in from a random edge with a wobbly, blurred border."""
    h, w = shape
    edge = int(rng.integers(4))
    along, across = (w, h) if edge in (0, 2) else (h, w)
    reach = float(rng.uniform(*SHADOW_REACH))
    knots = reach + rng.normal(0, SHADOW_WOBBLE, 5)
    border = np.interp(np.linspace(0, 4, along), np.arange(5), knots).astype(np.float32)
    depth = np.linspace(0, 1, across, dtype=np.float32)[:, None]
    soft = float(rng.uniform(*SHADOW_SOFTNESS))
    mask = 1 / (1 + np.exp(np.clip((depth - border[None, :]) / soft, -30, 30)))  # across x along, 1 at the edge
    mask = mask if edge in (0, 2) else mask.T
    return np.ascontiguousarray(mask[::-1] if edge == 2 else mask[:, ::-1] if edge == 1 else mask)


def light_field(rng: np.random.Generator, damage: Damage, size: tuple[int, int], px_per_mm: float) -> np.ndarray:
    """Full-size uint8 multiplier (255 = unchanged) of the banding and the shadow."""
    w, h = size
    small = (max(2, h // FIELD_GRID), max(2, w // FIELD_GRID))
    field = np.ones(small, np.float32)
    if damage.banding_depth > 0:
        period = damage.banding_period_mm * px_per_mm / FIELD_GRID
        n = small[1] if damage.banding_vertical else small[0]
        profile = band_profile(n, max(period, 2.0), damage.banding_depth, float(rng.uniform(0, 2 * np.pi)),
                               float(rng.uniform(*BAND_SHARPNESS)))
        field *= profile[None, :] if damage.banding_vertical else profile[:, None]
    if damage.shadow_depth > 0:
        field *= 1 - damage.shadow_depth * shadow_mask(rng, small)
    return cv2.resize(np.clip(field * 255, 0, 255).astype(np.uint8), size, interpolation=cv2.INTER_LINEAR)


def multiply(image: np.ndarray, field: np.ndarray) -> np.ndarray:
    """``image`` (grey or BGR) times a uint8 ``field`` (255 = 1)."""
    if image.ndim == 3:
        field = cv2.merge([field] * image.shape[2])
    return cv2.multiply(image, field, scale=1 / 255)


def curl(image: np.ndarray, amplitude_px: float, vertical: bool, fill: int) -> np.ndarray:
    """A cylinder-like bend: rows (or columns) bow by up to ``amplitude_px``, most at the page edges; straight
    printed lines come out as shallow arcs. ``fill`` is the grey level of what comes in from outside."""
    h, w = image.shape[:2]
    shift = curl_shift(h if vertical else w, amplitude_px)
    xs, ys = np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32)
    if vertical:
        map_x, map_y = xs[None, :] + shift[:, None], np.repeat(ys[:, None], w, axis=1)
    else:
        map_x, map_y = np.repeat(xs[None, :], h, axis=0), ys[:, None] + shift[None, :]
    m1, m2 = cv2.convertMaps(np.ascontiguousarray(map_x, np.float32), np.ascontiguousarray(map_y, np.float32),
                             cv2.CV_16SC2)
    value = (fill,) * (image.shape[2] if image.ndim == 3 else 1)
    return cv2.remap(image, m1, m2, cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=value)


def curl_shift(n: int, amplitude_px: float) -> np.ndarray:
    """How far each of ``n`` rows (or columns) is moved by :func:`curl`."""
    u = np.linspace(-1, 1, n, dtype=np.float32)
    return amplitude_px * 1.5 * (u ** 2 - 1 / 3)  # mean zero over the page, |shift| <= amplitude


def curled_points(points: np.ndarray, size: tuple[int, int], amplitude_px: float, vertical: bool) -> np.ndarray:
    """Where points ``(N, 2)`` of a ``size`` = ``(w, h)`` image land after :func:`curl` (for benchmarks)."""
    w, h = size
    shift = curl_shift(h if vertical else w, amplitude_px)
    out = np.array(points, np.float64)
    along = np.clip(np.round(out[:, 1 if vertical else 0]).astype(int), 0, len(shift) - 1)
    out[:, 0 if vertical else 1] -= shift[along]
    return out


def faded(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Low contrast: ink lighter, paper greyer (a tone curve)."""
    dark, light = float(rng.uniform(*FADED_DARK)), float(rng.uniform(*FADED_LIGHT))
    lut = np.clip(dark + np.arange(256) * (light - dark) / 255 + 0.5, 0, 255).astype(np.uint8)
    return cv2.LUT(image, lut)


def photocopy(image: np.ndarray, rng: np.random.Generator, px_per_mm: float) -> np.ndarray:
    """High contrast (a steep tone curve: paper white, strokes black) and toner speckle."""
    centre, width = float(rng.uniform(*COPY_CENTRE)), float(rng.uniform(*COPY_WIDTH))
    lut = np.clip(255 / (1 + np.exp(-(np.arange(256) - centre) / width)) + 0.5, 0, 255).astype(np.uint8)
    out = cv2.LUT(image, lut)
    h, w = out.shape[:2]
    n = int(float(rng.uniform(*SPECKLE_PER_MM2)) * h * w / px_per_mm ** 2)
    ys, xs = rng.integers(0, h, n), rng.integers(0, w, n)
    out[ys, xs] = rng.integers(*SPECKLE_LEVEL, n, dtype=np.uint8)[:, None] if out.ndim == 3 else \
        rng.integers(*SPECKLE_LEVEL, n, dtype=np.uint8)
    return out


def apply_damage(image: np.ndarray, damage: Damage, rng: np.random.Generator, dpi: float,
                 background: int) -> np.ndarray:
    """The finished scan with ``damage`` applied (not the quarter turn: see :func:`quarter_turn`)."""
    px_per_mm = dpi / MM_PER_INCH
    out = bleed(image, damage.bleed_mm * px_per_mm)
    if damage.curl_mm > 0:
        out = curl(out, damage.curl_mm * px_per_mm, damage.curl_vertical, background)
    if damage.banding_depth > 0 or damage.shadow_depth > 0:
        out = multiply(out, light_field(rng, damage, (out.shape[1], out.shape[0]), px_per_mm))
    if damage.faded:
        out = faded(out, rng)
    if damage.photocopy:
        out = photocopy(out, rng, px_per_mm)
    return out


def turn_matrix(size: tuple[int, int], turns: int) -> np.ndarray:
    """Homography taking pixels of a ``size`` = ``(w, h)`` image to ``np.rot90(image, turns)``."""
    m, (w, h) = np.eye(3), size
    for _ in range(turns % 4):
        m = np.array([[0, 1, 0], [-1, 0, w - 1], [0, 0, 1.0]]) @ m  # one counter-clockwise quarter turn
        w, h = h, w
    return m


def quarter_turn(image: np.ndarray, homography: np.ndarray, turns: int) -> tuple[np.ndarray, np.ndarray]:
    """The scan turned ``turns`` quarter turns counter-clockwise, and the homography composed with the turn."""
    if turns % 4 == 0:
        return image, homography
    size = (image.shape[1], image.shape[0])
    return np.ascontiguousarray(np.rot90(image, turns)), turn_matrix(size, turns) @ homography
