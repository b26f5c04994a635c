"""``DigitRecogniser``: the only object the rest of the pipeline uses to read digits.

It wraps a Keras model that maps ``(N, 28, 28, 1)`` images (0-255, white on black) to 10 logits, plus the
calibration that came with it (temperature, reject threshold). Keras is imported only when a model is loaded, so
``import pipeline.model`` stays free of TensorFlow; tests plug in any tiny model with the same input and output.
"""

from __future__ import annotations

import logging
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from pipeline.errors import ModelError
from pipeline.model import registry
from pipeline.model.calibration import calibrated_probs

log = logging.getLogger(__name__)

DIGIT_SHAPE = (28, 28)
DEFAULT_BATCH = 1024
#: Test-time views of a doubtful digit: shifted one pixel each way and turned a few degrees each way. A digit the
#: model reads with little confidence is read in every view and its logits averaged (the same handwriting seen
#: from slightly off-centre or slanted); confident digits are read once.
TTA_SHIFT_PX = 1
TTA_ROTATIONS_DEG = (-8.0, 8.0)
#: Centre of a 28x28 digit, about which the views turn.
DIGIT_CENTRE = (13.5, 13.5)


@dataclass(frozen=True)
class Predictions:
    """Per-digit reads, all arrays of length N (``probs`` is ``(N, 10)``, calibrated).

    ``prob``/``prob2`` are the model's own softmax for the top-2 labels; ``confidence``/``confidence2`` are the
    same two labels after temperature scaling, the numbers to trust.
    """

    label: np.ndarray
    prob: np.ndarray
    label2: np.ndarray
    prob2: np.ndarray
    confidence: np.ndarray
    confidence2: np.ndarray
    probs: np.ndarray

    def __len__(self) -> int:
        return len(self.label)


def check_digits(digits: np.ndarray) -> np.ndarray:
    """Validate a uint8 ``(N, 28, 28)`` stack; ``ValueError`` says what was wrong."""
    digits = np.asarray(digits)
    if digits.ndim != 3 or digits.shape[1:] != DIGIT_SHAPE:
        raise ValueError(f"digits must have shape (N, 28, 28), got {digits.shape}")
    if digits.dtype != np.uint8:
        raise ValueError(f"digits must be uint8 (0-255, white on black), got {digits.dtype}")
    return digits


def predictions_from_logits(logits: np.ndarray, temperature: float) -> Predictions:
    """Top-2 labels with raw and calibrated probabilities from a ``(N, 10)`` logit array."""
    raw = calibrated_probs(logits, 1.0)
    cal = calibrated_probs(logits, temperature)
    top2 = np.argsort(-raw, axis=1, kind="stable")[:, :2]
    rows = np.arange(len(raw))
    first, second = top2[:, 0], top2[:, 1]
    return Predictions(label=first.astype(np.int64), prob=raw[rows, first], label2=second.astype(np.int64),
                       prob2=raw[rows, second], confidence=cal[rows, first], confidence2=cal[rows, second],
                       probs=cal)


def test_time_views(digits: np.ndarray) -> list[np.ndarray]:
    """The :data:`TTA_SHIFT_PX` shifts (right, left, down, up) and :data:`TTA_ROTATIONS_DEG` turns of a uint8
    ``(N, 28, 28)`` stack, each a stack of the same shape and dtype (ink shifted off an edge is dropped)."""
    import cv2

    views = []
    for axis, step in ((2, TTA_SHIFT_PX), (2, -TTA_SHIFT_PX), (1, TTA_SHIFT_PX), (1, -TTA_SHIFT_PX)):
        shifted = np.roll(digits, step, axis=axis)
        edge = [slice(None)] * 3
        edge[axis] = slice(0, step) if step > 0 else slice(step, None)
        shifted[tuple(edge)] = 0
        views.append(shifted)
    for angle in TTA_ROTATIONS_DEG:
        turn = cv2.getRotationMatrix2D(DIGIT_CENTRE, angle, 1.0)
        views.append(np.stack([cv2.warpAffine(d, turn, DIGIT_SHAPE[::-1]) for d in digits]) if len(digits)
                     else digits.copy())
    return views


def padded_size(n: int, batch_size: int) -> int:
    """Rows ``n`` digits are padded to before inference: whole batches of ``batch_size`` when there is more than
    one batch, else the next power of two (at most ``batch_size``); so every batch has one of a few shapes."""
    if n > batch_size:
        return -(-n // batch_size) * batch_size
    return min(1 << max(0, n - 1).bit_length(), batch_size)


class DigitRecogniser:
    """A digit classifier with its calibration.

    Args:
        model: a Keras model, ``(N, 28, 28, 1)`` float 0-255 -> ``(N, 10)`` logits.
        temperature: softmax temperature fitted on held-out data (1.0 = uncalibrated).
        reject_threshold: calibrated confidence below which a read needs review.
        metadata: the version's metadata (empty for an in-memory model).
        tta_below: a digit read with a calibrated confidence below this is read again in its
            :func:`test_time_views` and its logits averaged (0: never; training and calibration use 0).
    """

    def __init__(self, model, temperature: float = 1.0, reject_threshold: float = 0.0,
                 metadata: dict | None = None, path: Path | None = None, tta_below: float = 0.0):
        self.model = model
        self.temperature = float(temperature)
        self.reject_threshold = float(reject_threshold)
        self.metadata = metadata or {}
        self.path = path
        self.tta_below = float(tta_below)

    @property
    def version(self) -> str | None:
        """The version name from the metadata (``None`` for an in-memory model)."""
        return self.metadata.get("version")

    @classmethod
    def load(cls, path: Path | None = None, tta_below: float = 0.0) -> DigitRecogniser:
        """Load a saved version (``models/current`` by default) with Keras safe mode on (``tta_below``: see the
        class).

        Raises:
            ModelError: no model there, or the file is corrupt or refused by safe mode (e.g. a Lambda layer).
        """
        folder = registry.resolve_model_dir(path)
        metadata = registry.read_metadata(folder)
        model = load_keras_model(folder / registry.MODEL_FILE)
        return cls(model, metadata.get("temperature", 1.0), metadata.get("reject_threshold", 0.0), metadata, folder,
                   tta_below)

    def logits(self, digits: np.ndarray, batch_size: int = DEFAULT_BATCH) -> np.ndarray:
        """Raw ``(N, 10)`` logits for a uint8 ``(N, 28, 28)`` stack, batched.

        The stack is padded with blank digits (:func:`padded_size`) so that the model meets only a few batch
        shapes: TensorFlow keeps state for every new shape, and a stream of chunks each ending in a partial batch
        of another size made the recogniser's memory grow with the number of chunks.
        """
        digits = check_digits(digits)
        n = len(digits)
        if n == 0:
            return np.zeros((0, 10), dtype=np.float32)
        x = np.zeros((padded_size(n, batch_size), 28, 28, 1), np.float32)
        x[:n, ..., 0] = digits
        return np.asarray(self.model.predict(x, batch_size=min(batch_size, len(x)), verbose=0)[:n], np.float32)

    def read_logits(self, digits: np.ndarray, batch_size: int = DEFAULT_BATCH) -> np.ndarray:
        """:meth:`logits`, with each digit below ``tta_below`` calibrated confidence read again in its
        :func:`test_time_views` and given the mean of its logits over the original and every view."""
        digits = check_digits(digits)
        logits = self.logits(digits, batch_size)
        if self.tta_below <= 0 or len(digits) == 0:
            return logits
        doubtful = np.flatnonzero(calibrated_probs(logits, self.temperature).max(axis=1) < self.tta_below)
        if len(doubtful):
            views = test_time_views(digits[doubtful])  # read in one call: each model call has a fixed cost
            view_logits = self.logits(np.concatenate(views), batch_size).reshape(len(views), len(doubtful), -1)
            logits[doubtful] = (logits[doubtful] + view_logits.sum(axis=0)) / (1 + len(views))
        return logits

    def predict(self, digits: np.ndarray, batch_size: int = DEFAULT_BATCH) -> Predictions:
        """Read a uint8 ``(N, 28, 28)`` stack of MNIST-normalised digits (with test-time views for doubtful ones:
        :meth:`read_logits`)."""
        return predictions_from_logits(self.read_logits(digits, batch_size), self.temperature)

    def accuracy(self, digits: np.ndarray, labels: np.ndarray, batch_size: int = DEFAULT_BATCH) -> float:
        """Share of ``digits`` read as ``labels`` (arg-max as :meth:`predict` reads, unaffected by calibration)."""
        if len(labels) == 0:
            return float("nan")
        return float((self.read_logits(digits, batch_size).argmax(axis=1) == np.asarray(labels)).mean())


def load_keras_model(path: Path):
    """``keras.saving.load_model(path, safe_mode=True)``; any failure becomes a :class:`ModelError`.

    A missing file and a corrupt one are told apart first: Keras reports any file that is not a zip archive as
    "File not found".
    """
    import keras  # lazy: keep TensorFlow out of every process that never loads a model

    path = Path(path)
    if not path.is_file():
        raise ModelError(f"{path}: model file not found; train one with `python -m pipeline train` (or `make "
                         "train`)")
    if not zipfile.is_zipfile(path):
        raise ModelError(f"{path}: the model file is corrupt (not a .keras zip archive: truncated or overwritten?); "
                         "restore it or train again with `python -m pipeline train`")
    try:
        return keras.saving.load_model(path, compile=False, safe_mode=True)
    except Exception as exc:  # Keras raises ValueError, TypeError, OSError, zipfile errors... all mean "unusable"
        raise ModelError(f"{path}: cannot load model safely ({type(exc).__name__}: {exc})") from exc
