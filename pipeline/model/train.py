"""Train the default digit CNN on MNIST train, calibrate it, and save it as a new version.

Steps: seeded split of MNIST train into train/validation -> tf.data batches, a share of each given handwriting
styles in NumPy (:mod:`pipeline.model.handwriting`, seeded by the global step) -> a training-only wrapper
(pen/scan augmentation + classifier) fitted with AdamW, a warm-up + cosine learning-rate schedule, early stopping
on validation loss (best weights restored) and a wall-clock budget -> temperature and reject threshold fitted on
the calibration set (the validation split plus held-out-style copies of it, a handwriting family never used in
training) -> every figure measured on MNIST test and on held-out-style copies of it -> ``models/<version>/`` +
``models/current`` + ``reports/model/``.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from dataclasses import dataclass
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from pipeline import __version__
from pipeline.mnist import Mnist, load_mnist
from pipeline.model import registry
from pipeline.model.augment import PenScanAugment
from pipeline.model.calibration import calibrated_probs, expected_calibration_error, fit_temperature
from pipeline.model.evaluate import Evaluation, evaluate_logits, held_out_figures, write_reports
from pipeline.model.handwriting import handwriting_batch, held_out_style
from pipeline.model.network import build_classifier
from pipeline.model.recogniser import DigitRecogniser
from pipeline.model.restyle import restyle_fraction
from pipeline.model.settings import (
    AugmentSettings,
    HandwritingSettings,
    HeldOutStyleSettings,
    SheetStyleSettings,
    TrainSettings,
)
from pipeline.progress import SettledBar

log = logging.getLogger(__name__)

#: Metadata copied into ``reports/model/metrics.json`` next to the measured figures.
REPORTED_METADATA = ("version", "epochs_run", "best_epoch", "stop_reason", "train_seconds", "n_params")
#: Final learning rate of the cosine schedule, as a fraction of the peak.
COSINE_FLOOR = 0.01
#: Offsets added to ``seed`` for the held-out-style copies of the validation and of the test digits, so the two
#: draws differ from each other and from the training stream.
CALIBRATION_STYLE_SEED, TEST_STYLE_SEED = 7001, 7002


@dataclass(frozen=True)
class Split:
    """MNIST train divided into the part the weights see and the held-out validation part."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray


@dataclass(frozen=True)
class FitOutcome:
    """What happened during ``fit``: epochs run, the best epoch, why it stopped, how long it took."""

    epochs_run: int
    best_epoch: int
    stop_reason: str
    seconds: float
    history: dict


def with_sheet_style(split: Split, settings: TrainSettings) -> Split:
    """``split`` with ``sheet_style_fraction`` of its training digits made sheet-like; validation stays MNIST, so
    calibration and early stopping keep measuring the model on the distribution it is calibrated for."""
    x_train = restyle_fraction(split.x_train, settings.sheet_style_fraction, settings.seed, SheetStyleSettings())
    return dataclasses.replace(split, x_train=x_train)


def split_mnist(mnist: Mnist, val_fraction: float, seed: int, subset: int = 0) -> Split:
    """Seeded permutation of MNIST train (optionally only its first ``subset`` after shuffling) cut in two."""
    order = np.random.default_rng(seed).permutation(len(mnist.y_train))
    if subset:
        order = order[:subset]
    n_val = max(1, round(len(order) * val_fraction))
    val, train = order[:n_val], order[n_val:]
    return Split(mnist.x_train[train], mnist.y_train[train], mnist.x_train[val], mnist.y_train[val])


def make_dataset(x: np.ndarray, y: np.ndarray, batch_size: int, seed: int | None) -> tf.data.Dataset:
    """Batches of float32 ``(B, 28, 28, 1)`` images and int labels; shuffled each epoch when ``seed`` is given."""
    ds = tf.data.Dataset.from_tensor_slices((x[..., None], y.astype(np.int32)))
    if seed is not None:
        ds = ds.shuffle(len(y), seed=seed, reshuffle_each_iteration=True)
    ds = ds.batch(batch_size).map(lambda a, b: (tf.cast(a, tf.float32), b), num_parallel_calls=tf.data.AUTOTUNE)
    return ds.prefetch(tf.data.AUTOTUNE)


def styled_batch(x: np.ndarray, y: np.ndarray, step: np.int64, seed: int, fraction: float,
                 settings: HandwritingSettings) -> np.ndarray:
    """One training batch with handwriting styles, seeded by ``(seed, step)``: the same step gives the same
    batch whatever thread or order tf.data runs it in. ``x`` is ``(B, 28, 28, 1)``."""
    rng = np.random.default_rng([seed, int(step)])
    return handwriting_batch(x[..., 0], y, rng, settings, fraction)[..., None]


def make_training_stream(x: np.ndarray, y: np.ndarray, settings: TrainSettings,
                         handwriting: HandwritingSettings) -> tuple[tf.data.Dataset, int]:
    """Endless shuffled training batches, ``handwriting_fraction`` of each restyled by :func:`styled_batch`, and
    the steps per epoch. Reshuffled each pass; each batch is numbered by a global step counter that seeds its
    styles, so the stream is the same for the same seed."""
    steps = int(np.ceil(len(y) / settings.batch_size))
    ds = tf.data.Dataset.from_tensor_slices((x[..., None], y.astype(np.int32)))
    ds = ds.shuffle(len(y), seed=settings.seed, reshuffle_each_iteration=True).batch(settings.batch_size).repeat()
    ds = tf.data.Dataset.zip(ds, tf.data.Dataset.counter())
    seed, fraction = settings.seed, settings.handwriting_fraction

    def style(batch, step):
        images, labels = batch
        out = tf.numpy_function(lambda a, b, c: styled_batch(a, b, c, seed, fraction, handwriting),
                                [images, labels, step], tf.float32, stateful=False)
        return tf.ensure_shape(out, [None, *x.shape[1:], 1]), labels

    if fraction > 0:
        ds = ds.map(style, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    else:
        ds = ds.map(lambda batch, _: (tf.cast(batch[0], tf.float32), batch[1]))
    return ds.prefetch(tf.data.AUTOTUNE), steps


def build_trainer(classifier: keras.Model, augment: AugmentSettings, seed: int) -> keras.Model:
    """``augment -> classifier``: the model that is fitted; only ``classifier`` is saved."""
    inputs = keras.Input(classifier.input_shape[1:])
    outputs = classifier(PenScanAugment(augment, seed=seed, name="augment")(inputs))
    return keras.Model(inputs, outputs, name="trainer")


def lr_schedule(peak: float, steps_per_epoch: int, epochs: int, warmup_epochs: float):
    """Linear warm-up to ``peak`` then cosine decay to ``COSINE_FLOOR * peak`` over the remaining steps."""
    warmup = int(warmup_epochs * steps_per_epoch)
    decay = max(1, epochs * steps_per_epoch - warmup)
    return keras.optimizers.schedules.CosineDecay(0.0, decay, alpha=COSINE_FLOOR, warmup_target=peak,
                                                  warmup_steps=warmup)


def compile_for_training(model: keras.Model, learning_rate, weight_decay: float) -> None:
    """AdamW on logits with sparse cross-entropy and accuracy."""
    model.compile(optimizer=keras.optimizers.AdamW(learning_rate, weight_decay=weight_decay),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True), metrics=["accuracy"])


class TimeBudget(keras.callbacks.Callback):
    """Stop after the epoch that would make the next one overrun ``minutes`` of wall-clock time."""

    def __init__(self, minutes: float):
        super().__init__()
        self.seconds = minutes * 60.0
        self.start = time.perf_counter()
        self.stopped = False

    def on_train_begin(self, logs=None):
        self.start = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        elapsed = time.perf_counter() - self.start
        if elapsed + elapsed / (epoch + 1) > self.seconds:
            self.stopped = True
            self.model.stop_training = True


class ProgressBars(keras.callbacks.Callback):
    """Training progress on a terminal: a bar over epochs (with the last epoch's validation loss and accuracy) and
    one over the batches of the current epoch (with the running loss), each showing its time left only once it has
    settled (:class:`~pipeline.model.recognise.SettledBar`: the epoch bar after one epoch, the batch bar after a few
    seconds). Each epoch is also logged, so a log file gets one line per epoch. ``disable=None`` hides the bars
    when stderr is not a terminal."""

    def __init__(self, epochs: int, steps: int, disable: bool | None = None):
        super().__init__()
        self.epochs, self.steps, self.disable = epochs, steps, disable
        self.epoch_bar = self.batch_bar = None

    def on_train_begin(self, logs=None):
        self.epoch_bar = SettledBar(total=self.epochs, desc="epochs", unit="epoch", settle_s=0.0, settle_n=1,
                                    disable=self.disable, position=0)

    def on_epoch_begin(self, epoch, logs=None):
        self.batch_bar = SettledBar(total=self.steps, desc=f"epoch {epoch + 1}", unit="batch", leave=False,
                                    mininterval=0.5, disable=self.disable, position=1)

    def on_train_batch_end(self, batch, logs=None):
        if self.batch_bar is not None:
            self.batch_bar.update(1)
            if logs and "loss" in logs and batch % 20 == 0:
                self.batch_bar.set_postfix(loss=f"{float(logs['loss']):.4f}", refresh=False)

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        if self.batch_bar is not None:
            self.batch_bar.close()
            self.batch_bar = None
        shown = {k: f"{float(logs[k]):.4f}" for k in ("val_loss", "val_accuracy") if k in logs}
        if self.epoch_bar is not None:
            self.epoch_bar.set_postfix(shown, refresh=False)
            self.epoch_bar.update(1)
        log.info("epoch %d/%d: %s", epoch + 1, self.epochs,
                 ", ".join(f"{k} {float(v):.4f}" for k, v in logs.items() if k != "learning_rate"))

    def on_train_end(self, logs=None):
        for bar in (self.batch_bar, self.epoch_bar):
            if bar is not None:
                bar.close()
        self.batch_bar = self.epoch_bar = None


def stop_reason(early: keras.callbacks.EarlyStopping, budget: TimeBudget, patience: int) -> str:
    """Plain words for why training ended."""
    if early.stopped_epoch > 0:
        return f"early_stopping: val_loss did not improve for {patience} epochs"
    if budget.stopped:
        return f"time_budget: another epoch would pass {budget.seconds / 60:.0f} minutes"
    return "max_epochs: reached the epoch limit"


def fit(trainer: keras.Model, split: Split, settings: TrainSettings) -> FitOutcome:
    """Fit ``trainer`` with early stopping (best weights restored) and the time budget."""
    stream, steps = make_training_stream(split.x_train, split.y_train, settings, HandwritingSettings())
    compile_for_training(trainer, lr_schedule(settings.learning_rate, steps, settings.epochs, settings.warmup_epochs),
                         settings.weight_decay)
    early = keras.callbacks.EarlyStopping(monitor="val_loss", patience=settings.patience, restore_best_weights=True)
    budget = TimeBudget(settings.time_budget_min)
    start = time.perf_counter()
    history = trainer.fit(stream, steps_per_epoch=steps,
                          validation_data=make_dataset(split.x_val, split.y_val, settings.infer_batch, None),
                          epochs=settings.epochs, callbacks=[early, budget, ProgressBars(settings.epochs, steps)],
                          shuffle=False, verbose=0)
    seconds = time.perf_counter() - start
    hist = {k: [float(v) for v in vals] for k, vals in history.history.items() if k != "learning_rate"}
    reason = stop_reason(early, budget, settings.patience)
    return FitOutcome(len(hist.get("loss", [])), int(early.best_epoch) + 1, reason, seconds, hist)


def calibration_set(split: Split, settings: TrainSettings) -> tuple[np.ndarray, np.ndarray, int]:
    """The validation digits plus held-out-style copies of a seeded ``calibration_style_fraction`` of them:
    ``(x, y, n_styled)``. The held-out family is never used in training, so a temperature fitted here keeps the
    confidence honest on handwriting the model has not seen."""
    n = round(len(split.y_val) * settings.calibration_style_fraction)
    if n == 0:
        return split.x_val, split.y_val, 0
    pick = np.random.default_rng(settings.seed + CALIBRATION_STYLE_SEED).choice(len(split.y_val), n, replace=False)
    styled = held_out_style(split.x_val[pick], settings.seed + CALIBRATION_STYLE_SEED, HeldOutStyleSettings())
    return np.concatenate([split.x_val, styled]), np.concatenate([split.y_val, split.y_val[pick]]), n


def held_out_test(mnist: Mnist, settings: TrainSettings) -> np.ndarray:
    """MNIST test in the held-out style (its own seed): where off-domain calibration is measured."""
    return held_out_style(mnist.x_test, settings.seed + TEST_STYLE_SEED, HeldOutStyleSettings())


def evaluate_recogniser(recogniser: DigitRecogniser, split: Split, mnist: Mnist, settings: TrainSettings) -> Evaluation:
    """Calibrate on the calibration set (:func:`calibration_set`) and measure on MNIST test, in domain and in the
    held-out style; the held-out figures go under ``metrics["held_out_style"]``. Calibration uses single-view
    logits, as the temperature is fitted in training; the test digits are read as ``recognise`` reads them
    (:meth:`~pipeline.model.recogniser.DigitRecogniser.read_logits`: test-time views for doubtful digits when the
    recogniser has ``tta_below``)."""
    x_cal, y_cal, n_styled = calibration_set(split, settings)
    cal_logits = recogniser.logits(x_cal, settings.infer_batch)
    test_logits = recogniser.read_logits(mnist.x_test, settings.infer_batch)
    evaluation = evaluate_logits(cal_logits, y_cal, test_logits, mnist.y_test, settings.target_accuracy,
                                 settings.ece_bins)
    n_val = len(split.y_val)
    in_domain_temperature = fit_temperature(cal_logits[:n_val], y_cal[:n_val])
    styled_logits = recogniser.read_logits(held_out_test(mnist, settings), settings.infer_batch)
    evaluation.metrics["held_out_style"] = held_out_figures(
        styled_logits, mnist.y_test, evaluation.temperature, in_domain_temperature, evaluation.reject_threshold,
        settings.ece_bins)
    evaluation.metrics["test_ece_after_in_domain_temperature"] = expected_calibration_error(
        calibrated_probs(test_logits, in_domain_temperature), mnist.y_test, settings.ece_bins)
    evaluation.metrics["calibration_set"] = {
        "n_mnist_validation": n_val, "n_held_out_style": n_styled,
        "held_out_style": dataclasses.asdict(HeldOutStyleSettings())}
    return evaluation


def build_metadata(version: str, settings: TrainSettings, mnist: Mnist, split: Split, outcome: FitOutcome,
                   evaluation: Evaluation, n_params: int, created: str, parent: str | None) -> dict:
    """Everything needed to know where a version came from and how good it is."""
    return {
        "version": version, "parent": parent, "created": created, "package_version": __version__,
        "kind": "train", "keras_version": keras.__version__,
        "data": {"source": mnist.source, "sha256_train": registry.data_hash(mnist.x_train, mnist.y_train),
                 "n_train": int(len(split.y_train)), "n_val": int(len(split.y_val)), "n_test": int(len(mnist.y_test))},
        "settings": dataclasses.asdict(settings), "augment": dataclasses.asdict(AugmentSettings()),
        "handwriting": dataclasses.asdict(HandwritingSettings()),
        "held_out_style": dataclasses.asdict(HeldOutStyleSettings()),
        "sheet_style": dataclasses.asdict(SheetStyleSettings()),
        "input": "float32 (N, 28, 28, 1), 0-255, white digit on black (MNIST); output: 10 logits",
        "n_params": n_params, "temperature": evaluation.temperature,
        "reject_threshold": evaluation.reject_threshold, "epochs_run": outcome.epochs_run,
        "best_epoch": outcome.best_epoch, "stop_reason": outcome.stop_reason,
        "train_seconds": round(outcome.seconds, 1), "history": outcome.history, "metrics": evaluation.metrics,
    }


def save_version(classifier: keras.Model, version_dir: Path, metadata: dict) -> None:
    """Write ``model.keras`` and ``metadata.json`` into a new version folder."""
    version_dir.mkdir(parents=True)
    classifier.save(version_dir / registry.MODEL_FILE)
    registry.write_json_atomic(version_dir / registry.METADATA_FILE, metadata)


def train(settings: TrainSettings, models_dir: Path, reports_dir: Path, mnist: Mnist | None = None) -> dict:
    """Train, calibrate, evaluate, save a new version, make it current, and write the reports; returns metadata."""
    keras.utils.set_random_seed(settings.seed)
    mnist = mnist or load_mnist()
    split = split_mnist(mnist, settings.val_fraction, settings.seed, settings.subset)
    classifier = build_classifier(settings.network)
    log.info("training %s params on %d digits (%d validation), up to %d epochs", classifier.count_params(),
             len(split.y_train), len(split.y_val), settings.epochs)
    styled = with_sheet_style(split, settings)
    outcome = fit(build_trainer(classifier, AugmentSettings(), settings.seed), styled, settings)
    evaluation = evaluate_recogniser(DigitRecogniser(classifier), split, mnist, settings)
    created = registry.utc_now()
    version_dir = registry.new_version_dir(models_dir, created)
    metadata = build_metadata(version_dir.name, settings, mnist, split, outcome, evaluation,
                              classifier.count_params(), created.isoformat(timespec="seconds"),
                              registry.current_version(models_dir))
    save_version(classifier, version_dir, metadata)
    registry.set_current(models_dir, version_dir)
    write_reports(evaluation, reports_dir, {key: metadata[key] for key in REPORTED_METADATA})
    held_out = evaluation.metrics["held_out_style"]
    log.info("saved %s: test accuracy %.4f, ECE %.4f -> %.4f; held-out style accuracy %.4f, ECE %.4f; %s",
             version_dir, evaluation.metrics["test_accuracy"], evaluation.metrics["test_ece_before"],
             evaluation.metrics["test_ece_after"], held_out["accuracy"], held_out["ece_after"], outcome.stop_reason)
    return metadata
