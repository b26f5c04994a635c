"""Scan damage and placement of the wide generator: each effect changes the image the way it should."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from pipeline.forms.template import MM_PER_INCH
from pipeline.synth import SynthSettings, render_sheet
from pipeline.synth.damage import (
    Damage,
    apply_damage,
    band_profile,
    bleed,
    curl,
    curled_points,
    faded,
    light_field,
    photocopy,
    quarter_turn,
    sample_damage,
    shadow_mask,
)
from pipeline.synth.scan import sample_scan
from pipeline.synth.sheet import _damaged_scan
from tests.synth.common import FAST, fiducials_inside

PAPER = 235
INK = 40
DPI = 100
PX_PER_MM = DPI / MM_PER_INCH


@pytest.fixture
def lines() -> np.ndarray:
    """A grey page with a thin horizontal and a thin vertical dark line."""
    img = np.full((300, 200), PAPER, np.uint8)
    img[150, 20:180] = INK
    img[40:260, 100] = INK
    return img


def dark(img: np.ndarray) -> int:
    return int((img < (PAPER + INK) / 2).sum())


def test_bleed_thickens_dark_strokes_and_keeps_the_paper(lines):
    light, heavy = bleed(lines, 0.6), bleed(lines, 2.5)
    assert dark(lines) < dark(light) < dark(heavy) and dark(heavy) > 3 * dark(lines)
    assert (heavy <= lines).all() and heavy[10, 10] == PAPER
    assert np.array_equal(bleed(lines, 0), lines)


def test_banding_is_periodic_and_as_deep_as_asked():
    profile = band_profile(400, 40.0, 0.2, 0.0, 1.0)
    assert profile.min() == pytest.approx(0.8, abs=0.01) and profile.max() == pytest.approx(1.0, abs=0.01)
    assert np.allclose(profile[:200], profile[40:240], atol=1e-4)
    field = light_field(np.random.default_rng(0), Damage(banding_depth=0.2, banding_period_mm=10.0),
                        (200, 300), PX_PER_MM)
    assert field.shape == (300, 200)
    assert np.ptp(field[:, 100].astype(int)) > 30 and np.ptp(field[150, :].astype(int)) <= 2  # horizontal bands
    vertical = light_field(np.random.default_rng(0), Damage(banding_depth=0.2, banding_period_mm=10.0,
                                                            banding_vertical=True), (200, 300), PX_PER_MM)
    assert np.ptp(vertical[150, :].astype(int)) > 30 and np.ptp(vertical[:, 100].astype(int)) <= 2


def test_shadow_darkens_one_side_smoothly():
    for seed in range(8):
        mask = shadow_mask(np.random.default_rng(seed), (120, 80))
        edges = [mask[0].mean(), mask[:, -1].mean(), mask[-1].mean(), mask[:, 0].mean()]
        assert max(edges) > 0.8 and min(edges) < 0.3
        assert np.abs(np.diff(mask, axis=0)).max() < 0.5 and np.abs(np.diff(mask, axis=1)).max() < 0.5
    field = light_field(np.random.default_rng(1), Damage(shadow_depth=0.5), (200, 300), PX_PER_MM)
    assert field.min() < 255 * 0.6 and field.max() > 250


def test_curl_bows_straight_lines():
    lines = np.full((300, 200), PAPER, np.uint8)
    lines[150] = INK
    bent = curl(lines, 6.0, vertical=False, fill=PAPER)
    left, middle, right = (int(np.argmin(bent[:, x])) for x in (2, 100, 197))
    assert left < 150 - 3 and left == pytest.approx(right, abs=1)  # the line rises towards both edges...
    assert middle > 150  # ...and sags in the middle: an arc, with the page still in place on average
    assert bent.shape == lines.shape and np.isclose(bent.mean(), lines.mean(), atol=1)


@pytest.mark.parametrize("vertical", [False, True])
def test_curled_points_follow_the_curl(vertical):
    image = np.full((300, 200), PAPER, np.uint8)
    points = np.array([[12.0, 15.0], [100.0, 150.0], [188.0, 285.0]])
    for x, y in points:
        image[int(y) - 1: int(y) + 2, int(x) - 1: int(x) + 2] = INK
    bent = curl(image, 6.0, vertical, PAPER)
    for (x, y), (cx, cy) in zip(points, curled_points(points, (200, 300), 6.0, vertical), strict=True):
        patch = bent[int(cy) - 4: int(cy) + 5, int(cx) - 4: int(cx) + 5]
        assert patch.min() < (PAPER + INK) / 2, (x, y, cx, cy)
    moved = curled_points(points, (200, 300), 6.0, vertical) - points
    assert np.abs(moved[[0, 2]]).max() > 3  # near the edges the points moved


def test_photocopy_raises_contrast_and_adds_speckle(lines):
    grey = np.full((300, 200), 220, np.uint8)
    grey[150, 20:180] = 90
    out = photocopy(grey, np.random.default_rng(0), PX_PER_MM)
    assert (out > 240).mean() > 0.9  # paper goes white...
    assert out[150, 100] < 40  # ...strokes go black
    assert (out < 100).sum() > (grey < 100).sum()  # ...and toner specks appear


def test_faded_copy_narrows_the_tones(lines):
    out = faded(lines, np.random.default_rng(0))
    assert out.min() > lines.min() and out.max() <= 245 and out[150, 100] < out[10, 10]


def test_apply_damage_changes_nothing_without_damage(lines):
    assert np.array_equal(apply_damage(lines, Damage(), np.random.default_rng(0), DPI, PAPER), lines)


def test_quarter_turns_rotate_the_image_and_the_homography(digits, template):
    settings = SynthSettings(**FAST, quarter_turn_rate=1.0, upside_down_rate=0.0)
    seen = set()
    for index in range(1, 5):
        sheet = render_sheet(index, settings, digits)
        turns = sheet.truth["quarter_turns"]
        seen.add(turns)
        plain = render_sheet(index, SynthSettings(**FAST, upside_down_rate=0.0), digits)
        assert np.array_equal(sheet.image, np.rot90(plain.image, turns))
        s = sheet.truth["dpi"] / MM_PER_INCH
        for (cx, cy) in template.fiducial_centres_mm():  # every fiducial centre lands on its dark square
            x, y = cv2.perspectiveTransform(np.array([[[cx * s, cy * s]]]), sheet.homography)[0, 0]
            grey = sheet.image if sheet.image.ndim == 2 else sheet.image.mean(axis=2)
            assert grey[round(y), round(x)] < 100
    assert seen <= {1, 2, 3} and len(seen) >= 2


def test_quarter_turn_of_zero_is_a_no_op(lines):
    hom = np.eye(3)
    out, h = quarter_turn(lines, hom, 0)
    assert out is lines and h is hom


@pytest.mark.parametrize("style", ["strong_perspective", "tilt"])
def test_perspective_styles_keep_every_fiducial_inside_the_image(style, template):
    settings = SynthSettings(style_set="all", strong_perspective_rate=1.0 if style == "strong_perspective" else 0.0,
                             tilt_rate=1.0, rotation_deg=5, translate_mm=6)
    low, high = settings.strong_perspective if style == "strong_perspective" else settings.tilt_perspective
    for i in range(30):
        rng = np.random.default_rng(i)
        damage = sample_damage(rng, settings)
        assert style in damage.styles
        params = _damaged_scan(sample_scan(rng, settings), damage)
        assert low <= params.perspective <= high + 1e-9
        assert fiducials_inside(params, template)


def test_perspective_setting_works_up_to_five_percent(digits, template):
    sheet = render_sheet(3, SynthSettings(**FAST, perspective=0.05), digits)
    assert 0 < sheet.truth["perspective"] <= 0.05
    s = sheet.truth["dpi"] / MM_PER_INCH
    h, w = sheet.image.shape[:2]
    for (cx, cy) in template.fiducial_centres_mm():
        x, y = cv2.perspectiveTransform(np.array([[[cx * s, cy * s]]]), sheet.homography)[0, 0]
        assert 0 <= x < w and 0 <= y < h


def test_photocopied_sheets_are_grey_and_damage_is_recorded(digits):
    settings = SynthSettings(**FAST, style_set="train", photocopy_rate=1.0, bleed_rate=1.0, grey_rate=0.0)
    sheet = render_sheet(1, settings, digits)
    assert sheet.image.ndim == 2 and sheet.truth["photocopy"] and sheet.truth["grey"]
    assert "photocopy" in sheet.truth["scan_damage"] and "light_bleed" in sheet.truth["scan_damage"]
    assert 0 < sheet.truth["bleed_mm"] <= settings.light_bleed_mm[1]
    held = render_sheet(1, SynthSettings(**FAST, style_set="heldout", curl_rate=1.0, shadow_rate=1.0,
                                         banding_rate=1.0, bleed_rate=1.0), digits).truth
    assert {"curl", "shadow", "banding", "heavy_bleed"} <= set(held["scan_damage"].split(";"))
    assert held["curl_mm"] > 0 and held["shadow_depth"] > 0 and held["banding_depth"] > 0
    assert held["bleed_mm"] >= settings.heavy_bleed_mm[0]


def test_jpeg_quality_can_be_widened_to_40_95():
    settings = SynthSettings(jpeg_quality=(40, 95))
    qualities = [sample_scan(np.random.default_rng(i), settings).jpeg_quality for i in range(200)]
    assert 40 <= min(qualities) < 45 and 90 < max(qualities) <= 95
