"""Handwriting on the form: numbers in comb boxes, ticks, and the ways a number gets altered.

Each visible alteration kind (overwrite, erase, fluid, crossout) is drawn in one of its tampering styles
(:data:`pipeline.synth.styles.TAMPER_STYLES`): e.g. an overwrite traced boldly (``trace``), any digit over any
other (``digit_over_digit``), double-struck (``retrace``) or in a contrasting pen (``other_pen_over``); a crossout
by strike-through, scribble or hatching.

Numbers are right-aligned with no leading zeros (a count of 7 goes in the last box). Every numeric box gets a
:class:`BoxRecord` (one row of ``boxes.csv``): the digit a reader should read there (-1 = none), its MNIST test
index, and what lies under it. A crossed-out number's replacement is written beside the comb, inside the row
(``position = "beside"``, box numbers continuing after the comb's), or left of it where the comb fills a table
column (``Field.beside`` false: ``position = "left"``), and its struck boxes read -1; so for every kind, the
non-negative digits in box order spell ``F_written``.
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
#: ``digit_over_digit``: the new digit at about the usual weight (it need not hide the old one).
OVER_DIGIT_STROKE = (0.95, 1.2)
#: ``retrace``: extra passes over the new digit, each shifted by about this much (mm), a little lighter.
RETRACE_PASSES = (2, 3)
RETRACE_OFFSET_MM = 0.25
RETRACE_OPACITY = (0.6, 0.9)
#: ``fluid_odd``: other correction fluids - cream, bluish and grey whites (BGR) - and other shapes.
ODD_FLUID_WHITES = ((222.0, 238.0, 246.0), (252.0, 244.0, 236.0), (226.0, 226.0, 228.0), (247.0, 250.0, 250.0))
ODD_FLUID_SHADES = 6.0
ODD_FLUID_COVER = (0.8, 0.97)
ODD_FLUID_SHAPES = ("ellipse", "brush", "tape")
TAPE_EDGE = 0.25
#: ``scribble``: loops back and forth over the number; ``hatching``: parallel diagonal lines this far apart.
SCRIBBLE_TURNS = (3, 7)
SCRIBBLE_SAMPLES = 160
HATCH_SPACING_MM = (1.3, 2.3)
HATCH_ANGLE_DEG = (30.0, 65.0)
CROSS_HATCH_RATE = 0.3
HATCH_LINE = 0.6


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
    style: str = "none"


@dataclass(frozen=True)
class Pens:
    """The sheet's writer and whoever made the alterations (maybe the same pen); ``contrast`` is the clearly
    different pen of the ``other_pen_over`` style (defaults to ``altering``)."""

    honest: Writer
    altering: Writer
    contrast: Writer | None = None


@dataclass(frozen=True)
class WriteContext:
    """What every writing call needs besides the canvas: digits, randomness, pens and placement jitter."""

    digits: DigitSource
    rng: np.random.Generator
    pens: Pens
    jitter: float
    #: Tallest writing relative to a box's width (None: a digit is sized by the box's height alone, as on the
    #: acta's boxes); people write no taller in a tall narrow box than in a square-ish one.
    max_aspect: float | None = None

    def height(self, box: Rect) -> float:
        """The height (mm) a digit's writing is sized to in ``box``."""
        return box.h if self.max_aspect is None else min(box.h, box.w * self.max_aspect)

    def digit(self, canvas: Canvas, writer: Writer, d: int, box: Rect, **ink: float) -> int:
        """Write digit ``d`` in ``box``; returns its MNIST index."""
        return draw_digit(canvas, self.digits, self.rng, writer, d, box_centre(self.rng, box, self.jitter),
                          self.height(box), **ink)


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
               smear_mm: float = 0.0, passes: int = 1) -> int:
    """Write one MNIST test digit centred at ``centre_mm``, ``height_mm`` tall; returns its MNIST index.
    ``passes`` > 1 retraces the same digit, each extra pass slightly shifted and lighter (double-struck)."""
    index, img = digits.pick(digit, rng)
    side = max(8, round(canvas.px(height_mm * writer.digit_height / MNIST_DIGIT_FRACTION)))
    style = dataclasses.replace(writer.style, stroke_scale=writer.style.stroke_scale * stroke_boost)
    styled = restyle(img, rng, style, side)
    for k in range(passes):
        shift = rng.normal(0, RETRACE_OFFSET_MM, 2) if k else np.zeros(2)
        fade = float(rng.uniform(*RETRACE_OPACITY)) if k else 1.0
        alpha = ink_alpha(styled, float(rng.uniform(*writer.pressure)) * opacity * fade, rng, writer.grain)
        if smear_mm > 0:
            alpha = cv2.GaussianBlur(alpha, (0, 0), canvas.px(smear_mm))
        canvas.ink(alpha, canvas.px(centre_mm[0] + shift[0]) - side / 2, canvas.px(centre_mm[1] + shift[1]) - side / 2,
                   writer.ink)
    return index


def box_centre(rng: np.random.Generator, box: Rect, jitter: float) -> tuple[float, float]:
    """Where a person aims in ``box``: its centre plus a little clipped Gaussian wobble (mm)."""
    dx, dy = np.clip(rng.normal(0, jitter, 2), -2 * jitter, 2 * jitter) * (box.w, box.h)
    return box.x + box.w / 2 + dx, box.y + box.h / 2 + dy


def _record(field: Field, i: int, digit: int | None, index: int, kind: str, altered: bool = False,
            old: int | None = None, old_index: int = -1, style: str | None = None) -> BoxRecord:
    """A comb box's row; ``style`` defaults to the kind (``none``, ``fabricated``) for unaltered fields."""
    b = field.boxes[i]
    return BoxRecord(field.name, i, -1 if digit is None else digit, index, altered, kind,
                     -1 if old is None else old, old_index, "box", float(b.x), float(b.y), float(b.x + b.w),
                     float(b.y + b.h), style or kind)


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
    """New digits written over the old ones, as the plan's style says: traced boldly (``trace``: the plan only
    asks for digits a pen can make by adding strokes), any digit over any other at about the usual weight
    (``digit_over_digit``) or in a contrasting pen (``other_pen_over``), or double-struck (``retrace``)."""
    old = number_slots(plan.original, len(field.boxes))
    new = number_slots(plan.written, len(field.boxes))
    old_idx = _write_old(canvas, field, old, ctx)
    style = plan.style if plan.style != "none" else "trace"
    writer = (ctx.pens.contrast or ctx.pens.altering) if style == "other_pen_over" else ctx.pens.altering
    boost = OVER_DIGIT_STROKE if style in ("digit_over_digit", "other_pen_over") else OVERWRITE_STROKE
    records = []
    for i, (o, d) in enumerate(zip(old, new, strict=True)):
        changed = o != d
        passes = int(ctx.rng.integers(RETRACE_PASSES[0], RETRACE_PASSES[1] + 1)) if changed and style == "retrace" \
            else 1
        index = (ctx.digit(canvas, writer, d, field.boxes[i], stroke_boost=float(ctx.rng.uniform(*boost)),
                           passes=passes) if changed else old_idx[i])
        records.append(_record(field, i, d, index, "overwrite", changed, o if changed else None,
                               old_idx[i] if changed else -1, style))
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
        records.append(_record(field, i, d, index, "erase", changed[i], o if changed[i] else None, old_idx[i],
                               plan.style))
    return records


def _fluid_patch(canvas: Canvas, area: Rect, ctx: WriteContext, odd: bool = False) -> None:
    """An irregular blob of correction fluid over ``area`` (mm), with the faint shadow of its raised edge;
    ``odd`` draws another fluid (:func:`_odd_fluid`)."""
    rng = ctx.rng
    margin = float(rng.uniform(*FLUID_MARGIN_MM))
    x0, y0 = canvas.px(area.x - margin), canvas.px(area.y - margin)
    w, h = round(canvas.px(area.w + 2 * margin)), round(canvas.px(area.h + 2 * margin))
    if odd:
        cover, colour, opacity = _odd_fluid(rng, w, h)
    else:
        blob = np.zeros((h, w), np.float32)
        radius = max(2, min(w, h) // 4)
        cv2.rectangle(blob, (radius // 2, radius // 2), (w - radius // 2, h - radius // 2), 1.0, -1)
        wobble = cv2.resize(rng.random((4, 8), dtype=np.float32), (w, h), interpolation=cv2.INTER_CUBIC)
        blob = cv2.GaussianBlur(blob, (0, 0), radius / 2) * (0.8 + 0.4 * wobble)
        cover = (blob > 0.5).astype(np.float32)
    edge = cv2.GaussianBlur(cover, (0, 0), 1.5) - cover
    canvas.ink(np.clip(edge, 0, 1) * FLUID_EDGE_SHADOW * 4, x0, y0, (90.0, 90.0, 90.0))
    if not odd:
        level = float(rng.uniform(*FLUID_LEVEL))
        colour, opacity = (level - 4, level - 1, level), float(rng.uniform(*FLUID_COVER))
    canvas.paint(cv2.GaussianBlur(cover, (0, 0), 0.8) * opacity, x0, y0, colour)


def _odd_fluid(rng: np.random.Generator, w: int, h: int) -> tuple[np.ndarray, tuple[float, float, float], float]:
    """Coverage (float32 0/1, ``h`` x ``w``), colour (BGR) and opacity of a correction fluid unlike the classic
    one: an ellipse, a few brushed streaks, or a sharp-edged slightly turned strip of correction tape."""
    shape = ODD_FLUID_SHAPES[int(rng.integers(len(ODD_FLUID_SHAPES)))]
    cover = np.zeros((h, w), np.float32)
    if shape == "ellipse":
        cv2.ellipse(cover, (w // 2, h // 2), (max(1, w // 2 - 1), max(1, h // 2 - 1)), float(rng.uniform(-8, 8)),
                    0, 360, 1.0, -1)
    elif shape == "brush":
        strokes = int(rng.integers(2, 4))
        for k in range(strokes):
            y = round(h * (k + 0.5) / strokes + rng.normal(0, h * 0.05))
            cv2.line(cover, (round(w * 0.05), y), (round(w * 0.95), y + round(rng.normal(0, h * 0.08))), 1.0,
                     max(2, round(h / strokes * rng.uniform(1.0, 1.4))))
        cover = (cv2.GaussianBlur(cover, (0, 0), max(1.0, h / 20)) > 0.5).astype(np.float32)
    else:
        turn = cv2.getRotationMatrix2D((w / 2, h / 2), float(rng.uniform(-4, 4)), 1.0)
        cv2.rectangle(cover, (1, round(h * 0.08)), (w - 2, round(h * 0.92)), 1.0, -1)
        cover = cv2.warpAffine(cover, turn, (w, h), flags=cv2.INTER_NEAREST)
    base = np.asarray(ODD_FLUID_WHITES[int(rng.integers(len(ODD_FLUID_WHITES)))])
    colour = np.clip(base + rng.normal(0, ODD_FLUID_SHADES), 0, 255)
    opacity = 1.0 - TAPE_EDGE * 0.1 if shape == "tape" else float(rng.uniform(*ODD_FLUID_COVER))
    return cover, (float(colour[0]), float(colour[1]), float(colour[2])), opacity


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
    _fluid_patch(canvas, Rect(first.x, first.y, last.x + last.w - first.x, first.h), ctx, plan.style == "fluid_odd")
    records = []
    for i, (o, d) in enumerate(zip(old, new, strict=True)):
        covered = span[0] <= i <= span[-1]
        index = old_idx[i] if not covered else (-1 if d is None else
                                                ctx.digit(canvas, ctx.pens.altering, d, field.boxes[i]))
        records.append(_record(field, i, d, index, "fluid", covered, o if covered else None,
                               old_idx[i] if covered else -1, plan.style))
    return records


def _strike_lines(rng: np.random.Generator, w: int, h: int, inset: float) -> list[np.ndarray]:
    """``strike``: one or two lines (or a zigzag) across a ``w`` x ``h`` pixel area, ``inset`` from its ends."""
    left, right, mid = inset, w - inset, h / 2
    n = int(rng.integers(1, 3))
    if rng.random() < 0.25:
        xs = np.linspace(left, right, 6)
        return [np.column_stack([xs, mid + np.array([-1, 1] * 3) * h * 0.25 + rng.normal(0, h * 0.04, 6)])]
    return [np.array([[left, mid + rng.normal(0, h * 0.12)], [right, mid + rng.normal(0, h * 0.12)]])
            for _ in range(n)]


def _scribble_lines(rng: np.random.Generator, w: int, h: int, inset: float) -> list[np.ndarray]:
    """``scribble``: a dense looping scrawl back and forth over the whole area (a scratch-out)."""
    turns = int(rng.integers(*SCRIBBLE_TURNS))
    t = np.linspace(0, 1, SCRIBBLE_SAMPLES)
    phase = rng.uniform(0, 2 * np.pi)
    x = inset + (w - 2 * inset) * (0.5 + 0.5 * np.sin(2 * np.pi * turns * t / 2 + phase)) + rng.normal(0, w * 0.02,
                                                                                                        t.size)
    y = h * (0.2 + 0.6 * t) + h * 0.2 * np.sin(2 * np.pi * turns * t) + rng.normal(0, h * 0.03, t.size)
    x = cv2.GaussianBlur(x[None, :].astype(np.float32), (0, 0), 1.5, borderType=cv2.BORDER_REPLICATE)[0]
    return [np.column_stack([x, np.clip(y, 0, h - 1)])]


def _hatch_lines(rng: np.random.Generator, w: int, h: int, inset: float, spacing_px: float) -> list[np.ndarray]:
    """``hatching``: parallel diagonal lines ``spacing_px`` apart over the area, sometimes crossed."""
    def family(angle_deg: float) -> list[np.ndarray]:
        dx = h * 0.84 / np.tan(np.radians(angle_deg))
        lines = []
        for x in np.arange(inset - max(dx, 0.0), w - inset - min(dx, 0.0), spacing_px):
            p0, p1 = np.array([x, h * 0.92]), np.array([x + dx, h * 0.08])
            t = np.clip(((inset, w - inset) - p0[0]) / dx, 0, 1)  # where the line enters and leaves the area
            if abs(t[1] - t[0]) * abs(dx) < 1:
                continue
            seg = np.array([p0 + t.min() * (p1 - p0), p0 + t.max() * (p1 - p0)])
            lines.append(seg + rng.normal(0, spacing_px * 0.08, (2, 2)))
        return lines
    angle = float(rng.uniform(*HATCH_ANGLE_DEG))
    lines = family(angle)
    if rng.random() < CROSS_HATCH_RATE:
        lines += family(180 - angle)
    return lines


def _strike(canvas: Canvas, area: Rect, ctx: WriteContext, style: str = "strike") -> None:
    """Strike out ``area`` (mm) in the crossout ``style``: lines or a zigzag, a scribble, or hatching."""
    rng, writer = ctx.rng, ctx.pens.altering
    pad = TICK_OVERSHOOT_MM
    w, h = round(canvas.px(area.w + 2 * pad)), round(canvas.px(area.h + 2 * pad))
    inset = canvas.px(pad * 0.5)
    if style == "scribble":
        lines = _scribble_lines(rng, w, h, inset)
    elif style == "hatching":
        lines = _hatch_lines(rng, w, h, inset, canvas.px(float(rng.uniform(*HATCH_SPACING_MM))))
    else:
        lines = _strike_lines(rng, w, h, inset)
    width = canvas.px(writer.line_width_mm) * (HATCH_LINE if style == "hatching" else 1.0)
    alpha = stroke_alpha(lines, (h, w), width) * float(rng.uniform(*writer.pressure))
    canvas.ink(alpha, canvas.px(area.x - pad), canvas.px(area.y - pad), writer.ink)


def write_crossout(canvas: Canvas, field: Field, plan: FieldPlan, ctx: WriteContext) -> list[BoxRecord]:
    """The whole old number struck through, the replacement written beside the comb inside the row."""
    old = number_slots(plan.original, len(field.boxes))
    old_idx = _write_old(canvas, field, old, ctx)
    used = [field.boxes[i] for i, o in enumerate(old) if o is not None] or list(field.boxes)
    style = plan.style if plan.style != "none" else "strike"
    _strike(canvas, Rect(used[0].x, used[0].y, used[-1].x + used[-1].w - used[0].x, used[0].h), ctx, style)
    records = [_record(field, i, None, -1, "crossout", o is not None, o, old_idx[i], style)
               for i, o in enumerate(old)]
    if not field.beside:
        return records + _write_left(canvas, field, plan.written, ctx, style)
    return records + _write_beside(canvas, field, plan.written, ctx, style)


def _write_beside(canvas: Canvas, field: Field, value: int, ctx: WriteContext,
                  style: str = "strike") -> list[BoxRecord]:
    """Write ``value`` freehand right of the comb, squeezed to end before BESIDE_LIMIT_MM."""
    rng, box = ctx.rng, field.boxes[-1]
    text = str(value)
    start = box.x + box.w + float(rng.uniform(*BESIDE_GAP_MM))
    pitch = min(box.w * float(rng.uniform(0.8, 1.0)), (BESIDE_LIMIT_MM - 1.0 - start) / len(text))
    height = box.h * float(rng.uniform(0.85, 1.0))
    return _write_freehand(canvas, field, text, (start, pitch, height), box, "beside", ctx, style)


def _write_freehand(canvas: Canvas, field: Field, text: str, place: tuple[float, float, float], row: Rect,
                    position: str, ctx: WriteContext, style: str) -> list[BoxRecord]:
    """Write the digits of ``text`` freehand with the altering pen from x = ``start`` at ``pitch`` mm, ``height``
    mm tall (``place``), centred on the row of the box ``row`` with a little jitter; one record each, numbered
    after the comb's boxes, at ``position``."""
    start, pitch, height = place
    records = []
    for k, ch in enumerate(text):
        cx = start + pitch * (k + 0.5)
        cy = row.y + row.h / 2 + float(ctx.rng.normal(0, 0.04)) * row.h
        index = draw_digit(canvas, ctx.digits, ctx.rng, ctx.pens.altering, int(ch), (cx, cy), height)
        records.append(BoxRecord(field.name, len(field.boxes) + k, int(ch), index, True, "crossout", -1, -1,
                                 position, cx - pitch / 2, row.y, cx + pitch / 2, row.y + row.h, style))
    return records


def _write_left(canvas: Canvas, field: Field, value: int, ctx: WriteContext, style: str) -> list[BoxRecord]:
    """Write ``value`` freehand left of the comb, ending a small gap before its first box: the replacement of a
    crossout where nothing may be written right of the boxes (a comb that fills a table column, ``beside``
    false). Its records have ``position = "left"`` and box numbers continuing after the comb's."""
    rng, first = ctx.rng, field.boxes[0]
    text = str(value)
    end = first.x - float(rng.uniform(*BESIDE_GAP_MM))
    pitch = first.w * float(rng.uniform(0.8, 1.0))
    start = max(0.0, end - pitch * len(text))
    height = ctx.height(first) * float(rng.uniform(0.85, 1.0))
    return _write_freehand(canvas, field, text, (start, pitch, height), first, "left", ctx, style)


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
