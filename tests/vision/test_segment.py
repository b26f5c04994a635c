"""Per-box decisions: empty, one digit, split or ambiguous; strike-throughs and the replacement beside them."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from pipeline.vision.segment import SegmentParams, find_components, group_digits, segment_field
from pipeline.vision.settings import BOX_AMBIGUOUS, BOX_DIGIT, BOX_EMPTY, ReadSettings

# Three boxes as a count field shows them at 200 dpi (7 x 9 mm, 1.5 mm apart), the beside area from x = 228.
BOXES = [(12, 12, 67, 83), (79, 12, 134, 83), (146, 12, 201, 83)]
BESIDE = 228
SHAPE = (95, 480)


@pytest.fixture(scope="module")
def params() -> SegmentParams:
    return SegmentParams.from_settings(ReadSettings())


def ink(*draw) -> np.ndarray:
    img = np.zeros(SHAPE, np.uint8)
    for kind, *args in draw:
        if kind == "line":
            cv2.line(img, *args, 1, 4)
        elif kind == "ellipse":
            cv2.ellipse(img, *args, 0, 0, 360, 1, 4)
        elif kind == "rect":
            cv2.rectangle(img, *args, 1, -1)
    return img.astype(bool)


def decisions(reads) -> list[tuple[int, int, str]]:
    return [(r.box, r.slot, r.status) for r in reads]


def test_empty_and_single_digits(params):
    mask = ink(("ellipse", (106, 47), (14, 22)), ("line", (175, 22), (172, 72)))
    assert decisions(segment_field(mask, BOXES, BESIDE, params)) == [
        (0, 0, BOX_EMPTY), (1, 0, BOX_DIGIT), (2, 0, BOX_DIGIT)]


def test_a_digit_broken_in_two_stays_one_digit(params):
    # a "5" whose top bar came off, and a faint "1" broken into stacked pieces
    mask = ink(("line", (95, 20), (120, 20)), ("ellipse", (104, 55), (13, 16)),
               ("line", (175, 20), (173, 40)), ("line", (172, 48), (170, 74)))
    reads = segment_field(mask, BOXES, BESIDE, params)
    assert decisions(reads) == [(0, 0, BOX_EMPTY), (1, 0, BOX_DIGIT), (2, 0, BOX_DIGIT)]
    assert reads[1].piece.n_components == 2 and reads[2].piece.n_components == 2


def test_specks_and_dirt_are_not_digits(params):
    mask = ink(("rect", (30, 40), (31, 41)), ("rect", (100, 30), (102, 32)))
    assert [r.status for r in segment_field(mask, BOXES, BESIDE, params)] == [BOX_EMPTY] * 3


def test_two_digits_squeezed_apart_in_one_box_are_two_slots(params):
    mask = ink(("line", (18, 20), (18, 75)), ("ellipse", (52, 47), (9, 22)))
    reads = segment_field(mask, BOXES, BESIDE, params)
    assert decisions(reads)[:2] == [(0, 0, BOX_DIGIT), (0, 1, BOX_DIGIT)]
    assert reads[0].piece.x1 <= reads[1].piece.x0


def test_digits_touching_across_two_boxes_make_both_ambiguous(params):
    mask = ink(("ellipse", (55, 47), (14, 22)), ("ellipse", (88, 47), (14, 22)), ("line", (66, 47), (78, 47)))
    reads = segment_field(mask, BOXES, BESIDE, params)
    assert decisions(reads) == [(0, 0, BOX_AMBIGUOUS), (1, 0, BOX_AMBIGUOUS), (2, 0, BOX_EMPTY)]
    assert reads[0].piece.x1 <= reads[1].piece.x0  # each box gets its own share of the ink


def test_a_struck_number_is_ambiguous_and_the_replacement_beside_it_is_cut(params):
    old = [("ellipse", (106, 47), (14, 22)), ("line", (175, 22), (172, 72))]
    strike = [("line", (73, 44), (207, 52))]
    new = [("line", (250, 20), (247, 75)), ("ellipse", (290, 47), (13, 22)), ("ellipse", (330, 47), (13, 22))]
    reads = segment_field(ink(*old, *strike, *new), BOXES, BESIDE, params)
    assert decisions(reads) == [(0, 0, BOX_EMPTY), (1, 0, BOX_AMBIGUOUS), (2, 0, BOX_AMBIGUOUS),
                                (-1, 0, BOX_DIGIT), (-2, 0, BOX_DIGIT), (-3, 0, BOX_DIGIT)]
    assert [r.piece.x0 < 260 for r in reads[3:]] == [True, False, False]  # numbered left to right
    assert [r.struck for r in reads] == [False, True, True, False, False, False]  # the boxes the strike crosses


def test_digits_touching_across_boxes_are_ambiguous_but_not_struck(params):
    mask = ink(("ellipse", (55, 47), (14, 22)), ("ellipse", (88, 47), (14, 22)), ("line", (66, 47), (78, 47)))
    assert not any(r.struck for r in segment_field(mask, BOXES, BESIDE, params))


def test_without_a_strike_ink_beside_the_boxes_is_not_read(params):
    mask = ink(("ellipse", (106, 47), (14, 22)), ("ellipse", (290, 47), (13, 22)))
    assert all(r.box >= 0 for r in segment_field(mask, BOXES, BESIDE, params))


def test_a_zigzag_strike_cut_by_line_removal_is_still_found(params):
    zigzag = ink(("line", (8, 30), (40, 70)), ("line", (40, 70), (73, 15)), ("line", (73, 15), (105, 70)),
                 ("line", (105, 70), (140, 15)), ("line", (140, 15), (170, 70)), ("line", (170, 70), (205, 25)))
    for x0, _, x1, _ in BOXES:  # its pixels on the box edges went with the printed lines: pieces per box
        zigzag[:, x0 - 2:x0 + 3] = zigzag[:, x1 - 3:x1 + 2] = False
    assert len(find_components(zigzag)[1]) >= 4
    reads = segment_field(zigzag, BOXES, BESIDE, params)
    assert [r.status for r in reads] == [BOX_AMBIGUOUS] * 3


def test_a_fold_hairline_alone_is_not_a_digit(params):
    mask = np.zeros(SHAPE, bool)
    mask[5:90, 100:102] = True  # 2 px wide: thinner than any pen stroke
    assert [r.status for r in segment_field(mask, BOXES, BESIDE, params)] == [BOX_EMPTY] * 3


def test_components_report_their_solid_core():
    mask = ink(("rect", (10, 10), (30, 40)))
    mask[60:90, 50] = True
    _, comps = find_components(mask, stroke_px=3)
    assert sorted((c.area, c.solid > 0) for c in comps) == [(30, False), (21 * 31, True)]


def test_groups_come_back_left_to_right(params):
    _, comps = find_components(ink(("line", (150, 20), (150, 75)), ("line", (20, 20), (20, 75))), 3)
    groups = group_digits(comps, params)
    assert [g[0].x0 for g in groups] == sorted(g[0].x0 for g in groups)


def test_line_edge_specks_do_not_bridge_neighbouring_digits_into_a_strike(params):
    # a wide 0 in box 1 and a 0 in box 2 whose tail runs left into the gap, with 2 x 2 px specks of the box lines'
    # blurred edges left between them by the line removal: bridging through the specks made a false "strike"
    digits = [("ellipse", (105, 47), (19, 20)), ("ellipse", (176, 47), (19, 20)), ("line", (160, 66), (143, 66))]
    specks = [("rect", (129, 46), (130, 47)), ("rect", (138, 56), (139, 57))]
    reads = segment_field(ink(*digits, *specks), BOXES, BESIDE, params)
    assert decisions(reads) == [(0, 0, BOX_EMPTY), (1, 0, BOX_DIGIT), (2, 0, BOX_DIGIT)]


def test_a_stroke_along_a_box_line_stays_with_its_digit(params):
    # a 2 whose base was drawn on the bottom line: line removal leaves the base as a piece lying mostly on the
    # line's band, which must not be dropped as a remnant of the line (the 2 would read as a 7)
    body = [("line", (90, 20), (125, 20)), ("line", (125, 20), (95, 72))]
    base = [("line", (105, 76), (126, 76))]
    band = np.zeros(SHAPE, bool)
    band[72:86, :] = True
    mask = ink(*body, *base)
    mask[77:86, :] = False  # the line's core went with the line, and the corner of the 2 with it
    reads = segment_field(mask, BOXES, BESIDE, params, band)
    assert decisions(reads) == [(0, 0, BOX_EMPTY), (1, 0, BOX_DIGIT), (2, 0, BOX_EMPTY)]
    assert reads[1].piece.n_components == 2 and reads[1].piece.y1 >= 74


def test_a_fold_crossing_a_box_is_not_a_digit(params):
    # a crease running through box 1 from the top of the field image to the bottom, three pixels wide
    mask = ink(("ellipse", (174, 47), (13, 22)))
    mask[0:SHAPE[0], 100:103] = True
    assert decisions(segment_field(mask, BOXES, BESIDE, params)) == [
        (0, 0, BOX_EMPTY), (1, 0, BOX_EMPTY), (2, 0, BOX_DIGIT)]


def test_ink_running_out_at_the_end_of_the_beside_area_is_not_a_replacement_digit(params):
    # the rim of a stamp cut by the right edge of the field image, after a struck number and its replacement
    strike = [("line", (8, 44), (207, 52))]
    new = [("line", (250, 20), (247, 75)), ("ellipse", (290, 47), (13, 22))]
    rim = [("line", (SHAPE[1] - 8, 10), (SHAPE[1] - 1, 60))]
    reads = segment_field(ink(("ellipse", (106, 47), (14, 22)), *strike, *new, *rim), BOXES, BESIDE, params)
    assert [r.box for r in reads if r.box < 0] == [-1, -2]


def test_a_digit_whose_tail_leaves_the_image_is_kept(params):
    # a 9 written low in box 2: its tail runs out at the bottom of the field image, most of it is in the box
    mask = ink(("ellipse", (174, 40), (12, 14)), ("line", (186, 40), (182, SHAPE[0])))
    assert decisions(segment_field(mask, BOXES, BESIDE, params)) == [
        (0, 0, BOX_EMPTY), (1, 0, BOX_EMPTY), (2, 0, BOX_DIGIT)]


#: Darkness of the test's pencil relative to the print: only the cores of some strokes reach the ordinary ink threshold.
PENCIL = 0.22


def test_a_faint_writer_is_read_again_with_lower_ink_thresholds(template, mnist, settings):
    """Pencil digits too faint for the ordinary ink threshold are found once the sheet's own ink is known."""
    from dataclasses import replace

    from pipeline.vision.page import read_page
    from tests.vision.conftest import fill_form

    page, written = fill_form(template, mnist, seed=3)
    pencil = np.where(page < 250, 255 - (255 - page.astype(np.float32)) * PENCIL, page).astype(np.uint8)
    print_only = render_blank_like(template, page.shape)
    faint = np.minimum(pencil, print_only)  # the print stays black, the handwriting is a faint grey
    faint_read = read_page(faint, "pencil", settings, template)
    plain = read_page(faint, "pencil", replace(settings, faint_writer_ink=0.0), template)
    digits = sum(1 for c in faint_read.crops if c.box_status == "digit" and c.box >= 0)
    assert digits > sum(1 for c in plain.crops if c.box_status == "digit" and c.box >= 0)
    assert digits == len(written)


def render_blank_like(template, shape):
    from pipeline.forms import render_blank
    blank = render_blank(template, 200)
    assert blank.shape == shape
    return blank


def test_large_digits_bridged_across_the_removed_walls_are_not_a_strike(params):
    # two wide 0s fill boxes 1 and 2 into the band where the wall between them was removed: bridging joins them
    # into one ink spanning both boxes edge to edge, but no ink crosses the open gap between the walls
    band = np.zeros(SHAPE, bool)
    band[:, 131:138] = band[:, 143:150] = True
    digits = ink(("ellipse", (106, 47), (27, 22)), ("ellipse", (174, 47), (27, 22)))
    reads = segment_field(digits, BOXES, BESIDE, params, band)
    assert decisions(reads) == [(0, 0, BOX_EMPTY), (1, 0, BOX_DIGIT), (2, 0, BOX_DIGIT)]


def test_a_strike_across_the_gap_between_boxes_is_still_a_strike(params):
    band = np.zeros(SHAPE, bool)
    band[:, 131:138] = band[:, 143:150] = True
    struck = ink(("ellipse", (108, 47), (20, 22)), ("ellipse", (172, 47), (20, 22)), ("line", (80, 47), (200, 50)))
    reads = segment_field(struck, BOXES, BESIDE, params, band)
    assert [r.status for r in reads if r.box >= 1] == [BOX_AMBIGUOUS, BOX_AMBIGUOUS]


def test_a_band_crossing_the_whole_field_image_is_not_a_strike(params):
    # a toner band or fold through the boxes and on across the page: cut by the walls' removal into pieces that
    # bridging rejoins, it must not make every box a crossed-out one
    band = ink(("line", (0, 47), (SHAPE[1] - 1, 49)), ("ellipse", (106, 47), (14, 22)))
    for x0, _, x1, _ in BOXES:
        band[:, x0 - 2:x0 + 3] = band[:, x1 - 3:x1 + 2] = False
    assert [r.status for r in segment_field(band, BOXES, BESIDE, params) if r.box >= 0] != [BOX_AMBIGUOUS] * 3
