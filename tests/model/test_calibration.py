"""Temperature scaling, ECE and the reject threshold on toy arrays (no Keras)."""

from __future__ import annotations

import numpy as np
import pytest

from pipeline.model import calibration as cal


@pytest.fixture
def overconfident():
    """Logits of a 70%-accurate 10-class toy classifier, scaled up 6x so its softmax is far too sure."""
    rng = np.random.default_rng(0)
    n = 4000
    labels = rng.integers(0, 10, n)
    pred = np.where(rng.random(n) < 0.7, labels, rng.integers(0, 10, n))
    logits = rng.normal(0, 1, (n, 10))
    logits[np.arange(n), pred] += 2.0
    return 6.0 * logits, labels


def test_temperature_lowers_ece_and_nll_on_overconfident_toy(overconfident):
    logits, labels = overconfident
    fit, held = slice(0, 2000), slice(2000, None)
    t = cal.fit_temperature(logits[fit], labels[fit])
    assert t > 2.0  # the 6x over-scaling must be undone, mostly
    before = cal.expected_calibration_error(cal.calibrated_probs(logits[held]), labels[held])
    after = cal.expected_calibration_error(cal.calibrated_probs(logits[held], t), labels[held])
    assert after < before / 3
    assert cal.nll(logits[held], labels[held], t) < cal.nll(logits[held], labels[held])


def test_temperature_keeps_argmax(overconfident):
    logits, labels = overconfident
    t = cal.fit_temperature(logits, labels)
    assert (cal.calibrated_probs(logits, t).argmax(1) == logits.argmax(1)).all()


def test_ece_of_perfectly_calibrated_bins_is_zero_and_of_wrong_sure_reads_is_one():
    probs = np.full((10, 10), 0.0)
    probs[:, 0] = 1.0
    assert cal.expected_calibration_error(probs, np.zeros(10, int)) == pytest.approx(0.0)
    assert cal.expected_calibration_error(probs, np.ones(10, int)) == pytest.approx(1.0)


def test_ece_matches_hand_computation():
    # two bins: conf 0.95 (2 right of 2) and conf 0.55 (1 right of 2): |1-.95|*2/4 + |.5-.55|*2/4 = 0.05
    probs = np.zeros((4, 10))
    probs[:2, 3], probs[:2, 4] = 0.95, 0.05
    probs[2:, 3], probs[2:, 4] = 0.55, 0.45
    labels = np.array([3, 3, 3, 4])
    assert cal.expected_calibration_error(probs, labels, n_bins=10) == pytest.approx(0.05)


def test_choose_threshold_keeps_most_reads_at_target_accuracy():
    confidence = np.array([0.99, 0.98, 0.97, 0.90, 0.80, 0.60])
    correct = np.array([1, 1, 1, 1, 0, 1], bool)
    assert cal.choose_threshold(confidence, correct, 1.0) == pytest.approx(0.90)
    assert cal.choose_threshold(confidence, correct, 0.8) == pytest.approx(0.60)
    point = cal.point_at(confidence, correct, 0.90)
    assert (point.coverage, point.accuracy) == (pytest.approx(4 / 6), 1.0)


def test_choose_threshold_rejects_everything_when_target_is_unreachable():
    confidence = np.array([0.9, 0.8])
    correct = np.array([False, True])
    t = cal.choose_threshold(confidence, correct, 1.0)
    assert t > 0.9 and cal.point_at(confidence, correct, t).coverage == 0.0


def test_coverage_curve_is_monotone():
    rng = np.random.default_rng(1)
    confidence = rng.random(500)
    curve = cal.coverage_curve(confidence, rng.random(500) < confidence)
    coverages = [p.coverage for p in curve]
    assert coverages == sorted(coverages, reverse=True) and coverages[0] == 1.0
