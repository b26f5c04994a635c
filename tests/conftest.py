"""Shared fixtures: the template, and a small MNIST loaded once per session."""

from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # keep TensorFlow's start-up chatter out of test output

import pytest  # noqa: E402

from pipeline.forms import load_template  # noqa: E402
from pipeline.mnist import load_mnist  # noqa: E402


@pytest.fixture(scope="session")
def template():
    return load_template()


@pytest.fixture(scope="session")
def mnist():
    """The real MNIST (from $MNIST_NPZ or ../shared); the tests never download it."""
    return load_mnist(allow_download=False)
