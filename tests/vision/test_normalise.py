"""MNIST-style normalisation: tight box scaled to 20 px, centre of mass at the centre, MNIST grey levels."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from pipeline.vision.normalise import MNIST_CENTRE, centre_of_mass, tight_bbox, to_mnist


def big_on_canvas(digit: np.ndarray, factor: int = 4, at=(37, 51)) -> np.ndarray:
    """An MNIST digit enlarged ``factor`` times (as a scan shows it) somewhere on a larger canvas."""
    side = 28 * factor
    canvas = np.zeros((side + 90, side + 120), np.float32)
    big = cv2.resize(digit, (side, side), interpolation=cv2.INTER_CUBIC).astype(np.float32)
    canvas[at[0]:at[0] + side, at[1]:at[1] + side] = np.clip(big, 0, 255) / 255 * 0.7  # grey ink, not MNIST's
    return canvas


def test_renormalising_an_enlarged_mnist_digit_gives_it_back(mnist):
    com_errors, box_errors, correlations = [], [], []
    for digit in mnist.x_test[:200]:
        out = to_mnist(big_on_canvas(digit))
        # MNIST itself centres by whole pixels, so both centres are within half a pixel of the middle
        assert np.abs(np.subtract(centre_of_mass(out), MNIST_CENTRE)).max() <= 0.5
        com_errors.append(np.abs(np.subtract(centre_of_mass(out), centre_of_mass(digit))).max())
        box_errors.append(np.abs(np.subtract(tight_bbox(out), tight_bbox(digit))).max())
        correlations.append(np.corrcoef(out.ravel(), digit.ravel())[0, 1])
    assert max(com_errors) < 1.0 and np.mean(com_errors) < 0.4
    assert np.mean(np.array(box_errors) <= 1) > 0.95
    assert np.median(correlations) > 0.9


def test_the_digit_is_centred_and_its_longer_side_is_20_pixels(mnist):
    out = to_mnist(big_on_canvas(mnist.x_test[0]))
    assert out.shape == (28, 28) and out.dtype == np.uint8
    x0, y0, x1, y1 = tight_bbox(out > 0.3 * out.max())
    assert max(x1 - x0, y1 - y0) == 20
    assert centre_of_mass(out) == pytest.approx((MNIST_CENTRE, MNIST_CENTRE), abs=0.5)


def test_grey_levels_match_mnist(mnist):
    outs = np.stack([to_mnist(big_on_canvas(d)) for d in mnist.x_test[:100]]).astype(float)
    ref = mnist.x_test[:100].astype(float)
    assert outs.max() == 255 and outs[:, 0, :].max() == 0
    for level in (128, 250):  # share of the ink that is bright, as in MNIST
        assert (outs > level).sum() / (outs > 0).sum() == pytest.approx((ref > level).sum() / (ref > 0).sum(),
                                                                         abs=0.08)


def test_aspect_ratio_is_kept():
    bar = np.zeros((100, 100), np.float32)
    bar[10:90, 45:55] = 1.0  # a "1": 80 tall, 10 wide
    out = to_mnist(bar)
    x0, y0, x1, y1 = tight_bbox(out)
    assert y1 - y0 == 20 and 2 <= x1 - x0 <= 4


def test_no_ink_gives_a_black_digit():
    assert not to_mnist(np.zeros((40, 30), np.float32)).any()


def squeezed(digit: np.ndarray, width: float, shear: float) -> np.ndarray:
    """An MNIST digit as a writer who squeezes (``width`` < 1) and slants (``shear``) would write it, enlarged."""
    from pipeline.vision.normalise import WriterStyle, restyle_writer

    big = cv2.resize(digit, (112, 112), interpolation=cv2.INTER_CUBIC).astype(np.float32) / 255
    return restyle_writer(np.clip(big, 0, None), WriterStyle(width_factor=width, shear=shear))


def test_the_mnist_style_constants_are_what_mnist_train_measures(mnist):
    from pipeline.vision.normalise import MNIST_ASPECT, MNIST_SLANT, mnist_style_reference

    aspect, slant = mnist_style_reference(mnist.x_train)
    assert aspect == pytest.approx(MNIST_ASPECT, abs=0.005)
    assert slant == pytest.approx(MNIST_SLANT, abs=0.005)


def test_a_squeezed_slanted_writer_is_measured_and_undone(mnist):
    from pipeline.vision.normalise import (
        MNIST_ASPECT,
        MNIST_SLANT,
        binary_shape,
        estimate_writer_style,
        mnist_shape,
        style_medians,
    )

    inks = [squeezed(d, width=0.75, shear=0.25) for d in mnist.x_test[:60]]
    style = estimate_writer_style(map(binary_shape, inks), min_digits=6, max_width_factor=1.5, max_shear=0.4)
    assert style.width_factor == pytest.approx(1 / 0.75, rel=0.1)
    assert style.shear < -0.1  # the writer leans further right than MNIST: sheared back the other way
    before = style_medians(mnist_shape(to_mnist(i)) for i in inks)
    after = style_medians(mnist_shape(to_mnist(i, style)) for i in inks)
    assert abs(after.aspect - MNIST_ASPECT) < abs(before.aspect - MNIST_ASPECT) / 3
    assert abs(after.slant - MNIST_SLANT) < abs(before.slant - MNIST_SLANT) / 3


def test_mnist_digits_themselves_need_no_writer_correction(mnist):
    from pipeline.vision.normalise import estimate_writer_style, mnist_shape

    shapes = [mnist_shape(d) for d in mnist.x_train[:3000]]
    style = estimate_writer_style(shapes, min_digits=6, max_width_factor=1.5, max_shear=0.4)
    assert style.width_factor == pytest.approx(1.0, abs=0.06) and style.shear == pytest.approx(0.0, abs=0.05)


def test_too_few_digits_or_wild_shapes_leave_the_style_bounded(mnist):
    from pipeline.vision.normalise import IDENTITY_STYLE, binary_shape, estimate_writer_style

    inks = [binary_shape(squeezed(d, width=0.3, shear=-0.9)) for d in mnist.x_test[:12]]
    assert estimate_writer_style(inks[:5], min_digits=6, max_width_factor=1.5, max_shear=0.4) == IDENTITY_STYLE
    wild = estimate_writer_style(inks, min_digits=6, max_width_factor=1.5, max_shear=0.4)
    assert 1 / 1.5 <= wild.width_factor <= 1.5 and abs(wild.shear) <= 0.4


def test_the_fast_percentile_is_numpys():
    from pipeline.vision.normalise import percentile

    values = np.random.default_rng(0).random(301).astype(np.float32)
    for q in (0, 12.5, 64, 100):
        assert percentile(values, q) == pytest.approx(np.percentile(values, q), rel=1e-6)
    assert percentile(np.array([3.0]), 64) == 3.0


def test_the_identity_style_changes_nothing(mnist):
    from pipeline.vision.normalise import WriterStyle

    ink = big_on_canvas(mnist.x_test[3])
    assert np.array_equal(to_mnist(ink), to_mnist(ink, WriterStyle()))


def test_a_few_far_darker_pixels_do_not_make_the_crop_a_blob(mnist):
    """A faint pencil digit touching a box line keeps a small remnant of the line, three times darker: the crop is
    still the digit (its outline is cut relative to the strokes' own darkness), not the remnant."""
    faint = big_on_canvas(mnist.x_test[0]) / 0.7 * 0.25
    with_remnant = faint.copy()
    x0, y0, _, _ = tight_bbox(faint > 0.1)
    with_remnant[y0:y0 + 6, x0:x0 + 9] = 0.95  # 54 px of line remnant in the top-left corner of the digit's box
    plain, out = to_mnist(faint), to_mnist(with_remnant)
    assert np.corrcoef(plain.ravel(), out.ravel())[0, 1] > 0.8
    assert (out > 128).mean() < 0.3  # a blob fills most of the 28 x 28 field
