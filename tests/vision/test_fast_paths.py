"""The reader's fast paths give exactly what the plain computations they replace give (random inputs, seeded)."""

from __future__ import annotations

import cv2
import numpy as np
from scipy import ndimage

from pipeline.vision import lines as ln
from pipeline.vision.fields import (
    faint_traces,
    faint_writing,
    flatten_rows,
    flatten_skewed_rows,
    row_medians,
    row_shifts,
)
from pipeline.vision.segment import BoxRead, Component, SegmentParams, find_components
from pipeline.vision.settings import BOX_DIGIT, BOX_EMPTY, ReadSettings
from pipeline.vision.unbend import Displacement, grid_shape


def test_row_medians_are_numpys_medians_bit_for_bit():
    rng = np.random.default_rng(0)
    for n in range(1, 60):
        values = (rng.random((5, n)) * rng.choice([1e-3, 1.0])).astype(np.float32)
        values[values < 0.4 * values.max()] = 0
        assert np.array_equal(row_medians(values), np.median(values, axis=1).astype(np.float32))


def test_row_medians_of_padded_rows_are_the_medians_of_their_own_values():
    rng = np.random.default_rng(4)
    values = rng.random((40, 30)).astype(np.float32)
    counts = rng.integers(1, 31, 40)
    padded = values.copy()
    for i, n in enumerate(counts):
        padded[i, n:] = 2.0  # sorts after every value
    expected = np.array([np.median(values[i, :n]) for i, n in enumerate(counts)], np.float32)
    assert np.array_equal(row_medians(padded, counts), expected)


def test_flatten_rows_takes_out_the_median_of_each_row_away_from_the_boxes():
    rng = np.random.default_rng(1)
    boxes = [(60, 10, 80, 40), (90, 10, 110, 40)]
    for fill in (0.0, 0.3, 0.7, 1.0):
        dark = (rng.random((50, 200)) * (rng.random((50, 200)) < fill)).astype(np.float32)
        away = np.concatenate([dark[:, :40], dark[:, 130:]], axis=1)
        expected = np.clip(dark - np.median(away, axis=1).astype(np.float32)[:, None], 0.0, 1.0)
        assert np.array_equal(flatten_rows(dark, boxes, clear=20, min_sample=10), expected)


def test_skewed_rows_take_out_the_median_of_each_line_away_from_the_boxes():
    rng = np.random.default_rng(2)
    for slope in (-0.11, -0.03, 0.02, 0.08):
        dark = (rng.random((50, 200)) * (rng.random((50, 200)) < 0.6)).astype(np.float32)
        line = np.arange(50)[:, None] - row_shifts(200, slope)[None, :]
        away = np.zeros(200, bool)
        away[:40] = away[130:] = True
        expected = dark.copy()
        for k in np.unique(line):
            values = dark[(line == k) & away[None, :]]
            if values.size >= 10 and np.count_nonzero(values) >= (values.size + 1) // 2:
                on = line == k
                expected[on] = np.clip(dark[on] - np.median(values).astype(np.float32), 0.0, 1.0)
        assert np.array_equal(flatten_skewed_rows(dark, (40, 130), 10, slope), expected)


def _old_lines(profile, expected, search, min_fill, halo):
    band = {i for e in expected for i in ln.line_positions(profile, e, search, min_fill, halo)}
    core = {i for e in expected for i in ln.line_core(profile, e, search, min_fill)}
    return sorted(band), sorted(core)


def test_line_search_of_all_windows_at_once_is_the_union_of_each_window():
    rng = np.random.default_rng(2)
    for _ in range(2000):
        n = int(rng.integers(1, 60))
        profile = np.round(rng.random(n) * 8) / 8
        profile[rng.random(n) < 0.3] = 0.9
        expected = sorted(set(rng.integers(0, n, rng.integers(1, 5)).tolist()))
        search, halo = int(rng.integers(0, 12)), int(rng.integers(0, 4))
        assert ln._lines(profile, expected, search, 0.85, halo) == _old_lines(profile, expected, search, 0.85, halo)


def test_crossing_columns_are_only_skipped_where_none_can_be():
    rng = np.random.default_rng(3)
    found = 0
    for _ in range(1500):
        h, w = int(rng.integers(20, 60)), int(rng.integers(40, 120))
        weak = rng.random((h, w)) < rng.choice([0.05, 0.3, 0.6])
        if rng.random() < 0.5:
            column = rng.integers(0, w)
            weak[::2, column] = True
            weak[1::2, min(w - 1, column + 1)] = True
        margin = int(rng.integers(0, 12))
        boxes = [(10, margin, 20, h - margin), (22, margin, 32, h - margin)]
        search = int(rng.integers(0, 6))
        cols = np.flatnonzero(ln._crossing_columns(weak, boxes, search)).tolist()
        assert ln.crossing_lines(weak, boxes, 5, search)[1] == cols
        found += bool(cols)
    assert found > 100


def _old_spill(clean, allowed, steps, vertical):
    kernel = np.ones((3, 1) if vertical else (1, 3), np.uint8)
    reached, allowed = clean.astype(np.uint8), allowed.astype(np.uint8)
    for _ in range(steps):
        grown = cv2.dilate(reached, kernel) & (allowed | reached)
        if np.array_equal(grown, reached):
            break
        reached = grown
    return reached.astype(bool) & allowed.astype(bool)


def test_spill_worked_on_the_window_of_the_band_is_the_same():
    rng = np.random.default_rng(4)
    for _ in range(500):
        h, w = int(rng.integers(5, 50)), int(rng.integers(5, 80))
        allowed = rng.random((h, w)) < 0.4
        allowed[:, : int(rng.integers(0, w))] = False
        clean = rng.random((h, w)) < 0.2
        for vertical in (True, False):
            steps = int(rng.integers(0, 6))
            assert np.array_equal(ln._spill(clean, allowed, steps, vertical),
                                  _old_spill(clean, allowed, steps, vertical))


def test_find_components_on_the_ink_window_matches_the_whole_image():
    rng = np.random.default_rng(5)
    for _ in range(500):
        h, w = int(rng.integers(1, 60)), int(rng.integers(1, 90))
        clean = rng.random((h, w)) < rng.choice([0.0, 0.01, 0.05, 0.3])
        stroke = int(rng.integers(1, 5))
        ink = clean.astype(np.uint8)
        n, labels = cv2.connectedComponents(ink, connectivity=8)
        area = np.bincount(labels.ravel(), minlength=n)
        solid = np.bincount(labels[cv2.erode(ink, np.ones((stroke, stroke), np.uint8)) > 0], minlength=n)
        expected = [Component(i + 1, sl[1].start, sl[0].start, sl[1].stop, sl[0].stop, int(area[i + 1]),
                              int(solid[i + 1])) for i, sl in enumerate(ndimage.find_objects(labels))]
        got_labels, got = find_components(clean, stroke)
        assert np.array_equal(got_labels, labels) and got == expected


def test_displacement_on_a_pixel_grid_is_at_on_its_meshgrid():
    rng = np.random.default_rng(6)
    for _ in range(50):
        w, h = int(rng.integers(1, 200)), int(rng.integers(1, 200))
        step = float(rng.choice([7.0, 8.5, 30.0, 3.3]))
        shape = grid_shape((w, h), step)
        disp = Displacement(step, rng.standard_normal(shape) * 5, rng.standard_normal(shape), (w, h), 10)
        xs, ys = np.meshgrid(np.arange(w, dtype=float), np.arange(h, dtype=float))
        for got, expected in zip(disp.on_grid(w, h), disp.at(xs, ys), strict=True):
            assert np.array_equal(got, expected)


def test_faint_writing_is_not_looked_for_in_boxes_without_enough_faint_ink():
    settings = ReadSettings()
    params = SegmentParams.from_settings(settings)
    boxes = [(10, 10, 66, 81), (76, 10, 132, 81)]
    dark = np.zeros((91, 200), np.float32)
    reads = [BoxRead(0, 0, BOX_EMPTY, None), BoxRead(1, 0, BOX_DIGIT, None)]
    assert faint_writing(dark, reads, boxes, settings, params) == set()
    cv2.line(dark, (25, 25), (50, 25), 0.1, 4)  # a faint 7, a digit tall, in the empty box
    cv2.line(dark, (50, 25), (32, 65), 0.1, 4)
    assert faint_writing(dark, reads, boxes, settings, params) == {0}


def test_faint_writing_finds_a_thick_one_but_not_a_dash_or_a_stain():
    """A "1" is one stroke, so its own bounding box is full of it; a dash (a filler mark some forms' users write in
    unused boxes) is no digit tall; a stain fills a round patch. Boxes read empty, marks at 0.1 darkness (above the
    lowered faint threshold)."""
    settings = ReadSettings()
    params = SegmentParams.from_settings(settings)
    boxes = [(10, 10, 66, 81), (76, 10, 132, 81), (142, 10, 198, 81)]
    reads = [BoxRead(box, 0, BOX_EMPTY, None) for box in range(3)]
    dark = np.zeros((91, 210), np.float32)
    cv2.line(dark, (38, 24), (38, 66), 0.1, 9)  # a thick one: it fills ~80% of its own bounding box
    cv2.line(dark, (92, 45), (116, 45), 0.1, 5)  # a dash
    cv2.circle(dark, (170, 45), 12, 0.1, -1)  # a stain
    assert faint_writing(dark, reads, boxes, settings, params) == {0}


def test_a_faint_trace_in_a_box_read_empty_sends_it_to_review_but_paper_and_bands_do_not():
    """Boxes read empty after the faint re-read: a light blurred "4" (a blob unlike writing) and a faint "7" showing
    only its bar are traces of a lost digit; a band across the box, specks and clean paper are not; a trace
    fainter than ``trace_darkness`` is paper noise. Before the first digit nothing counts (a shade over an unused
    box); in a field with no digit read, every box does unless the form's users fill unused boxes (``blank``)."""
    settings = ReadSettings()
    params = SegmentParams.from_settings(settings)
    boxes = [(10 + 66 * i, 10, 66 + 66 * i, 81) for i in range(6)]
    reads = [BoxRead(0, 0, BOX_EMPTY, None), BoxRead(1, 0, BOX_DIGIT, None)]
    reads += [BoxRead(box, 0, BOX_EMPTY, None) for box in range(2, 6)]
    dark = np.zeros((91, 420), np.float32)
    cv2.line(dark, (30, 40), (50, 40), 0.2, 4)  # box 0, before the digit: a faint dash
    cv2.circle(dark, (170, 45), 13, 0.2, -1)  # box 2: a blurred light "4", a blob
    cv2.line(dark, (222, 30), (250, 30), 0.2, 4)  # box 3: a faint "7" showing only its bar
    dark[40:46, 286:330] = 0.2  # box 4: a toner band across the whole inside
    dark[50:53, 295:298] = 0.3  # ... and a speck
    cv2.circle(dark, (368, 45), 13, 0.1, -1)  # box 5: a trace fainter than trace_darkness
    assert faint_traces(dark, reads, boxes, settings, params) == {2, 3}
    assert faint_traces(np.zeros_like(dark), reads, boxes, settings, params) == set()
    blank = [BoxRead(box, 0, BOX_EMPTY, None) for box in range(6)]  # nothing read: the dash is a trace too
    assert faint_traces(dark, blank, boxes, settings, params) == {0, 2, 3}
    assert faint_traces(dark, blank, boxes, settings, params, blank=False) == set()
