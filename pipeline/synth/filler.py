"""Filler marks: what a form's users write in the unused leading boxes of a count (an X, a dash, or a 0).

An X and a dash are drawn as pen strokes with the sheet's writer (:class:`pipeline.synth.pen.Writer`: its line
width, ink, pressure and grain), like the acta's ticks; a 0 is an MNIST **test** zero written like any digit.

* **X**: two strokes, each from near one corner of a centred area (``X_SIZE`` of the box's width wide, or of its
  height where the box is wider than tall, its height ``X_ASPECT`` times that, within the box) to near the
  opposite one, through a midpoint pushed sideways (a bow of up to ``X_BOW`` of the stroke's length); every end
  point wanders by ``X_WOBBLE`` of the area. Real X's in unused boxes are small, like a written lower-case x: in a
  short, wide box (the 2014 certificate's) one sized by the width alone filled the box from wall to wall.
* **dash**: one stroke ``DASH_LENGTH`` of the box's width long, at ``DASH_HEIGHT`` of its height, tilted by up to
  ``DASH_TILT_DEG``, slightly bowed.

The box given is where the mark goes (the formsheet passes the part of a tall box a digit would be written in).
"""

from __future__ import annotations

import numpy as np

from pipeline.forms.template import Rect
from pipeline.synth.canvas import Canvas
from pipeline.synth.pen import Writer, stroke_alpha

X_SIZE = (0.35, 0.75)
X_ASPECT = (0.8, 1.3)
X_WOBBLE = 0.1
X_BOW = 0.1
DASH_LENGTH = (0.35, 0.7)
DASH_HEIGHT = (0.4, 0.62)
DASH_TILT_DEG = 6.0
DASH_BOW = 0.04
POINTS = 9


def _bowed(rng: np.random.Generator, start: np.ndarray, end: np.ndarray, bow: float) -> np.ndarray:
    """A stroke from ``start`` to ``end`` (pixels) bent sideways by up to ``bow`` of its length, as POINTS
    points."""
    t = np.linspace(0, 1, POINTS)[:, None]
    line = start + t * (end - start)
    normal = np.array([-(end - start)[1], (end - start)[0]])
    normal = normal / max(float(np.hypot(*normal)), 1e-6)
    push = float(rng.uniform(-bow, bow)) * float(np.hypot(*(end - start)))
    return line + np.sin(np.pi * t) * push * normal


def x_strokes(rng: np.random.Generator, w: float, h: float) -> list[np.ndarray]:
    """The two strokes of a hand-drawn X in a ``w`` x ``h`` pixel box."""
    sw = min(w, h) * float(rng.uniform(*X_SIZE))
    sh = min(0.9 * h, sw * float(rng.uniform(*X_ASPECT)))
    cx, cy = w / 2 + float(rng.normal(0, 0.04 * w)), h / 2 + float(rng.normal(0, 0.04 * h))
    corners = np.array([[-0.5, -0.5], [0.5, 0.5], [0.5, -0.5], [-0.5, 0.5]]) * (sw, sh) + (cx, cy)
    corners = corners + rng.normal(0, X_WOBBLE, (4, 2)) * (sw, sh)
    return [_bowed(rng, corners[0], corners[1], X_BOW), _bowed(rng, corners[2], corners[3], X_BOW)]


def dash_strokes(rng: np.random.Generator, w: float, h: float) -> list[np.ndarray]:
    """The stroke of a hand-drawn dash in a ``w`` x ``h`` pixel box."""
    length = w * float(rng.uniform(*DASH_LENGTH))
    cx, cy = w / 2 + float(rng.normal(0, 0.05 * w)), h * float(rng.uniform(*DASH_HEIGHT))
    tilt = np.radians(float(rng.uniform(-DASH_TILT_DEG, DASH_TILT_DEG)))
    half = np.array([np.cos(tilt), -np.sin(tilt)]) * length / 2
    return [_bowed(rng, np.array([cx, cy]) - half, np.array([cx, cy]) + half, DASH_BOW)]


STROKES = {"x": x_strokes, "dash": dash_strokes}


def draw_filler(canvas: Canvas, kind: str, box: Rect, writer: Writer, rng: np.random.Generator) -> None:
    """Draw the filler mark ``kind`` (``x`` or ``dash``) in ``box`` (mm) with ``writer``'s pen."""
    w, h = canvas.px(box.w), canvas.px(box.h)
    lines = STROKES[kind](rng, w, h)
    alpha = stroke_alpha(lines, (round(h), round(w)), canvas.px(writer.line_width_mm))
    alpha *= float(rng.uniform(*writer.pressure)) * (1 - writer.grain * rng.random(alpha.shape, dtype=np.float32))
    canvas.ink(alpha, canvas.px(box.x), canvas.px(box.y), writer.ink)
