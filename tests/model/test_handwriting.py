"""Handwriting-style augmentation: each transform's shape, dtype, effect, label safety and determinism (NumPy only)."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from pipeline.errors import ConfigError
from pipeline.model import handwriting as hw
from pipeline.model.settings import HandwritingSettings, HeldOutStyleSettings, RecogniseSettings, TrainSettings

#: Every change switched on for every digit, so a test sees its effect on each image.
ALWAYS = HandwritingSettings(p_elastic=1.0, p_slant=1.0, p_narrow=1.0, p_thick=0.5, p_thin=1.0, p_faint=1.0,
                             p_gap=1.0, p_flag_one=1.0, p_foot=1.0, p_crossed_seven=1.0, p_closed_four=1.0)


@pytest.fixture(scope="module")
def batch(mnist):
    """Two of every MNIST train digit as float32, with labels."""
    rows = np.concatenate([np.flatnonzero(mnist.y_train == d)[:2] for d in range(10)])
    return mnist.x_train[rows].astype(np.float32), mnist.y_train[rows]


def ink_mass(x: np.ndarray) -> np.ndarray:
    """Total brightness per image."""
    return x.reshape(len(x), -1).sum(axis=1)


def ink_width(x: np.ndarray) -> np.ndarray:
    """Columns holding ink per image."""
    return (x > hw.INK_LEVEL).any(axis=1).sum(axis=1)


def test_batch_keeps_shape_dtype_range_and_labels(batch):
    x, y = batch
    labels = y.copy()
    out = hw.handwriting_batch(x, y, np.random.default_rng(0), ALWAYS, 1.0)
    assert out.shape == x.shape and out.dtype == np.float32
    assert out.min() >= 0.0 and out.max() <= hw.MAX_PIXEL
    assert (y == labels).all() and not np.allclose(out, x)


def test_batch_is_deterministic_for_a_seed_and_differs_across_seeds(batch):
    x, y = batch
    settings = HandwritingSettings()
    first = hw.handwriting_batch(x, y, np.random.default_rng(5), settings, 0.5)
    again = hw.handwriting_batch(x, y, np.random.default_rng(5), settings, 0.5)
    other = hw.handwriting_batch(x, y, np.random.default_rng(6), settings, 0.5)
    assert np.array_equal(first, again) and not np.array_equal(first, other)


def test_fraction_zero_leaves_the_batch_unchanged(batch):
    x, y = batch
    assert np.array_equal(hw.handwriting_batch(x, y, np.random.default_rng(0), ALWAYS, 0.0), x)


def test_warp_identity_changes_nothing_and_shear_leans_the_top_right(batch):
    x, _ = batch
    n = len(x)
    ones, zeros = np.ones(n, np.float32), np.zeros(n, np.float32)
    assert np.allclose(hw.warp(x, None, zeros, ones), x, atol=1e-3)
    bar = np.zeros((1, 28, 28), np.float32)
    bar[0, 4:24, 13:15] = 255.0  # a vertical stroke
    leaned = hw.warp(bar, None, np.array([0.4], np.float32), np.ones(1, np.float32))
    top, bottom = leaned[0, 5], leaned[0, 22]
    assert np.argmax(top) > np.argmax(bottom) + 4


def test_narrow_squeeze_makes_digits_narrower(batch):
    x, _ = batch
    n = len(x)
    narrow = hw.warp(x, None, np.zeros(n, np.float32), np.full(n, 0.6, np.float32))
    wide = ink_width(x) >= 8
    assert (ink_width(narrow)[wide] < ink_width(x)[wide]).all()


def test_elastic_field_has_the_asked_amplitude_and_moves_ink(batch):
    x, _ = batch
    n = len(x)
    amplitude = np.full(n, 2.0, np.float32)
    field = hw.elastic_field(np.random.default_rng(0), n, amplitude, 4.0)
    assert field.shape == (2, n, 28, 28)
    assert np.allclose(np.abs(field).reshape(2, n, -1).max(axis=(0, 2)), 2.0, rtol=1e-4)
    moved = hw.warp(x, field, np.zeros(n, np.float32), np.ones(n, np.float32))
    assert (np.abs(moved - x).reshape(n, -1).max(axis=1) > 50).all()


def test_stroke_width_thickens_and_thins_only_the_chosen(batch):
    x, _ = batch
    n = len(x)
    thick = np.arange(n) % 3 == 0
    thin = np.arange(n) % 3 == 1
    out = hw.stroke_width(x, thick, thin)
    assert (ink_mass(out[thick]) > ink_mass(x[thick])).all()
    assert (ink_mass(out[thin]) < ink_mass(x[thin])).all()
    untouched = ~thick & ~thin
    assert np.array_equal(out[untouched], x[untouched])


def test_pen_pressure_lightens_and_leaves_gaps(batch):
    x, _ = batch
    faint = hw.pen_pressure(x, np.random.default_rng(0), replace(ALWAYS, p_gap=0.0))
    assert (faint.max(axis=(1, 2)) < x.max(axis=(1, 2))).all() and (faint <= x + 1e-3).all()
    gaps = hw.pen_pressure(x, np.random.default_rng(0), replace(ALWAYS, p_faint=0.0))
    removed = (x > hw.INK_LEVEL) & (gaps < 1.0)
    assert removed.reshape(len(x), -1).any(axis=1).all() and (gaps <= x + 1e-3).all()


@pytest.mark.parametrize(("transform", "label"), [(hw.flag_ones, hw.ONE), (hw.cross_sevens, hw.SEVEN),
                                                  (hw.close_fours, hw.FOUR)])
def test_style_variants_add_ink_only_to_their_own_digit(batch, transform, label):
    x, y = batch
    out = transform(x, y, np.random.default_rng(0), ALWAYS)
    mine = y == label
    assert out.shape == x.shape and out.dtype == np.float32
    assert (ink_mass(out[mine]) > ink_mass(x[mine]) + 255).all()
    assert np.array_equal(out[~mine], x[~mine])
    assert (out >= x).all()  # strokes are only added


def test_flag_of_a_one_points_down_to_the_left():
    one = np.zeros((1, 28, 28), np.float32)
    one[0, 4:24, 14:16] = 255.0
    flagged = hw.flag_ones(one, np.array([hw.ONE]), np.random.default_rng(0),
                           replace(ALWAYS, p_foot=0.0, flag_angle_deg=(40.0, 40.0), flag_length=(6.0, 6.0)))
    rows, cols = np.nonzero(flagged[0] - one[0] > 100)
    leftmost = np.argmin(cols)
    assert cols.min() <= 10 and rows[leftmost] >= 7 and rows.max() <= 10 and rows.min() >= 2


def test_crossbar_of_a_seven_crosses_the_stem_half_way_down():
    seven = np.zeros((1, 28, 28), np.float32)
    seven[0, 4:6, 8:20] = 255.0
    seven[0, 4:24, 18:20] = 255.0
    crossed = hw.cross_sevens(seven, np.array([hw.SEVEN]), np.random.default_rng(0), ALWAYS)
    rows, cols = np.nonzero(crossed[0] - seven[0] > 100)
    assert 10 <= rows.mean() <= 18 and cols.min() < 18 and cols.max() > 19


def test_closing_a_four_joins_the_tops_of_arm_and_stem():
    four = np.zeros((1, 28, 28), np.float32)
    four[0, 4:16, 8:10] = 255.0  # left arm
    four[0, 14:16, 8:22] = 255.0  # bar
    four[0, 4:24, 17:19] = 255.0  # stem
    closed = hw.close_fours(four, np.array([hw.FOUR]), np.random.default_rng(0), ALWAYS)
    rows, cols = np.nonzero(closed[0] - four[0] > 100)
    assert rows.max() <= 6 and cols.min() <= 10 and cols.max() >= 16


def test_held_out_style_is_thick_uint8_and_seeded(batch):
    x, _ = batch
    x8 = x.astype(np.uint8)
    styled = hw.held_out_style(x8, 3)
    assert styled.shape == x8.shape and styled.dtype == np.uint8
    assert (ink_mass(styled.astype(np.float32)) > 1.5 * ink_mass(x)).all()
    assert np.array_equal(styled, hw.held_out_style(x8, 3)) and not np.array_equal(styled, hw.held_out_style(x8, 4))


def test_held_out_family_lies_outside_the_training_ranges():
    train, held = HandwritingSettings(), HeldOutStyleSettings()
    assert held.elastic_px[0] > train.elastic_px[1]
    assert held.thick_radius[0] >= 2.0  # a disc of radius 2 widens strokes by 4 px; training by at most 2


def test_settings_refuse_values_out_of_range():
    with pytest.raises(ConfigError, match="p_gap"):
        HandwritingSettings(p_gap=1.5)
    with pytest.raises(ConfigError, match="narrow"):
        HandwritingSettings(narrow=(0.9, 0.5))
    with pytest.raises(ConfigError, match="handwriting_fraction"):
        TrainSettings(handwriting_fraction=-0.1)
    with pytest.raises(ConfigError, match="min_field_confidence"):
        RecogniseSettings(min_field_confidence=1.5)


def test_wall_cut_erases_one_side_of_each_chosen_digit_only(batch):
    x, _ = batch
    cut = hw.wall_cut(x, np.random.default_rng(3), replace(ALWAYS, p_wall_cut=1.0, p_wall_cut_rows=0.0,
                                                           wall_cut=(0.25, 0.3)))
    assert cut.shape == x.shape and cut.dtype == np.float32
    assert np.all(cut <= x) and np.all(ink_mass(cut) < ink_mass(x))
    left, right = hw._ink_extent(x > hw.INK_LEVEL, 1)
    new_left, new_right = hw._ink_extent(cut > hw.INK_LEVEL, 1)
    narrower = (new_left > left) | (new_right < right)
    assert narrower.all()  # the ink now stops short of one of its old sides
    untouched = hw.wall_cut(x, np.random.default_rng(3), replace(ALWAYS, p_wall_cut=0.0))
    np.testing.assert_array_equal(untouched, x)


def test_smear_swells_strokes_and_keeps_range(batch):
    x, _ = batch
    out = hw.smear(x, np.random.default_rng(4), replace(ALWAYS, p_smear=1.0))
    assert out.max() <= hw.MAX_PIXEL and out.min() >= 0
    inked = lambda a: (a > hw.INK_LEVEL).reshape(len(a), -1).sum(axis=1)  # noqa: E731
    assert np.all(inked(out) > inked(x))
