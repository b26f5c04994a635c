"""What else ends up on a real acta: officials' signatures, rubber stamps, coffee stains and fold lines.

Signatures go on the signature lines and stamps in the margins; unless ``marks_over_boxes`` is set, neither
touches a digit or tick box, a crossout's replacement area, or a fiducial. Stains and folds fall anywhere but
stay faint enough to read through.
"""

from __future__ import annotations

import cv2
import numpy as np

from pipeline.forms.template import Rect, Template
from pipeline.synth.canvas import Canvas
from pipeline.synth.pen import sample_ink, stroke_alpha
from pipeline.synth.settings import SynthSettings
from pipeline.synth.writer import BESIDE_LIMIT_MM

#: Where signatures go: the band above the three signature lines (x0, y0, x1, y1 in mm), and their size.
SIGNATURE_SLOTS_MM = ((20, 70), (80, 130), (140, 190))
SIGNATURE_BASELINE_MM = (268.0, 274.0)
SIGNATURE_SIZE_MM = ((26.0, 44.0), (6.0, 12.0))
SIGNATURE_SAMPLES = 400
#: Signatures are written with a finer line than the digits.
SIGNATURE_LINE = 0.6
#: Margin regions stamps are placed in (x0, y0, x1, y1 in mm).
STAMP_ZONES_MM = ((16, 246, 194, 286), (120, 160, 196, 242), (110, 10, 196, 36))
STAMP_DIAMETER_MM = (24.0, 36.0)
STAMP_INKS = ((150.0, 60.0, 120.0), (170.0, 80.0, 40.0), (60.0, 50.0, 190.0))
STAMP_OPACITY = (0.45, 0.85)
STAMP_TEXT = ("COMISION DISTRITAL", "ELECTORAL")
PLACEMENT_TRIES = 20
KEEP_CLEAR_MM = 1.0
STAIN_DIAMETER_MM = (18.0, 45.0)
STAIN_OPACITY = (0.08, 0.22)
COFFEE = (70.0, 120.0, 170.0)
FOLD_WIDTH_MM = 6.0
FOLD_OPACITY = (0.12, 0.3)
FOLD_SHADE = (90.0, 90.0, 95.0)


def keep_clear(template: Template) -> list[Rect]:
    """Rectangles (mm) stamps and signatures avoid: boxes, crossout replacement areas, fiducials."""
    rects = [b for f in template.fields for b in f.boxes]
    rects += [Rect(f.bounds.x, f.bounds.y, BESIDE_LIMIT_MM - f.bounds.x, f.bounds.h)
              for f in template.fields_of_kind("count")]
    rects += [*template.fiducials, template.orientation_mark]
    return [Rect(r.x - KEEP_CLEAR_MM, r.y - KEEP_CLEAR_MM, r.w + 2 * KEEP_CLEAR_MM, r.h + 2 * KEEP_CLEAR_MM)
            for r in rects]


def _place(rng: np.random.Generator, zone: tuple[float, ...], w: float, h: float,
           avoid: list[Rect]) -> Rect | None:
    """A ``w`` x ``h`` mm rectangle inside ``zone`` overlapping nothing in ``avoid`` (None if none found)."""
    x0, y0, x1, y1 = zone
    for _ in range(PLACEMENT_TRIES):
        r = Rect(float(rng.uniform(x0, max(x0, x1 - w))), float(rng.uniform(y0, max(y0, y1 - h))), w, h)
        if not any(r.overlaps(a) for a in avoid):
            return r
    return None


def _signature_points(rng: np.random.Generator, w: float, h: float) -> list[np.ndarray]:
    """A cursive scrawl in a ``w`` x ``h`` pixel box: strokes up and down between the baseline and letters of
    uneven height, with an occasional loop back, smoothed, slanted, sometimes underlined."""
    n = int(rng.integers(9, 18))
    steps = np.where(rng.random(n) < 0.2, -0.6, 1.0) * rng.uniform(0.5, 1.2, n)
    xs = np.cumsum(steps)
    tops = np.where(np.arange(n) % 2 == 0, rng.uniform(0.65, 0.85, n), rng.uniform(0.05, 0.55, n))
    t = np.linspace(0, n - 1, SIGNATURE_SAMPLES)
    x = np.interp(t, np.arange(n), xs)
    y = np.interp(t, np.arange(n), tops)
    smooth = SIGNATURE_SAMPLES / n / 3
    x, y = (cv2.GaussianBlur(v[None, :].astype(np.float32), (0, 0), smooth, borderType=cv2.BORDER_REPLICATE)[0]
            for v in (x, y))
    slant = np.tan(np.radians(rng.uniform(0, 25)))
    x = 0.05 + 0.75 * (x - x.min()) / max(float(np.ptp(x)), 1e-6) + (1 - y) * slant * h / w
    strokes = [np.column_stack([x * w, y * h])]
    if rng.random() < 0.5:
        tail = np.linspace(0, 1, 40)
        strokes.append(np.column_stack([w * (0.05 + 0.85 * tail), h * (0.9 - 0.1 * np.sin(np.pi * tail))]))
    return strokes


def draw_signatures(canvas: Canvas, rng: np.random.Generator, width_mm: float) -> int:
    """Officials' signatures on the signature lines (each line signed with chance 0.7, own pen); how many."""
    signed = 0
    for x0, x1 in SIGNATURE_SLOTS_MM:
        if rng.random() < 0.3:
            continue
        signed += 1
        w, h = (float(rng.uniform(*r)) for r in SIGNATURE_SIZE_MM)
        left = float(rng.uniform(x0, max(x0, x1 - w)))
        top = float(rng.uniform(*SIGNATURE_BASELINE_MM)) - h
        shape = (round(canvas.px(h)), round(canvas.px(w)))
        alpha = stroke_alpha(_signature_points(rng, shape[1], shape[0]), shape, canvas.px(width_mm * SIGNATURE_LINE))
        canvas.ink(alpha * float(rng.uniform(0.7, 1.0)), canvas.px(left), canvas.px(top), sample_ink(rng, 0.6))
    return signed


def _stamp_alpha(rng: np.random.Generator, side: int, label: str) -> np.ndarray:
    """A round rubber stamp: two rings, a few lines of text, unevenly inked, turned at random."""
    mask = np.zeros((side, side), np.uint8)
    c, r = side // 2, side // 2 - 2
    cv2.circle(mask, (c, c), r, 255, max(1, side // 45), cv2.LINE_AA)
    cv2.circle(mask, (c, c), int(r * 0.8), 255, max(1, side // 90), cv2.LINE_AA)
    lines = (*STAMP_TEXT, label)
    for k, text in enumerate(lines):
        (tw, th), _ = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, 1.0, 1)
        scale = 1.2 * r / tw
        y = int(c + (k - (len(lines) - 1) / 2) * th * scale * 1.9 + th * scale / 2)
        cv2.putText(mask, text, (int(c - tw * scale / 2), y), cv2.FONT_HERSHEY_SIMPLEX, scale, 255,
                    max(1, side // 110), cv2.LINE_AA)
    turn = cv2.getRotationMatrix2D((c, c), float(rng.uniform(-40, 40)), 1.0)
    alpha = cv2.warpAffine(mask, turn, (side, side)).astype(np.float32) / 255
    uneven = cv2.resize(rng.random((6, 6), dtype=np.float32), (side, side), interpolation=cv2.INTER_CUBIC)
    return alpha * np.clip(0.35 + 0.8 * uneven, 0, 1)


def draw_stamp(canvas: Canvas, rng: np.random.Generator, avoid: list[Rect], label: str) -> None:
    """One rubber stamp in a margin zone, clear of ``avoid``."""
    d = float(rng.uniform(*STAMP_DIAMETER_MM))
    spot = _place(rng, STAMP_ZONES_MM[int(rng.integers(len(STAMP_ZONES_MM)))], d, d, avoid)
    if spot is None:
        return
    alpha = _stamp_alpha(rng, round(canvas.px(d)), label) * float(rng.uniform(*STAMP_OPACITY))
    canvas.ink(alpha, canvas.px(spot.x), canvas.px(spot.y), STAMP_INKS[int(rng.integers(len(STAMP_INKS)))])


def draw_stain(canvas: Canvas, rng: np.random.Generator, page: tuple[float, float]) -> None:
    """A faint coffee ring (or blot) anywhere on the page."""
    d = float(rng.uniform(*STAIN_DIAMETER_MM))
    side = round(canvas.px(d))
    c = side // 2
    mask = np.zeros((side, side), np.float32)
    axes = (int(c * 0.9), int(c * rng.uniform(0.7, 0.9)))
    angle = float(rng.uniform(0, 180))
    cv2.ellipse(mask, (c, c), axes, angle, 0, 360, 0.35, -1)
    if rng.random() < 0.7:
        cv2.ellipse(mask, (c, c), axes, angle, 0, 360, 1.0, max(2, side // 40))
    uneven = cv2.resize(rng.random((5, 5), dtype=np.float32), (side, side), interpolation=cv2.INTER_CUBIC)
    alpha = cv2.GaussianBlur(mask, (0, 0), max(1.0, side / 80)) * np.clip(uneven, 0.2, 1)
    x, y = rng.uniform(0, page[0] - d), rng.uniform(0, page[1] - d)
    canvas.ink(alpha * float(rng.uniform(*STAIN_OPACITY)), canvas.px(x), canvas.px(y), COFFEE)


def draw_fold(canvas: Canvas, rng: np.random.Generator, page: tuple[float, float]) -> None:
    """A crease across the page (letter fold at a third or half), a thin dark line with a soft shadow."""
    horizontal = rng.random() < 0.75
    length, across = (page[0], page[1]) if horizontal else (page[1], page[0])
    at = across * float(rng.choice([1 / 3, 1 / 2, 2 / 3])) + float(rng.normal(0, 3))
    band = max(3, round(canvas.px(FOLD_WIDTH_MM)))
    profile = np.zeros(band, np.float32)
    profile[band // 2] = 1.0
    profile[band // 2:] += np.linspace(0.25, 0, band - band // 2)
    profile = cv2.GaussianBlur(profile[None, :], (0, 0), max(0.6, canvas.px(0.12)))[0] * 1.5
    alpha = np.tile(np.clip(profile, 0, 1) * float(rng.uniform(*FOLD_OPACITY)), (round(canvas.px(length)), 1))
    if horizontal:
        canvas.ink(np.ascontiguousarray(alpha.T), 0, canvas.px(at) - band / 2, FOLD_SHADE)
    else:
        canvas.ink(alpha, canvas.px(at) - band / 2, 0, FOLD_SHADE)


def decorate(canvas: Canvas, rng: np.random.Generator, template: Template, settings: SynthSettings,
             pen_width_mm: float, stamp_label: str) -> dict[str, int]:
    """Signatures, stamps, stains and folds as the settings' rates say; returns how many of each."""
    avoid = [] if settings.marks_over_boxes else keep_clear(template)
    page = (template.width_mm, template.height_mm)
    counts = {"signatures": 0, "stamps": 0, "stains": 0, "folds": 0}
    if rng.random() < settings.signature_rate:
        counts["signatures"] = draw_signatures(canvas, rng, pen_width_mm)
    for key, rate, draw in (("stamps", settings.stamp_rate, lambda: draw_stamp(canvas, rng, avoid, stamp_label)),
                            ("stains", settings.stain_rate, lambda: draw_stain(canvas, rng, page)),
                            ("folds", settings.fold_rate, lambda: draw_fold(canvas, rng, page))):
        while rng.random() < rate and counts[key] < 2:
            draw()
            counts[key] += 1
    return counts
