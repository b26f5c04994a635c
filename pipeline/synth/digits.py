"""Handwritten digits for the generator: MNIST **test** split only.

The recogniser trains on the train split, so writing test-split digits on the synthetic sheets keeps every
accuracy measured on them honest. :class:`DigitSource` is built from the test arrays alone, so nothing here can
reach a training image.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from pipeline.mnist import Mnist


@dataclass(frozen=True)
class DigitSource:
    """MNIST test images (uint8, (N, 28, 28), white on black) and labels, indexed by label for sampling."""

    images: np.ndarray
    labels: np.ndarray
    source: str
    by_label: tuple[np.ndarray, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.images.ndim != 3 or self.images.shape[1:] != (28, 28) or len(self.images) != len(self.labels):
            raise ValueError(f"{self.source}: expected (N, 28, 28) images with N labels, got {self.images.shape}")
        by_label = tuple(np.flatnonzero(self.labels == d) for d in range(10))
        missing = [d for d, idx in enumerate(by_label) if idx.size == 0]
        if missing:
            raise ValueError(f"{self.source}: no image for digit(s) {missing}")
        object.__setattr__(self, "by_label", by_label)

    @classmethod
    def from_mnist(cls, mnist: Mnist) -> DigitSource:
        """The test split of a loaded MNIST (``mnist_index`` values index ``x_test``)."""
        return cls(images=mnist.x_test, labels=mnist.y_test, source=f"{mnist.source} (test split)")

    def pick(self, digit: int, rng: np.random.Generator) -> tuple[int, np.ndarray]:
        """A random test image of ``digit``: its index into the test split and the 28x28 image."""
        candidates = self.by_label[digit]
        index = int(candidates[rng.integers(candidates.size)])
        return index, self.images[index]
