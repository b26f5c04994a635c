"""Registration: the form is found and mapped back onto the template whatever the scan did to it."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from pipeline.vision.page import read_page
from pipeline.vision.register import RegistrationError, register, warp_to_template
from pipeline.vision.settings import NOT_A_FORM, OK, ORIENTATION_UNCERTAIN, ReadSettings
from tests.vision.conftest import DPI, fill_form, place, px, scan_noise, similarity


def box_corners(template, dpi: float = DPI) -> np.ndarray:
    """Every box corner of the template in pixel-centre coordinates at ``dpi``."""
    pts = [(x, y) for f in template.fields for b in f.boxes for x, y in ((b.x, b.y), (b.x + b.w, b.y + b.h))]
    return np.array(pts, np.float64) * dpi / 25.4 - 0.5


def corner_error_px(template, known: np.ndarray, found: np.ndarray, scan_dpi: float = DPI) -> float:
    """Largest distance between where the box corners should land after registration and where they do."""
    corners = box_corners(template, scan_dpi)[None]
    on_scan = cv2.perspectiveTransform(corners, known)
    back = cv2.perspectiveTransform(on_scan, found)[0]
    return float(np.linalg.norm(back - box_corners(template, DPI), axis=1).max())


@pytest.mark.parametrize("angle, scale, shift, perspective", [
    (0.0, 1.0, (0, 0), 0.0),
    (4.5, 1.0, (30, -20), 0.0),
    (-5.0, 0.97, (-15, 25), 0.02),
    (2.0, 1.03, (10, 10), -0.03),
])
def test_registration_recovers_a_known_homography(template, filled, settings, angle, scale, shift, perspective):
    page, _ = filled
    scan, known = place(page, similarity(page.shape, angle, scale, shift, perspective))
    reg = register(scan_noise(scan), template, settings)
    assert reg.n_fiducials == 4 and reg.mark_found
    assert corner_error_px(template, known, reg.homography) < 1.0
    assert reg.rotation_deg == pytest.approx(-angle, abs=0.3)  # OpenCV angles are counter-clockwise


@pytest.mark.parametrize("scan_dpi", [150, 300])
def test_registration_works_at_other_scan_resolutions(template, mnist, settings, scan_dpi):
    page, _ = fill_form(template, mnist, seed=1, dpi=scan_dpi)
    scan, known = place(page, similarity(page.shape, 3.0, 1.0, (5, 5)))
    reg = register(scan_noise(scan), template, settings)
    assert corner_error_px(template, known, reg.homography, scan_dpi) < 1.0


@pytest.mark.parametrize("turns", [1, 2, 3])
def test_pages_scanned_sideways_or_upside_down_are_turned_back(template, filled, settings, turns):
    page, _ = filled
    scan, _ = place(page, similarity(page.shape, 2.0))
    scan = np.ascontiguousarray(np.rot90(scan_noise(scan), k=-turns))
    read = read_page(scan, "turned", settings, template)
    assert read.status == OK
    assert read.flipped == (turns == 2)
    assert read.rotation_fixed_deg == pytest.approx((90 * turns - 2.0 + 180) % 360 - 180, abs=0.5)
    assert read.score > 0.95


def test_a_hidden_corner_square_still_registers_on_three(template, filled, settings):
    page, _ = filled
    hidden = page.copy()
    r = template.fiducials[2]  # bottom right, e.g. under a stain or torn off
    x0, y0, x1, y1 = r.to_px(DPI)
    hidden[y0 - 4:y1 + 4, x0 - 4:x1 + 4] = 255
    scan, known = place(hidden, similarity(page.shape, -3.0, 1.0, (8, -6)))
    reg = register(scan_noise(scan), template, settings)
    assert reg.n_fiducials == 3
    assert corner_error_px(template, known, reg.homography) < 1.5


def test_registered_page_lines_up_with_the_template(template, filled, settings):
    page, _ = filled
    scan, _ = place(page, similarity(page.shape, 4.0, 1.02, (12, -9), 0.02))
    scan = scan_noise(scan)
    reg = register(scan, template, settings)
    registered = warp_to_template(scan, reg, template, settings)
    frame_x = round(px(template.frame.x))  # the frame's left edge is printed at this column
    rows = slice(round(px(60)), round(px(240)))
    assert registered[rows, frame_x].mean() < 100
    assert registered[rows, frame_x + 8].mean() > 200


@pytest.mark.parametrize("maker", ["blank", "noise", "photo"])
def test_pages_that_are_not_the_form_are_refused_with_a_reason(template, settings, maker):
    rng = np.random.default_rng(3)
    shape = (2339, 1654)
    if maker == "blank":
        image = np.full(shape, 250, np.uint8)
    elif maker == "noise":
        image = rng.integers(0, 256, shape, dtype=np.uint8)
    else:  # a "photo": smooth shading with dark rectangles and squares of all sizes
        image = cv2.GaussianBlur(rng.integers(60, 230, (24, 17)).astype(np.uint8), (0, 0), 2)
        image = cv2.resize(image, shape[::-1], interpolation=cv2.INTER_CUBIC)
        for _ in range(40):
            x, y, s = rng.integers(0, 1500), rng.integers(0, 2200), rng.integers(20, 150)
            cv2.rectangle(image, (int(x), int(y)), (int(x + s), int(y + s)), int(rng.integers(0, 80)), -1)
    read = read_page(image, maker, settings, template)
    assert read.status == NOT_A_FORM
    assert "not this form" in read.reason and read.crops == () and read.registered is None


def test_register_names_what_it_found_on_a_blank_page(template, settings):
    with pytest.raises(RegistrationError, match="found 0 of the form's 4 corner squares"):
        register(np.full((2339, 1654), 250, np.uint8), template, settings)


def test_registration_score_is_lower_for_a_misregistered_page(template, filled):
    page, _ = filled
    strict = ReadSettings(workers=1)
    good = read_page(page, "good", strict, template)
    assert good.score > 0.95
    shifted = page.copy()
    shifted[:, 40:] = page[:, :-40]  # the printed boxes moved, the corner squares did not
    for r in template.fiducials:
        x0, y0, x1, y1 = r.to_px(DPI)
        shifted[y0:y1, x0:x1] = page[y0:y1, x0:x1]
    bad = read_page(shifted, "bad", strict, template)
    assert bad.line_agreement < good.line_agreement - 0.3


def corner_homography(shape: tuple[int, int], shifts: np.ndarray) -> np.ndarray:
    """A homography moving each page corner (TL, TR, BR, BL) by ``shifts`` (fractions of the page diagonal)."""
    h, w = shape
    src = np.array([[0, 0], [w, 0], [w, h], [0, h]], np.float32)
    dst = src + np.asarray(shifts, np.float32).reshape(4, 2) * np.hypot(w, h)
    return cv2.getPerspectiveTransform(src, dst.astype(np.float32))


#: Phone-photo keystones: each corner moved by up to 5% of the page diagonal.
KEYSTONES = [
    [0.05, 0.0, -0.05, 0.0, 0.0, 0.0, 0.0, 0.0],
    [0.0, 0.05, 0.0, 0.0, -0.03, -0.05, 0.04, -0.02],
    [-0.05, -0.05, 0.05, -0.05, 0.0, 0.0, 0.0, 0.0],
    [0.03, -0.04, -0.05, 0.02, 0.04, 0.05, -0.02, -0.03],
]


@pytest.mark.parametrize("shifts", KEYSTONES)
def test_phone_photo_perspective_of_five_percent_registers_on_all_four_corners(template, filled, settings, shifts):
    page, _ = filled
    scan, known = place(page, corner_homography(page.shape, shifts), margin=200)
    reg = register(scan_noise(scan), template, settings)
    assert reg.n_fiducials == 4 and reg.mark_found
    assert corner_error_px(template, known, reg.homography) < 1.5


@pytest.mark.parametrize("turns", [1, 2, 3])
@pytest.mark.parametrize("shifts", KEYSTONES[2:])
def test_a_turned_page_under_strong_perspective_is_turned_back_not_read_upside_down(template, filled, settings,
                                                                                     turns, shifts):
    page, _ = filled
    scan, known = place(page, corner_homography(page.shape, shifts), margin=200)
    scan = np.ascontiguousarray(np.rot90(scan_noise(scan), k=-turns))
    read = read_page(scan, "turned", settings, template)
    assert read.status == OK
    assert read.flipped == (turns == 2)
    assert read.orientation_margin >= settings.orientation_margin
    assert read.line_agreement > 0.9


def test_a_bled_orientation_mark_is_never_taken_for_a_corner_square(template, settings):
    from pipeline.vision.register import fiducial_blobs
    px_per_mm = 10
    fid, mark = round(template.fiducials[0].w * px_per_mm), round(template.orientation_mark.w * px_per_mm)
    mask = np.zeros((400, 400), np.uint8)
    bled_mark = round(mark * 1.35)  # ink bleed fattens the 3.5 mm mark by a third: within the size tolerance
    mask[20:20 + bled_mark, 20:20 + bled_mark] = 1
    mask[200:200 + fid, 200:200 + fid] = 1
    assert abs(bled_mark / fid - 1) <= settings.fiducial_size_tolerance  # the old size filter let it through
    found = fiducial_blobs(mask, fid, mark, settings)
    assert [(b.x, b.y) for b in found] == [((2 * 200 + fid - 1) / 2,) * 2]  # the corner square alone


def test_a_page_that_fits_the_form_both_ways_up_is_orientation_uncertain_not_read(template, filled, settings):
    page, _ = filled
    both_ways = np.minimum(page, page[::-1, ::-1])  # the print of the form and of the form turned over
    scan, _ = place(both_ways, similarity(page.shape, 1.5))
    read = read_page(scan_noise(scan), "both", settings, template)
    assert read.status == ORIENTATION_UNCERTAIN
    assert "orientation not clear" in read.reason and read.crops == () and read.registered is None


def test_the_orientation_is_never_decided_by_the_mark_alone(template, filled, settings):
    page, _ = filled
    no_mark = page.copy()
    x0, y0, x1, y1 = template.orientation_mark.to_px(DPI)
    no_mark[y0 - 2:y1 + 2, x0 - 2:x1 + 2] = 255  # the mark torn off or covered
    scan, _ = place(no_mark, similarity(page.shape, 2.0))
    scan = np.ascontiguousarray(np.rot90(scan_noise(scan), k=2))
    read = read_page(scan, "no-mark", settings, template)
    assert read.status == OK and read.flipped
    assert "orientation mark not found" in read.reason


def test_four_corner_squares_are_preferred_to_three_that_fit_slightly_better():
    from pipeline.vision.register import FOUR_CORNER_BONUS, Blob, Layout, _preference
    blobs = tuple(Blob(float(i), float(i), 1.0) for i in range(4))
    four = Layout(blobs, (0, 1, 2, 3), 1.0, 0.0, np.eye(3), fit=0.95)
    three = Layout(blobs[:3], (0, 1, 2), 1.0, 0.0, np.eye(3), fit=0.95 + FOUR_CORNER_BONUS / 2)
    clearly_better_three = Layout(blobs[:3], (0, 1, 2), 1.0, 0.0, np.eye(3), fit=0.95 + 2 * FOUR_CORNER_BONUS)
    assert sorted([three, four], key=_preference)[0] is four
    assert sorted([four, clearly_better_three], key=_preference)[0] is clearly_better_three


@pytest.mark.parametrize("degrees", [-4.0, 0.0, 3.0, 87.0, 180.0, -93.0])
def test_the_scan_axis_nearest_the_forms_rows_gives_the_slope_bands_cross_it_at(degrees):
    from pipeline.vision.register import scan_axis_slope

    turn = np.vstack([cv2.getRotationMatrix2D((500.0, 700.0), degrees, 1.0), [0.0, 0.0, 1.0]])
    # cv2 turns counter-clockwise on screen for positive degrees: a scan row then rises to the right (-tan).
    expected = -np.tan(np.radians(((degrees + 45) % 90) - 45))
    assert scan_axis_slope(turn, (300.0, 200.0)) == pytest.approx(expected, abs=1e-9)


@pytest.mark.parametrize("degrees", [-4.0, 0.0, 3.0, 87.0, 180.0])
def test_the_scan_axis_nearest_the_forms_columns_gives_the_slope_streaks_run_down_it_at(degrees):
    from pipeline.vision.register import scan_axis_slope

    turn = np.vstack([cv2.getRotationMatrix2D((500.0, 700.0), degrees, 1.0), [0.0, 0.0, 1.0]])
    # a scan column turned counter-clockwise on screen leans right going down: +tan (columns per row)
    expected = np.tan(np.radians(((degrees + 45) % 90) - 45))
    assert scan_axis_slope(turn, (300.0, 200.0), down=True) == pytest.approx(expected, abs=1e-9)


def _umeyama(src: np.ndarray, dst: np.ndarray) -> tuple[np.ndarray, float] | None:
    """The textbook SVD form of the similarity fit, to check the closed form against."""
    mu_s, mu_d = src.mean(0), dst.mean(0)
    s, d = src - mu_s, dst - mu_d
    u, sig, vt = np.linalg.svd(d.T @ s / len(src))
    if np.linalg.det(u @ vt) < 0:
        return None
    scale = sig.sum() / ((s ** 2).sum() / len(src))
    mat = np.hstack([scale * u @ vt, (mu_d - scale * u @ vt @ mu_s)[:, None]])
    return mat, float(np.linalg.norm(src @ mat[:, :2].T + mat[:, 2] - dst, axis=1).max())


def test_similarity_fit_is_umeyamas_and_refuses_mirror_images():
    from pipeline.vision.register import fit_similarity

    rng = np.random.default_rng(5)
    for k in range(300):
        src = rng.random((3 + k % 2, 2)) * 2000
        dst = src @ np.array([[0.08, -0.03], [0.03, 0.08]]) + 7 + rng.normal(0, 2, src.shape)
        if k % 3 == 0:
            dst[:, 0] = -dst[:, 0]  # a mirror image: no rotation gives it
        expected, got = _umeyama(src, dst), fit_similarity(src, dst)
        assert (expected is None) == (got is None)
        if expected is not None:
            np.testing.assert_allclose(got[0], expected[0], rtol=1e-9, atol=1e-9)
            assert got[1] == pytest.approx(expected[1], rel=1e-9, abs=1e-9)
    assert fit_similarity(np.array([[0.0, 0], [1, 0], [0, 1]]), np.array([[0.0, 0], [0, 1], [1, 0]])) is None
