"""Registration: find the printed form on a scan and map it onto the template with a homography.

The form carries four solid corner squares (fiducials) and a small orientation mark beside the top-left one.
The search runs on a coarse copy of the page: solid, square, fiducial-sized ink blobs are candidates; the layout
of four (or, if one is hidden, three) candidates that best fits the template's fiducial rectangle is chosen, in
the quarter turn where the orientation mark appears (so upside-down and sideways pages are turned back). The
centres are then refined at full resolution and give the homography. Quality is the fraction of fiducials found
times the fraction of the template's printed lines (frame and boxes) that land on dark pixels after warping.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, field
from functools import lru_cache

import cv2
import numpy as np

from pipeline.forms.template import MM_PER_INCH, Rect, Template
from pipeline.vision.settings import ReadSettings

#: Side of the coarse paper-level filter, in fiducial sizes: it must span a fiducial to see paper around it.
PAPER_FILTER_SIDES = 2.5
#: Aspect ratio range of a candidate's bounding box (a square rotated by a few degrees stays close to 1).
MAX_ASPECT = 1.4
#: Scans this many times finer than the reading resolution are area-shrunk first (linear warping would alias).
SHRINK_ABOVE = 1.25
#: Percentiles of a fiducial's neighbourhood taken as its print black and paper white.
BLACK_PERCENTILE, PAPER_PERCENTILE = 5.0, 95.0
#: Half-width of the window a square's centre is refined in, in square sides: room for the coarse position's
#: error, not for the neighbours (the mark is 2 mm from the top-left fiducial).
REFINE_WINDOW = 0.8


class RegistrationError(Exception):
    """The page does not show this form (no fiducial layout fits); the message says what was found."""


@dataclass(frozen=True)
class Blob:
    """A candidate square on the scan: centre and side in scan pixels."""

    x: float
    y: float
    side: float


@dataclass(frozen=True)
class Layout:
    """Scan fiducials matched to template corners (indices into TL, TR, BR, BL) and the fit's quality."""

    points: tuple[Blob, ...]
    corners: tuple[int, ...]
    error: float
    angle_deg: float
    mark: Blob | None


@dataclass(frozen=True)
class Registration:
    """Result of registration: the homography (scan pixels -> template pixels at the reading dpi) and evidence."""

    homography: np.ndarray = field(repr=False)
    n_fiducials: int
    rotation_deg: float
    mark_found: bool
    residual_px: float
    paper: float
    black: float

    @property
    def quarter_turns(self) -> int:
        """Clockwise quarter turns the page was scanned with (2 = upside down)."""
        return round(self.rotation_deg / 90.0) % 4


def _scan_px_per_mm(shape: tuple[int, ...], template: Template) -> float:
    """Scan resolution guessed from the page size: the long side of the image is the long side of the form."""
    return max(shape[:2]) / max(template.width_mm, template.height_mm)


def shrink(grey: np.ndarray, scale: float) -> tuple[np.ndarray, np.ndarray]:
    """``grey`` shrunk by ``scale`` (never enlarged) and the 3x3 map of its pixel coordinates back to ``grey``.

    Halvings use the Gaussian pyramid (several times faster than area averaging at the same quality); the last
    step, by less than two, averages areas.
    """
    back = np.eye(3)
    while scale <= 0.5:
        grey, scale = cv2.pyrDown(grey), scale * 2
        back = back @ np.diag([2.0, 2.0, 1.0])  # pyrDown samples the even pixels: x_before = 2 x_after
    if scale >= 1.0:
        return grey, back
    size = (max(1, round(grey.shape[1] * scale)), max(1, round(grey.shape[0] * scale)))
    fx, fy = grey.shape[1] / size[0], grey.shape[0] / size[1]
    area = np.array([[fx, 0, 0.5 * fx - 0.5], [0, fy, 0.5 * fy - 0.5], [0, 0, 1.0]])  # pixel centres map
    return cv2.resize(grey, size, interpolation=cv2.INTER_AREA), back @ area


def dark_mask(grey: np.ndarray, window: int, min_contrast: float) -> np.ndarray:
    """Pixels clearly darker than the local paper (the max over ``window``): robust to uneven lighting."""
    paper = cv2.dilate(grey, cv2.getStructuringElement(cv2.MORPH_RECT, (window, window)))
    dark = cv2.subtract(paper, grey)
    otsu, _ = cv2.threshold(dark, 0, 255, cv2.THRESH_BINARY + cv2.THRESH_OTSU)
    return (dark > max(min_contrast, otsu)).astype(np.uint8)


def square_blobs(mask: np.ndarray, sides: tuple[float, ...], settings: ReadSettings) -> list[list[Blob]]:
    """For each side in ``sides`` (px), the solid, roughly square components of ``mask`` of that size within the
    tolerance, best size match first."""
    _, _, stats, centroids = cv2.connectedComponentsWithStats(mask, connectivity=8)
    w, h, area = stats[1:, cv2.CC_STAT_WIDTH], stats[1:, cv2.CC_STAT_HEIGHT], stats[1:, cv2.CC_STAT_AREA]
    root = np.sqrt(area)
    square = (area >= settings.fiducial_min_fill * w * h) & (np.maximum(w, h) <= MAX_ASPECT * np.minimum(w, h))
    found = []
    for side in sides:
        error = np.abs(root / side - 1)
        ok = square & (error <= settings.fiducial_size_tolerance)
        found.append([Blob(*centroids[1 + i], root[i]) for i in np.argsort(error) if ok[i]])
    return found


def find_candidates(grey: np.ndarray, template: Template, settings: ReadSettings) -> tuple[list[Blob], list[Blob]]:
    """Fiducial and orientation-mark candidates on the scan, in scan pixels (searched on a coarse copy)."""
    px_mm = _scan_px_per_mm(grey.shape, template)
    scale = min(1.0, settings.detect_dpi / MM_PER_INCH / px_mm)
    small, back = shrink(grey, scale)
    fid_side = template.fiducials[0].w * px_mm * scale
    window = 2 * round(PAPER_FILTER_SIDES * fid_side / 2) + 1
    mask = dark_mask(small, window, settings.min_contrast)
    fids, marks = square_blobs(mask, (fid_side, template.orientation_mark.w * px_mm * scale), settings)

    def full(blobs: list[Blob]) -> list[Blob]:
        return [Blob(back[0, 0] * b.x + back[0, 2], back[1, 1] * b.y + back[1, 2], b.side * back[0, 0])
                for b in blobs]

    return full(fids)[: settings.max_candidates], full(marks)


def fit_similarity(src: np.ndarray, dst: np.ndarray) -> tuple[np.ndarray, float] | None:
    """Least-squares similarity ``dst ~ s R src + t`` (Umeyama); ``None`` if it needs a mirror image.

    Returns the 2x3 matrix and the largest point residual (in ``dst`` units).
    """
    mu_s, mu_d = src.mean(0), dst.mean(0)
    s, d = src - mu_s, dst - mu_d
    u, sig, vt = np.linalg.svd(d.T @ s / len(src))
    if np.linalg.det(u @ vt) < 0:
        return None
    rot = u @ vt
    scale = sig.sum() / ((s ** 2).sum() / len(src))
    mat = np.hstack([scale * rot, (mu_d - scale * rot @ mu_s)[:, None]])
    residual = np.linalg.norm(src @ mat[:, :2].T + mat[:, 2] - dst, axis=1).max()
    return mat, float(residual)


def _clockwise(blobs: tuple[Blob, ...]) -> tuple[Blob, ...]:
    """Blobs sorted clockwise on screen (image y points down), which is the template's TL, TR, BR, BL order."""
    cx, cy = np.mean([b.x for b in blobs]), np.mean([b.y for b in blobs])
    return tuple(sorted(blobs, key=lambda b: math.atan2(b.y - cy, b.x - cx)))


def _assignments(n: int) -> list[tuple[int, ...]]:
    """Ways to give ``n`` clockwise-ordered points to template corners keeping the clockwise order."""
    out = []
    for start in range(4):
        for skip in (range(4) if n == 3 else [None]):
            corners = [c for c in range(4) if c != skip]
            out.append(tuple(corners[(i + start) % len(corners)] for i in range(len(corners))))
    return sorted(set(out))


def _mark_near(mat: np.ndarray, marks: list[Blob], template: Template, settings: ReadSettings) -> Blob | None:
    """The orientation mark candidate closest to where a layout predicts it, if within tolerance."""
    om = template.orientation_mark
    inv = cv2.invertAffineTransform(mat)
    ex, ey = inv @ np.array([om.x + om.w / 2, om.y + om.h / 2, 1.0])
    tol = settings.mark_tolerance_mm * np.linalg.norm(inv[:, 0])
    best = min(marks, key=lambda b: math.hypot(b.x - ex, b.y - ey), default=None)
    return best if best is not None and math.hypot(best.x - ex, best.y - ey) <= tol else None


def _layouts(fids: list[Blob], marks: list[Blob], size: int, template: Template,
             settings: ReadSettings) -> list[Layout]:
    centres = np.array(template.fiducial_centres_mm())
    limit = settings.max_shape_error * float(np.linalg.norm(centres[0] - centres[2]))
    found = []
    for combo in itertools.combinations(fids, size):
        pts = _clockwise(combo)
        src = np.array([(b.x, b.y) for b in pts])
        for corners in _assignments(size):
            fit = fit_similarity(src, centres[list(corners)])
            if fit is None or fit[1] > limit:
                continue
            mat = fit[0]
            angle = math.degrees(math.atan2(mat[1, 0], mat[0, 0]))
            found.append(Layout(pts, corners, fit[1], angle, _mark_near(mat, marks, template, settings)))
    return found


def choose_layout(fids: list[Blob], marks: list[Blob], template: Template, settings: ReadSettings) -> Layout:
    """The best fiducial layout: most fiducials, then the one whose orientation mark is found, then best fit.

    Raises:
        RegistrationError: fewer than three candidates, or none of their layouts fits the template.
    """
    for size in (4, 3):
        if len(fids) < size:
            continue
        layouts = _layouts(fids, marks, size, template, settings)
        if layouts:
            return min(layouts, key=lambda lay: (lay.mark is None, lay.error))
    raise RegistrationError(f"found {len(fids)} fiducial-like squares but no layout of 3 or 4 of them matches "
                            f"the form's corner squares")


def refine_blob(grey: np.ndarray, blob: Blob) -> tuple[Blob, float, float]:
    """Sub-pixel centre of a solid square from its full-resolution neighbourhood, with its black and paper levels.

    The centre is the darkness-weighted centroid of the ink component under the coarse centre (or the largest
    one, if the coarse centre fell just off it).
    """
    r = max(2, round(REFINE_WINDOW * blob.side))
    cx, cy = round(blob.x), round(blob.y)
    x0, y0 = max(0, cx - r), max(0, cy - r)
    win = grey[y0: cy + r + 1, x0: cx + r + 1]
    black, paper = (float(v) for v in np.percentile(win, [BLACK_PERCENTILE, PAPER_PERCENTILE]))
    n, labels = cv2.connectedComponents((win < (black + paper) / 2).astype(np.uint8), connectivity=8)
    if n < 2:
        return blob, black, paper
    label = labels[min(cy - y0, win.shape[0] - 1), min(cx - x0, win.shape[1] - 1)]
    label = label or int(np.argmax(np.bincount(labels.ravel())[1:])) + 1
    weight = np.where(labels == label, paper - win.astype(np.float64), 0.0).clip(0)
    total = weight.sum()
    if total <= 0:
        return blob, black, paper
    x = x0 + float(weight.sum(0) @ np.arange(weight.shape[1])) / total
    y = y0 + float(weight.sum(1) @ np.arange(weight.shape[0])) / total
    return Blob(x, y, blob.side), black, paper


def _template_px(points_mm: np.ndarray, settings: ReadSettings) -> np.ndarray:
    return (points_mm * settings.px_per_mm - 0.5).astype(np.float32)  # pixel centres sit at +0.5


def layout_homography(grey: np.ndarray, layout: Layout, template: Template,
                      settings: ReadSettings) -> Registration:
    """Refine the layout's centres on ``grey`` and build the homography onto the template at the reading dpi."""
    refined = [refine_blob(grey, b) for b in layout.points]
    src = np.array([(b.x, b.y) for b, _, _ in refined], np.float32)
    dst = _template_px(np.array(template.fiducial_centres_mm())[list(layout.corners)], settings)
    if len(src) == 4:
        hom = cv2.getPerspectiveTransform(src, dst)
    else:
        hom = np.vstack([cv2.getAffineTransform(src, dst), [0, 0, 1]])
    residual = float("nan")
    if layout.mark is not None:
        mark, _, _ = refine_blob(grey, layout.mark)
        om = template.orientation_mark
        expected = _template_px(np.array([om.x + om.w / 2, om.y + om.h / 2]), settings)
        got = cv2.perspectiveTransform(np.array([[[mark.x, mark.y]]], np.float32), hom)[0, 0]
        residual = float(np.linalg.norm(got - expected))
    return Registration(hom, len(src), _rotation(layout.angle_deg), layout.mark is not None, residual,
                        paper=float(np.median([p for _, _, p in refined])),
                        black=float(np.median([b for _, b, _ in refined])))


def _rotation(angle_deg: float) -> float:
    """The scan's rotation (degrees, clockwise positive, in (-180, 180]) from the scan-to-template angle."""
    rot = -angle_deg
    return rot + 360.0 if rot <= -180.0 else rot


def register(grey: np.ndarray, template: Template, settings: ReadSettings) -> Registration:
    """Find the form on ``grey`` (a uint8 scan at any dpi and orientation) and return its registration.

    Raises:
        RegistrationError: the page does not show the form's fiducials.
    """
    fids, marks = find_candidates(grey, template, settings)
    if len(fids) < 3:
        raise RegistrationError(f"found {len(fids)} of the form's 4 corner squares (at least 3 needed)")
    return layout_homography(grey, choose_layout(fids, marks, template, settings), template, settings)


def warp_to_template(grey: np.ndarray, reg: Registration, template: Template, settings: ReadSettings) -> np.ndarray:
    """The scan warped onto the template at the reading dpi; scans much finer than that are shrunk first."""
    hom = reg.homography
    scan_px_mm = math.sqrt(abs(np.linalg.det(hom[:2, :2]))) ** -1 * settings.px_per_mm
    if scan_px_mm > settings.px_per_mm * SHRINK_ABOVE:
        grey, back = shrink(grey, settings.px_per_mm / scan_px_mm)
        hom = hom @ back
    return cv2.warpPerspective(grey, hom, template.size_px(settings.dpi), flags=cv2.INTER_LINEAR,
                               borderMode=cv2.BORDER_CONSTANT, borderValue=int(reg.paper))


def _edge_points(rect: Rect, dpi: float, step: int) -> list[tuple[int, int]]:
    """Points every ``step`` px along the outline of ``rect`` where the renderer draws it at ``dpi``."""
    x0, y0, x1, y1 = rect.to_px(dpi)
    xs, ys = range(x0 + step, x1 - step, step), range(y0 + step, y1 - step, step)
    return ([(x, y0) for x in xs] + [(x, y1 - 1) for x in xs]
            + [(x0, y) for y in ys] + [(x1 - 1, y) for y in ys])


@lru_cache(maxsize=8)
def line_samples(rects: tuple[Rect, ...], dpi: float, step: int) -> tuple[np.ndarray, np.ndarray]:
    """Row and column indices of points on the outlines of ``rects`` (cached: rects are frozen)."""
    pts = np.array([p for r in rects for p in _edge_points(r, dpi, step)])
    return pts[:, 1], pts[:, 0]


def line_agreement(registered: np.ndarray, reg: Registration, template: Template, settings: ReadSettings) -> float:
    """Fraction of the template's printed-line points (frame, boxes) that are dark, within one pixel, once warped."""
    rects = (template.frame,) + tuple(b for f in template.fields for b in f.boxes)
    rows, cols = line_samples(rects, settings.dpi, max(1, round(settings.px(settings.line_sample_mm))))
    h, w = registered.shape
    darkest = np.min([registered[np.clip(rows + dy, 0, h - 1), np.clip(cols + dx, 0, w - 1)]
                      for dy in (-1, 0, 1) for dx in (-1, 0, 1)], axis=0)
    return float(np.mean(darkest < (reg.paper + reg.black) / 2))
