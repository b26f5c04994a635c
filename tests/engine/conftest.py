"""Fixtures for the engine's tests: a folder of small filled forms (one page written under several names)."""

from __future__ import annotations

from pathlib import Path

import cv2
import pytest

from tests.vision.conftest import fill_form

SHEETS = 8


@pytest.fixture(scope="session")
def page(template, mnist):
    """One filled form at 200 dpi."""
    return fill_form(template, mnist, seed=3)[0]


@pytest.fixture
def scans(tmp_path, page) -> Path:
    """``SHEETS`` copies of the filled form as PNG files ``s0.png`` ... in ``tmp_path/scans``."""
    folder = tmp_path / "scans"
    folder.mkdir()
    for i in range(SHEETS):
        cv2.imwrite(str(folder / f"s{i}.png"), page)
    return folder
