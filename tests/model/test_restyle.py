"""Sheet-like training copies: deterministic, MNIST-normalised, label-preserving, and only the asked fraction."""

from __future__ import annotations

import numpy as np
import pytest

from pipeline.errors import ConfigError
from pipeline.model.restyle import ScanDraw, cut_ink, restyle_fraction, scan_grey, sheet_like
from pipeline.model.settings import SheetStyleSettings
from pipeline.vision.normalise import MNIST_CENTRE, centre_of_mass

STYLE = SheetStyleSettings()


def test_sheet_like_is_deterministic_and_mnist_normalised(mnist):
    digits = mnist.x_test[:40]
    first, again, other = sheet_like(digits, 3, STYLE), sheet_like(digits, 3, STYLE), sheet_like(digits, 4, STYLE)
    assert first.shape == digits.shape and first.dtype == np.uint8
    np.testing.assert_array_equal(first, again)
    assert not np.array_equal(first, other)
    assert not np.array_equal(first, digits)
    for img in first:
        assert img.max() == 255
        cy, cx = centre_of_mass(img)
        assert abs(cy - MNIST_CENTRE) <= 1.0 and abs(cx - MNIST_CENTRE) <= 1.0


def test_restyle_fraction_replaces_only_the_asked_share(mnist):
    digits = mnist.x_test[:50]
    out = restyle_fraction(digits, 0.2, 5, STYLE)
    changed = np.flatnonzero((out != digits).any(axis=(1, 2)))
    assert len(changed) == 10
    np.testing.assert_array_equal(restyle_fraction(digits, 0.2, 5, STYLE), out)
    assert restyle_fraction(digits, 0.0, 5, STYLE) is digits
    with pytest.raises(ConfigError, match="sheet_style_fraction"):
        restyle_fraction(digits, 1.5, 5, STYLE)


def test_cut_keeps_strokes_and_drops_isolated_faint_marks():
    grey = np.full((20, 20), 255, np.uint8)
    grey[5:15, 9:11] = 40                                  # a dark stroke
    grey[2, 2] = 255 - round(255 * (STYLE.ink_threshold + STYLE.faint_ink_threshold) / 2)  # faint speck
    ink = cut_ink(grey, STYLE)
    assert ink[10, 9] > STYLE.ink_threshold and ink[2, 2] == 0
    assert ink[10, 8] == 0 and ink[0, 0] == 0


def test_scan_pads_and_darkens_with_the_ink():
    alpha = np.zeros((10, 10), np.float32)
    alpha[3:7, 3:7] = 1.0
    draw = ScanDraw(0.0, 1.0, 1.0, 28, 1.0, 0.8, 0.3, 0.0, 95)
    grey = scan_grey(alpha, draw, np.random.default_rng(0), margin=4)
    assert grey.shape == (18, 18) and grey.dtype == np.uint8
    assert grey[9, 9] < 80 and grey[0, 0] > 240


def test_trained_model_reads_sheet_like_digits(trained, mnist):
    from pipeline.model.recogniser import DigitRecogniser

    models, meta = trained
    assert meta["settings"]["sheet_style_fraction"] > 0 and meta["sheet_style"]["side_px"]
    recogniser = DigitRecogniser.load(models / meta["version"])
    assert recogniser.accuracy(sheet_like(mnist.x_test[:300], 9, STYLE), mnist.y_test[:300]) > 0.6
