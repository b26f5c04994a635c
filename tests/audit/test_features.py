"""The alteration features: the fast paths equal plain NumPy/OpenCV, the skeleton, holes and box outline
measures do what they say, and every box measure depends on its own box alone."""

import cv2
import numpy as np
import pytest

from pipeline.audit.features import (
    BLACK_PERCENTILE,
    BOX_MEASURES,
    INK,
    MIN_CONTRAST,
    PAPER_PERCENTILE,
    blobs,
    box_measures,
    comb_maps,
    darkness_levels,
    feature_names,
    field_features,
    fraction,
    grey_histogram,
    ink_threshold,
    inner_box,
    label_type,
    locate_boxes,
    longest_run,
    median_grey,
    outline_gap,
    quantiles,
    skeleton,
    skeleton_points,
    sorted_percentile,
    writing_darkness,
)
from tests.audit.conftest import FIELD_IMAGE_SHAPE, field_image

#: Where the toy fields' boxes are (x0, y0, x1, y1), as conftest.field_image prints them.
BOXES = [(16 + i * 67, 16, 71 + i * 67, 86) for i in range(3)]
PAPER, PRINT = 225, 20


def blank_field(rng: np.random.Generator) -> np.ndarray:
    """Paper with the three printed boxes and nothing written."""
    h, w = FIELD_IMAGE_SHAPE
    img = np.clip(rng.normal(PAPER, 3, (h, w)), 0, 255).astype(np.uint8)
    for x0, y0, x1, y1 in BOXES:
        cv2.rectangle(img, (x0, y0), (x1, y1), PRINT, 2)
    return img


def write_digit(img: np.ndarray, box: int, shape: str, width: int, tone: int = 40, dx: int = 0) -> None:
    """Draw a digit-like ``shape`` ("0", "1", "2" or "7") in ``box`` with a pen ``width`` pixels wide."""
    x0, y0, x1, y1 = BOXES[box]
    cx, cy = (x0 + x1) // 2 + dx, (y0 + y1) // 2
    if shape == "0":
        cv2.ellipse(img, (cx, cy), (11, 22), 0, 0, 360, tone, width)
    elif shape == "1":
        cv2.line(img, (cx + 3, cy - 23), (cx - 3, cy + 23), tone, width)
    elif shape == "7":
        cv2.polylines(img, [np.array([[cx - 12, cy - 22], [cx + 12, cy - 22], [cx - 4, cy + 23]])], False, tone, width)
    else:  # "2"
        cv2.polylines(img, [np.array([[cx - 11, cy - 14], [cx, cy - 23], [cx + 11, cy - 12], [cx - 12, cy + 22],
                                      [cx + 12, cy + 22]])], False, tone, width)


def pen_field(rng: np.random.Generator, digits: str, widths: tuple[int, ...], tones: tuple[int, ...] = (40, 40, 40)
              ) -> np.ndarray:
    """A clean field: ``digits`` right-aligned in the boxes, each with its own pen width and ink tone (an honest
    writer pressing harder on one digit than on the next)."""
    img = blank_field(rng)
    first = len(BOXES) - len(digits)
    for i, d in enumerate(digits):
        write_digit(img, first + i, d, widths[i], tones[i], int(rng.integers(-3, 4)))
    return img


def darkness(img: np.ndarray) -> np.ndarray:
    levels, _, _ = darkness_levels(grey_histogram(img))
    return levels[img]


@pytest.mark.parametrize("q", [0, 0.5, 10, 50, 90, 100])
@pytest.mark.parametrize("n", [1, 2, 7, 1000])
def test_sorted_percentile_is_numpys_to_the_last_bit(q, n):
    rng = np.random.default_rng(n)
    sample = rng.choice(np.linspace(0, 1, 37, dtype=np.float32), n)
    values, counts = np.unique(sample, return_counts=True)
    assert sorted_percentile(values, counts, q) == float(np.percentile(sample, q))


def test_sorted_percentile_skips_empty_levels():
    values = np.array([1, 2, 3, 4], np.float32)
    counts = np.array([2, 0, 0, 2])
    assert sorted_percentile(values, counts, 50) == float(np.percentile([1, 1, 4, 4], 50)) == 2.5


def test_quantiles_and_median_grey_match_numpy():
    rng = np.random.default_rng(3)
    for n in (1, 2, 9, 400):
        v = rng.random(n)
        np.testing.assert_allclose(quantiles(v, (0.1, 0.5, 0.9)), np.quantile(v, (0.1, 0.5, 0.9)))
        g = rng.integers(0, 256, 2 * n + 1).astype(np.uint8)  # odd count: the median is a sample value
        assert median_grey(g) == float(np.median(g))


def test_darkness_matches_the_per_pixel_formula():
    grey = field_image(np.random.default_rng(0), altered=True)
    g = grey.astype(np.float32)
    paper, black = float(np.percentile(g, PAPER_PERCENTILE)), float(np.percentile(g, BLACK_PERCENTILE))
    expected = np.clip((paper - g) / max(paper - black, MIN_CONTRAST), 0.0, 1.0)
    levels, got_paper, contrast = darkness_levels(grey_histogram(grey))
    assert got_paper == paper and contrast == max(paper - black, MIN_CONTRAST)
    np.testing.assert_array_equal(levels[grey], expected)
    assert grey_histogram(grey).sum() == grey.size


def test_longest_run_matches_a_row_by_row_count():
    rng = np.random.default_rng(1)
    mask = rng.random((20, 50)) < 0.7
    expected = max(max((len(r) for r in "".join("1" if v else "0" for v in row).split("0")), default=0)
                   for row in mask)
    assert longest_run(mask) == expected
    assert longest_run(np.zeros((3, 4), bool)) == 0
    assert longest_run(np.ones((3, 4), bool)) == 4


def test_fraction_is_the_mean():
    mask = np.random.default_rng(2).random((31, 17)) < 0.3
    assert fraction(mask) == mask.mean()


def test_label_type_falls_back_to_32_bit_when_16_bit_labels_could_run_out():
    assert label_type((102, 488)) == cv2.CV_16U
    assert label_type((1000, 1000)) == cv2.CV_32S
    checkerboard = np.zeros((600, 600), np.uint8)
    checkerboard[::2, ::2] = 1  # 90,000 components: more than 16 bits can label
    n, _, _, _ = cv2.connectedComponentsWithStats(checkerboard, connectivity=8, ltype=label_type(checkerboard.shape))
    assert n == 90_001


def test_skeleton_of_a_thick_bar_is_a_thin_line_with_two_ends_and_a_cross_has_a_junction():
    bar = np.zeros((30, 60), bool)
    bar[10:17, 5:55] = True
    skel = skeleton(bar)
    assert skel.sum(axis=0)[10:50].max() == 1 and 40 <= skel.sum() <= 52
    ends, junctions = skeleton_points(skel)
    assert ends.sum() == 2 and junctions.sum() == 0
    cross = bar.copy()
    cross[0:30, 27:33] = True
    ends, junctions = skeleton_points(skeleton(cross))
    assert ends.sum() == 4 and 1 <= junctions.sum() <= 4


def count_holes(ink: np.ndarray, min_area: float) -> int:
    return int((blobs(~ink, 4, True)[:, 2] >= min_area).sum())


def test_holes_count_enclosed_paper_only():
    ring = np.zeros((40, 40), np.uint8)
    cv2.circle(ring, (20, 20), 12, 1, 3)
    assert count_holes(ring.astype(bool), 10) == 1
    cv2.line(ring, (0, 20), (39, 20), 1, 3)  # a stroke across the 0 splits its hole in two
    assert count_holes(ring.astype(bool), 10) == 2
    assert count_holes(np.zeros((10, 10), bool), 1) == 0


def test_boxes_are_found_on_their_printed_lines_and_the_outline_gap_sees_fluid():
    img = pen_field(np.random.default_rng(4), "120", (3, 3, 3))
    dark = darkness(img)
    boxes = locate_boxes(dark > INK)
    for got, want in zip(boxes, BOXES, strict=True):
        assert np.abs(np.subtract(got, want)).max() <= 1
    assert max(outline_gap(dark > INK, b) for b in boxes) < 0.02
    cv2.rectangle(img, (BOXES[1][0] - 4, BOXES[1][1] - 4), (BOXES[1][2] + 4, BOXES[1][3] + 4), 250, -1)  # fluid
    assert outline_gap(darkness(img) > INK, boxes[1]) > 0.9


def test_a_printed_line_left_inside_a_box_is_not_its_writing():
    """A box placed three pixels off (bleed, perspective) keeps its thick printed line inside the inset. Left in, the
    line is the box's darkest writing, a light digit falls under the ink threshold and reads as grey remains on
    darkened paper (an eraser's trace); the inside is trimmed past the line, never into the digit."""
    img = blank_field(np.random.default_rng(6))
    x0, y0, x1, y1 = BOXES[1]
    cv2.rectangle(img, (x0, y0), (x1, y1), PRINT, 5)  # a bled, thick outline
    write_digit(img, 1, "7", 4, tone=150)  # a light pen
    dark = darkness(img)
    off = (x0 - 7, y0, x1 - 7, y1)  # the box found 7 px left: its left line lies inside the inset
    rows, cols = inner_box(off, dark.shape)
    assert dark[rows, cols][:, 0].mean() > INK  # the line is inside the plain inset
    clear_rows, clear_cols = inner_box(off, dark.shape, dark)
    assert clear_cols.start > cols.start and (clear_rows, clear_cols.stop) == (rows, cols.stop)
    assert dark[clear_rows, clear_cols].max() < INK  # only the light digit is left
    digit = writing_darkness(dark, BOXES[1])
    assert writing_darkness(dark, off) == pytest.approx(digit, abs=0.05)
    assert inner_box(BOXES[1], dark.shape, dark) == inner_box(BOXES[1], dark.shape)  # the digit itself is kept


def test_a_box_measure_depends_on_its_own_box_alone():
    """Honest pen pressure: the digits beside a box, in any pen weight, do not change that box's measures."""
    rng = np.random.default_rng(5)
    light, heavy = pen_field(rng, "17", (2, 2)), blank_field(rng)
    write_digit(heavy, 0, "0", 7)
    for i, d in enumerate("17"):
        write_digit(heavy, 1 + i, d, 2)
    heavy[:, BOXES[0][2] + 3:] = light[:, BOXES[0][2] + 3:]  # boxes 1 and 2 identical, box 0 differs
    names = feature_names()
    got = [field_features(img) for img in (light, heavy)]
    for m in BOX_MEASURES:  # the mean over boxes moves with box 0; the digit boxes' own values do not
        assert np.isfinite(got[1][names.index(f"box_{m}_max")])
    paper = {"level": 225.0, "contrast": 100.0, "texture": 1.0, "bright": 231}
    measures = []
    for img in (light, heavy):
        dark = darkness(img)
        boxes = locate_boxes(dark > INK)
        maps = comb_maps(dark > INK, dark, boxes, [ink_threshold(writing_darkness(dark, b)) for b in boxes])
        measures.append([box_measures(img, dark, np.zeros_like(dark, bool), maps, b, paper) for b in boxes[1:]])
    np.testing.assert_allclose(measures[0], measures[1], rtol=0.05, atol=0.02)


def test_a_digit_written_over_another_shows_two_layers():
    """A "0" written over a "7", or a "2" over a "1", adds junctions, holes and skeleton to a box; the same
    digits written once do not."""
    rng = np.random.default_rng(6)
    names = feature_names()
    single = np.array([field_features(pen_field(rng, d, (3,))) for d in "0712"])
    over = []
    for under, top in (("7", "0"), ("1", "2")):
        img = pen_field(rng, under, (3,), (60, 60, 60))
        write_digit(img, 2, top, 4, 25, 2)
        over.append(field_features(img))
    over = np.array(over)
    for m in ("box_junctions_max", "box_skeleton_max"):
        i = names.index(m)
        assert over[:, i].min() > single[:, i].max(), m


#: Measures that are relative to the box's own writing or paper and must not move with the pen's darkness.
RELATIVE_MEASURES = ("ink", "grey", "components", "holes", "skeleton", "stroke", "dark_std", "dark_spread",
                     "light_layer", "paper_drop")


def test_a_light_pencil_digit_measures_like_a_black_ink_one():
    """Pencil or a light pen is honest writing: its relative-darkness measures (ink, faint grey, stroke tone,
    paper drop, shape) match the same digits in black ink, so it does not look erased or overwritten."""
    names = feature_names()
    for seed in range(3):
        black = field_features(pen_field(np.random.default_rng(seed), "107", (3, 3, 3), (40, 40, 40)))
        pencil = field_features(pen_field(np.random.default_rng(seed), "107", (3, 3, 3), (150, 150, 150)))
        for m in RELATIVE_MEASURES:
            for agg in ("max", "mean"):
                i = names.index(f"box_{m}_{agg}")
                assert abs(black[i] - pencil[i]) <= 0.03 + 0.1 * abs(black[i]), (m, agg, black[i], pencil[i])
        assert pencil[names.index("box_grey_max")] < 0.02


def test_toner_bands_are_not_faint_remains_or_ink():
    """Darker bands across a clean field (toner banding) leave the boxes' faint grey and ink where they were."""
    names = feature_names()
    img = pen_field(np.random.default_rng(8), "52", (3, 3), (40, 40, 40))
    rows = np.arange(img.shape[0], dtype=np.float32)[:, None]
    banded = np.clip(img * (1 - 0.2 * (np.sin(rows / 6) > 0)), 0, 255).astype(np.uint8)
    plain, band = field_features(img), field_features(banded)
    for m in ("box_grey_max", "box_ink_max", "box_components_max", "box_paper_drop_max"):
        i = names.index(m)
        assert abs(band[i] - plain[i]) <= 0.03 + 0.15 * abs(plain[i]), (m, plain[i], band[i])


def test_faint_remains_of_an_erased_digit_still_count_as_grey():
    """The invariances do not hide erasure: a faint old digit beside the new one in the same box is faint grey."""
    names = feature_names()
    rng = np.random.default_rng(9)
    clean = pen_field(rng, "1", (3,))
    erased = clean.copy()
    write_digit(erased, 2, "0", 3, 185, 0)  # the old "0" rubbed out to a faint grey
    write_digit(erased, 2, "1", 3, 40, 0)
    i = names.index("box_grey_max")
    assert field_features(erased)[i] > field_features(clean)[i] + 0.03
