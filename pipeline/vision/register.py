"""Registration: find the printed form on a scan and map it onto the template with a homography.

The form carries four solid corner squares (fiducials) and a small orientation mark beside the top-left one.
The search runs on a coarse copy of the page:

1. solid, square ink blobs of the fiducials' size are candidates (a blob nearer the orientation mark's size than
   a fiducial's is never one, however the ink bled);
2. every layout of four (or, if one is hidden, three) candidates whose shape a homography can map onto the
   template's fiducial rectangle is a hypothesis, in each of its quarter turns; the perspective is fitted from all
   four corners before anything else is looked at;
3. each hypothesis warps the coarse ink onto the template, and its fit is the share of the blank form's printed
   ink (frame, rules, boxes, labels, title, the orientation mark; not the fiducials, which fit by construction)
   that lands on ink. The orientation is the quarter turn of the best fit, and it must beat the best fit of every
   other quarter turn by ``orientation_margin``, or the page is ``orientation_uncertain`` and nothing is read;
4. the chosen fiducials are refined at full resolution and give the homography.

Quality is the fraction of fiducials found times the fraction of the template's printed lines (frame and boxes)
that land on dark pixels after warping.
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
from pipeline.vision.unbend import PRINT_GREY, Displacement, blank_print, measure_displacement, template_key

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
#: Margin around each fiducial left out of the template fit (mm): a fiducial fits wherever it is mapped.
FIDUCIAL_CLEAR_MM = 1.5
#: Tolerance of the coarse template fit: scan ink within this many coarse pixels of the print counts.
FIT_TOLERANCE_PX = 1
#: A layout of four corner squares is preferred to one of three that fits the form up to this much better: three
#: give an affine map, which leaves a phone photo's perspective (and a curl unbent on top of it) uncorrected.
FOUR_CORNER_BONUS = 0.05
FOUR = range(4)
#: Share of the orientation mark's square that must be print-dark for the mark to count as found.
MARK_MIN_FILL = 0.5
#: A quarter turn in degrees.
QUARTER = 90.0
class RegistrationError(Exception):
    """The page does not show this form (no fiducial layout fits); the message says what was found."""


@dataclass(frozen=True)
class Blob:
    """A candidate square on the scan: centre and side in scan pixels."""

    x: float
    y: float
    side: float


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
    template_fit: float = float("nan")
    orientation_margin: float = float("nan")

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


def _blob_sizes(template: Template, px_mm: float) -> tuple[float, float]:
    """Expected sides (scan px) of a fiducial and of the orientation mark."""
    return template.fiducials[0].w * px_mm, template.orientation_mark.w * px_mm


def fiducial_blobs(mask: np.ndarray, fid_side: float, mark_side: float, settings: ReadSettings) -> list[Blob]:
    """Solid, roughly square components of ``mask`` of a fiducial's size, best size match first.

    A blob whose size is nearer (in ratio) to the orientation mark's than to a fiducial's is left out, so ink bleed
    that fattens the mark cannot make it a corner square.
    """
    _, _, stats, centroids = cv2.connectedComponentsWithStats(mask, connectivity=8)
    w, h, area = stats[1:, cv2.CC_STAT_WIDTH], stats[1:, cv2.CC_STAT_HEIGHT], stats[1:, cv2.CC_STAT_AREA]
    root = np.sqrt(area)
    square = (area >= settings.fiducial_min_fill * w * h) & (np.maximum(w, h) <= MAX_ASPECT * np.minimum(w, h))
    error = np.abs(root / fid_side - 1)
    nearer_fiducial = np.abs(np.log(root / fid_side)) < np.abs(np.log(root / mark_side))
    ok = square & nearer_fiducial & (error <= settings.fiducial_size_tolerance)
    return [Blob(*centroids[1 + i], root[i]) for i in np.argsort(error) if ok[i]]


@dataclass(frozen=True)
class Candidates:
    """What the coarse search found: fiducial candidates (scan px), the coarse ink mask and its map to the scan."""

    fiducials: list[Blob]
    mask: np.ndarray = field(repr=False)
    back: np.ndarray = field(repr=False)
    small: np.ndarray = field(repr=False)


def find_candidates(grey: np.ndarray, template: Template, settings: ReadSettings) -> Candidates:
    """Fiducial candidates on the scan, in scan pixels, searched on a coarse copy (kept for the template fit)."""
    px_mm = _scan_px_per_mm(grey.shape, template)
    scale = min(1.0, settings.detect_dpi / MM_PER_INCH / px_mm)
    small, back = shrink(grey, scale)
    fid_side, mark_side = (side * scale for side in _blob_sizes(template, px_mm))
    window = 2 * round(PAPER_FILTER_SIDES * fid_side / 2) + 1
    mask = dark_mask(small, window, settings.min_contrast)
    blobs = fiducial_blobs(mask, fid_side, mark_side, settings)[: settings.max_candidates]
    full = [Blob(back[0, 0] * b.x + back[0, 2], back[1, 1] * b.y + back[1, 2], b.side * back[0, 0]) for b in blobs]
    return Candidates(full, mask, back, small)


def fit_similarity(src: np.ndarray, dst: np.ndarray) -> tuple[np.ndarray, float] | None:
    """Least-squares similarity ``dst ~ s R src + t``; ``None`` if it needs a mirror image.

    Umeyama's fit written out for the plane: with ``M`` the cross-covariance of the centred points, the best
    rotation turns by ``atan2(M10 - M01, M00 + M11)`` and the sum of ``M``'s singular values is the length of
    that vector, so no SVD is needed (a 2x2 SVD through LAPACK cost ~0.2 ms, 20-odd times a page). ``M`` with a
    negative determinant is a mirror image (Umeyama's ``det(U V^T) < 0``).

    Returns the 2x3 matrix and the largest point residual (in ``dst`` units).
    """
    mu_s, mu_d = src.mean(0), dst.mean(0)
    s, d = src - mu_s, dst - mu_d
    m = d.T @ s
    if m[0, 0] * m[1, 1] - m[0, 1] * m[1, 0] < 0:
        return None
    p, q = m[0, 0] + m[1, 1], m[1, 0] - m[0, 1]
    norm = math.hypot(p, q)
    cos, sin = (p / norm, q / norm) if norm > 0 else (1.0, 0.0)
    scale = norm / float((s ** 2).sum())
    lin = scale * np.array([[cos, -sin], [sin, cos]])
    shift = mu_d - lin @ mu_s
    residual = np.sqrt(((src @ lin.T + shift - dst) ** 2).sum(1)).max()
    return np.column_stack([lin, shift]), float(residual)


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


@dataclass(frozen=True)
class Layout:
    """Scan fiducials matched to template corners (indices into TL, TR, BR, BL), the homography they give (scan
    px -> template mm), the shape error of a similarity fit and, once scored, the fit to the whole template."""

    points: tuple[Blob, ...]
    corners: tuple[int, ...]
    error: float
    angle_deg: float
    to_mm: np.ndarray = field(repr=False)
    fit: float = 0.0

    @property
    def quarter_turns(self) -> int:
        """Clockwise quarter turns of the scan this layout implies (2 = upside down)."""
        return round(_rotation(self.angle_deg) / QUARTER) % 4


def point_homography(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """Homography from 4 point pairs, or the affine map of 3 as a 3x3 matrix."""
    src, dst = src.astype(np.float32), dst.astype(np.float32)
    if len(src) == 4:
        return cv2.getPerspectiveTransform(src, dst)
    return np.vstack([cv2.getAffineTransform(src, dst), [0, 0, 1]])


def candidate_layouts(fids: list[Blob], size: int, template: Template, settings: ReadSettings) -> list[Layout]:
    """Every layout of ``size`` candidates, in every corner assignment, whose shape is close enough to the
    template's fiducial rectangle for perspective to explain the difference; best shape first."""
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
            angle = math.degrees(math.atan2(fit[0][1, 0], fit[0][0, 0]))
            found.append(Layout(pts, corners, fit[1], angle, point_homography(src, centres[list(corners)])))
    return sorted(found, key=lambda lay: lay.error)


#: Print masks already rendered in this process, by template geometry and dpi.
_PRINT_MASKS: dict[tuple, np.ndarray] = {}


def print_mask(template: Template, dpi: float) -> np.ndarray:
    """The blank form's print at ``dpi`` (1 = print), fiducials cleared: what a right registration must hit."""
    key = (*template_key(template), dpi)
    if key not in _PRINT_MASKS:
        _PRINT_MASKS[key] = _render_print_mask(template, dpi)
    return _PRINT_MASKS[key]


#: The print masks' print pixels (rows, columns) and size, by template object and dpi (with the template, so that
#: its id stays its own): looking a mask up by its template's geometry hashes every field and box of the form, which
#: cost more than scoring the layout it was wanted for.
_PRINT_POINTS: dict[tuple[int, float], tuple[Template, np.ndarray, np.ndarray, tuple[int, int]]] = {}


def _print_points(template: Template, dpi: float) -> tuple[np.ndarray, np.ndarray, tuple[int, int]]:
    """``np.nonzero(print_mask(template, dpi))`` and the mask's ``(width, height)``, once per template and dpi."""
    entry = _PRINT_POINTS.get((id(template), dpi))
    if entry is None or entry[0] is not template:
        printed = print_mask(template, dpi)
        ys, xs = np.nonzero(printed)
        ys.setflags(write=False)
        xs.setflags(write=False)
        entry = _PRINT_POINTS[(id(template), dpi)] = (template, ys, xs, (printed.shape[1], printed.shape[0]))
    return entry[1], entry[2], entry[3]


def _render_print_mask(template: Template, dpi: float) -> np.ndarray:
    ink = (blank_print(template, dpi, 1.0) < PRINT_GREY).astype(np.uint8)
    for r in template.fiducials:
        clear = Rect(r.x - FIDUCIAL_CLEAR_MM, r.y - FIDUCIAL_CLEAR_MM, r.w + 2 * FIDUCIAL_CLEAR_MM,
                     r.h + 2 * FIDUCIAL_CLEAR_MM)
        x0, y0, x1, y1 = clear.to_px(dpi)
        ink[max(0, y0):y1, max(0, x0):x1] = 0
    ink.setflags(write=False)
    return ink


def _coarse_homography(layout: Layout, cands: Candidates, settings: ReadSettings) -> np.ndarray:
    """The layout's homography from the coarse scan onto the template at ``detect_dpi``."""
    return np.diag([settings.detect_dpi / MM_PER_INCH] * 2 + [1.0]) @ layout.to_mm @ cands.back


def template_fit(layout: Layout, cands: Candidates, template: Template, settings: ReadSettings,
                 disp: Displacement | None = None) -> float:
    """Share of the blank form's print (fiducials aside) that lands on scan ink when ``layout`` (and ``disp``, a
    curled page's displacement on the coarse template) registers the coarse scan: near 1 for the right layout, far
    lower for a wrong corner or a wrong quarter turn."""
    ys, xs, size = _print_points(template, settings.detect_dpi)
    warped = cv2.warpPerspective(cands.mask, _coarse_homography(layout, cands, settings), size,
                                 flags=cv2.INTER_NEAREST, borderValue=0)
    near = cv2.dilate(warped, np.ones((2 * FIT_TOLERANCE_PX + 1,) * 2, np.uint8))
    if disp is not None:
        dx, dy = disp.at(xs.astype(float), ys.astype(float))
        xs = np.clip(np.round(xs + dx).astype(int), 0, size[0] - 1)
        ys = np.clip(np.round(ys + dy).astype(int), 0, size[1] - 1)
    return float(near[ys, xs].mean())


def unbent_fit(layout: Layout, cands: Candidates, template: Template, settings: ReadSettings) -> float:
    """The layout's template fit once the coarse page is unbent (:mod:`pipeline.vision.unbend`): a curled page's
    right orientation fits well only after that; a wrong one does not, since no smooth bend turns a page round."""
    scale = settings.detect_dpi / settings.dpi
    blank = blank_print(template, settings.dpi, scale)
    paper = float(np.percentile(cands.small, PAPER_PERCENTILE))
    coarse = cv2.warpPerspective(cands.small, _coarse_homography(layout, cands, settings),
                                 (blank.shape[1], blank.shape[0]), flags=cv2.INTER_LINEAR, borderValue=paper)
    disp = measure_displacement(coarse, blank, settings.detect_dpi / MM_PER_INCH, settings)
    return layout.fit if disp is None else max(layout.fit, template_fit(layout, cands, template, settings, disp))


def _preference(layout: Layout) -> tuple[float, float]:
    """Sort key, best first: the template fit, four corners counting ``FOUR_CORNER_BONUS`` more than three (only
    four correct the perspective), then the shape error."""
    return -(layout.fit + FOUR_CORNER_BONUS * (len(layout.points) == len(FOUR))), layout.error


def _with_fit(layout: Layout, fit: float) -> Layout:
    return Layout(layout.points, layout.corners, layout.error, layout.angle_deg, layout.to_mm, fit)


def unbend_weak_fits(scored: list[Layout], cands: Candidates, template: Template,
                     settings: ReadSettings) -> list[Layout]:
    """When even the best layout finds less than ``good_template_fit`` of the print (a curled page), the best layout
    of each quarter turn and size is scored again after unbending, and the list re-sorted (a curl can make three
    corners fit better than four before unbending, never after: only four correct the perspective)."""
    if not scored or scored[0].fit >= settings.good_template_fit:
        return scored
    best_per_turn = {}
    for lay in scored:
        best_per_turn.setdefault((lay.quarter_turns, len(lay.points)), lay)
    rescored = [_with_fit(lay, unbent_fit(lay, cands, template, settings)) for lay in best_per_turn.values()]
    rest = [lay for lay in scored if all(lay is not best for best in best_per_turn.values())]
    return sorted(rescored + rest, key=_preference)


def scored_layouts(cands: Candidates, template: Template, settings: ReadSettings) -> list[Layout]:
    """The best-shaped layouts of 4 candidates (and of 3, when no 4 fit the form well), scored on the whole
    template (curled pages after unbending), best fit first."""
    scored: list[Layout] = []
    for size in (4, 3):
        if len(cands.fiducials) < size or (scored and scored[0].fit >= settings.good_template_fit):
            continue
        layouts = candidate_layouts(cands.fiducials, size, template, settings)[: settings.max_layouts_scored]
        scored += [_with_fit(lay, template_fit(lay, cands, template, settings)) for lay in layouts]
        scored.sort(key=_preference)
    return unbend_weak_fits(scored, cands, template, settings)


class OrientationUncertain(RegistrationError):
    """The form was found, but no quarter turn fits the template clearly better than another."""


def choose_layout(cands: Candidates, template: Template, settings: ReadSettings) -> tuple[Layout, float]:
    """The layout that fits the whole template best, and its margin over the best layout of any other quarter turn
    (1.0 when no other turn is possible).

    Raises:
        RegistrationError: fewer than three candidates, or none of their layouts fits the template (shape, or
            less than ``min_template_fit`` of the print found).
        OrientationUncertain: the best quarter turn does not win by ``orientation_margin``.
    """
    scored = scored_layouts(cands, template, settings)
    if not scored:
        raise RegistrationError(f"found {len(cands.fiducials)} fiducial-like squares but no layout of 3 or 4 of "
                                f"them matches the form's corner squares")
    best = scored[0]
    if best.fit < settings.min_template_fit:
        raise RegistrationError(f"the best layout of corner squares finds only {best.fit:.0%} of the form's print "
                                f"where the form has it (< {settings.min_template_fit:.0%})")
    rivals = [lay.fit for lay in scored if lay.quarter_turns != best.quarter_turns]
    margin = best.fit - max(rivals, default=0.0)
    if margin < settings.orientation_margin:
        raise OrientationUncertain(
            f"the page fits the form turned {best.quarter_turns * 90} degrees ({best.fit:.0%} of the print found) "
            f"hardly better than turned otherwise ({best.fit - margin:.0%}); margin {margin:.2f} < "
            f"{settings.orientation_margin}")
    return best, margin


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


def _scan_px_per_template_px(hom: np.ndarray) -> float:
    """Scan pixels per registered pixel near the page centre (the homography's mean scale)."""
    return math.sqrt(abs(np.linalg.det(hom[:2, :2]))) ** -1


def locate_mark(grey: np.ndarray, hom: np.ndarray, template: Template, settings: ReadSettings,
                black: float, paper: float) -> tuple[bool, float]:
    """Whether the orientation mark is where the homography puts it, and its distance (registered px) from there.

    Looked for only once the layout and its perspective are fixed: the mark confirms the orientation, it never
    decides it.
    """
    om = template.orientation_mark
    expected = _template_px(np.array([[om.x + om.w / 2, om.y + om.h / 2]]), settings)
    cx, cy = cv2.perspectiveTransform(expected[None], np.linalg.inv(hom))[0, 0]
    side = om.w * settings.px_per_mm * _scan_px_per_template_px(hom)
    mark, _, _ = refine_blob(grey, Blob(float(cx), float(cy), side))
    got = cv2.perspectiveTransform(np.array([[[mark.x, mark.y]]], np.float32), hom)[0, 0]
    residual = float(np.linalg.norm(got - expected[0]))
    half = max(1, round(side / 2))
    x, y = round(cx), round(cy)
    square = grey[max(0, y - half): y + half + 1, max(0, x - half): x + half + 1]
    filled = float(np.mean(square < (black + paper) / 2)) if square.size else 0.0
    return filled >= MARK_MIN_FILL and residual <= settings.px(settings.mark_tolerance_mm), residual


def layout_homography(grey: np.ndarray, layout: Layout, template: Template, settings: ReadSettings,
                      margin: float) -> Registration:
    """Refine the layout's centres on ``grey`` and build the homography onto the template at the reading dpi."""
    refined = [refine_blob(grey, b) for b in layout.points]
    src = np.array([(b.x, b.y) for b, _, _ in refined], np.float32)
    dst = _template_px(np.array(template.fiducial_centres_mm())[list(layout.corners)], settings)
    hom = point_homography(src, dst)
    paper = float(np.median([p for _, _, p in refined]))
    black = float(np.median([b for _, b, _ in refined]))
    mark_found, residual = locate_mark(grey, hom, template, settings, black, paper)
    return Registration(hom, len(src), _rotation(layout.angle_deg), mark_found, residual, paper=paper, black=black,
                        template_fit=layout.fit, orientation_margin=margin)


def _rotation(angle_deg: float) -> float:
    """The scan's rotation (degrees, clockwise positive, in (-180, 180]) from the scan-to-template angle."""
    rot = -angle_deg
    return rot + 360.0 if rot <= -180.0 else rot


def register(grey: np.ndarray, template: Template, settings: ReadSettings) -> Registration:
    """Find the form on ``grey`` (a uint8 scan at any dpi and orientation) and return its registration.

    Raises:
        RegistrationError: the page does not show the form's fiducials.
        OrientationUncertain: the form is there but its orientation is not clear.
    """
    cands = find_candidates(grey, template, settings)
    if len(cands.fiducials) < 3:
        raise RegistrationError(f"found {len(cands.fiducials)} of the form's 4 corner squares (at least 3 needed)")
    layout, margin = choose_layout(cands, template, settings)
    return layout_homography(grey, layout, template, settings, margin)


def scan_axis_slope(homography: np.ndarray, at: tuple[float, float], down: bool = False) -> float:
    """Slope (template rows per column) at ``at`` (template px) of whichever axis of the scan, its rows or its
    columns, lies nearer the template's rows there; 0 where both lie at 45 degrees. Toner bands and sensor
    streaks run along an axis of the scan, so this is how they cross a form fed in skewed. With ``down``, the
    slope (template columns per row) of the scan axis nearer the template's columns: how streaks run down it.

    ``homography`` maps scan pixels to template pixels (:class:`Registration`)."""
    scan = cv2.perspectiveTransform(np.array([[at]], np.float64), np.linalg.inv(homography))[0, 0]
    ends = cv2.perspectiveTransform(np.array([[scan, scan + (1.0, 0.0), scan + (0.0, 1.0)]]), homography)[0]
    steps = [(dy, dx) if down else (dx, dy) for dx, dy in (ends[1] - ends[0], ends[2] - ends[0])]
    slopes = [cross / along for along, cross in steps if abs(along) > abs(cross)]
    return float(slopes[0]) if slopes else 0.0


def warp_source(grey: np.ndarray, reg: Registration, settings: ReadSettings) -> tuple[np.ndarray, np.ndarray]:
    """The image to warp from and its homography onto the template: scans much finer than the reading dpi are
    shrunk first (linear warping would alias)."""
    hom = reg.homography
    scan_px_mm = _scan_px_per_template_px(hom) * settings.px_per_mm
    if scan_px_mm > settings.px_per_mm * SHRINK_ABOVE:
        grey, back = shrink(grey, settings.px_per_mm / scan_px_mm)
        hom = hom @ back
    return grey, hom


def warp_to_template(grey: np.ndarray, reg: Registration, template: Template, settings: ReadSettings) -> np.ndarray:
    """The scan warped onto the template at the reading dpi."""
    return warp_from_source(*warp_source(grey, reg, settings), reg, template, settings)


def warp_from_source(source: np.ndarray, hom: np.ndarray, reg: Registration, template: Template,
                     settings: ReadSettings) -> np.ndarray:
    """``source`` and its homography (from :func:`warp_source`) warped onto the template at the reading dpi."""
    return cv2.warpPerspective(source, hom, template.size_px(settings.dpi), flags=cv2.INTER_LINEAR,
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
