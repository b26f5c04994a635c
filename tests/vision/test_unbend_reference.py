"""Unbending on the reference-image path (:mod:`pipeline.vision.unbend_reference`): a curled page of a small
synthetic reference form (the one of ``test_align``) bent by a known displacement is unbent so that its boxes
land where they are on the scan, which the homography alone does not achieve; a flat page is read exactly as
the homography registers it."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import yaml

from pipeline.forms.template import load_template
from pipeline.synth.damage import curl, curled_points
from pipeline.vision import unbend_reference as ur
from pipeline.vision.align import register_reference
from pipeline.vision.page import read_page
from pipeline.vision.register import warp_to_template
from pipeline.vision.unbend import Displacement

from .conftest import place, scan_noise, similarity
from .test_align import COMBS, REF_DPI, REF_H, REF_W, draw_reference, synthetic_form_raw

#: Curl amplitude (mm) of the bent page: a sheet that bows by 3 mm at its edges.
CURL_MM = 3.0
#: Largest box-corner error (mm) allowed after unbending, and the least the homography alone leaves (so that the
#: test says something): a 3 mm bow puts the right-hand combs about 5 mm from the homography's placement (the
#: homography's own error on a flat page of this form is about 0.3 mm).
AFTER_MM, BEFORE_MM = 0.75, 1.5


@pytest.fixture(scope="module")
def form(tmp_path_factory):
    """The synthetic reference form (``test_align``'s) as a template, and its blank page."""
    folder = tmp_path_factory.mktemp("unbend_ref")
    blank = draw_reference()
    cv2.imwrite(str(folder / "ref.png"), blank)
    raw = synthetic_form_raw("synthetic_x1_curl")
    (folder / "x1.yaml").write_text(yaml.safe_dump(raw))
    return load_template(folder / "x1.yaml"), blank


def corners_ref() -> np.ndarray:
    """Every comb box's corners in reference pixels."""
    pts = []
    for x0, y0, x1, y1 in COMBS.values():
        w = (x1 - x0) / 3
        for i in range(3):
            pts += [(x0 + i * w, y0), (x0 + (i + 1) * w, y0), (x0 + i * w, y1), (x0 + (i + 1) * w, y1)]
    return np.array(pts, float)


def scanned(page: np.ndarray, vertical: bool = False, amplitude_mm: float = CURL_MM,
            seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """``page`` bowed by ``amplitude_mm`` (0: flat; negative: the other way), tilted and placed on a scan with
    noise; and where the comb corners truly are on the scan."""
    amplitude = amplitude_mm * REF_DPI / 25.4
    bent = curl(page, amplitude, vertical, 255) if amplitude else page
    hom = similarity(page.shape, 1.5, 0.9, shift=(12.0, -7.0), perspective=0.02)
    scan, full = place(bent, hom, margin=60)
    pts = corners_ref()
    if amplitude:
        pts = curled_points(pts, (page.shape[1], page.shape[0]), amplitude, vertical)
    return scan_noise(scan, seed), cv2.perspectiveTransform(pts[None], full)[0]


def reader_points(hom: np.ndarray, disp: Displacement | None, settings) -> np.ndarray:
    """Where the reader takes the comb corners from on the scan (homography and displacement)."""
    pts = corners_ref() * settings.dpi / REF_DPI
    if disp is not None:
        dx, dy = disp.at(pts[:, 0], pts[:, 1])
        pts = pts + np.stack([dx, dy], axis=1)
    return cv2.perspectiveTransform(pts[None], np.linalg.inv(hom))[0]


def error_mm(read: np.ndarray, truth: np.ndarray, scale: float = 0.9) -> float:
    """Largest distance (mm on the page: the scan shows it at ``scale`` x the reference's dpi) between points."""
    return float(np.linalg.norm(read - truth, axis=1).max() / (scale * REF_DPI / 25.4))


@pytest.mark.parametrize("amplitude_mm", [CURL_MM, -2.0])
def test_a_curled_reference_page_is_unbent_onto_its_boxes(form, settings, amplitude_mm):
    template, blank = form
    scan, truth = scanned(blank, amplitude_mm=amplitude_mm)
    read = read_page(scan, "curled", settings, template)
    assert read.status == "ok", read.reason
    before = error_mm(reader_points(read.homography, None, settings), truth)
    assert before > BEFORE_MM, before  # the homography alone misses the boxes
    assert read.displacement is not None, "a curled page must be unbent"
    after = error_mm(reader_points(read.homography, read.displacement, settings), truth)
    assert after < AFTER_MM, (before, after)
    assert read.unbent_mm > 0
    # the boxes' print is where the template has it on the unbent page
    assert ur.outline_agreement(read.registered, template) >= 0.9


def test_a_flat_reference_page_is_read_as_registered(form, settings):
    template, blank = form
    scan, truth = scanned(blank, amplitude_mm=0)
    read = read_page(scan, "flat", settings, template)
    assert read.status == "ok", read.reason
    assert read.displacement is None and read.unbent_mm == 0.0
    reg = register_reference(scan, template, settings).registration
    assert np.array_equal(read.registered, warp_to_template(scan, reg, template, settings))
    assert error_mm(reader_points(read.homography, None, settings), truth) < AFTER_MM
    disp = ur.measure_reference_displacement(read.registered, template, settings)
    assert disp is not None and ur.field_residual_mm(disp, template, settings) < ur.UNBEND_MIN_MM


def test_the_reference_print_keeps_box_lines_and_blanks_their_interiors(form):
    template, _ = form
    layer = ur.reference_print(template, (REF_W, REF_H))
    x0, y0, x1, y1 = COMBS["left"]
    assert layer[y0 + 8:y1 - 8, x0 + 8:x0 + (x1 - x0) // 3 - 8].min() == 255
    assert layer[(y0 + y1) // 2, x0 - 1:x0 + 2].min() < 128  # the comb's left wall
    assert layer[y0 - 1:y0 + 2, (x0 + x1) // 2].min() < 128  # its top edge
    assert not layer.flags.writeable
