"""Evaluate a classifier's logits: accuracy, calibration before/after, reject threshold, and the report files.

Shared by ``train`` (fresh model) and ``bench`` (the current model). Temperature and threshold are fitted on the
calibration logits (called ``val`` here: MNIST validation plus its held-out-style copies, see
:func:`pipeline.model.train.calibration_set`); every reported figure is measured on the test logits, which played
no part in either choice.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from pipeline.model import calibration as cal
from pipeline.model import plots
from pipeline.model.registry import write_json_atomic

METRICS_FILE = "metrics.json"
CONFUSION_PNG = "confusion_matrix.png"
CALIBRATION_PNG = "calibration_curve.png"
COVERAGE_PNG = "accuracy_coverage.png"


@dataclass(frozen=True)
class Evaluation:
    """Calibration fitted on validation data and figures measured on test data."""

    temperature: float
    reject_threshold: float
    metrics: dict
    test_labels: np.ndarray
    test_probs_raw: np.ndarray
    test_probs: np.ndarray
    curve: list[cal.CoveragePoint]


def evaluate_logits(val_logits: np.ndarray, val_labels: np.ndarray, test_logits: np.ndarray,
                    test_labels: np.ndarray, target_accuracy: float, n_bins: int) -> Evaluation:
    """Fit the temperature and reject threshold on validation logits, then measure everything on test logits."""
    temperature = cal.fit_temperature(val_logits, val_labels)
    val_probs = cal.calibrated_probs(val_logits, temperature)
    val_correct = val_probs.argmax(axis=1) == val_labels
    threshold = cal.choose_threshold(val_probs.max(axis=1), val_correct, target_accuracy)
    raw, probs = cal.calibrated_probs(test_logits, 1.0), cal.calibrated_probs(test_logits, temperature)
    correct = probs.argmax(axis=1) == test_labels
    at = cal.point_at(probs.max(axis=1), correct, threshold)
    metrics = {
        "test_accuracy": float(correct.mean()), "val_accuracy": float(val_correct.mean()),
        "n_val": int(len(val_labels)), "n_test": int(len(test_labels)), "temperature": temperature,
        "ece_bins": n_bins,
        "test_ece_before": cal.expected_calibration_error(raw, test_labels, n_bins),
        "test_ece_after": cal.expected_calibration_error(probs, test_labels, n_bins),
        "val_ece_before": cal.expected_calibration_error(cal.calibrated_probs(val_logits), val_labels, n_bins),
        "val_ece_after": cal.expected_calibration_error(val_probs, val_labels, n_bins),
        "test_nll_before": cal.nll(test_logits, test_labels), "test_nll_after": cal.nll(test_logits, test_labels,
                                                                                        temperature),
        "reject": {"target_accuracy": target_accuracy, "threshold": threshold, "test_coverage": at.coverage,
                   "test_accuracy_accepted": at.accuracy, "chosen_on": "calibration set"},
    }
    curve = cal.coverage_curve(probs.max(axis=1), correct)
    return Evaluation(temperature, threshold, metrics, test_labels, raw, probs, curve)


def held_out_figures(logits: np.ndarray, labels: np.ndarray, temperature: float, in_domain_temperature: float,
                     threshold: float, n_bins: int) -> dict:
    """Accuracy and calibration on digits in a style kept out of training: ECE with no temperature, with the
    fitted ``temperature``, and with ``in_domain_temperature`` (fitted on MNIST validation alone, for comparison),
    and the share kept and its accuracy at the reject ``threshold``."""
    probs = cal.calibrated_probs(logits, temperature)
    correct = probs.argmax(axis=1) == labels
    at = cal.point_at(probs.max(axis=1), correct, threshold)
    return {"n": int(len(labels)), "accuracy": float(correct.mean()) if len(labels) else float("nan"),
            "ece_before": cal.expected_calibration_error(cal.calibrated_probs(logits), labels, n_bins),
            "ece_after": cal.expected_calibration_error(probs, labels, n_bins),
            "ece_in_domain_temperature": cal.expected_calibration_error(
                cal.calibrated_probs(logits, in_domain_temperature), labels, n_bins),
            "in_domain_temperature": in_domain_temperature, "nll_after": cal.nll(logits, labels, temperature),
            "reject_coverage": at.coverage, "reject_accuracy_accepted": at.accuracy}


def write_reports(evaluation: Evaluation, out_dir: Path, extra: dict | None = None) -> Path:
    """Write ``metrics.json`` and the three figures to ``out_dir``; returns the metrics path."""
    out_dir.mkdir(parents=True, exist_ok=True)
    pred = evaluation.test_probs.argmax(axis=1)
    plots.confusion_matrix_png(evaluation.test_labels, pred, out_dir / CONFUSION_PNG)
    plots.calibration_png(evaluation.test_probs_raw, evaluation.test_probs, evaluation.test_labels,
                          evaluation.metrics["ece_bins"], out_dir / CALIBRATION_PNG)
    reject = evaluation.metrics["reject"]
    chosen = cal.CoveragePoint(reject["threshold"], reject["test_coverage"], reject["test_accuracy_accepted"])
    plots.coverage_png(evaluation.curve, chosen, out_dir / COVERAGE_PNG)
    data = {**evaluation.metrics, **(extra or {}),
            "accuracy_coverage_curve": [asdict(p) for p in evaluation.curve],
            "figures": [CONFUSION_PNG, CALIBRATION_PNG, COVERAGE_PNG]}
    path = out_dir / METRICS_FILE
    write_json_atomic(path, data)
    return path
