"""Fixtures of the synth tests: the MNIST test-split digit source and a small batch of altered sheets."""

from __future__ import annotations

from pathlib import Path

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
