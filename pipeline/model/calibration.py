"""Calibration: temperature scaling, expected calibration error, and the reject threshold.

Pure NumPy/SciPy/scikit-learn on logits and labels, no Keras, so it is tested on toy arrays.

* Temperature scaling (Guo et al. 2017) divides the logits by one scalar ``T`` fitted on held-out data by
  minimising the negative log-likelihood; it keeps the arg-max (accuracy) and fixes over/under-confidence.
* ECE bins the top-class confidence into equal-width bins exactly as :func:`sklearn.calibration.calibration_curve`
  does (``strategy="uniform"``) and averages ``|accuracy - confidence|`` weighted by the bin's share of samples.
* The reject threshold is the lowest calibrated confidence at which the reads accepted (confidence >= threshold)
  still reach a target accuracy on held-out data: below it a read goes to "needs review".
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.optimize import minimize_scalar
from scipy.special import log_softmax, softmax
from sklearn.calibration import calibration_curve

#: Search range of the temperature (log-spaced bounds): a CNN's useful temperatures lie well inside it.
TEMPERATURE_BOUNDS = (0.05, 20.0)
#: Number of thresholds on the accuracy/coverage curve.
CURVE_POINTS = 200


@dataclass(frozen=True)
class CoveragePoint:
    """Accuracy of the reads kept when everything below ``threshold`` is sent to review."""

    threshold: float
    coverage: float
    accuracy: float


def calibrated_probs(logits: np.ndarray, temperature: float = 1.0) -> np.ndarray:
    """Softmax of ``logits / temperature`` (rows sum to 1)."""
    return softmax(np.asarray(logits, dtype=np.float64) / temperature, axis=1)


def nll(logits: np.ndarray, labels: np.ndarray, temperature: float = 1.0) -> float:
    """Mean negative log-likelihood of ``labels`` under ``softmax(logits / temperature)``."""
    logp = log_softmax(np.asarray(logits, dtype=np.float64) / temperature, axis=1)
    return float(-logp[np.arange(len(labels)), labels].mean())


def fit_temperature(logits: np.ndarray, labels: np.ndarray) -> float:
    """The temperature that minimises the held-out NLL (bounded 1-D search in log space)."""
    if len(labels) == 0:
        raise ValueError("cannot fit a temperature on zero samples")
    lo, hi = np.log(TEMPERATURE_BOUNDS)
    result = minimize_scalar(lambda log_t: nll(logits, labels, float(np.exp(log_t))), bounds=(lo, hi),
                             method="bounded")
    return float(np.exp(result.x))


def _bin_ids(confidence: np.ndarray, n_bins: int) -> np.ndarray:
    """Bin index of each confidence, with sklearn's uniform edges (``searchsorted`` on the inner edges)."""
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    return np.searchsorted(edges[1:-1], confidence)


def expected_calibration_error(probs: np.ndarray, labels: np.ndarray, n_bins: int = 15) -> float:
    """ECE of the top-class confidence: ``sum_b n_b/N * |acc_b - conf_b|`` over non-empty bins."""
    confidence = probs.max(axis=1)
    correct = (probs.argmax(axis=1) == labels).astype(np.float64)
    ids = _bin_ids(confidence, n_bins)
    counts = np.bincount(ids, minlength=n_bins)
    acc_sum = np.bincount(ids, weights=correct, minlength=n_bins)
    conf_sum = np.bincount(ids, weights=confidence, minlength=n_bins)
    nonempty = counts > 0
    gaps = np.abs(acc_sum[nonempty] - conf_sum[nonempty])
    return float(gaps.sum() / max(len(labels), 1))


def reliability_curve(probs: np.ndarray, labels: np.ndarray, n_bins: int = 15) -> tuple[np.ndarray, np.ndarray]:
    """``(mean confidence, accuracy)`` per non-empty bin, from :func:`sklearn.calibration.calibration_curve`."""
    correct = (probs.argmax(axis=1) == labels).astype(int)
    acc, conf = calibration_curve(correct, probs.max(axis=1), n_bins=n_bins, strategy="uniform")
    return conf, acc


def coverage_curve(confidence: np.ndarray, correct: np.ndarray, n_points: int = CURVE_POINTS) -> list[CoveragePoint]:
    """Coverage and accuracy of the accepted reads for thresholds at the confidence quantiles."""
    thresholds = np.unique(np.quantile(confidence, np.linspace(0.0, 1.0, n_points)))
    return [point_at(confidence, correct, float(t)) for t in thresholds]


def point_at(confidence: np.ndarray, correct: np.ndarray, threshold: float) -> CoveragePoint:
    """The coverage/accuracy point of one threshold (accuracy is 1.0 when nothing is kept)."""
    kept = confidence >= threshold
    accuracy = float(correct[kept].mean()) if kept.any() else 1.0
    return CoveragePoint(threshold, float(kept.mean()) if len(kept) else 0.0, accuracy)


def choose_threshold(confidence: np.ndarray, correct: np.ndarray, target_accuracy: float) -> float:
    """Lowest threshold whose accepted reads reach ``target_accuracy``: the most coverage at that accuracy.

    Reads are sorted by confidence; the running accuracy of the top-k is computed for every k and the largest k
    that reaches the target sets the threshold (ties at the cut-off confidence are kept together).
    """
    order = np.argsort(-confidence, kind="stable")
    conf_sorted = confidence[order]
    running = np.cumsum(correct[order]) / np.arange(1, len(order) + 1)
    # Only cut between distinct confidences: a threshold keeps every read at or above it.
    last_of_tie = np.r_[conf_sorted[1:] != conf_sorted[:-1], True]
    ok = np.flatnonzero((running >= target_accuracy) & last_of_tie)
    if len(ok) == 0:
        return float(np.nextafter(conf_sorted[0], np.inf)) if len(conf_sorted) else 1.0
    return float(conf_sorted[ok[-1]])

