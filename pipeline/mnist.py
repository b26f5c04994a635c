"""Load and validate MNIST, looking in the documented places.

Order: ``$MNIST_NPZ``, ``../shared/data/mnist.npz``, ``data/raw/mnist.npz``, then the standard Keras download.
The synthetic generator uses only the *test* split; the recogniser trains on the *train* split.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from pipeline import config
from pipeline.errors import MissingDataError

log = logging.getLogger(__name__)

EXPECTED_SHAPES = {"x_train": (60000, 28, 28), "y_train": (60000,), "x_test": (10000, 28, 28), "y_test": (10000,)}


@dataclass(frozen=True)
class Mnist:
    """The four MNIST arrays, validated: images uint8 (N, 28, 28), labels uint8 0-9."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    source: str


def validate_arrays(arrays: dict[str, np.ndarray], source: str, expected=EXPECTED_SHAPES) -> None:
    """Raise :class:`MissingDataError` naming ``source`` unless keys, shapes, dtypes and label range are right."""
    missing = sorted(set(expected) - set(arrays))
    if missing:
        raise MissingDataError(f"{source}: missing array(s) {', '.join(missing)}")
    for key, shape in expected.items():
        arr = arrays[key]
        if arr.shape != shape:
            raise MissingDataError(f"{source}: {key} has shape {arr.shape}, expected {shape}")
        if arr.dtype != np.uint8:
            raise MissingDataError(f"{source}: {key} has dtype {arr.dtype}, expected uint8")
    for key in ("y_train", "y_test"):
        if arrays[key].size and arrays[key].max() > 9:
            raise MissingDataError(f"{source}: {key} has labels outside 0-9 (max {arrays[key].max()})")


def read_npz(path: Path, expected=EXPECTED_SHAPES) -> Mnist:
    """Read and validate one ``mnist.npz`` file."""
    try:
        with np.load(path, allow_pickle=False) as npz:
            arrays = {key: npz[key] for key in npz.files}
    except (OSError, ValueError, EOFError) as exc:
        raise MissingDataError(f"{path}: not a readable .npz file ({exc})") from exc
    validate_arrays(arrays, str(path), expected)
    return Mnist(arrays["x_train"], arrays["y_train"], arrays["x_test"], arrays["y_test"], source=str(path))


def _keras_download() -> Mnist:
    from keras.datasets import mnist  # imported lazily: keras is slow to import and rarely needed here

    (x_train, y_train), (x_test, y_test) = mnist.load_data()
    arrays = {"x_train": x_train, "y_train": y_train, "x_test": x_test, "y_test": y_test}
    validate_arrays(arrays, "keras.datasets.mnist")
    return Mnist(**arrays, source="keras.datasets.mnist")


def load_mnist(candidates: list[Path] | None = None, allow_download: bool = True) -> Mnist:
    """Return MNIST from the first existing candidate file, else the Keras download.

    Raises:
        MissingDataError: a candidate exists but is invalid, or nothing could be found; the message names
            every place that was tried.
    """
    candidates = config.mnist_candidates() if candidates is None else candidates
    for path in candidates:
        if path.is_file():
            log.info("loading MNIST from %s", path)
            return read_npz(path)
    tried = [str(p) for p in candidates]
    if allow_download:
        try:
            return _keras_download()
        except Exception as exc:  # network errors come in many types; report them all the same way
            tried.append(f"Keras download ({exc})")
    raise MissingDataError("MNIST not found; looked in: " + "; ".join(tried)
                           + f". Set ${config.MNIST_ENV_VAR} to an mnist.npz file.")
