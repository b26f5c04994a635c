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


# --- Teaching figures of the model page: what the network learned and what it sees -------------------------------

#: Feature maps shown per layer (the first channels; a layer has 16 to 64).
MAP_CHANNELS = 6
#: Augmented versions shown per training digit.
AUGMENTED_PER_DIGIT = 6


def first_conv(model):
    """The first ``Conv2D`` layer of ``model`` (the one that looks at the pixels)."""
    import keras

    for layer in model.layers:
        if isinstance(layer, keras.layers.Conv2D):
            return layer
    raise ValueError("the model has no Conv2D layer")


def first_layer_filters(model) -> tuple[str, np.ndarray]:
    """Name and weights of the first convolution, as ``(filters, k, k)`` for a one-channel input."""
    layer = first_conv(model)
    kernel = np.asarray(layer.get_weights()[0])  # (k, k, channels in, filters)
    return layer.name, np.moveaxis(kernel.mean(axis=2), -1, 0)


def filters_png(model, path: Path) -> dict:
    """The learned first-layer filters as small images (red: ink there raises the response, blue: lowers it).
    Returns ``{layer, n_filters, size}``."""
    name, weights = first_layer_filters(model)
    n, k = len(weights), weights.shape[-1]
    cols = min(8, n)
    rows = int(np.ceil(n / cols))
    fig, axes = plt.subplots(rows, cols, figsize=(1.15 * cols, 1.2 * rows + 0.9), squeeze=False)
    limit = float(np.abs(weights).max()) or 1.0
    for i, ax in enumerate(axes.flat):
        ax.axis("off")
        if i < n:
            ax.imshow(weights[i], cmap="RdBu_r", vmin=-limit, vmax=limit)
            ax.set_title(f"filter {i + 1}", fontsize=7)
    fig.suptitle(f"Learned first-layer filters ({k}×{k} pixels, layer {name})\nred: ink there raises the response; "
                 "blue: lowers it", fontsize=9)
    _save(fig, path)
    return {"layer": name, "n_filters": n, "size": k}


def map_layers(model) -> list:
    """The layers whose outputs the feature-map figure shows, in order: every ReLU and pooling layer (and any
    convolution with its own activation)."""
    import keras

    shown = []
    for layer in model.layers:
        own_activation = isinstance(layer, keras.layers.Conv2D) and layer.activation is not keras.activations.linear
        if isinstance(layer, keras.layers.ReLU | keras.layers.MaxPooling2D) or own_activation:
            if len(layer.output.shape) == 4:
                shown.append(layer)
    return shown


def feature_maps(model, digit: np.ndarray) -> list[tuple[str, bool, np.ndarray]]:
    """``[(layer name, is pooling, maps (H, W, C))]`` of one 28x28 digit (0-255, white on black) through the
    layers of :func:`map_layers`."""
    import keras

    layers = map_layers(model)
    probe = keras.Model(model.inputs, [layer.output for layer in layers])
    outputs = probe.predict(np.asarray(digit, np.float32).reshape(1, 28, 28, 1), verbose=0)
    outputs = outputs if isinstance(outputs, list | tuple) else [outputs]
    return [(layer.name, isinstance(layer, keras.layers.MaxPooling2D), np.asarray(out)[0])
            for layer, out in zip(layers, outputs, strict=True)]


def feature_maps_png(model, digit: np.ndarray, caption: str, path: Path, channels: int = MAP_CHANNELS) -> list[dict]:
    """The digit, then one row per layer of :func:`feature_maps` with its first ``channels`` maps (bright: the
    filter found its pattern there); pooling rows say how much they compress. Returns ``[{name, shape,
    pooling}]``, one per row."""
    maps = feature_maps(model, digit)
    fig, axes = plt.subplots(len(maps) + 1, channels, figsize=(1.25 * channels + 1.6, 1.25 * (len(maps) + 1) + 0.8),
                             squeeze=False)
    for ax in axes.flat:
        ax.set_xticks([])
        ax.set_yticks([])
        for side in ax.spines.values():
            side.set_visible(False)
    axes[0, 0].imshow(digit, cmap="gray", vmin=0, vmax=255)
    axes[0, 0].set_ylabel("input\n28×28", fontsize=7, rotation=0, ha="right", va="center")
    axes[0, 1].text(0, 0.5, caption, fontsize=7, va="center", transform=axes[0, 1].transAxes)
    rows, previous = [], (28, 28)
    for r, (name, pooling, out) in enumerate(maps, start=1):
        h, w, c = out.shape
        label = f"{name}\n{h}×{w}×{c}"
        if pooling:
            ratio = previous[0] * previous[1] / max(h * w, 1)
            label += f"\npooling {previous[0]}→{h}:\n{ratio:.3g}× fewer values"
        axes[r, 0].set_ylabel(label, fontsize=6.5, rotation=0, ha="right", va="center")
        for j in range(min(channels, c)):
            axes[r, j].imshow(out[:, :, j], cmap="magma")
            if r == 1:
                axes[r, j].set_title(f"filter {j + 1}", fontsize=7)
        rows.append({"name": name, "shape": (h, w, c), "pooling": pooling})
        previous = (h, w)
    fig.suptitle("Feature maps of one digit read from a sheet: each map shows where its filter finds its pattern "
                 "(bright = strong)\nearly layers respond to strokes and edges, deeper ones to corners, loops and "
                 "stroke combinations", fontsize=8)
    _save(fig, path)
    return rows


def augmented_examples(digits: np.ndarray, per_digit: int = AUGMENTED_PER_DIGIT, seed: int = 0) -> np.ndarray:
    """``per_digit`` random training-time versions of each 28x28 digit, as ``(n, per_digit, 28, 28)`` (the
    augmentation layer of :mod:`pipeline.model.augment`, run as in training)."""
    from pipeline.model.augment import PenScanAugment

    digits = np.asarray(digits, np.float32)
    batch = np.repeat(digits[:, None], per_digit, axis=1).reshape(-1, 28, 28, 1)
    out = np.asarray(PenScanAugment(seed=seed)(batch, training=True))
    return out.reshape(len(digits), per_digit, 28, 28)


def augmented_png(digits: np.ndarray, labels: np.ndarray, path: Path, per_digit: int = AUGMENTED_PER_DIGIT,
                  seed: int = 0) -> np.ndarray:
    """Each training digit beside ``per_digit`` augmented versions of it; returns those versions."""
    versions = augmented_examples(digits, per_digit, seed)
    fig, axes = plt.subplots(len(digits), per_digit + 1, figsize=(1.05 * (per_digit + 1), 1.1 * len(digits) + 0.8),
                             squeeze=False)
    for i, (digit, label) in enumerate(zip(digits, labels, strict=True)):
        for j, image in enumerate([digit, *versions[i]]):
            ax = axes[i, j]
            ax.imshow(image, cmap="gray", vmin=0, vmax=255)
            ax.set_xticks([])
            ax.set_yticks([])
            if i == 0:
                ax.set_title("original" if j == 0 else f"augmented {j}", fontsize=7)
        axes[i, 0].set_ylabel(f"a {int(label)}", fontsize=8, rotation=0, ha="right", va="center")
    fig.suptitle("Augmentation: every batch shows each training digit rotated, slanted, zoomed, shifted,\n"
                 "thickened or thinned, blurred and noisy, so the network cannot memorise the pixels", fontsize=8)
    _save(fig, path)
    return versions
