"""Handwriting on the form: numbers in comb boxes, ticks, and the five ways a number gets altered.

Numbers are right-aligned with no leading zeros (a count of 7 goes in the last box). Every numeric box gets a
:class:`BoxRecord` (one row of ``boxes.csv``): the digit a reader should read there (-1 = none), its MNIST test
index, and what lies under it. A crossed-out number's replacement is written beside the comb, inside the row
(``position = "beside"``, box numbers continuing after the comb's), and its struck boxes read -1; so for every
kind, the non-negative digits in box order spell ``F_written``.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import cv2
import numpy as np

from pipeline.forms.template import Field, Rect
from pipeline.synth.canvas import Canvas
from pipeline.synth.digits import DigitSource
from pipeline.synth.pen import MNIST_DIGIT_FRACTION, Writer, ink_alpha, restyle, stroke_alpha, tick_points
from pipeline.synth.tamper import FieldPlan

#: A crossout's replacement stays left of this x (mm), so a reader's field image that reaches it includes it.
BESIDE_LIMIT_MM = 150.0
BESIDE_GAP_MM = (2.0, 5.0)
TICK_OVERSHOOT_MM = 1.5
#: Overwritten digits are traced harder to hide the old one.
OVERWRITE_STROKE = (1.2, 1.6)
#: What is left of an erased digit: opacity fraction and smear (mm).
ERASE_REMAINS = (0.15, 0.35)
ERASE_SMEAR_MM = 0.25
ERASER_SMUDGE = (0.06, 0.14)
#: Correction fluid: near-white paint, opacity, and its margin around the covered boxes (mm).
FLUID_LEVEL = (238.0, 252.0)
FLUID_COVER = (0.92, 0.99)
FLUID_MARGIN_MM = (0.5, 1.5)
FLUID_EDGE_SHADOW = 0.12
FLUID_WHOLE_FIELD_RATE = 0.5


@dataclass(frozen=True)
class BoxRecord:
    """One ``boxes.csv`` row (without ``sheet_id``); coordinates are template millimetres."""

    field: str
    box: int
    digit: int
    mnist_index: int
    altered: bool
    alteration: str
    old_digit: int
    old_mnist_index: int
    position: str
    x0_mm: float
    y0_mm: float
    x1_mm: float
    y1_mm: float


@dataclass(frozen=True)
class Pens:
    """The sheet's writer and whoever made the alterations (maybe the same pen)."""

    honest: Writer
    altering: Writer


@dataclass(frozen=True)
class WriteContext:
    """What every writing call needs besides the canvas: digits, randomness, pens and placement jitter."""

    digits: DigitSource
    rng: np.random.Generator
    pens: Pens
    jitter: float

    def digit(self, canvas: Canvas, writer: Writer, d: int, box: Rect, **ink: float) -> int:
        """Write digit ``d`` in ``box``; returns its MNIST index."""
        return draw_digit(canvas, self.digits, self.rng, writer, d, box_centre(self.rng, box, self.jitter),
                          box.h, **ink)


def number_slots(value: int | None, n_boxes: int) -> list[int | None]:
    """Digits of ``value`` right-aligned in ``n_boxes`` boxes, no leading zeros; None = empty box."""
    if value is None:
        return [None] * n_boxes
    text = str(value)
    if len(text) > n_boxes:
        raise ValueError(f"{value} does not fit in {n_boxes} boxes")
    return [None] * (n_boxes - len(text)) + [int(c) for c in text]


def draw_digit(canvas: Canvas, digits: DigitSource, rng: np.random.Generator, writer: Writer, digit: int,
               centre_mm: tuple[float, float], height_mm: float, opacity: float = 1.0, stroke_boost: float = 1.0,
               smear_mm: float = 0.0) -> int:
    """Write one MNIST test digit centred at ``centre_mm``, ``height_mm`` tall; returns its MNIST index."""
    index, img = digits.pick(digit, rng)
    side = max(8, round(canvas.px(height_mm * writer.digit_height / MNIST_DIGIT_FRACTION)))
    style = dataclasses.replace(writer.style, stroke_scale=writer.style.stroke_scale * stroke_boost)
    styled = restyle(img, rng, style, side)
    alpha = ink_alpha(styled, float(rng.uniform(*writer.pressure)) * opacity, rng)
    if smear_mm > 0:
        alpha = cv2.GaussianBlur(alpha, (0, 0), canvas.px(smear_mm))
    canvas.ink(alpha, canvas.px(centre_mm[0]) - side / 2, canvas.px(centre_mm[1]) - side / 2, writer.ink)
    return index


def box_centre(rng: np.random.Generator, box: Rect, jitter: float) -> tuple[float, float]:
    """Where a person aims in ``box``: its centre plus a little clipped Gaussian wobble (mm)."""
    dx, dy = np.clip(rng.normal(0, jitter, 2), -2 * jitter, 2 * jitter) * (box.w, box.h)
    return box.x + box.w / 2 + dx, box.y + box.h / 2 + dy


def _record(field: Field, i: int, digit: int | None, index: int, kind: str, altered: bool = False,
            old: int | None = None, old_index: int = -1) -> BoxRecord:
    b = field.boxes[i]
    return BoxRecord(field.name, i, -1 if digit is None else digit, index, altered, kind,
                     -1 if old is None else old, old_index, "box", float(b.x), float(b.y), float(b.x + b.w),
                     float(b.y + b.h))


def write_plain(canvas: Canvas, field: Field, value: int | None, kind: str, ctx: WriteContext) -> list[BoxRecord]:
    """Write ``value`` cleanly (an honest or a fabricated number)."""
    records = []
    for i, d in enumerate(number_slots(value, len(field.boxes))):
        index = -1 if d is None else ctx.digit(canvas, ctx.pens.honest, d, field.boxes[i])
        records.append(_record(field, i, d, index, kind))
    return records


def _write_old(canvas: Canvas, field: Field, old: list[int | None], ctx: WriteContext) -> list[int]:
    """The number as first written (before an alteration); returns the MNIST index per box (-1 = empty)."""
    return [-1 if d is None else ctx.digit(canvas, ctx.pens.honest, d, field.boxes[i]) for i, d in enumerate(old)]


def write_overwrite(canvas: Canvas, field: Field, plan: FieldPlan, ctx: WriteContext) -> list[BoxRecord]:
    """New digits traced boldly over the old ones (the plan only asks for digits a pen can make this way)."""
    old = number_slots(plan.original, len(field.boxes))
    new = number_slots(plan.written, len(field.boxes))
    old_idx = _write_old(canvas, field, old, ctx)
    records = []
    for i, (o, d) in enumerate(zip(old, new, strict=True)):
        changed = o != d
        index = (ctx.digit(canvas, ctx.pens.altering, d, field.boxes[i],
                           stroke_boost=float(ctx.rng.uniform(*OVERWRITE_STROKE))) if changed else old_idx[i])
        records.append(_record(field, i, d, index, "overwrite", changed, o if changed else None,
                               old_idx[i] if changed else -1))
    return records


def _smudge(canvas: Canvas, box: Rect, ctx: WriteContext) -> None:
    """The grey smear an eraser leaves over a box."""
    w, h = round(canvas.px(box.w)), round(canvas.px(box.h))
    blob = np.zeros((h, w), np.float32)
    cv2.ellipse(blob, (w // 2, h // 2), (int(w * 0.4), int(h * 0.42)), float(ctx.rng.uniform(-30, 30)), 0, 360, 1.0,
                -1)
    blob = cv2.GaussianBlur(blob, (0, 0), max(w, h) / 8) * float(ctx.rng.uniform(*ERASER_SMUDGE))
    canvas.ink(blob, canvas.px(box.x), canvas.px(box.y), ctx.pens.honest.ink)


def write_erase(canvas: Canvas, field: Field, plan: FieldPlan, ctx: WriteContext) -> list[BoxRecord]:
    """Old digits rubbed out (faint smeared remains and a smudge), the new number written over them."""
    old = number_slots(plan.original, len(field.boxes))
    new = number_slots(plan.written, len(field.boxes))
    changed = [o != d for o, d in zip(old, new, strict=True)]
    old_idx = [-1 if (o is None or not c) else
               ctx.digit(canvas, ctx.pens.honest, o, field.boxes[i], opacity=float(ctx.rng.uniform(*ERASE_REMAINS)),
                         smear_mm=ERASE_SMEAR_MM) for i, (o, c) in enumerate(zip(old, changed, strict=True))]
    records = []
    for i, (o, d) in enumerate(zip(old, new, strict=True)):
        if changed[i] and o is not None:
            _smudge(canvas, field.boxes[i], ctx)
        writer = ctx.pens.altering if changed[i] else ctx.pens.honest
        index = -1 if d is None else ctx.digit(canvas, writer, d, field.boxes[i])
        records.append(_record(field, i, d, index, "erase", changed[i], o if changed[i] else None, old_idx[i]))
    return records


def _fluid_patch(canvas: Canvas, area: Rect, ctx: WriteContext) -> None:
    """An irregular blob of correction fluid over ``area`` (mm), with the faint shadow of its raised edge."""
    rng = ctx.rng
    margin = float(rng.uniform(*FLUID_MARGIN_MM))
    x0, y0 = canvas.px(area.x - margin), canvas.px(area.y - margin)
    w, h = round(canvas.px(area.w + 2 * margin)), round(canvas.px(area.h + 2 * margin))
    blob = np.zeros((h, w), np.float32)
    radius = max(2, min(w, h) // 4)
    cv2.rectangle(blob, (radius // 2, radius // 2), (w - radius // 2, h - radius // 2), 1.0, -1)
    wobble = cv2.resize(rng.random((4, 8), dtype=np.float32), (w, h), interpolation=cv2.INTER_CUBIC)
    blob = cv2.GaussianBlur(blob, (0, 0), radius / 2) * (0.8 + 0.4 * wobble)
    cover = (blob > 0.5).astype(np.float32)
    edge = cv2.GaussianBlur(cover, (0, 0), 1.5) - cover
    canvas.ink(np.clip(edge, 0, 1) * FLUID_EDGE_SHADOW * 4, x0, y0, (90.0, 90.0, 90.0))
    level = float(rng.uniform(*FLUID_LEVEL))
    canvas.paint(cv2.GaussianBlur(cover, (0, 0), 0.8) * float(rng.uniform(*FLUID_COVER)), x0, y0,
                 (level - 4, level - 1, level))


def write_fluid(canvas: Canvas, field: Field, plan: FieldPlan, ctx: WriteContext) -> list[BoxRecord]:
    """Old digits covered with correction fluid (the changed ones or the whole number), new ones on top."""
    old = number_slots(plan.original, len(field.boxes))
    new = number_slots(plan.written, len(field.boxes))
    changed = [o != d for o, d in zip(old, new, strict=True)]
    if ctx.rng.random() < FLUID_WHOLE_FIELD_RATE:
        changed = [c or o is not None for c, o in zip(changed, old, strict=True)]
    old_idx = _write_old(canvas, field, old, ctx)
    span = [i for i, c in enumerate(changed) if c]
    first, last = field.boxes[span[0]], field.boxes[span[-1]]
    _fluid_patch(canvas, Rect(first.x, first.y, last.x + last.w - first.x, first.h), ctx)
    records = []
    for i, (o, d) in enumerate(zip(old, new, strict=True)):
        covered = span[0] <= i <= span[-1]
        index = old_idx[i] if not covered else (-1 if d is None else
                                                ctx.digit(canvas, ctx.pens.altering, d, field.boxes[i]))
        records.append(_record(field, i, d, index, "fluid", covered, o if covered else None,
                               old_idx[i] if covered else -1))
    return records


def _strike(canvas: Canvas, area: Rect, ctx: WriteContext) -> None:
    """One or two hand-drawn lines (or a zigzag) through ``area`` (mm)."""
    rng, writer = ctx.rng, ctx.pens.altering
    pad = TICK_OVERSHOOT_MM
    w, h = round(canvas.px(area.w + 2 * pad)), round(canvas.px(area.h + 2 * pad))
    left, right, mid = canvas.px(pad * 0.5), w - canvas.px(pad * 0.5), h / 2
    n = int(rng.integers(1, 3))
    if rng.random() < 0.25:
        xs = np.linspace(left, right, 6)
        lines = [np.column_stack([xs, mid + np.array([-1, 1] * 3) * h * 0.25 + rng.normal(0, h * 0.04, 6)])]
    else:
        lines = [np.array([[left, mid + rng.normal(0, h * 0.12)], [right, mid + rng.normal(0, h * 0.12)]])
                 for _ in range(n)]
    alpha = stroke_alpha(lines, (h, w), canvas.px(writer.line_width_mm)) * float(rng.uniform(*writer.pressure))
    canvas.ink(alpha, canvas.px(area.x - pad), canvas.px(area.y - pad), writer.ink)


def write_crossout(canvas: Canvas, field: Field, plan: FieldPlan, ctx: WriteContext) -> list[BoxRecord]:
    """The whole old number struck through, the replacement written beside the comb inside the row."""
    old = number_slots(plan.original, len(field.boxes))
    old_idx = _write_old(canvas, field, old, ctx)
    used = [field.boxes[i] for i, o in enumerate(old) if o is not None] or list(field.boxes)
    _strike(canvas, Rect(used[0].x, used[0].y, used[-1].x + used[-1].w - used[0].x, used[0].h), ctx)
    records = [_record(field, i, None, -1, "crossout", o is not None, o, old_idx[i]) for i, o in enumerate(old)]
    return records + _write_beside(canvas, field, plan.written, ctx)


def _write_beside(canvas: Canvas, field: Field, value: int, ctx: WriteContext) -> list[BoxRecord]:
    """Write ``value`` freehand right of the comb, squeezed to end before BESIDE_LIMIT_MM."""
    rng, box = ctx.rng, field.boxes[-1]
    text = str(value)
    start = box.x + box.w + float(rng.uniform(*BESIDE_GAP_MM))
    pitch = min(box.w * float(rng.uniform(0.8, 1.0)), (BESIDE_LIMIT_MM - 1.0 - start) / len(text))
    height = box.h * float(rng.uniform(0.85, 1.0))
    records = []
    for k, ch in enumerate(text):
        cx = start + pitch * (k + 0.5)
        cy = box.y + box.h / 2 + float(rng.normal(0, 0.04)) * box.h
        index = draw_digit(canvas, ctx.digits, rng, ctx.pens.altering, int(ch), (cx, cy), height)
        records.append(BoxRecord(field.name, len(field.boxes) + k, int(ch), index, True, "crossout", -1, -1,
                                 "beside", cx - pitch / 2, box.y, cx + pitch / 2, box.y + box.h))
    return records


WRITERS = {"overwrite": write_overwrite, "erase": write_erase, "fluid": write_fluid, "crossout": write_crossout}


def write_count(canvas: Canvas, field: Field, plan: FieldPlan, ctx: WriteContext) -> list[BoxRecord]:
    """Write one count field as planned (honest, fabricated, or visibly altered)."""
    if plan.kind in WRITERS:
        return WRITERS[plan.kind](canvas, field, plan, ctx)
    return write_plain(canvas, field, plan.written, plan.kind, ctx)


def write_tick(canvas: Canvas, box: Rect, writer: Writer, rng: np.random.Generator) -> None:
    """A hand-drawn check or cross in ``box``, allowed to overshoot it a little."""
    pad = canvas.px(TICK_OVERSHOOT_MM)
    w, h = canvas.px(box.w), canvas.px(box.h)
    shape = (round(h + 2 * pad), round(w + 2 * pad))
    lines = [p + pad for p in tick_points(rng, w, h)]
    alpha = stroke_alpha(lines, shape, canvas.px(writer.line_width_mm)) * float(rng.uniform(*writer.pressure))
    canvas.ink(alpha, canvas.px(box.x) - pad, canvas.px(box.y) - pad, writer.ink)
