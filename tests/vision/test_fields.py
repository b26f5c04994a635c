"""A digit too faint for the ink thresholds is never silently read as an empty box (pipeline.vision.fields)."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from pipeline.vision.page import read_page
from pipeline.vision.settings import BOX_AMBIGUOUS, BOX_DIGIT, BOX_EMPTY
from tests.vision.conftest import DIGIT_FRACTION, fill_form, paste_digit, px

#: Darkness of the one light digit relative to black: below the ink threshold (0.25) everywhere, above the
#: faint-ink threshold lowered by the faint-writer floor (0.12 x 0.6).
LIGHT = 0.13


def light_digit_page(template, mnist):
    """A filled form plus one light digit in the first box of the first count field that has it empty.

    Returns the page, the field name and the box index."""
    page, written = fill_form(template, mnist, seed=5)
    for f in template.fields_of_kind("count"):
        if (f.name, 0) not in written:
            b = f.boxes[0]
            layer = np.full_like(page, 255)
            paste_digit(layer, mnist.x_test[7], (px(b.x + b.w / 2), px(b.y + b.h / 2)), px(b.h * DIGIT_FRACTION))
            light = 255 - (255 - layer.astype(np.float32)) * LIGHT
            return np.minimum(page, light.astype(np.uint8)), f.name, 0
    raise AssertionError("every count field is full")


def box_status(read, field: str, box: int) -> set[str]:
    return {c.box_status for c in read.crops if c.field == field and c.box == box}


def test_a_light_digit_among_dark_ones_is_read_not_dropped(template, mnist, settings):
    page, field, box = light_digit_page(template, mnist)
    assert box_status(read_page(page, "light", settings, template), field, box) == {BOX_DIGIT}


def test_a_light_digit_that_stays_unreadable_makes_its_box_ambiguous_not_empty(template, mnist, settings):
    """With no lower thresholds to fall back on, the faint mark still keeps the box out of ``empty``."""
    page, field, box = light_digit_page(template, mnist)
    read = read_page(page, "light", replace(settings, faint_writer_floor=1.0), template)
    assert box_status(read, field, box) == {BOX_AMBIGUOUS}


def test_empty_boxes_of_a_clean_form_stay_empty(template, mnist, settings):
    page, written = fill_form(template, mnist, seed=5)
    read = read_page(page, "clean", settings, template)
    empty = {(c.field, c.box) for c in read.crops if c.box_status == BOX_EMPTY}
    numeric = {(f.name, i) for f in template.fields_of_kind("id", "count") for i in range(len(f.boxes))}
    assert empty == numeric - set(written)


def test_a_band_across_the_page_is_taken_out_of_the_rows_but_the_writing_stays():
    from pipeline.vision.fields import flatten_rows

    dark = np.zeros((60, 400), np.float32)
    boxes = [(10, 10, 50, 50), (60, 10, 100, 50)]
    dark[28:32, :] = 0.3  # a toner band crossing the whole field image
    dark[15:45, 30:33] = 0.8  # a "1" in the first box, crossing the band
    flat = flatten_rows(dark, boxes, clear=20, min_sample=100)
    assert flat[28:32, 120:].max() == 0 and flat[28:32, 60:100].max() == 0
    assert flat[15:28, 30:33].min() == pytest.approx(0.8) and flat[28:32, 30:33].min() == pytest.approx(0.5)


def skewed_band(shape, slope, row, width, level):
    """A float32 image holding one band ``width`` rows wide along ``slope`` (rows per column), through ``row`` at
    the middle column."""
    ys, xs = np.mgrid[:shape[0], :shape[1]]
    centre = row + slope * (xs - (shape[1] - 1) / 2)
    return np.where(np.abs(ys - centre) <= width / 2, level, 0.0).astype(np.float32)


def test_a_band_of_a_page_fed_in_skewed_is_taken_out_along_its_slope():
    from pipeline.vision.fields import flatten_rows

    boxes = [(10, 10, 50, 50), (60, 10, 100, 50)]
    dark = skewed_band((60, 400), -0.06, 30, 5, 0.3)
    dark[15:45, 30:33] = 0.8  # a "1" in the first box
    along_rows = flatten_rows(dark, boxes, clear=20, min_sample=100)
    along_band = flatten_rows(dark, boxes, clear=20, min_sample=100, slope=-0.06)
    inside = (slice(12, 48), slice(62, 98))  # the second box, empty but for the band
    assert along_rows[inside].max() > 0.25  # rows cut the skewed band, which stays in the box as ink
    assert along_band[inside].max() == 0
    assert along_band[15:45, 30:33].max() == pytest.approx(0.8)


def test_a_slope_that_moves_no_pixel_by_half_a_row_is_no_slope():
    from pipeline.vision.fields import flatten_rows

    rng = np.random.default_rng(3)
    dark = (rng.random((60, 400)) * (rng.random((60, 400)) < 0.7)).astype(np.float32)
    boxes = [(10, 10, 50, 50), (60, 10, 100, 50)]
    assert np.array_equal(flatten_rows(dark, boxes, 20, 100, slope=0.4 / 400),
                          flatten_rows(dark, boxes, 20, 100))


def test_rows_too_short_beside_the_boxes_are_left_alone():
    from pipeline.vision.fields import flatten_rows

    dark = np.full((60, 130), 0.3, np.float32)
    assert flatten_rows(dark, [(10, 10, 50, 50), (60, 10, 100, 50)], clear=20, min_sample=100) is dark


def test_a_bled_stroke_lying_against_a_bled_box_line_keeps_its_darkness():
    from pipeline.vision.fields import darkness
    from pipeline.vision.settings import ReadSettings

    settings = ReadSettings()
    line, stroke = round(settings.px(1.0)), round(settings.px(1.6))
    grey = np.full((120, 200), 230, np.uint8)
    grey[:, 100:100 + line] = 20  # a printed box line, bled to 1 mm
    grey[20:100, 100 + line:100 + line + stroke] = 110  # a bled pen stroke lying against it
    dark = darkness(grey, 20.0, settings)
    assert dark[20:100, 100 + line:100 + line + stroke].min() > settings.ink_threshold


def test_a_skewed_page_without_a_visible_band_is_flattened_along_its_rows_as_before():
    from pipeline.vision.fields import BAND_MIN_DARKNESS, flatten_rows

    rng = np.random.default_rng(5)
    dark = (rng.random((60, 400)) * BAND_MIN_DARKNESS).astype(np.float32)  # paper noise only
    dark[15:45, 30:33] = 0.8  # a "1" in the first box
    boxes = [(10, 10, 50, 50), (60, 10, 100, 50)]
    assert np.array_equal(flatten_rows(dark, boxes, 20, 100, slope=0.05), flatten_rows(dark, boxes, 20, 100))


def test_struck_boxes_are_read_in_ids_and_in_counts_with_room_beside_them_only(template, settings):
    # a count whose comb fills a table column has its replacement written where the reader does not look, so a
    # struck number there is no reading; an id or a count read for a replacement beside its boxes is
    from pipeline.vision.fields import field_geometry, readable_or_filler, struck_readable
    from pipeline.vision.segment import BoxRead

    page = (2000, 3000)
    count = next(f for f in template.fields if f.kind == "count" and f.beside)
    ident = next(f for f in template.fields if f.kind == "id")
    in_column = replace(count, beside=False)
    assert struck_readable(field_geometry(count, page, settings))
    assert struck_readable(field_geometry(ident, page, settings))
    assert not struck_readable(field_geometry(in_column, page, settings))
    struck, filler = BoxRead(0, 0, BOX_AMBIGUOUS, None, 1), BoxRead(0, 0, BOX_EMPTY, None, 1)
    assert not readable_or_filler(struck, field_geometry(in_column, page, settings))
    assert readable_or_filler(filler, field_geometry(in_column, page, settings))  # an X first taken for a strike
