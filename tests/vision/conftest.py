"""Fixtures for the reader's tests: forms filled with MNIST test digits, warped with known homographies, bad
files of every kind, and (once the generator is there) a few synthetic sheets with ground truth."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from pipeline.forms import render_blank
from pipeline.forms.template import MM_PER_INCH
from pipeline.vision.settings import ReadSettings

DPI = 200
#: Written digits are this fraction of the box height, as on the synthetic sheets.
DIGIT_FRACTION = 0.75


def px(mm: float, dpi: float = DPI) -> float:
    return mm * dpi / MM_PER_INCH


def paste_digit(page: np.ndarray, digit28: np.ndarray, centre: tuple[float, float], height_px: float) -> None:
    """Write an MNIST digit (white on black) as dark ink centred at ``centre`` (x, y) on a white page."""
    side = round(height_px * 28 / 20)
    big = cv2.resize(digit28, (side, side), interpolation=cv2.INTER_LINEAR).astype(np.float32) / 255
    x0, y0 = round(centre[0] - side / 2), round(centre[1] - side / 2)
    region = page[y0:y0 + side, x0:x0 + side].astype(np.float32)
    page[y0:y0 + side, x0:x0 + side] = np.round(region * (1 - big)).astype(np.uint8)


def fill_form(template, mnist, seed: int = 0, dpi: float = DPI) -> tuple[np.ndarray, dict]:
    """The blank form with a right-aligned number of MNIST test digits in every numeric field.

    Returns the page and ``{(field, box): (digit, mnist_index)}``.
    """
    rng = np.random.default_rng(seed)
    page = render_blank(template, dpi)
    written = {}
    for f in template.fields_of_kind("id", "count"):
        n = int(rng.integers(1, len(f.boxes) + 1))
        for box in range(len(f.boxes) - n, len(f.boxes)):
            b = f.boxes[box]
            index = int(rng.integers(len(mnist.x_test)))
            paste_digit(page, mnist.x_test[index], (px(b.x + b.w / 2, dpi), px(b.y + b.h / 2, dpi)),
                        px(b.h * DIGIT_FRACTION, dpi))
            written[(f.name, box)] = (int(mnist.y_test[index]), index)
    return page, written


def similarity(shape: tuple[int, int], angle_deg: float, scale: float = 1.0, shift=(0.0, 0.0),
               perspective: float = 0.0) -> np.ndarray:
    """A homography turning a page of ``shape`` about its centre, scaling, shifting and tilting it."""
    h, w = shape
    rot = np.vstack([cv2.getRotationMatrix2D((w / 2, h / 2), angle_deg, scale), [0, 0, 1]])
    rot[:2, 2] += shift
    tilt = np.array([[1, 0, 0], [0, 1, 0], [perspective / w, perspective / h / 2, 1]])
    return tilt @ rot


def place(page: np.ndarray, hom: np.ndarray, margin: int = 80) -> tuple[np.ndarray, np.ndarray]:
    """``page`` placed through ``hom`` on a scan ``margin`` px larger all round (white, like a scanner lid).

    Returns the scan and the homography from page to scan pixels.
    """
    full = np.array([[1, 0, margin], [0, 1, margin], [0, 0, 1.0]]) @ hom
    size = (page.shape[1] + 2 * margin, page.shape[0] + 2 * margin)
    return cv2.warpPerspective(page, full, size, flags=cv2.INTER_LINEAR, borderValue=255), full


def scan_noise(page: np.ndarray, seed: int = 0, sigma: float = 4.0, blur: float = 0.8) -> np.ndarray:
    """Scanner blur and sensor noise."""
    rng = np.random.default_rng(seed)
    out = cv2.GaussianBlur(page.astype(np.float32), (0, 0), blur) + rng.normal(0, sigma, page.shape)
    return np.clip(out, 0, 255).astype(np.uint8)


@pytest.fixture(scope="session")
def settings() -> ReadSettings:
    return ReadSettings(workers=1)


@pytest.fixture(scope="session")
def filled(template, mnist):
    """A filled form at 200 dpi and what is written in it."""
    return fill_form(template, mnist)


@pytest.fixture(scope="session")
def synth_batch(tmp_path_factory, mnist) -> Path:
    """Four synthetic sheets with ground truth, rendered by the generator (full artefact range, 200 dpi)."""
    from pipeline.synth import DigitSource, SynthSettings, generate_batch

    out = tmp_path_factory.mktemp("synth")
    return generate_batch(SynthSettings(sheets=4, seed=5, workers=1, gallery_sheets=2), out,
                          DigitSource.from_mnist(mnist))
