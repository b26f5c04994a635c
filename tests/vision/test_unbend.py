"""Unbending: a curled page is followed beyond the homography, using the form's print only."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from pipeline.forms import render_blank
from pipeline.vision.page import read_page
from pipeline.vision.settings import OK, ReadSettings
from pipeline.vision.unbend import Displacement, estimate_displacement
from tests.vision.conftest import DPI, place, scan_noise, similarity

#: Largest bow of the test curl (mm): rows at the page edges move this far, the middle half of it the other way.
CURL_MM = 3.0


def curl_fields(shape: tuple[int, int], amplitude_px: float) -> tuple[np.ndarray, np.ndarray]:
    """A cylinder-like bend (every column moved up or down by a parabola across the page) and a gentle
    sideways wave: the displacement ``(dx, dy)`` of each pixel."""
    h, w = shape
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
    u = xs / w * 2 - 1
    return 0.4 * amplitude_px * np.sin(ys / h * np.pi), 1.5 * amplitude_px * (u ** 2 - 1 / 3)


def bent(page: np.ndarray, dx: np.ndarray, dy: np.ndarray) -> np.ndarray:
    """``page`` with the content at p moved to about p + d."""
    ys, xs = np.mgrid[0:page.shape[0], 0:page.shape[1]].astype(np.float32)
    return cv2.remap(page, xs - dx, ys - dy, cv2.INTER_LINEAR, borderValue=255)


def box_corners_px(template) -> np.ndarray:
    return np.array([(x, y) for f in template.fields for b in f.boxes
                     for x, y in ((b.x, b.y), (b.x + b.w, b.y + b.h))]) * DPI / 25.4


def displacement_at(dx: np.ndarray, dy: np.ndarray, pts: np.ndarray) -> np.ndarray:
    """Where the content of template points ``pts`` sits on the bent page, minus ``pts`` (fixed point of p + d)."""
    h, w = dx.shape
    d = np.zeros_like(pts)
    for _ in range(6):
        q = np.clip(np.round(pts + d).astype(int), 0, [w - 1, h - 1])
        d = np.stack([dx[q[:, 1], q[:, 0]], dy[q[:, 1], q[:, 0]]], axis=1)
    return d


def test_a_known_bend_of_the_blank_form_is_measured_at_every_box(template):
    settings = ReadSettings(dpi=DPI)
    page = render_blank(template, DPI)
    dx, dy = curl_fields(page.shape, CURL_MM * settings.px_per_mm)
    disp = estimate_displacement(cv2.GaussianBlur(bent(page, dx, dy), (0, 0), 0.8), template, settings)
    corners = box_corners_px(template)
    found = np.stack(disp.at(corners[:, 0], corners[:, 1]), axis=1)
    error_mm = np.linalg.norm(found - displacement_at(dx, dy, corners), axis=1) / settings.px_per_mm
    assert np.median(error_mm) < 0.15 and np.quantile(error_mm, 0.9) < 0.3


def test_a_curled_scan_is_unbent_and_read(template, filled, settings):
    page, _ = filled
    dx, dy = curl_fields(page.shape, CURL_MM * settings.px_per_mm)
    scan, _ = place(bent(page, dx, dy), similarity(page.shape, 2.0))
    read = read_page(scan_noise(scan), "curled", settings, template)
    assert read.status == OK and read.displacement is not None
    assert read.unbent_mm > CURL_MM / 2 and read.line_agreement > 0.9


def test_a_flat_scan_is_not_unbent(template, filled, settings):
    page, _ = filled
    scan, _ = place(page, similarity(page.shape, 2.0))
    read = read_page(scan_noise(scan), "flat", settings, template)
    assert read.status == OK and read.displacement is None and read.unbent_mm == 0.0


def test_a_displacement_survives_its_json_column():
    disp = Displacement(40.0, np.arange(12.0).reshape(3, 4), -np.arange(12.0).reshape(3, 4), (120, 80), 17)
    back = Displacement.from_json(disp.to_json())
    xs, ys = np.array([0.0, 55.5, 119.0]), np.array([0.0, 33.3, 79.0])
    assert np.allclose(np.stack(back.at(xs, ys)), np.stack(disp.at(xs, ys)))
    assert back.size == disp.size and back.patches_used == 17


def test_a_displacement_interpolates_its_nodes_bilinearly():
    disp = Displacement(10.0, np.array([[0.0, 10.0], [0.0, 10.0]]), np.zeros((2, 2)), (10, 10), 4)
    dx, _ = disp.at(np.array([0.0, 2.5, 10.0]), np.array([5.0, 5.0, 5.0]))
    assert dx == pytest.approx([0.0, 2.5, 10.0])
