"""Tampering styles and pens of the wide generator: each style draws what its name says and records it."""

from __future__ import annotations

import numpy as np
import pytest

from pipeline.forms.template import MM_PER_INCH
from pipeline.synth import SynthSettings, plan_sheet, render_sheet
from pipeline.synth.canvas import Canvas
from pipeline.synth.pen import PenStyle, colour_writer, outside
from pipeline.synth.sheet import sheet_pens
from pipeline.synth.styles import TAMPER_STYLES
from pipeline.synth.tamper import ANY_DIGIT, OVERWRITES_TO, FieldPlan, overwrite_value
from pipeline.synth.writer import Pens, WriteContext, draw_digit, write_count
from tests.synth.common import FAST, TAMPERED

DPI = 100
PAPER = 200
#: Plans per kind: (original, written); every overwrite here is also reachable by adding strokes (3 -> 8).
CHANGES = {"overwrite": (131, 181), "erase": (131, 121), "fluid": (131, 121), "crossout": (131, 145)}
SEEDS = range(6)


def px(mm: float) -> int:
    return round(mm * DPI / MM_PER_INCH)


def write_style(style: str, template, digits, seed: int, paper: int = 255):
    """Field ``pri`` written in ``style`` on a blank canvas: the image and the box records."""
    image = np.full((px(297), px(210), 3), paper, np.uint8)
    canvas = Canvas(image, np.eye(3), DPI)
    rng = np.random.default_rng(seed)
    blue = colour_writer(rng, "blue", PenStyle(), 0.8, (0.9, 1.0))
    red = colour_writer(rng, "red", PenStyle(stroke_scale=1.5), 0.8, (0.9, 1.0))
    kind = TAMPER_STYLES[style]
    old, new = CHANGES[kind]
    plan = FieldPlan("pri", old, old, new, kind, style)
    records = write_count(canvas, template.field("pri"), plan, WriteContext(digits, rng, Pens(blue, blue, red), 0.05))
    return image, records


def box_pixels(image: np.ndarray, rect) -> np.ndarray:
    return image[px(rect.y): px(rect.y + rect.h), px(rect.x): px(rect.x + rect.w)]


def dark_fraction(image: np.ndarray, rect, level: int = 200) -> float:
    return float((box_pixels(image, rect).mean(axis=2) < level).mean())


@pytest.mark.parametrize("style", sorted(TAMPER_STYLES))
def test_every_style_records_itself_and_spells_the_new_number(style, template, digits):
    _, records = write_style(style, template, digits, 0)
    altered = [r for r in records if r.altered]
    assert altered and {r.style for r in records} == {style}
    assert {r.alteration for r in records} == {TAMPER_STYLES[style]}
    spelled = "".join(str(r.digit) for r in sorted(records, key=lambda r: r.box) if r.digit >= 0)
    assert int(spelled) == CHANGES[TAMPER_STYLES[style]][1]


def test_scribble_and_hatching_cover_the_number_more_than_a_strike(template, digits):
    field = template.field("pri")
    def cover(style):
        return np.mean([np.mean([dark_fraction(write_style(style, template, digits, s)[0], b) for b in field.boxes])
                        for s in SEEDS])
    strike, scribble, hatching = cover("strike"), cover("scribble"), cover("hatching")
    assert scribble > strike * 1.3 and hatching > strike * 1.3


def test_other_pen_over_writes_the_new_digit_in_the_contrasting_pen(template, digits):
    box = template.field("pri").boxes[1]  # 3 -> 8
    for style, reddish in (("other_pen_over", True), ("digit_over_digit", False)):
        image, _ = write_style(style, template, digits, 1)
        b, _, r = (box_pixels(image, box).astype(int)[..., c] for c in range(3))
        assert ((r - b) > 60).sum() > 20 if reddish else ((r - b) > 60).sum() == 0


def test_fluid_styles_paint_over_the_old_digits(template, digits):
    box = template.field("pri").boxes[1]
    for style in ("fluid", "fluid_odd"):
        image, records = write_style(style, template, digits, 2, paper=PAPER)
        assert (box_pixels(image, box).mean(axis=2) > PAPER + 15).mean() > 0.3, style
        assert records[1].altered and records[1].old_digit == 3


def test_retracing_adds_shifted_passes_over_the_same_digit(template, digits):
    def drawn(passes):
        image = np.full((200, 200), 255, np.uint8)
        writer = colour_writer(np.random.default_rng(0), "black", PenStyle(), 0.8, (0.9, 1.0))
        index = draw_digit(Canvas(image, np.eye(3), DPI), digits, np.random.default_rng(5), writer, 4, (20.0, 20.0),
                           9.0, passes=passes)
        return image, index
    once, i1 = drawn(1)
    thrice, i3 = drawn(3)
    assert i1 == i3 and (thrice <= once).all() and (thrice < 128).sum() > (once < 128).sum()


def test_any_digit_styles_can_write_any_digit_over_any_other():
    assert overwrite_value(77, 21, 3) is None and overwrite_value(77, 21, 3, ANY_DIGIT) == 21
    assert overwrite_value(131, 171, 3, ANY_DIGIT) == 171
    settings = SynthSettings(style_set="heldout", **TAMPERED)
    unreachable = 0
    for i in range(1, 200):
        for f in plan_sheet(i, settings).fields.values():
            if f.style == "other_pen_over":
                pairs = zip(str(f.original).rjust(3), str(f.written).rjust(3), strict=True)
                unreachable += any(o != n and o != " " and int(n) not in OVERWRITES_TO[int(o)] for o, n in pairs)
    assert unreachable > 5


def test_honest_pen_changes_between_fields_are_not_alterations(digits, template):
    counts = tuple(f.name for f in template.fields_of_kind("count"))
    for style_set, variation in (("train", "field_weight"), ("heldout", "field_pen")):
        settings = SynthSettings(style_set=style_set, field_pen_rate=1.0)
        for seed in range(5):
            pens = sheet_pens(np.random.default_rng(seed), settings, counts)
            assert pens.record["honest_pen_variation"] == variation
            honest = pens.pens.honest
            if variation == "field_weight":
                scales = {round(p.honest.style.stroke_scale, 4) for p in pens.fields.values()}
                assert len(scales) > 3 and {p.honest.colour for p in pens.fields.values()} == {honest.colour}
            else:
                second = pens.record["honest_pen_fields"].split(";")
                assert 2 <= len(second) <= 6
                assert all(pens.fields[f].honest.colour != honest.colour for f in second)
                assert all(pens.fields[f].honest is honest for f in counts if f not in second)
    clean = {"altered_rate_absent": 0.0, "altered_rate_present": 0.0, "fabricated_rate": 0.0}
    sheet = render_sheet(1, SynthSettings(**FAST, **clean, style_set="heldout", field_pen_rate=1.0), digits)
    assert sheet.truth["honest_pen_variation"] == "field_pen" and not sheet.truth["altered"]
    assert all(sheet.truth[f"{f}_alteration"] == "none" and sheet.truth[f"{f}_style"] == "none" for f in counts)


def test_unusual_hands_come_from_outside_the_usual_ranges():
    rng = np.random.default_rng(0)
    draws = [outside(rng, (0.45, 1.6), (0.65, 1.05)) for _ in range(500)]
    assert all(0.45 <= d <= 0.65 or 1.05 <= d <= 1.6 for d in draws) and min(draws) < 0.6 and max(draws) > 1.2
    assert outside(rng, (0.65, 1.05), (0.65, 1.05)) == pytest.approx(outside(np.random.default_rng(1), (0.65, 1.05),
                                                                               (0.65, 1.05)), abs=0.4)


def test_pencil_is_lighter_and_grainier_than_ink():
    rng = np.random.default_rng(0)
    pen = colour_writer(rng, "black", PenStyle(), 0.8, (0.9, 1.0))
    pencil = colour_writer(rng, "pencil", PenStyle(), 0.8, (0.9, 1.0))
    assert pencil.grain > pen.grain and pencil.pressure[1] < pen.pressure[1]
    assert np.mean(pencil.ink) > np.mean(pen.ink) + 40
