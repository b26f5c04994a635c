"""Registration by local features: map a page onto a reference-image template (``registration:
reference_features``).

Forms of unknown print size carry no fiducials; their landmarks are the printed rules, titles and logos. The page
is matched with the template's reference scan:

1. both images are reduced to their print (:func:`print_layer`): darkness against the local paper white, with
   everything fainter than ``PRINT_FRACTION`` of the print's contrast dropped, which removes pale tiled
   watermarks, shading and paper texture;
2. the reference's keypoints (ORB: oriented FAST corners with rotated BRIEF descriptors) are found once per
   template, with the fill-in areas (every field's boxes, grown by ``FILL_MARGIN``, and the template's
   ``fill_in_areas``) masked out, so a reference that was itself filled in does not lend its handwriting;
3. the page is scaled so its long side is the reference's, and its quarter turns (0, 90, 180, 270 degrees) are
   tried, 0 first, until one gives ``CONFIDENT_INLIERS``: descriptors are matched (two nearest neighbours, Lowe's
   ratio test ``RATIO``) and a homography is fitted by RANSAC (``RANSAC_PX`` reprojection error in reference
   pixels). The turn with the most inliers wins;
4. the homography is refined by maximising the correlation of the page's print with the reference's (ECC,
   at ``ECC_SCALE`` of the reference's size). That correlation is the **registration score**.

A page registers when its homography has at least ``MIN_INLIERS`` inliers, is not degenerate (the reference's
corners stay in order, at a scale within ``SCALE_RANGE``) and its score reaches ``MIN_CORRELATION``; otherwise
:func:`register_reference` raises :class:`~pipeline.vision.register.RegistrationError` with the reason and the page
becomes a ``not_a_form`` row. The line agreement (the share of the template's printed box outlines found dark on
the registered page, within ``LINE_TOLERANCE`` pixels) is recorded as evidence. The thresholds were chosen on the
Lampiran reference and a few of its real scans: genuine pages score 0.64-0.82 with 46-282 inliers at 100 dpi;
the certificate page of the same form matches with at most 10 inliers, and ECC does not converge on it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from pipeline.forms.template import MM_PER_INCH, Template
from pipeline.vision.register import Registration, RegistrationError
from pipeline.vision.settings import ReadSettings

#: Keypoints sought on the reference and on each page.
N_FEATURES = 4000
#: ORB's pyramid: scale step and number of levels (pages may show the form at 0.5-2x the reference's scale).
ORB_SCALE_FACTOR, ORB_LEVELS = 1.2, 10
#: Lowe's ratio test: a match is kept when its distance is below this fraction of the second best's.
RATIO = 0.8
#: RANSAC's largest reprojection error, in reference pixels.
RANSAC_PX = 6.0
#: Fewest RANSAC inliers a registration needs.
MIN_INLIERS = 25
#: A quarter turn with this many inliers is taken without trying the others.
CONFIDENT_INLIERS = 60
#: Smallest correlation of the registered page's print with the reference's (the registration score).
MIN_CORRELATION = 0.5
#: Scale (of the reference's size) at which the homography is refined, and the refinement's iterations.
ECC_SCALE, ECC_ITERATIONS = 0.5, 100
#: Gaussian blur (pixels, at ``ECC_SCALE``) that widens printed lines for the refinement.
ECC_BLUR = 5
#: Print darker than this fraction of the print's contrast is kept by :func:`print_layer`.
PRINT_FRACTION = 0.35
#: Window of the local paper white in :func:`print_layer`, as a fraction of the image's long side.
PAPER_WINDOW = 1 / 40
#: Percentile of the darkness taken as the print's full contrast (and its floor, in grey levels).
CONTRAST_PERCENTILE, MIN_CONTRAST = 99.5, 40.0
#: An outline point counts as printed when the darkest pixel within this many pixels is this much darker than
#: the paper (fraction of the page's contrast).
LINE_TOLERANCE, LINE_DARKNESS = 2, 0.3
#: Range of the homography's linear scale (page pixels per reference pixel) that is plausible for a scan.
SCALE_RANGE = (0.15, 8.0)
#: Margin (reference pixels) by which the fields' boxes are grown to mask handwriting out of the reference.
FILL_MARGIN = 6
#: Spacing (reference pixels) of the points sampled along box outlines for the line agreement.
LINE_STEP = 2
#: Percentiles of the registered form's grey levels taken as print black and paper white.
BLACK_PERCENTILE, PAPER_PERCENTILE = 1.0, 90.0
#: Quarter turns tried, clockwise (a page scanned upside down needs 2).
QUARTER_TURNS = (0, 1, 2, 3)


@dataclass(frozen=True, eq=False)
class ReferenceModel:
    """What registration needs of a template's reference image: its print layer (:func:`print_layer`), keypoints
    and descriptors, the printed outline points (reference pixels) the line agreement samples, and the blurred,
    reduced print the refinement correlates with."""

    grey: np.ndarray
    keypoints: np.ndarray
    descriptors: np.ndarray
    line_rows: np.ndarray
    line_cols: np.ndarray
    ecc_print: np.ndarray


@dataclass(frozen=True)
class Match:
    """The best homography for one quarter turn: page pixels -> reference pixels, and its inlier count."""

    turns: int
    homography: np.ndarray | None
    inliers: int
    residual_px: float


def _detector() -> cv2.ORB:
    return cv2.ORB_create(nfeatures=N_FEATURES, scaleFactor=ORB_SCALE_FACTOR, nlevels=ORB_LEVELS)


def print_layer(grey: np.ndarray) -> np.ndarray:
    """The printed (and written) ink of ``grey`` as dark on white, everything fainter than ``PRINT_FRACTION`` of
    the ink's contrast (watermarks, shading, texture) set to white."""
    win = max(15, round(max(grey.shape) * PAPER_WINDOW)) | 1
    paper = cv2.dilate(grey, cv2.getStructuringElement(cv2.MORPH_RECT, (win, win)))
    dark = cv2.subtract(paper, grey).astype(np.float32)
    top = max(MIN_CONTRAST, float(np.percentile(dark, CONTRAST_PERCENTILE)))
    level = np.clip(dark / top, 0.0, 1.0)
    level[level < PRINT_FRACTION] = 0.0
    return (255.0 - 255.0 * level).astype(np.uint8)


def _reference_rects(template: Template) -> list[tuple[float, float, float, float]]:
    """Every box of the template in reference pixels ``(x0, y0, x1, y1)``."""
    scale = 1.0 / template.reference_to_template(MM_PER_INCH)  # template mm -> reference px
    return [(b.x * scale, b.y * scale, (b.x + b.w) * scale, (b.y + b.h) * scale)
            for f in template.fields for b in f.boxes]


def fill_in_mask(template: Template, shape: tuple[int, int]) -> np.ndarray:
    """255 where keypoints may be taken on the reference, 0 over the fill-in areas (fields and ``fill_in_areas``)."""
    mask = np.full(shape, 255, np.uint8)
    rects = _reference_rects(template) + [tuple(map(float, r)) for r in template.raw.get("fill_in_areas", [])]
    for x0, y0, x1, y1 in rects:
        mask[max(0, round(y0) - FILL_MARGIN): round(y1) + FILL_MARGIN,
             max(0, round(x0) - FILL_MARGIN): round(x1) + FILL_MARGIN] = 0
    return mask


def _darkest(grey: np.ndarray, rows: np.ndarray, cols: np.ndarray, tol: int) -> np.ndarray:
    """The darkest grey within ``tol`` pixels of each point."""
    h, w = grey.shape
    return np.min([grey[np.clip(rows + dy, 0, h - 1), np.clip(cols + dx, 0, w - 1)]
                   for dy in range(-tol, tol + 1) for dx in range(-tol, tol + 1)], axis=0)


def _dark_level(grey: np.ndarray) -> float:
    """Grey level below which a pixel counts as printed: ``LINE_DARKNESS`` of the way from paper to black."""
    black, paper = np.percentile(grey, [BLACK_PERCENTILE, PAPER_PERCENTILE])
    return float(paper - LINE_DARKNESS * (paper - black))


def outline_points(template: Template, grey: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Rows and columns (reference pixels) of the box-outline points that are printed dark on the reference."""
    pts = []
    for rx0, ry0, rx1, ry1 in _reference_rects(template):
        x0, y0, x1, y1 = round(rx0), round(ry0), round(rx1) - 1, round(ry1) - 1
        xs, ys = range(x0 + LINE_STEP, x1 - LINE_STEP + 1, LINE_STEP), range(y0 + LINE_STEP, y1, LINE_STEP)
        pts += [(x, y) for x in xs for y in (y0, y1)] + [(x, y) for y in ys for x in (x0, x1)]
    pts = np.unique(np.array(pts, int), axis=0)
    rows, cols = pts[:, 1], pts[:, 0]
    dark = _darkest(grey, rows, cols, 1) < _dark_level(grey)
    return rows[dark], cols[dark]


def line_agreement(registered_ref: np.ndarray, model: ReferenceModel) -> float:
    """Share of the reference's printed outline points that are dark on the page warped onto the reference."""
    if len(model.line_rows) == 0:
        return 0.0
    darkest = _darkest(registered_ref, model.line_rows, model.line_cols, LINE_TOLERANCE)
    return float(np.mean(darkest < _dark_level(registered_ref)))


def ecc_print(layer: np.ndarray) -> np.ndarray:
    """A print layer as the refinement sees it: ink bright, reduced to ``ECC_SCALE`` and blurred."""
    small = cv2.resize(255 - layer, None, fx=ECC_SCALE, fy=ECC_SCALE, interpolation=cv2.INTER_AREA)
    return cv2.GaussianBlur(small.astype(np.float32), (ECC_BLUR, ECC_BLUR), 0)


#: Reference models already built, by (reference path, template name, fields, fill-in areas).
_MODELS: dict[tuple, ReferenceModel] = {}


def _build_model(path: Path, template: Template) -> ReferenceModel:
    grey = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)
    if grey is None:
        raise RegistrationError(f"cannot read the template's reference image {path}")
    if (grey.shape[1], grey.shape[0]) != tuple(template.reference_size):
        raise RegistrationError(f"reference image {path} is {grey.shape[1]}x{grey.shape[0]}, the template says "
                                f"{template.reference_size[0]}x{template.reference_size[1]}")
    layer = print_layer(grey)
    kps, desc = _detector().detectAndCompute(layer, fill_in_mask(template, grey.shape))
    if desc is None or len(kps) < MIN_INLIERS:
        raise RegistrationError(f"reference image {path} has too few features ({len(kps)}) to register on")
    rows, cols = outline_points(template, grey)
    return ReferenceModel(grey, np.float32([k.pt for k in kps]), desc, rows, cols, ecc_print(layer))


def reference_model(template: Template) -> ReferenceModel:
    """The template's reference image, features and outline points (cached per template).

    Raises:
        RegistrationError: the reference image is missing (naming every place looked in) or unusable.
    """
    if template.reference is None:
        raise RegistrationError(f"reference image '{template.raw.get('reference')}' of template '{template.name}' "
                                f"not found; looked in: {', '.join(template.reference_places)}")
    key = (str(template.reference), template.name, template.fields, repr(template.raw.get("fill_in_areas")))
    if key not in _MODELS:
        _MODELS[key] = _build_model(template.reference, template)
    return _MODELS[key]


def turned(grey: np.ndarray, turns: int) -> tuple[np.ndarray, np.ndarray]:
    """``grey`` turned by ``turns`` clockwise quarter turns, and the 3x3 map of its pixels back to ``grey``."""
    h, w = grey.shape
    out = np.rot90(grey, -turns) if turns else grey
    back = {0: np.eye(3), 1: np.array([[0, 1, 0], [-1, 0, h - 1], [0, 0, 1.0]]),
            2: np.array([[-1, 0, w - 1], [0, -1, h - 1], [0, 0, 1.0]]),
            3: np.array([[0, -1, w - 1], [1, 0, 0], [0, 0, 1.0]])}[turns % 4]
    return np.ascontiguousarray(out), back


def scaled_to(grey: np.ndarray, long_side: int) -> tuple[np.ndarray, np.ndarray]:
    """``grey`` resized so its long side is ``long_side``, and the 3x3 map of its pixels back to ``grey``."""
    s = long_side / max(grey.shape)
    size = (max(1, round(grey.shape[1] * s)), max(1, round(grey.shape[0] * s)))
    fx, fy = grey.shape[1] / size[0], grey.shape[0] / size[1]
    inter = cv2.INTER_AREA if s < 1 else cv2.INTER_LINEAR
    back = np.array([[fx, 0, 0.5 * fx - 0.5], [0, fy, 0.5 * fy - 0.5], [0, 0, 1.0]])
    return cv2.resize(grey, size, interpolation=inter), back


def match_turn(layer: np.ndarray, model: ReferenceModel, turns: int) -> Match:
    """Fit page -> reference for one quarter turn of ``layer`` (the scaled page's print); the homography maps
    the unturned layer's pixels."""
    img, back = turned(layer, turns)
    kps, desc = _detector().detectAndCompute(img, None)
    if desc is None or len(kps) < 4:
        return Match(turns, None, 0, float("nan"))
    pairs = cv2.BFMatcher(cv2.NORM_HAMMING).knnMatch(desc, model.descriptors, k=2)
    good = [p[0] for p in pairs if len(p) == 2 and p[0].distance < RATIO * p[1].distance]
    if len(good) < 4:
        return Match(turns, None, len(good), float("nan"))
    src = np.float32([kps[m.queryIdx].pt for m in good])
    dst = model.keypoints[[m.trainIdx for m in good]]
    hom, inl = cv2.findHomography(src, dst, cv2.RANSAC, RANSAC_PX, maxIters=5000, confidence=0.999)
    if hom is None:
        return Match(turns, None, 0, float("nan"))
    keep = inl.ravel().astype(bool)
    proj = cv2.perspectiveTransform(src[keep][None], hom)[0]
    residual = float(np.median(np.linalg.norm(proj - dst[keep], axis=1))) if keep.any() else float("nan")
    return Match(turns, hom @ np.linalg.inv(back), int(keep.sum()), residual)


def best_match(layer: np.ndarray, model: ReferenceModel) -> tuple[Match, int]:
    """The quarter turn whose features match the reference best, and the runner-up's inlier count (-1 when the
    first turn was confident enough for the others not to be tried)."""
    matches: list[Match] = []
    for turns in QUARTER_TURNS:
        matches.append(match_turn(layer, model, turns))
        if turns == 0 and matches[0].inliers >= CONFIDENT_INLIERS:
            return matches[0], -1
    matches.sort(key=lambda m: m.inliers, reverse=True)
    return matches[0], matches[1].inliers


def plausible(hom: np.ndarray, ref_shape: tuple[int, int]) -> str:
    """Why a page -> reference homography is degenerate ("" when it is plausible): the reference's corners must
    map back to a convex quadrilateral in their order, at a scale within ``SCALE_RANGE``."""
    h, w = ref_shape
    corners = np.float32([[0, 0], [w, 0], [w, h], [0, h]])
    try:
        back = cv2.perspectiveTransform(corners[None], np.linalg.inv(hom))[0]
    except np.linalg.LinAlgError:
        return "the fitted homography is singular"
    edges = np.roll(back, -1, axis=0) - back
    nxt = np.roll(edges, -1, axis=0)
    cross = edges[:, 0] * nxt[:, 1] - edges[:, 1] * nxt[:, 0]
    if not np.all(cross > 0):
        return "the fitted homography folds or mirrors the form"
    scale = float(np.sqrt(abs(cv2.contourArea(back)) / (w * h)))
    if not SCALE_RANGE[0] <= scale <= SCALE_RANGE[1]:
        return f"the form would be {scale:.2f}x the reference's size on the page"
    return ""


def refine(layer: np.ndarray, hom: np.ndarray, model: ReferenceModel) -> tuple[np.ndarray, float]:
    """The homography (page layer -> reference) refined by ECC on the blurred prints, and their correlation.

    When the refinement does not converge, the feature homography is kept and its correlation is returned.
    """
    s = np.diag([ECC_SCALE, ECC_SCALE, 1.0])
    h, w = model.ecc_print.shape
    page = cv2.GaussianBlur(cv2.resize(255 - layer, None, fx=ECC_SCALE, fy=ECC_SCALE,
                                       interpolation=cv2.INTER_AREA).astype(np.float32), (ECC_BLUR, ECC_BLUR), 0)
    warp = np.linalg.inv(s @ hom @ np.linalg.inv(s)).astype(np.float32)  # ECC maps reference -> page
    criteria = (cv2.TERM_CRITERIA_EPS | cv2.TERM_CRITERIA_COUNT, ECC_ITERATIONS, 1e-5)
    try:
        corr, warp = cv2.findTransformECC(model.ecc_print, page, warp, cv2.MOTION_HOMOGRAPHY, criteria, None, 1)
        return np.linalg.inv(s) @ np.linalg.inv(warp.astype(np.float64)) @ s, float(corr)
    except cv2.error:
        warped = cv2.warpPerspective(page, np.linalg.inv(warp.astype(np.float64)), (w, h))
        corr = np.corrcoef(warped.ravel(), model.ecc_print.ravel())[0, 1]
        return hom, float(np.nan_to_num(corr))


@dataclass(frozen=True)
class Alignment:
    """A page aligned with the reference: the registration (scan -> template pixels at the reading dpi), the
    inliers of the winning turn and of the runner-up (-1: not tried), the score and the line agreement."""

    registration: Registration
    inliers: int
    runner_up: int
    correlation: float
    line_agreement: float


def register_reference(grey: np.ndarray, template: Template, settings: ReadSettings) -> Alignment:
    """Register ``grey`` (a uint8 page at any size and quarter turn) onto a reference-image template.

    Raises:
        RegistrationError: the reference is missing, too few features match, the homography is degenerate, or the
            page's print does not correlate with the reference's; the message gives the figures and the threshold.
    """
    model = reference_model(template)
    page, back = scaled_to(grey, max(model.grey.shape))
    layer = print_layer(page)
    best, runner_up = best_match(layer, model)
    if best.homography is None or best.inliers < MIN_INLIERS:
        raise RegistrationError(f"only {best.inliers} features match the reference image (at least {MIN_INLIERS} "
                                "needed)")
    why = plausible(best.homography, model.grey.shape)
    if why:
        raise RegistrationError(why)
    hom, corr = refine(layer, best.homography, model)
    if plausible(hom, model.grey.shape):
        hom = best.homography
    if corr < MIN_CORRELATION:
        raise RegistrationError(f"the page's print correlates {corr:.2f} with the reference's (at least "
                                f"{MIN_CORRELATION} needed; {best.inliers} features matched)")
    ref_h, ref_w = model.grey.shape
    on_ref = cv2.warpPerspective(page, hom, (ref_w, ref_h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    agreement = line_agreement(on_ref, model)
    k = template.reference_to_template(settings.dpi)
    to_template = np.diag([k, k, 1.0]) @ hom @ np.linalg.inv(back)
    black, paper = np.percentile(on_ref, [BLACK_PERCENTILE, PAPER_PERCENTILE])
    angle = float(np.degrees(np.arctan2(to_template[1, 0], to_template[0, 0])))
    rotation = -angle + 360.0 if -angle <= -180.0 else -angle
    reg = Registration(homography=to_template, n_fiducials=0, rotation_deg=rotation, mark_found=True,
                       residual_px=best.residual_px * k, paper=float(paper), black=float(black),
                       template_fit=round(corr, 4),
                       orientation_margin=float("nan") if runner_up < 0 else (best.inliers - runner_up) / best.inliers)
    return Alignment(reg, best.inliers, runner_up, corr, agreement)
