"""Figures for ``reports/model/``: confusion matrix, reliability diagram, accuracy/coverage curve.

Matplotlib with the non-interactive Agg backend; each function writes one PNG and closes its figure.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from sklearn.metrics import ConfusionMatrixDisplay  # noqa: E402

from pipeline.model.calibration import CoveragePoint, expected_calibration_error, reliability_curve  # noqa: E402

DPI = 120


def _save(fig, path: Path) -> None:
    fig.tight_layout()
    fig.savefig(path, dpi=DPI)
    plt.close(fig)


def confusion_matrix_png(labels: np.ndarray, pred: np.ndarray, path: Path) -> None:
    """Counts of true vs predicted digit on the test set."""
    fig, ax = plt.subplots(figsize=(6.5, 5.5))
    ConfusionMatrixDisplay.from_predictions(labels, pred, labels=list(range(10)), ax=ax, colorbar=False,
                                            cmap="Blues", values_format="d")
    errors = int((labels != pred).sum())
    ax.set_title(f"MNIST test: {errors} errors of {len(labels)}")
    _save(fig, path)


def calibration_png(raw: np.ndarray, calibrated: np.ndarray, labels: np.ndarray, n_bins: int, path: Path) -> None:
    """Reliability diagram before and after temperature scaling, with the ECE of each."""
    fig, ax = plt.subplots(figsize=(5.5, 5))
    ax.plot([0, 1], [0, 1], color="grey", linestyle=":", label="perfect")
    for name, probs in (("before", raw), ("after", calibrated)):
        conf, acc = reliability_curve(probs, labels, n_bins)
        ece = expected_calibration_error(probs, labels, n_bins)
        ax.plot(conf, acc, marker="o", label=f"{name} (ECE {100 * ece:.2f}%)")
    ax.set(xlabel="confidence (top class)", ylabel="accuracy", title="Calibration on MNIST test")
    ax.legend()
    _save(fig, path)


def coverage_png(curve: list[CoveragePoint], chosen: CoveragePoint, path: Path) -> None:
    """Accuracy of the accepted reads against the share accepted, with the chosen reject threshold marked."""
    fig, ax = plt.subplots(figsize=(5.5, 4.5))
    ax.plot([p.coverage for p in curve], [100 * p.accuracy for p in curve], marker=".")
    ax.scatter([chosen.coverage], [100 * chosen.accuracy], color="red", zorder=3,
               label=f"threshold {chosen.threshold:.3f}: coverage {100 * chosen.coverage:.1f}%")
    ax.set(xlabel="coverage (share of digits accepted)", ylabel="accuracy of accepted digits (%)",
           title="Accuracy vs coverage (MNIST test)")
    ax.legend()
    _save(fig, path)
