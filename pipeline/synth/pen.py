"""The pen: restyle MNIST digits (slant, stroke width, size) and turn them and hand-drawn strokes into ink.

:func:`style_digit` is the public knob for making a "new handwriting style", e.g. for retraining the recogniser
on thick felt-pen digits::

    from pipeline.synth.pen import style_digit
    felt = style_digit(x_test[0], rng, stroke_scale=2.0, slant_deg=12)          # 28x28, MNIST format
    big = style_digit(x_test[0], rng, size=80, stroke_scale=0.8, jitter=0)      # 80x80, exact style

It takes and returns MNIST-format images (uint8, white digit on black), so its output can go straight into
training. The generator calls it with ``size`` set to the digit's size on the page, then :func:`ink_alpha`
turns the result into ink opacity.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import cv2
import numpy as np

from pipeline.synth.settings import SynthSettings

MNIST_SIZE = 28
#: MNIST digits fill about 20 of their 28 pixels (height of the digit's bounding box).
MNIST_DIGIT_FRACTION = 20 / 28
#: Styling runs at 4x MNIST resolution so thin/thick strokes and shears stay smooth.
WORK_SIZE = 112
#: Half the width of a typical MNIST stroke at WORK_SIZE, in pixels (strokes are ~2.5 px wide at 28 px).
HALF_STROKE_WORK = 5.0
#: Per-digit variation around a writer's style at ``jitter=1``: standard deviations.
JITTER_SLANT_DEG = 4.0
JITTER_STROKE = 0.10
JITTER_SIZE = 0.06
JITTER_ROTATION_DEG = 3.0
#: Ink opacity curve: MNIST grey levels below INK_FLOOR are paper; the rest ramps to full ink.
INK_FLOOR = 0.12
INK_GAIN = 1.5
#: Ballpoint ink is not perfectly even: per-pixel opacity loss up to this fraction.
INK_GRAIN = 0.18
#: Hand-drawn line width (ticks, strike-throughs, signatures) at stroke_scale 1, in millimetres.
PEN_WIDTH_MM = 0.7
#: Ink colours (BGR transmittance at full opacity) and their per-sheet variation.
BLUE_INK = (140.0, 50.0, 20.0)
BLACK_INK = (32.0, 32.0, 34.0)
#: Variation of an ink's darkness (all channels together) and of its hue (per channel).
INK_SHADE_SD = 14.0
INK_HUE_SD = 4.0
#: The wide generator's pens (BGR transmittance at full opacity), by colour name.
INKS = {"black": BLACK_INK, "blue": BLUE_INK, "dark_blue": (95.0, 40.0, 30.0), "red": (45.0, 40.0, 185.0),
        "green": (75.0, 125.0, 35.0), "pencil": (115.0, 112.0, 110.0)}
#: How often each colour fills a sheet honestly, relative to the others (field sheets are mostly blue/black).
HONEST_INK_WEIGHT = {"black": 1.0, "blue": 1.5, "dark_blue": 1.5, "red": 0.2, "green": 0.2, "pencil": 0.5}
#: Pencil graphite is grainier than ballpoint ink and never fully opaque.
PENCIL_GRAIN = 0.45
PENCIL_OPACITY = 0.85


@dataclass(frozen=True)
class PenStyle:
    """A handwriting style: mean slant (degrees, positive leans right), stroke width relative to MNIST,
    size relative to the target, width relative to height (people squeeze digits into narrow boxes), rotation
    (degrees, counter-clockwise), and ``jitter``, the multiplier on the per-digit random variation (0 = every
    digit exactly this style)."""

    slant_deg: float = 0.0
    stroke_scale: float = 1.0
    size_scale: float = 1.0
    width_scale: float = 1.0
    rotation_deg: float = 0.0
    jitter: float = 1.0


@dataclass(frozen=True)
class Writer:
    """The person filling one sheet: pen style, ink colour (BGR), digit height (fraction of box) and pressure;
    ``colour`` names the pen for truth.csv and ``grain`` is its per-pixel opacity loss."""

    style: PenStyle
    ink: tuple[float, float, float]
    digit_height: float
    pressure: tuple[float, float]
    colour: str = ""
    grain: float = INK_GRAIN

    @property
    def line_width_mm(self) -> float:
        """Width of this writer's hand-drawn lines."""
        return PEN_WIDTH_MM * self.style.stroke_scale


def pen_style(**style: float) -> PenStyle:
    """A :class:`PenStyle` from keyword arguments; unknown keys raise ``ValueError`` listing the known ones."""
    known = {f.name for f in dataclasses.fields(PenStyle)}
    unknown = sorted(set(style) - known)
    if unknown:
        raise ValueError(f"unknown pen style option(s) {unknown}; known: {sorted(known)}")
    return PenStyle(**style)


def _restroke(img: np.ndarray, stroke_scale: float) -> np.ndarray:
    """Thicken (dilate) or thin (erode) the strokes of a WORK_SIZE image."""
    radius = round((stroke_scale - 1.0) * HALF_STROKE_WORK)
    if radius == 0:
        return img
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * abs(radius) + 1,) * 2)
    return cv2.dilate(img, kernel) if radius > 0 else cv2.erode(img, kernel)


def _shape_matrix(slant_deg: float, rotation_deg: float, scale: float, width_scale: float) -> np.ndarray:
    """2x3 affine about the WORK_SIZE centre: squeeze, shear (slant), then rotate and scale."""
    c = WORK_SIZE / 2
    shear = np.array([[width_scale, -np.tan(np.radians(slant_deg)), 0], [0, 1, 0], [0, 0, 1]])
    rot = np.vstack([cv2.getRotationMatrix2D((0, 0), rotation_deg, scale), [0, 0, 1]])
    to_origin = np.array([[1, 0, -c], [0, 1, -c], [0, 0, 1.0]])
    back = np.array([[1, 0, c], [0, 1, c], [0, 0, 1.0]])
    return (back @ rot @ shear @ to_origin)[:2]


def style_digit(digit28: np.ndarray, rng: np.random.Generator, size: int = MNIST_SIZE, **style: float) -> np.ndarray:
    """Restyle one MNIST digit: returns a ``size`` x ``size`` uint8 image, white digit on black like MNIST.

    Args:
        digit28: a 28x28 uint8 MNIST image.
        rng: source of the per-digit variation (slant, stroke, size, rotation around ``style``).
        size: output side in pixels (28 for training data; the on-page size for the generator).
        **style: :class:`PenStyle` fields: ``slant_deg``, ``stroke_scale``, ``size_scale``, ``width_scale``,
            ``rotation_deg``, ``jitter``.
    """
    return restyle(digit28, rng, pen_style(**style), size)


def restyle(digit28: np.ndarray, rng: np.random.Generator, pen: PenStyle, size: int = MNIST_SIZE) -> np.ndarray:
    """:func:`style_digit` with the style given as a :class:`PenStyle`."""
    if digit28.shape != (MNIST_SIZE, MNIST_SIZE) or digit28.dtype != np.uint8:
        raise ValueError(f"expected a 28x28 uint8 MNIST digit, got {digit28.shape} {digit28.dtype}")
    slant = pen.slant_deg + rng.normal(0, JITTER_SLANT_DEG) * pen.jitter
    stroke = max(0.3, pen.stroke_scale * (1 + rng.normal(0, JITTER_STROKE) * pen.jitter))
    scale = pen.size_scale * (1 + rng.normal(0, JITTER_SIZE) * pen.jitter)
    rotation = pen.rotation_deg + rng.normal(0, JITTER_ROTATION_DEG) * pen.jitter
    work = _restroke(cv2.resize(digit28, (WORK_SIZE, WORK_SIZE), interpolation=cv2.INTER_CUBIC), stroke)
    work = cv2.warpAffine(work, _shape_matrix(slant, rotation, scale, pen.width_scale), (WORK_SIZE, WORK_SIZE),
                          flags=cv2.INTER_LINEAR, borderValue=0)
    return cv2.resize(work, (size, size), interpolation=cv2.INTER_AREA)


def ink_alpha(styled: np.ndarray, pressure: float, rng: np.random.Generator, grain: float = INK_GRAIN) -> np.ndarray:
    """Ink opacity (float32 0-1) of a styled digit: firm strokes, soft edges, slightly grainy ballpoint ink
    (``grain``: the largest per-pixel opacity loss)."""
    alpha = np.clip((styled.astype(np.float32) / 255 - INK_FLOOR) * INK_GAIN, 0, 1)
    grain = 1 - grain * rng.random(alpha.shape, dtype=np.float32)
    return alpha * grain * np.float32(pressure)


def sample_ink(rng: np.random.Generator, blue_rate: float) -> tuple[float, float, float]:
    """A ballpoint colour: blue with probability ``blue_rate``, else black, each slightly varied."""
    base = np.asarray(BLUE_INK if rng.random() < blue_rate else BLACK_INK)
    shade = base + rng.normal(0, INK_SHADE_SD) + rng.normal(0, INK_HUE_SD, 3)
    return tuple(float(c) for c in np.clip(shade, 0, 255))


def named_ink(rng: np.random.Generator, colour: str) -> tuple[float, float, float]:
    """The pen colour ``colour`` (a key of :data:`INKS`), slightly varied like :func:`sample_ink`."""
    shade = np.asarray(INKS[colour]) + rng.normal(0, INK_SHADE_SD) + rng.normal(0, INK_HUE_SD, 3)
    return tuple(float(c) for c in np.clip(shade, 0, 255))


def pick_colour(rng: np.random.Generator, colours: list[str], honest: bool = True) -> str:
    """One of ``colours``: weighted by :data:`HONEST_INK_WEIGHT` for an honest writer, else uniformly."""
    weights = np.array([HONEST_INK_WEIGHT[c] if honest else 1.0 for c in colours])
    return colours[int(rng.choice(len(colours), p=weights / weights.sum()))]


def outside(rng: np.random.Generator, wide: tuple[float, float], usual: tuple[float, float]) -> float:
    """A uniform draw from ``wide`` outside ``usual`` (falls back to ``usual`` when nothing is left)."""
    below = max(0.0, min(usual[0], wide[1]) - wide[0])
    above = max(0.0, wide[1] - max(usual[1], wide[0]))
    if below + above <= 0:
        return float(rng.uniform(*usual))
    u = float(rng.uniform(0, below + above))
    return wide[0] + u if u < below else max(usual[1], wide[0]) + (u - below)


def colour_writer(rng: np.random.Generator, colour: str, style: PenStyle, digit_height: float,
                  pressure: tuple[float, float]) -> Writer:
    """A :class:`Writer` with the named pen colour (pencil: grainier, never fully opaque)."""
    if colour == "pencil":
        pressure = (pressure[0] * PENCIL_OPACITY, pressure[1] * PENCIL_OPACITY)
    return Writer(style, named_ink(rng, colour), digit_height, pressure, colour,
                  PENCIL_GRAIN if colour == "pencil" else INK_GRAIN)


def sample_wide_writer(rng: np.random.Generator, settings: SynthSettings, colours: list[str],
                       unusual: bool) -> Writer:
    """The sheet's writer in the wide generator: an honest colour from ``colours``; the usual hand ranges, or
    (``unusual``) the ``wide_*`` ranges outside them."""
    def draw(wide: tuple[float, float], usual: tuple[float, float]) -> float:
        return outside(rng, wide, usual) if unusual else float(rng.uniform(*usual))
    style = PenStyle(slant_deg=draw(settings.wide_slant_deg, settings.slant_deg),
                     stroke_scale=draw(settings.wide_stroke_scale, settings.stroke_scale),
                     width_scale=float(rng.uniform(*settings.digit_width)))
    low = draw(settings.wide_pressure, settings.pressure)
    pressure = (low, min(1.0, low + float(rng.uniform(0.1, 0.25))))
    return colour_writer(rng, pick_colour(rng, colours), style, float(rng.uniform(*settings.digit_height)), pressure)


def sample_writer(rng: np.random.Generator, settings: SynthSettings) -> Writer:
    """The sheet's writer, drawn from the settings' pen ranges."""
    style = PenStyle(slant_deg=float(rng.uniform(*settings.slant_deg)),
                     stroke_scale=float(rng.uniform(*settings.stroke_scale)),
                     width_scale=float(rng.uniform(*settings.digit_width)))
    ink = sample_ink(rng, settings.blue_ink_rate)
    return Writer(style=style, ink=ink, digit_height=float(rng.uniform(*settings.digit_height)),
                  pressure=settings.pressure, colour=ink_name(ink))


def ink_name(ink: tuple[float, float, float]) -> str:
    """The classic generator's colour names: ``blue`` when blue dominates, else ``black``."""
    return "blue" if ink[0] > ink[2] + 40 else "black"


def stroke_alpha(points: list[np.ndarray], shape: tuple[int, int], width_px: float) -> np.ndarray:
    """Opacity (float32 0-1) of anti-aliased polylines ``points`` (each (N, 2) pixel coordinates)."""
    shift = 4  # sub-pixel precision: coordinates in 1/16 pixel
    mask = np.zeros(shape, np.uint8)
    pts = [np.round(p * (1 << shift)).astype(np.int32) for p in points]
    cv2.polylines(mask, pts, False, 255, max(1, round(width_px)), cv2.LINE_AA, shift)
    return mask.astype(np.float32) / 255


def tick_points(rng: np.random.Generator, w: float, h: float) -> list[np.ndarray]:
    """A hand-drawn check mark (usually) or cross filling a ``w`` x ``h`` pixel box, with wobble."""
    wobble = rng.normal(0, 0.06, size=(4, 2)) * (w, h)
    if rng.random() < 0.7:
        check = np.array([[0.15, 0.55], [0.42, 0.88], [0.92, 0.08]]) * (w, h) + wobble[:3]
        return [check]
    return [np.array([[0.12, 0.12], [0.88, 0.88]]) * (w, h) + wobble[:2],
            np.array([[0.88, 0.12], [0.12, 0.88]]) * (w, h) + wobble[2:]]
