"""Fixtures of the synth tests: the MNIST test-split digit source and a small batch of altered sheets."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from pipeline.synth import DigitSource, SynthSettings, generate_batch
from tests.synth.common import FAST, TAMPERED


@pytest.fixture(scope="session")
def digits(mnist):
    return DigitSource.from_mnist(mnist)


@pytest.fixture(scope="session")
def tampered():
    """Settings under which every sheet is visibly altered."""
    return SynthSettings(sheets=6, seed=11, **FAST, **TAMPERED)


@pytest.fixture(scope="session")
def batch(tmp_path_factory, tampered, digits) -> Path:
    """A written batch of six altered sheets (JPEG)."""
    return generate_batch(tampered, tmp_path_factory.mktemp("synth") / "batch", digits)


@pytest.fixture(scope="module")
def truth(batch):
    """``truth.csv`` of the module's ``batch`` (a module may override ``batch`` with a batch of its own)."""
    return pd.read_csv(batch / "truth.csv")


@pytest.fixture(scope="module")
def boxes(batch):
    """``boxes.csv`` of the module's ``batch``."""
    return pd.read_csv(batch / "boxes.csv")
