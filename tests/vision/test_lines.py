"""Printed box lines are removed; the handwriting that crosses or touches them is kept."""

from __future__ import annotations

import cv2
import numpy as np

from pipeline.vision.lines import crossing_lines, hysteresis, line_positions, remove_lines

BOXES = [(20, 20, 75, 91), (87, 20, 142, 91)]
LINE = 3


def printed_boxes(shape=(111, 260)) -> np.ndarray:
    """Boolean ink of two printed boxes drawn the way the renderer draws them (3 px lines)."""
    img = np.zeros(shape, np.uint8)
    for x0, y0, x1, y1 in BOXES:
        cv2.rectangle(img, (x0, y0), (x1 - 1, y1 - 1), 1, LINE)
    return img.astype(bool)


def stroke(shape=(111, 260)) -> np.ndarray:
    """A pen stroke crossing the first box's top and right lines and running on into the gap."""
    img = np.zeros(shape, np.uint8)
    cv2.line(img, (45, 8), (45, 60), 1, 4)
    cv2.line(img, (45, 60), (84, 40), 1, 4)
    return img.astype(bool)


def test_empty_boxes_leave_no_ink():
    clean, removed, band = remove_lines(printed_boxes(), BOXES, search=6, min_fill=0.85)
    assert not clean.any()
    assert removed.sum() == printed_boxes().sum()
    assert band.sum() >= removed.sum()


def test_line_removal_keeps_strokes_that_cross_the_lines():
    pen = stroke()
    clean, removed, _ = remove_lines(printed_boxes() | pen, BOXES, search=6, min_fill=0.85)
    kept = (clean & pen).sum() / pen.sum()
    assert kept > 0.97, f"only {kept:.1%} of the stroke survived"
    n, _ = cv2.connectedComponents(clean.astype(np.uint8), connectivity=8)
    assert n - 1 == 1, "the stroke was cut where it crosses a line"
    assert (clean & ~pen).sum() < 0.02 * printed_boxes().sum(), "printed line pixels were left behind"
    assert not (removed & pen & ~printed_boxes()).any()


def test_lines_are_found_a_few_pixels_off_their_template_place():
    shifted = np.roll(printed_boxes(), (3, -2), axis=(0, 1))
    clean, _, _ = remove_lines(shifted, BOXES, search=6, min_fill=0.85)
    assert clean.sum() < 0.02 * shifted.sum()


def test_a_digit_stroke_along_the_box_edge_is_not_taken_for_the_line():
    pen = np.zeros_like(printed_boxes())
    pen[35:80, 28:32] = True  # a "1" written close to the left edge: it fills 45 of the box's 71 rows
    clean, _, _ = remove_lines(printed_boxes() | pen, BOXES, search=6, min_fill=0.85)
    assert (clean & pen).sum() == pen.sum()


def test_a_stroke_running_into_the_line_band_keeps_its_ink_short_of_the_line():
    pen = np.zeros_like(printed_boxes())
    pen[35:80, 69:74] = True  # the right side of a "0" written against the box's right edge (line at 72-76)
    clean, _, band = remove_lines(printed_boxes() | pen, BOXES, search=6, min_fill=0.85, halo=2)
    beside = pen[:, :72] & band[:, :72]
    assert beside.any(), "the stroke must reach into the band for this test to mean anything"
    assert (clean[:, :72] & beside).sum() == beside.sum(), "ink beside the line was eaten with it"
    assert not (clean & ~pen).any(), "line pixels were restored along with the stroke"


def test_line_positions_take_the_blurred_edges_but_not_a_stroke_beside_the_line():
    profile = np.zeros(40)
    profile[[18, 19, 20]] = 1.0
    profile[[17, 21]] = 0.4  # blurred edges
    profile[[24, 25, 26]] = 0.5  # a stroke running alongside
    assert line_positions(profile, expected=19, search=8, min_fill=0.85) == [17, 18, 19, 20, 21]


def test_hysteresis_keeps_only_runs_that_reach_the_high_level():
    profile = np.array([0.0, 0.3, 0.9, 0.3, 0.0, 0.3, 0.3, 0.0])
    assert hysteresis(profile, high=0.8, low=0.2).tolist() == [False, True, True, True, False, False, False, False]


def test_a_fold_across_the_field_is_found_and_digits_are_not():
    weak = np.zeros((111, 480), bool)
    weak[70, :] = True  # a faint fold line across the whole field image
    weak[30:80, 100:104] = True  # a digit stroke in a box
    rows, cols = crossing_lines(weak, BOXES, clear=20, search=6)
    assert 70 in rows and set(rows) <= {69, 70, 71} and cols == []


def test_a_line_partly_painted_over_is_still_removed_where_the_template_puts_it():
    faded = printed_boxes()
    faded[20:60, :] = False  # correction fluid over the top half of both boxes: their sides are half gone
    clean, _, _ = remove_lines(faded, BOXES, search=6, min_fill=0.85, halo=2)
    assert not clean.any()
    without_halo, _, _ = remove_lines(faded, BOXES, search=6, min_fill=0.85)
    assert without_halo.any()  # the fill test alone misses them


def test_a_stroke_lying_on_a_lines_blurred_edge_is_given_back_and_the_edge_is_not():
    from pipeline.vision.lines import strokes_on_lines

    dark = np.zeros((80, 120), np.float32)
    box = (20, 10, 80, 70)
    dark[:, 18:20] = dark[:, 23:25] = 0.35  # the blurred edges of the box's left line
    dark[:, 20:23] = 1.0  # its core
    dark[30:50, 23:25] = 0.9  # a stroke lying on the right edge
    removed = np.zeros(dark.shape, bool)
    removed[:, 18:25] = True  # what line removal took out
    clean = np.zeros(dark.shape, bool)
    clean[30:32, 25:40] = True  # the rest of the digit, in the box
    kept = strokes_on_lines(dark, removed, clean, [box], search=4, threshold=0.25)
    assert kept[30:50, 23:25].all()
    assert kept.sum() == 40
    assert not strokes_on_lines(dark, removed, np.zeros_like(clean), [box], search=4, threshold=0.25).any()
