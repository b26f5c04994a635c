"""Fixtures of the model tests: a tiny trained model version, a stub model, and run folders of hand-made crops."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pandas as pd
import pytest

from pipeline.model.settings import TrainSettings, tiny

#: The stub model reads a digit's label from pixel (0, 0): value = label * LABEL_STEP + 1.
LABEL_STEP = 20


class StubModel:
    """Stands in for a Keras model: logits favour the label written into pixel (0, 0), then the next digit.

    Pixel (0, 1) sets how sure it is: 0 gives a margin of 8 logits, 255 a margin of 0 (a coin toss between
    the label and label + 1).
    """

    def predict(self, x, batch_size=None, verbose=0):
        labels = ((x[:, 0, 0, 0] - 1) // LABEL_STEP).astype(int)
        margin = 8.0 * (1.0 - x[:, 0, 1, 0] / 255.0)
        logits = np.zeros((len(x), 10), dtype=np.float32)
        rows = np.arange(len(x))
        logits[rows, labels] = margin + 1.0
        logits[rows, (labels + 1) % 10] = 1.0
        return logits


def stub_digit(label: int, unsure: int = 0) -> np.ndarray:
    """A 28x28 image the stub model reads as ``label`` (``unsure`` 0-255 lowers its confidence)."""
    image = np.zeros((28, 28), np.uint8)
    image[0, 0] = label * LABEL_STEP + 1
    image[0, 1] = unsure
    return image


def crops_frame(rows: list[tuple]) -> pd.DataFrame:
    """crops.parquet-style rows from ``(sheet_id, field, box, slot, box_status, digit_row)`` tuples."""
    frame = pd.DataFrame(rows, columns=["sheet_id", "field", "box", "slot", "box_status", "digit_row"])
    for col in ("x0", "y0", "x1", "y1", "ink_pixels", "n_components"):
        frame[col] = 0
    frame["ink_mean"] = 0.0
    return frame


@pytest.fixture(scope="session")
def tiny_settings() -> TrainSettings:
    """A network and data size that train in seconds and still read most MNIST digits; a tenth of the digits made
    sheet-like, so the restyling path of ``train`` runs too (cheaply)."""
    return replace(tiny(TrainSettings()), subset=3000, sheet_style_fraction=0.1)


@pytest.fixture(scope="session")
def trained(tmp_path_factory, tiny_settings, mnist):
    """One tiny model trained with the real ``train`` into a scratch models folder: ``(models_dir, metadata)``."""
    from pipeline.model.train import train

    root = tmp_path_factory.mktemp("trained")
    metadata = train(tiny_settings, root / "models", root / "reports", mnist=mnist)
    return root / "models", metadata


@pytest.fixture
def models_copy(trained, tmp_path):
    """A private copy of the trained models folder, so a test may move its ``current`` link."""
    import shutil

    from pipeline.model import registry

    models, metadata = trained
    copy = tmp_path / "models"
    shutil.copytree(models / metadata["version"], copy / metadata["version"])
    registry.set_current(copy, copy / metadata["version"])
    return copy, metadata


@pytest.fixture
def mnist_run(tmp_path, mnist):
    """A run folder with 12 sheets x 1 field x 3 boxes of real MNIST test digits (some boxes empty)."""
    rng = np.random.default_rng(0)
    rows, images, truth = [], [], []
    for s in range(12):
        for box in range(3):
            if box == 0 and s % 3 == 0:
                rows.append((f"s{s}", "pan", box, 0, "empty", -1))
                continue
            i = int(rng.integers(len(mnist.y_test)))
            rows.append((f"s{s}", "pan", box, 0, "digit", len(images)))
            images.append(mnist.x_test[i])
            truth.append(int(mnist.y_test[i]))
    run = tmp_path / "run"
    run.mkdir()
    crops_frame(rows).to_parquet(run / "crops.parquet")
    np.save(run / "digits.npy", np.stack(images))
    return run, np.array(truth)


def use_stub_recogniser(monkeypatch) -> None:
    """Make ``DigitRecogniser.load`` return a recogniser around :class:`StubModel` (temperature 1, reject 0.5)."""
    from pipeline.model import DigitRecogniser

    monkeypatch.setattr(DigitRecogniser, "load",
                        classmethod(lambda cls, path=None, tta_below=0.0: cls(StubModel(), 1.0, 0.5)))
