"""Snapping a field's boxes onto the printed lines of a reference-image page (pipeline.vision.boxes)."""

from __future__ import annotations

import numpy as np
import pytest

from pipeline.vision.boxes import snap_geometry
from pipeline.vision.fields import FieldGeometry
from pipeline.vision.settings import ReadSettings

PAPER, BLACK = 230, 40
#: A C1-certificate-like sheet at 200 dpi: combs of three 68 x 52 px boxes stacked in rows, dark column walls, thin
#: light row lines (darkness 0.35 of print black: below the certificate's pen threshold of 0.45).
BOX_W, BOX_H, LEFT, TOP, ROWS = 68, 52, 100, 60, 5
LIGHT = round(PAPER - 0.35 * (PAPER - BLACK))


def settings() -> ReadSettings:
    return ReadSettings(ink_threshold=0.45, faint_ink_threshold=0.3)


def sheet(dash_below_line: int | None = None, strike_below_line: int | None = None) -> np.ndarray:
    """The stacked combs; ``dash_below_line``: a dark dash in every box that far (px) below its row's top line;
    ``strike_below_line``: a dark stroke across the whole middle row's comb that far below its top line, whose
    printed top line is broken near its right end (found along 0.8 of the comb's width, the stroke along all)."""
    page = np.full((TOP + ROWS * BOX_H + 60, LEFT + 3 * BOX_W + 100), PAPER, np.uint8)
    right = LEFT + 3 * BOX_W
    for r in range(ROWS + 1):
        page[TOP + r * BOX_H:TOP + r * BOX_H + 2, LEFT:right + 1] = LIGHT
    for c in range(4):
        page[TOP:TOP + ROWS * BOX_H + 2, LEFT + c * BOX_W - 1:LEFT + c * BOX_W + 2] = BLACK
    if dash_below_line is not None:
        for r in range(ROWS):
            for c in range(3):
                y, x = TOP + r * BOX_H + dash_below_line, LEFT + c * BOX_W + 9
                page[y - 2:y + 3, x:x + BOX_W - 18] = BLACK
    if strike_below_line is not None:
        y = TOP + 2 * BOX_H + strike_below_line
        page[y - 2:y + 3, LEFT - 10:right + 10] = BLACK
        page[TOP + 2 * BOX_H:TOP + 2 * BOX_H + 2, right - 40:right - 20] = PAPER
    return page


def comb(row: int, dy: int = 0) -> FieldGeometry:
    """The middle row's comb as the template places it (lines included), moved ``dy`` px down."""
    y0 = TOP + row * BOX_H + dy
    boxes = tuple((LEFT + c * BOX_W, y0, LEFT + (c + 1) * BOX_W + (1 if c == 2 else 0), y0 + BOX_H + 2)
                  for c in range(3))
    return FieldGeometry(field=None, region=(LEFT - 20, y0 - 10, LEFT + 3 * BOX_W + 20, y0 + BOX_H + 12),
                         boxes=boxes, beside_x0=None)


def tops_and_bottoms(geom: FieldGeometry) -> tuple[set[int], set[int]]:
    return {b[1] for b in geom.boxes}, {b[3] for b in geom.boxes}


@pytest.mark.parametrize("dash", [20, 22, 30, 32])
def test_a_row_of_dashes_does_not_pull_the_boxes_off_light_row_lines(dash):
    """Every box holds a dash (the dash filler habit): darker and, at the pen threshold, fuller along its row than
    the light printed line; the boxes stay on the lines (the old snap moved them ~22 px onto the dashes)."""
    page = sheet(dash_below_line=dash)
    want = comb(2)
    got = snap_geometry(page, want, BLACK, settings())
    tops, bottoms = tops_and_bottoms(got)
    assert len(tops) == 1 and len(bottoms) == 1
    assert abs(tops.pop() - want.boxes[0][1]) <= 1
    assert abs(bottoms.pop() - want.boxes[0][3]) <= 1


@pytest.mark.parametrize("dy", [-6, 5])
def test_boxes_registered_a_little_off_snap_onto_light_row_lines(dy):
    page = sheet(dash_below_line=24)
    want = comb(2)
    got = snap_geometry(page, comb(2, dy), BLACK, settings())
    tops, bottoms = tops_and_bottoms(got)
    assert abs(tops.pop() - want.boxes[0][1]) <= 1
    assert abs(bottoms.pop() - want.boxes[0][3]) <= 1


def test_a_value_struck_through_does_not_take_an_edge_off_its_printed_line():
    """A stroke across the whole field within the refine reach of the top line fills its rows better than the
    light, broken line; the top edge stays on the line nearest to it."""
    page = sheet(strike_below_line=14)
    want = comb(2)
    got = snap_geometry(page, want, BLACK, settings())
    tops, bottoms = tops_and_bottoms(got)
    assert abs(tops.pop() - want.boxes[0][1]) <= 1
    assert abs(bottoms.pop() - want.boxes[0][3]) <= 1


def test_columns_still_snap_onto_the_walls():
    page = sheet(dash_below_line=26)
    want = comb(2)
    moved = comb(2)
    moved = FieldGeometry(field=None, region=moved.region, beside_x0=None,
                          boxes=tuple((a + 7, b, c + 7, d) for a, b, c, d in moved.boxes))
    got = snap_geometry(page, moved, BLACK, settings())
    assert [b[0] for b in got.boxes] == pytest.approx([b[0] for b in want.boxes], abs=2)
