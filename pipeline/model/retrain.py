"""``python -m pipeline retrain --labels labels.csv``: fine-tune on corrected crops, promote only if better.

1. Read the labelling sheet (``review`` output, labels corrected); blank labels are skipped. Hold out a
   stratified share of the labelled crops for the comparison.
2. Fine-tune a copy of the current model on batches mixing the other labelled crops with MNIST train (so it does
   not forget MNIST), with the same augmentation as training: first with the convolutional base frozen (only the
   dense head learns), then, optionally, all layers at a lower learning rate.
3. Re-fit the temperature and reject threshold on the calibration set the parent was calibrated on (its MNIST
   validation split plus held-out-style copies, :func:`pipeline.model.train.calibration_set`).
4. Score old and new on the held-out crops and on MNIST test. Promote (move ``models/current``) only if the new
   model is better on the held-out crops and at most ``max_mnist_drop_points`` percentage points worse on MNIST
   test. The new version is saved either way, its metadata holding the decision and both scores.
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import struct
import time
from dataclasses import dataclass
from pathlib import Path

import cv2
import keras
import numpy as np
import pandas as pd
import tensorflow as tf
from sklearn.model_selection import train_test_split

from pipeline import __version__
from pipeline import config as cfg
from pipeline.errors import InputFileError
from pipeline.mnist import Mnist, load_mnist
from pipeline.model import registry
from pipeline.model.calibration import calibrated_probs, choose_threshold, fit_temperature
from pipeline.model.network import set_base_trainable
from pipeline.model.recogniser import DIGIT_SHAPE, DigitRecogniser
from pipeline.model.settings import AugmentSettings, RetrainSettings, train_settings_of
from pipeline.model.train import build_trainer, calibration_set, compile_for_training, save_version, split_mnist

log = logging.getLogger(__name__)

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
#: Fewest labelled crops that can be split into a fine-tuning part and a held-out part.
MIN_LABELLED = 4
POINTS = 100.0
#: Shuffle buffer of the fine-tuning streams: MNIST train is already in random order (seeded split), and a short
#: fine-tuning run draws only a few thousand digits, so filling a 54,000-digit buffer per phase would be waste.
SHUFFLE_BUFFER = 8192
#: Metadata a fine-tuned version shares with its parent: architecture, training data and input contract.
INHERITED = ("settings", "augment", "data", "input", "n_params", "keras_version")


@dataclass(frozen=True)
class Labelled:
    """Labelled 28x28 crops read from a labelling sheet."""

    x: np.ndarray
    y: np.ndarray
    n_skipped: int
    sha256: str


@dataclass(frozen=True)
class Scores:
    """Accuracy of one model on the held-out new crops and on MNIST test."""

    new_crops: float
    mnist_test: float


@dataclass(frozen=True)
class Decision:
    """The outcome of a retraining: both models' scores, whether the new one was promoted, and why."""

    promoted: bool
    reason: str
    old_version: str | None
    new_version: str
    old: Scores
    new: Scores
    n_finetune: int
    n_holdout: int

    def summary(self) -> str:
        """Decision and both scores in one paragraph for the console."""
        verb = "PROMOTED" if self.promoted else "NOT promoted"
        return (f"{self.new_version} {verb} ({self.reason})\n"
                f"  held-out new crops (n={self.n_holdout}): old {POINTS * self.old.new_crops:.2f}% -> "
                f"new {POINTS * self.new.new_crops:.2f}%\n"
                f"  MNIST test: old {POINTS * self.old.mnist_test:.2f}% -> new {POINTS * self.new.mnist_test:.2f}%\n"
                f"  fine-tuned on {self.n_finetune} labelled crops mixed with MNIST train")


def png_size(path: Path) -> tuple[int, int]:
    """``(width, height)`` from a PNG header, read before decoding (guards against decompression bombs)."""
    try:
        with open(path, "rb") as fh:
            head = fh.read(24)
    except OSError as exc:
        raise InputFileError(f"{path}: cannot open crop image ({exc})") from exc
    if len(head) < 24 or not head.startswith(PNG_SIGNATURE) or head[12:16] != b"IHDR":
        raise InputFileError(f"{path}: not a PNG file")
    return struct.unpack(">II", head[16:24])


def read_crop(path: Path) -> np.ndarray:
    """A 28x28 grey crop image written by ``review``."""
    width, height = png_size(path)
    if width * height > cfg.MAX_IMAGE_PIXELS or (height, width) != DIGIT_SHAPE:
        raise InputFileError(f"{path}: crop must be a 28x28 PNG, got {width}x{height}")
    image = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)
    if image is None:
        raise InputFileError(f"{path}: cannot decode PNG")
    return image


def parse_label(value, csv_path: Path, line: int) -> int | None:
    """A 0-9 label, ``None`` for a blank one; anything else is an error naming the CSV line."""
    if pd.isna(value) or str(value).strip() == "":
        return None
    text = str(value).strip().removesuffix(".0")
    if text not in {str(d) for d in range(10)}:
        raise InputFileError(f"{csv_path}: line {line}: label must be a digit 0-9 or blank, got {value!r}")
    return int(text)


def load_labels(csv_path: Path) -> Labelled:
    """Crops and labels from a labelling sheet; image paths are relative to the CSV's folder."""
    try:
        sheet = pd.read_csv(csv_path, dtype={"label": "string", "image": "string"})
    except (OSError, ValueError) as exc:
        raise InputFileError(f"{csv_path}: cannot read labelling sheet ({exc})") from exc
    missing = [c for c in ("image", "label") if c not in sheet.columns]
    if missing:
        raise InputFileError(f"{csv_path}: missing column(s) {', '.join(missing)}")
    images, labels = [], []
    for i, row in enumerate(sheet.itertuples(index=False), start=2):
        label = parse_label(row.label, csv_path, i)
        if label is not None:
            images.append(read_crop(csv_path.parent / str(row.image)))
            labels.append(label)
    if len(labels) < MIN_LABELLED:
        raise InputFileError(f"{csv_path}: {len(labels)} labelled crops; need at least {MIN_LABELLED}")
    digest = hashlib.sha256(csv_path.read_bytes()).hexdigest()
    return Labelled(np.stack(images), np.array(labels, dtype=np.uint8), len(sheet) - len(labels), digest)


def split_labelled(data: Labelled, holdout: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """``(fine-tune, held-out)`` indices, stratified by label when every label has at least two crops."""
    idx = np.arange(len(data.y))
    counts = np.bincount(data.y, minlength=10)
    stratify = data.y if counts[counts > 0].min() >= 2 else None
    try:
        return train_test_split(idx, test_size=holdout, random_state=seed, stratify=stratify)
    except ValueError:  # too few crops per class for a stratified split of this size
        return train_test_split(idx, test_size=holdout, random_state=seed)


def mixed_batches(x_new: np.ndarray, y_new: np.ndarray, x_mnist: np.ndarray, y_mnist: np.ndarray,
                  settings: RetrainSettings) -> tf.data.Dataset:
    """Endless batches drawing ``new_fraction`` of their digits from the new crops, the rest from MNIST train."""
    def endless(x, y):
        ds = tf.data.Dataset.from_tensor_slices((x[..., None], y.astype(np.int32)))
        return ds.shuffle(min(len(y), SHUFFLE_BUFFER), seed=settings.seed, reshuffle_each_iteration=True).repeat()

    mixed = tf.data.Dataset.sample_from_datasets(
        [endless(x_new, y_new), endless(x_mnist, y_mnist)],
        weights=[settings.new_fraction, 1.0 - settings.new_fraction], seed=settings.seed)
    batches = mixed.batch(settings.batch_size).map(lambda a, b: (tf.cast(a, tf.float32), b))
    return batches.prefetch(tf.data.AUTOTUNE)


def fine_tune(parent: keras.Model, batches: tf.data.Dataset, settings: RetrainSettings) -> keras.Model:
    """A copy of ``parent`` trained on ``batches``: head only first, then (optionally) every layer."""
    model = keras.models.clone_model(parent)
    model.set_weights(parent.get_weights())
    trainer = build_trainer(model, AugmentSettings(), settings.seed)
    phases = [(False, settings.frozen_epochs, settings.learning_rate),
              (True, settings.unfrozen_epochs, settings.unfrozen_learning_rate)]
    for base_trainable, epochs, lr in phases:
        if epochs <= 0:
            continue
        set_base_trainable(model, base_trainable)
        compile_for_training(trainer, lr, 0.0)
        log.info("fine-tuning %s for %d epochs (conv base %s)", model.name, epochs,
                 "trainable" if base_trainable else "frozen")
        trainer.fit(batches, epochs=epochs, steps_per_epoch=settings.steps_per_epoch, shuffle=False, verbose=2)
    set_base_trainable(model, True)
    return model


def score(recogniser: DigitRecogniser, x_new: np.ndarray, y_new: np.ndarray, mnist: Mnist, batch: int) -> Scores:
    """Accuracy on the held-out new crops and on MNIST test."""
    return Scores(recogniser.accuracy(x_new, y_new, batch), recogniser.accuracy(mnist.x_test, mnist.y_test, batch))


def decide(old: Scores, new: Scores, max_mnist_drop_points: float) -> tuple[bool, str]:
    """Promote only if better on the new crops and not more than the allowed points worse on MNIST test."""
    drop = POINTS * (old.mnist_test - new.mnist_test)
    if not new.new_crops > old.new_crops:
        return False, "not better on the held-out new crops"
    if drop > max_mnist_drop_points:
        return False, f"MNIST test accuracy fell {drop:.2f} points (limit {max_mnist_drop_points})"
    return True, f"better on the new crops, MNIST test change {-drop:+.2f} points"


def recalibrate(model: keras.Model, split_x: np.ndarray, split_y: np.ndarray, target_accuracy: float,
                batch: int) -> tuple[float, float]:
    """Temperature and reject threshold of the fine-tuned model on the parent's calibration set."""
    logits = DigitRecogniser(model).logits(split_x, batch)
    temperature = fit_temperature(logits, split_y)
    probs = calibrated_probs(logits, temperature)
    return temperature, choose_threshold(probs.max(axis=1), probs.argmax(axis=1) == split_y, target_accuracy)


def retrain_metadata(parent: dict, decision: Decision, data: Labelled, labels_csv: Path, settings: RetrainSettings,
                     created: str, calibration: tuple[float, float], seconds: float) -> dict:
    """The new version's metadata: the parent's architecture and data, its own calibration, scores and decision."""
    return {**{k: parent[k] for k in INHERITED if k in parent},
            "version": decision.new_version, "parent": decision.old_version, "kind": "retrain", "created": created,
            "package_version": __version__, "temperature": calibration[0], "reject_threshold": calibration[1],
            "epochs_run": settings.frozen_epochs + settings.unfrozen_epochs,
            "stop_reason": "fine-tuning epochs completed", "train_seconds": round(seconds, 1),
            "metrics": {"test_accuracy": decision.new.mnist_test, "new_crops_accuracy": decision.new.new_crops},
            "retrain": {"labels": str(labels_csv), "labels_sha256": data.sha256, "n_labelled": len(data.y),
                        "n_skipped": data.n_skipped, "settings": dataclasses.asdict(settings),
                        "decision": dataclasses.asdict(decision)}}


def retrain(labels_csv: Path, model_path: Path | None, models_dir: Path, settings: RetrainSettings,
            mnist: Mnist | None = None) -> Decision:
    """Fine-tune the model at ``model_path`` on the labelled crops; save it; promote it if it is better."""
    keras.utils.set_random_seed(settings.seed)
    old = DigitRecogniser.load(model_path)
    data = load_labels(labels_csv)
    tune_idx, hold_idx = split_labelled(data, settings.holdout, settings.seed)
    mnist = mnist or load_mnist()
    parent_settings = train_settings_of(old.metadata)
    split = split_mnist(mnist, parent_settings.val_fraction, parent_settings.seed)
    batches = mixed_batches(data.x[tune_idx], data.y[tune_idx], split.x_train, split.y_train, settings)
    start = time.perf_counter()
    model = fine_tune(old.model, batches, settings)
    seconds = time.perf_counter() - start
    x_cal, y_cal, _ = calibration_set(split, parent_settings)
    temperature, threshold = recalibrate(model, x_cal, y_cal, parent_settings.target_accuracy, settings.infer_batch)
    new = DigitRecogniser(model, temperature, threshold)
    x_hold, y_hold = data.x[hold_idx], data.y[hold_idx]
    old_scores = score(old, x_hold, y_hold, mnist, settings.infer_batch)
    new_scores = score(new, x_hold, y_hold, mnist, settings.infer_batch)
    promoted, reason = decide(old_scores, new_scores, settings.max_mnist_drop_points)
    created = registry.utc_now()
    version_dir = registry.new_version_dir(models_dir, created)
    decision = Decision(promoted, reason, old.version, version_dir.name, old_scores, new_scores, len(tune_idx),
                        len(hold_idx))
    metadata = retrain_metadata(old.metadata, decision, data, labels_csv, settings,
                                created.isoformat(timespec="seconds"), (temperature, threshold), seconds)
    save_version(model, version_dir, metadata)
    if promoted:
        registry.set_current(models_dir, version_dir)
    log.info("retrained %s -> %s: %s", decision.old_version, decision.new_version,
             "promoted" if promoted else f"kept {decision.old_version} ({reason})")
    return decision
