"""Streaks down the scan are measured on the page's blank paper and taken out of every field
(pipeline.vision.streaks)."""

from __future__ import annotations

import numpy as np
import pytest

from pipeline.vision.page import page_streaks, read_page
from pipeline.vision.register import register as register_page
from pipeline.vision.register import warp_to_template
from tests.vision.conftest import place, px, scan_noise, similarity

#: Light left by each streak (a multiplier of the page's grey), its width and spacing (mm) across the scan.
STREAK_LIGHT, STREAK_MM, STREAK_EVERY_MM = 0.75, 0.6, 5.0


def streaked(scan: np.ndarray) -> np.ndarray:
    """``scan`` with dark streaks down its columns, as dust on a sheet-fed scanner's glass leaves them."""
    light = np.ones(scan.shape[1], np.float32)
    for x in np.arange(0, scan.shape[1], px(STREAK_EVERY_MM)):
        light[round(x):round(x + px(STREAK_MM))] = STREAK_LIGHT
    return np.round(scan.astype(np.float32) * light[None, :]).astype(np.uint8)


@pytest.fixture(scope="module")
def scans(filled):
    page, _ = filled
    scan, _ = place(page, similarity(page.shape, 2.5, 1.0, (6, -4)))
    clean = scan_noise(scan)
    return clean, scan_noise(streaked(scan))


def test_streaks_down_a_skewed_page_are_found_and_a_clean_page_has_none(template, settings, scans):
    clean, striped = scans
    found = []
    for scan in (clean, striped):
        reg = register_page(scan, template, settings)
        found.append(page_streaks(warp_to_template(scan, reg, template, settings), reg, template, settings))
    assert found[0] is None
    assert found[1] is not None
    share = np.count_nonzero(found[1].level) / found[1].level.size
    assert 0.1 < share < 0.5  # about a streak's width per spacing of the lines, at the fields' columns


def test_boxes_under_streaks_are_read_as_on_the_clean_page(template, settings, scans):
    clean, striped = scans
    before, after = (read_page(scan, "s", settings, template) for scan in (clean, striped))
    statuses = [{(c.field, c.box): c.box_status for c in read.crops} for read in (before, after)]
    changed = [key for key in statuses[0] if statuses[0][key] != statuses[1].get(key)]
    assert len(changed) <= 2, changed
