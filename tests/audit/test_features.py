"""The fast paths of the alteration features give the same numbers as the plain NumPy/OpenCV they replace."""

import cv2
import numpy as np
import pytest

from pipeline.audit.features import (
    BLACK_PERCENTILE,
    MIN_CONTRAST,
    PAPER_PERCENTILE,
    darkness_levels,
    fraction,
    grey_histogram,
    label_type,
    longest_run,
    sorted_percentile,
)
from tests.audit.conftest import field_image


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


def test_darkness_matches_the_per_pixel_formula():
    grey = field_image(np.random.default_rng(0), altered=True)
    g = grey.astype(np.float32)
    paper, black = float(np.percentile(g, PAPER_PERCENTILE)), float(np.percentile(g, BLACK_PERCENTILE))
    expected = np.clip((paper - g) / max(paper - black, MIN_CONTRAST), 0.0, 1.0)
    levels, got_paper = darkness_levels(grey_histogram(grey))
    dark = levels[grey]
    assert got_paper == paper
    np.testing.assert_array_equal(dark, expected)
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

