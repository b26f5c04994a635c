import numpy as np
import pytest

from pipeline.synth.pen import ink_alpha, style_digit


@pytest.fixture(scope="module")
def seven(mnist):
    return mnist.x_test[int(np.flatnonzero(mnist.y_test == 7)[0])]


def ink(img) -> int:
    return int((img > 127).sum())


def test_keeps_the_mnist_format(seven):
    out = style_digit(seven, np.random.default_rng(0))
    assert out.shape == (28, 28) and out.dtype == np.uint8
    assert out[0].max() < 128 and ink(out) > 30  # still a centred white digit on black


def test_size_sets_the_output_side(seven):
    assert style_digit(seven, np.random.default_rng(0), size=80).shape == (80, 80)


def test_no_jitter_gives_exactly_the_style(seven):
    a = style_digit(seven, np.random.default_rng(1), jitter=0, slant_deg=10)
    b = style_digit(seven, np.random.default_rng(2), jitter=0, slant_deg=10)
    assert np.array_equal(a, b)


def test_stroke_scale_thickens_and_thins(seven):
    rng = np.random.default_rng
    thin, base, felt = (ink(style_digit(seven, rng(0), jitter=0, stroke_scale=s)) for s in (0.5, 1.0, 2.0))
    assert thin < base < felt and felt > 1.5 * base


def test_positive_slant_leans_the_top_right(seven):
    def lean(img):
        ys, xs = np.nonzero(img > 127)
        top = ys < np.median(ys)
        return xs[top].mean() - xs[~top].mean()
    rng = np.random.default_rng
    assert lean(style_digit(seven, rng(0), jitter=0, slant_deg=20)) > lean(style_digit(seven, rng(0), jitter=0)) + 1


def test_bad_input_is_rejected(seven):
    with pytest.raises(ValueError, match="unknown pen style"):
        style_digit(seven, np.random.default_rng(0), thickness=2)
    with pytest.raises(ValueError, match="28x28"):
        style_digit(np.zeros((32, 32), np.uint8), np.random.default_rng(0))


def test_ink_alpha_is_opacity_scaled_by_pressure(seven):
    a = ink_alpha(seven, 0.5, np.random.default_rng(0))
    assert a.dtype == np.float32 and 0 <= a.min() and a.max() <= 0.5
    assert a[seven == 0].max() == 0 and a[seven == 255].min() > 0.5 * 0.5 * 0.8
