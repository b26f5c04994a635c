"""Rendering one sheet: determinism, test-split digits, geometry, and ink where the truth says."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from pipeline.forms.template import MM_PER_INCH
from pipeline.synth import DigitSource, SynthSettings, render_sheet
from pipeline.synth.scan import blank_form, placement, sample_scan
from pipeline.synth.writer import BESIDE_LIMIT_MM
from tests.synth.common import FAST, TAMPERED, fiducials_inside

#: A pixel counts as ink when this much darker than the paper around it.
INK_DROP = 40
NO_DECOR = {"stain_rate": 0.0, "fold_rate": 0.0, "stamp_rate": 0.0, "signature_rate": 0.0}


class SpyDigits(DigitSource):
    """A DigitSource that remembers every (digit, index) it hands out."""

    def __post_init__(self):
        super().__post_init__()
        object.__setattr__(self, "picked", [])

    def pick(self, digit, rng):
        index, img = super().pick(digit, rng)
        self.picked.append((digit, index))
        return index, img


def ink_mask(sheet, template) -> np.ndarray:
    """Handwriting pixels in template coordinates: the scan warped back onto the template, darker than the
    paper, where the printed form has nothing."""
    grey = sheet.image if sheet.image.ndim == 2 else cv2.cvtColor(sheet.image, cv2.COLOR_BGR2GRAY)
    dpi = sheet.truth["dpi"]
    img = cv2.warpPerspective(grey, sheet.homography, template.size_px(dpi),
                              flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP)
    printed = cv2.dilate((blank_form(template, dpi) < 200).astype(np.uint8), np.ones((5, 5), np.uint8)) > 0
    return (img < np.median(img) - INK_DROP) & ~printed


def fraction(mask, dpi, x0, y0, x1, y1) -> np.ndarray:
    """The part of ``mask`` inside a template-mm rectangle."""
    s = dpi / MM_PER_INCH
    return mask[round(y0 * s): round(y1 * s), round(x0 * s): round(x1 * s)]


@pytest.fixture(scope="module")
def tampered_sheets(digits):
    settings = SynthSettings(seed=5, **FAST, **TAMPERED, **NO_DECOR, grey_rate=0.0)
    return [render_sheet(i, settings, digits) for i in range(1, 5)]


def test_same_seed_and_index_give_the_same_pixels(digits):
    s = SynthSettings(**FAST)
    a, b, c = render_sheet(3, s, digits), render_sheet(3, s, digits), render_sheet(4, s, digits)
    assert np.array_equal(a.image, b.image) and a.truth == b.truth and a.boxes == b.boxes
    assert a.image.shape != c.image.shape or not np.array_equal(a.image, c.image)
    assert a.sheet_id == "s000003" and a.image.dtype == np.uint8


def test_digits_come_from_the_mnist_test_split_only(mnist):
    spy = SpyDigits(mnist.x_test, mnist.y_test, "spy")
    sheet = render_sheet(2, SynthSettings(**FAST, **TAMPERED), spy)
    assert spy.picked
    for digit, index in spy.picked:
        assert mnist.y_test[index] == digit
    recorded = {(b["digit"], b["mnist_index"]) for b in sheet.boxes if b["digit"] >= 0}
    recorded |= {(b["old_digit"], b["old_mnist_index"]) for b in sheet.boxes if b["old_mnist_index"] >= 0}
    assert recorded <= set(spy.picked)
    assert DigitSource.from_mnist(mnist).images is mnist.x_test


def test_ink_is_where_the_boxes_say(tampered_sheets, template):
    """Every box with a digit has ink, every empty untouched box is clean; crossout replacements sit beside."""
    for sheet in tampered_sheets:
        mask, dpi = ink_mask(sheet, template), sheet.truth["dpi"]
        for b in sheet.boxes:
            ink = fraction(mask, dpi, b["x0_mm"], b["y0_mm"], b["x1_mm"], b["y1_mm"]).mean()
            if b["digit"] >= 0:
                assert ink > 0.01, (sheet.sheet_id, b)
            elif b["old_digit"] < 0 and b["alteration"] in ("none", "fabricated"):
                assert ink < 0.003, (sheet.sheet_id, b)


def test_crossout_replacements_stay_inside_the_row_left_of_the_limit(tampered_sheets, template):
    beside = [b for s in tampered_sheets for b in s.boxes if b["position"] == "beside"]
    assert beside
    for b in beside:
        row = template.field(b["field"]).bounds
        assert row.x + row.w < b["x0_mm"] and b["x1_mm"] <= BESIDE_LIMIT_MM
        assert (b["y0_mm"], b["y1_mm"]) == (row.y, row.y + row.h)


def test_digits_are_sized_like_handwriting_in_the_boxes(digits, template):
    settings = SynthSettings(seed=9, **FAST, **NO_DECOR, altered_rate_absent=0, altered_rate_present=0,
                             fabricated_rate=0, grey_rate=0)
    heights = []
    for i in range(1, 3):
        sheet = render_sheet(i, settings, digits)
        mask, dpi = ink_mask(sheet, template), sheet.truth["dpi"]
        for b in sheet.boxes:
            if b["digit"] >= 0:
                box = fraction(mask, dpi, b["x0_mm"], b["y0_mm"] - 1.5, b["x1_mm"], b["y1_mm"] + 1.5)
                rows = np.flatnonzero(box.any(axis=1))
                heights.append((rows.max() - rows.min() + 1) / (dpi / MM_PER_INCH) / (b["y1_mm"] - b["y0_mm"]))
    assert 0.6 < np.median(heights) < 0.9


def test_fiducials_always_stay_inside_the_image(template):
    settings = SynthSettings(rotation_deg=5, translate_mm=6, crop_mm=(4, 5), perspective=0.01)
    for i in range(40):
        params = sample_scan(np.random.default_rng(i), settings)
        assert fiducials_inside(params, template)
        loose, _ = placement(params, template, keep_fiducials=False)
        fitted, _ = placement(params, template, keep_fiducials=True)
        if i == 0:  # without the fit this much crop and shift does lose fiducials
            assert not np.allclose(loose, fitted)


def test_upside_down_pages_are_turned_half_way(digits, template):
    sheet = render_sheet(1, SynthSettings(**FAST, upside_down_rate=1.0), digits)
    (cx, cy), h, w = template.fiducial_centres_mm()[0], *sheet.image.shape[:2]
    s = sheet.truth["dpi"] / MM_PER_INCH
    x, y = cv2.perspectiveTransform(np.array([[[cx * s, cy * s]]]), sheet.homography)[0, 0]
    assert sheet.truth["upside_down"] and x > w * 0.8 and y > h * 0.8


def test_grey_scans_have_one_channel_and_colour_scans_three(digits):
    assert render_sheet(1, SynthSettings(**FAST, grey_rate=1.0), digits).image.ndim == 2
    assert render_sheet(1, SynthSettings(**FAST, grey_rate=0.0), digits).image.shape[2] == 3


def test_resolution_sets_the_page_size(digits):
    small = render_sheet(1, SynthSettings(dpi=100, crop_mm=(0, 0), workers=1), digits).image
    large = render_sheet(1, SynthSettings(dpi=150, crop_mm=(0, 0), workers=1), digits).image
    assert small.shape[:2] == (1169, 827) and large.shape[:2] == (1754, 1240)
