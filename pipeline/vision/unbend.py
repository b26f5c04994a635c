"""Unbending: follow a curled or wavy page that no homography fits, using the form's own print.

A homography from the corner squares is exact for a flat page seen at any angle. A curled page (a phone photo of
a sheet that was folded or rolled) bows between the corners: printed lines come out as shallow arcs, and the middle
of the page can sit millimetres from where the homography puts it. When the printed lines do not land well enough
(``line_agreement`` below ``unbend_below``), the registered page is compared with the blank form patch by patch
(normalised cross-correlation of the print, on a coarse copy), and a smooth displacement (a quadratic surface,
corrected locally on a coarse grid with a bending penalty, both fitted robustly so that handwriting or a stamp over
a patch cannot pull them) is added to the homography.
Only the print of the form is used, never the handwriting, so the same sheet always unbends the same way.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field

import cv2
import numpy as np

from pipeline.forms.render import render_blank
from pipeline.forms.template import Template
from pipeline.vision.settings import ReadSettings

#: Grey level below which a rendered pixel is print.
PRINT_GREY = 128
#: Smallest share of print in a template patch for it to be matched (blank paper matches anywhere).
MIN_PATCH_PRINT = 0.04
#: Smallest normalised correlation of a patch's best match for it to count.
MIN_MATCH = 0.45
#: Patches whose shift differs from the fitted surface by more than this many robust deviations are dropped.
OUTLIER_MADS = 3.0
#: Robust refits of the displacement surface.
FIT_ROUNDS = 3
#: Fewest well-matched patches the local correction is fitted from.
MIN_PATCHES = 12
#: Least patches per coefficient of the coarse polynomial, and its degree (a curl or a sag is quadratic).
PATCHES_PER_COEFFICIENT = 2
COARSE_DEGREE = 2
#: A small ridge (per patch) keeps what no patch determines (a grid node in a blank margin) at zero.
RIDGE = 1e-3
#: Spacing (registered px) of the grid on which the displacement is evaluated before it is interpolated.
MAP_STEP = 8
#: A robust deviation is never taken below this (coarse px): matches are only accurate to about a pixel.
MIN_MAD = 0.5
#: The coarse pass matches patches this many times the side of the fine pass's.
COARSE_PATCH_FACTOR = 1.5
#: Smallest patch side in pixels (a coarse copy must still show some print structure).
MIN_PATCH_PX = 8


@dataclass(frozen=True)
class Displacement:
    """A smooth displacement ``d(x, y)`` in registered pixels: the content that belongs at template pixel ``p`` is
    found at ``p + d(p)`` of the homography-registered page.

    It is held as its values on a regular grid of nodes ``step`` pixels apart (the first node at the page's top-left
    corner) and interpolated bilinearly between them: local enough to follow a curl or a wave, with no polynomial
    running away at the page's edges.
    """

    step: float
    nodes_x: np.ndarray = field(repr=False)
    nodes_y: np.ndarray = field(repr=False)
    size: tuple[int, int]
    patches_used: int

    def at(self, xs: np.ndarray, ys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Displacement (dx, dy) at registered pixels ``xs, ys`` (arrays of one shape)."""
        weights, index = bilinear_weights(np.ravel(xs), np.ravel(ys), self.step, self.nodes_x.shape)
        shape = np.shape(xs)
        return ((weights * self.nodes_x.ravel()[index]).sum(1).reshape(shape),
                (weights * self.nodes_y.ravel()[index]).sum(1).reshape(shape))

    def on_grid(self, width: int, height: int) -> tuple[np.ndarray, np.ndarray]:
        """:meth:`at` every pixel of a ``width`` x ``height`` image (``at`` of its meshgrid), bit for bit.

        A pixel grid's interpolation weights and nodes depend on its column or its row alone, so they are found
        per column and per row and combined, rather than for each of the page's million pixels as four-wide
        arrays; the products and their sum are taken in ``at``'s order (``sum(1)`` of four adds left to right).
        """
        shape = self.nodes_x.shape
        if min(shape) < 2:  # no cell to interpolate in (never from grid_shape): as at
            return self.at(*np.meshgrid(np.arange(width, dtype=float), np.arange(height, dtype=float)))
        gx = np.clip(np.arange(width, dtype=float) / self.step, 0, shape[1] - 1 - 1e-9)
        gy = np.clip(np.arange(height, dtype=float) / self.step, 0, shape[0] - 1 - 1e-9)
        x0, y0 = np.floor(gx).astype(int), np.floor(gy).astype(int)
        fx, fy = gx - x0, gy - y0
        weights = (np.multiply.outer(1 - fy, 1 - fx), np.multiply.outer(1 - fy, fx), np.multiply.outer(fy, 1 - fx),
                   np.multiply.outer(fy, fx))
        # x0 never decreases along a row, so the node columns are gathered by repeating each one over its run
        left, right = np.bincount(x0, minlength=shape[1]), np.bincount(x0 + 1, minlength=shape[1])
        out = []
        for nodes in (self.nodes_x, self.nodes_y):
            top, bottom = nodes[y0], nodes[y0 + 1]
            total = np.repeat(top, left, axis=1)
            total *= weights[0]
            for rows, runs, weight in ((top, right, weights[1]), (bottom, left, weights[2]),
                                       (bottom, right, weights[3])):
                term = np.repeat(rows, runs, axis=1)
                term *= weight
                total += term
            out.append(total)
        return out[0], out[1]

    def scaled(self, size: tuple[int, int]) -> Displacement:
        """The same displacement on the page resized to ``size`` (its pixels scale with the page)."""
        k = size[0] / self.size[0]
        return Displacement(self.step * k, self.nodes_x * k, self.nodes_y * k, size, self.patches_used)

    def to_json(self) -> str:
        """The displacement as JSON (the ``displacement`` column of ``pages.csv``)."""
        return json.dumps({"step": self.step, "nodes_x": np.round(self.nodes_x, 3).tolist(),
                           "nodes_y": np.round(self.nodes_y, 3).tolist(), "size": list(self.size),
                           "patches_used": self.patches_used})

    @classmethod
    def from_json(cls, text: str) -> Displacement:
        """The displacement written by :meth:`to_json`."""
        raw = json.loads(text)
        return cls(float(raw["step"]), np.array(raw["nodes_x"], float), np.array(raw["nodes_y"], float),
                   tuple(raw["size"]), int(raw["patches_used"]))

    @property
    def largest_px(self) -> float:
        """Largest displacement at any node (registered px)."""
        return float(np.hypot(self.nodes_x, self.nodes_y).max())


def grid_shape(size: tuple[int, int], step: float) -> tuple[int, int]:
    """Rows and columns of a node grid ``step`` apart that covers a ``size`` = ``(w, h)`` page."""
    return int(np.ceil(size[1] / step)) + 1, int(np.ceil(size[0] / step)) + 1


def bilinear_weights(xs: np.ndarray, ys: np.ndarray, step: float,
                     shape: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """For each point, the flat indices of its four surrounding grid nodes and their bilinear weights (N x 4)."""
    gx = np.clip(np.asarray(xs, float) / step, 0, shape[1] - 1 - 1e-9)
    gy = np.clip(np.asarray(ys, float) / step, 0, shape[0] - 1 - 1e-9)
    x0, y0 = np.floor(gx).astype(int), np.floor(gy).astype(int)
    fx, fy = gx - x0, gy - y0
    index = np.stack([y0 * shape[1] + x0, y0 * shape[1] + x0 + 1, (y0 + 1) * shape[1] + x0,
                      (y0 + 1) * shape[1] + x0 + 1], axis=1)
    weights = np.stack([(1 - fx) * (1 - fy), fx * (1 - fy), (1 - fx) * fy, fx * fy], axis=1)
    return weights, index


def bending_operator(shape: tuple[int, int]) -> np.ndarray:
    """Second differences of a node grid along its rows and its columns: the bending a smooth correction avoids."""
    rows, cols = shape
    index = np.arange(rows * cols).reshape(shape)
    triples = np.concatenate([np.stack([index[:, :-2].ravel(), index[:, 1:-1].ravel(), index[:, 2:].ravel()], 1),
                              np.stack([index[:-2, :].ravel(), index[1:-1, :].ravel(), index[2:, :].ravel()], 1)])
    ops = np.zeros((len(triples), rows * cols))
    for column, weight in enumerate((1.0, -2.0, 1.0)):
        ops[np.arange(len(triples)), triples[:, column]] = weight
    return ops


def poly_basis(u: np.ndarray, v: np.ndarray, degree: int) -> np.ndarray:
    """Monomials ``u^i v^j`` with ``i + j <= degree``, one column each."""
    return np.stack([u ** i * v ** j for i in range(degree + 1) for j in range(degree + 1 - i)], axis=-1)


#: Rendered blank forms, by template geometry and dpi.
_BLANKS: dict[tuple, np.ndarray] = {}


def template_key(template: Template) -> tuple:
    """What a rendering of ``template`` depends on, as a key for the caches of rendered forms (the name stands for
    the decorative text the renderer also draws)."""
    return template.name, template.fields, template.frame, template.fiducials, template.orientation_mark


def blank_print(template: Template, dpi: float, scale: float) -> np.ndarray:
    """The blank form rendered at the reading ``dpi`` and shrunk by ``scale`` exactly as a registered page is
    (rendering at the lower resolution directly would round the print to other pixels), once per process."""
    key = (*template_key(template), dpi, scale)
    if key not in _BLANKS:
        blank = shrunk(render_blank(template, dpi), scale)
        blank.setflags(write=False)
        _BLANKS[key] = blank
    return _BLANKS[key]


def shrunk(image: np.ndarray, scale: float) -> np.ndarray:
    """``image`` resized by ``scale`` with area averaging (the one resampling used for page and blank alike)."""
    return cv2.resize(image, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)


def _subpixel(scores: np.ndarray, x: int, y: int) -> tuple[float, float]:
    """The peak of ``scores`` at ``(x, y)`` refined by a parabola through it and its neighbours, per axis."""
    def vertex(left: float, mid: float, right: float) -> float:
        curve = left - 2 * mid + right
        return 0.0 if curve >= 0 else float(np.clip(0.5 * (left - right) / curve, -0.5, 0.5))

    h, w = scores.shape
    dx = vertex(scores[y, x - 1], scores[y, x], scores[y, x + 1]) if 0 < x < w - 1 else 0.0
    dy = vertex(scores[y - 1, x], scores[y, x], scores[y + 1, x]) if 0 < y < h - 1 else 0.0
    return x + dx, y + dy


def patch_shifts(registered: np.ndarray, blank: np.ndarray, patch: int,
                 search: int) -> tuple[np.ndarray, np.ndarray]:
    """Where each printed patch of ``blank`` is found on ``registered`` (same size, same coarse resolution).

    Returns the patch centres (N x 2) and their sub-pixel shifts (N x 2, registered minus template), good matches
    only.
    """
    h, w = blank.shape
    centres, shifts = [], []
    for y in range(search, h - patch - search, patch):
        for x in range(search, w - patch - search, patch):
            tpl = blank[y:y + patch, x:x + patch]
            if np.mean(tpl < PRINT_GREY) < MIN_PATCH_PRINT:
                continue
            window = registered[y - search:y + patch + search, x - search:x + patch + search]
            scores = cv2.matchTemplate(window, tpl, cv2.TM_CCOEFF_NORMED)
            _, best, _, (bx, by) = cv2.minMaxLoc(scores)
            if best >= MIN_MATCH:
                sx, sy = _subpixel(scores, bx, by)
                centres.append((x + patch / 2, y + patch / 2))
                shifts.append((sx - search, sy - search))
    return np.array(centres, float).reshape(-1, 2), np.array(shifts, float).reshape(-1, 2)


def _robust_fit(design: np.ndarray, targets: np.ndarray, penalty: np.ndarray,
                min_rows: int) -> tuple[np.ndarray, np.ndarray] | None:
    """Penalised least squares ``design @ x ~ targets`` refitted without the rows it cannot explain.

    ``penalty`` (a square matrix) is scaled by the number of rows kept, so its weight does not depend on how many
    patches a page happens to offer. Returns the solution and the rows kept, or ``None`` below ``min_rows``.
    """
    keep = np.ones(len(design), bool)
    for _ in range(FIT_ROUNDS):
        if keep.sum() < min_rows:
            return None
        solution = np.linalg.solve(design[keep].T @ design[keep] + keep.sum() * penalty,
                                   design[keep].T @ targets[keep])
        error = np.hypot(*(design @ solution - targets).T)
        mad = max(MIN_MAD, float(np.median(error[keep])))
        keep = error <= OUTLIER_MADS * mad
    return solution, keep


def fit_polynomial(centres: np.ndarray, shifts: np.ndarray, size: tuple[int, int], step: float,
                   degree: int) -> Displacement | None:
    """A low-degree polynomial surface through the patch shifts, robustly, held on a node grid ``step`` apart."""
    basis = poly_basis(centres[:, 0] / size[0], centres[:, 1] / size[1], degree)
    fit = _robust_fit(basis, shifts, RIDGE * np.eye(basis.shape[1]), PATCHES_PER_COEFFICIENT * basis.shape[1])
    if fit is None:
        return None
    shape = grid_shape(size, step)
    gy, gx = np.mgrid[0:shape[0], 0:shape[1]] * step
    nodes = poly_basis(gx / size[0], gy / size[1], degree) @ fit[0]
    return Displacement(step, nodes[..., 0], nodes[..., 1], size, int(fit[1].sum()))


def refine_grid(prior: Displacement, centres: np.ndarray, shifts: np.ndarray, stiffness: float) -> Displacement:
    """``prior`` corrected node by node towards the patch shifts, with a bending penalty of weight ``stiffness``
    per patch; where no patch says otherwise the correction fades to zero (the prior stands)."""
    shape = prior.nodes_x.shape
    weights, index = bilinear_weights(centres[:, 0], centres[:, 1], prior.step, shape)
    design = np.zeros((len(centres), shape[0] * shape[1]))
    np.put_along_axis(design, index, weights, axis=1)
    residual = shifts - np.stack(prior.at(centres[:, 0], centres[:, 1]), axis=1)
    bend = bending_operator(shape)
    fit = _robust_fit(design, residual, stiffness * bend.T @ bend + RIDGE * np.eye(design.shape[1]), MIN_PATCHES)
    if fit is None:
        return prior
    nodes = fit[0]
    return Displacement(prior.step, prior.nodes_x + nodes[:, 0].reshape(shape),
                        prior.nodes_y + nodes[:, 1].reshape(shape), prior.size, int(fit[1].sum()))


def displaced(image: np.ndarray, disp: Displacement) -> np.ndarray:
    """``image`` resampled so that pixel p shows what was at p + d(p)."""
    h, w = image.shape[:2]
    dx, dy = disp.on_grid(w, h)
    dx += np.arange(w, dtype=float)[None, :]  # the pixel plus its displacement (in place: the same sums)
    dy += np.arange(h, dtype=float)[:, None]
    return cv2.remap(image, dx.astype(np.float32), dy.astype(np.float32), cv2.INTER_LINEAR,
                     borderMode=cv2.BORDER_REPLICATE)


#: How a pass finds each printed patch's shift: ``(registered, blank, patch, search) -> (centres, shifts)``.
ShiftFinder = Callable[[np.ndarray, np.ndarray, int, int], tuple[np.ndarray, np.ndarray]]


def coarse_displacement(registered: np.ndarray, blank: np.ndarray, px_per_mm: float, settings: ReadSettings,
                        shifts_of: ShiftFinder = patch_shifts) -> Displacement | None:
    """The coarse pass of :func:`measure_displacement`: large patches searched widely, a low-degree polynomial
    through their shifts (found by ``shifts_of``); ``None`` if too few match."""
    size = (blank.shape[1], blank.shape[0])
    patch = max(MIN_PATCH_PX, round(settings.unbend_patch_mm * COARSE_PATCH_FACTOR * px_per_mm))
    centres, shifts = shifts_of(registered, blank, patch, round(settings.unbend_search_mm * px_per_mm))
    return fit_polynomial(centres, shifts, size, settings.unbend_grid_mm * px_per_mm, COARSE_DEGREE)


def refined_displacement(registered: np.ndarray, blank: np.ndarray, coarse: Displacement, px_per_mm: float,
                         settings: ReadSettings, shifts_of: ShiftFinder = patch_shifts) -> Displacement:
    """The fine pass of :func:`measure_displacement`: ``coarse`` corrected locally on its grid from small patches
    (found by ``shifts_of``) searched on the page unbent by it, the fine shifts carried back through ``coarse``."""
    patch = max(MIN_PATCH_PX, round(settings.unbend_patch_mm * px_per_mm))
    centres, shifts = shifts_of(displaced(registered, coarse), blank, patch,
                                max(1, round(settings.unbend_refine_mm * px_per_mm)))
    if len(centres) < MIN_PATCHES:
        return coarse
    at = centres + shifts
    return refine_grid(coarse, centres, shifts + np.stack(coarse.at(at[:, 0], at[:, 1]), axis=1),
                       settings.unbend_stiffness)


def measure_displacement(registered: np.ndarray, blank: np.ndarray, px_per_mm: float,
                         settings: ReadSettings) -> Displacement | None:
    """The displacement of ``registered`` from ``blank`` (same size and resolution, ``px_per_mm``), in its pixels.

    Coarse to fine. Large patches (labels and boxes together, which no neighbouring comb box or row resembles),
    searched widely, give a low-degree polynomial: the bend. Small patches, searched within less than a box's width
    on the page unbent by it, then correct it locally on a grid with a bending penalty. The fine shifts are carried
    back through the coarse displacement before the fit.
    """
    coarse = coarse_displacement(registered, blank, px_per_mm, settings)
    return None if coarse is None else refined_displacement(registered, blank, coarse, px_per_mm, settings)


def _fit_to(image: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """``image`` cut or padded (edge pixels repeated) to ``shape``."""
    image = image[: shape[0], : shape[1]]
    return cv2.copyMakeBorder(image, 0, shape[0] - image.shape[0], 0, shape[1] - image.shape[1],
                              cv2.BORDER_REPLICATE)


def estimate_displacement(registered: np.ndarray, template: Template, settings: ReadSettings) -> Displacement | None:
    """The page's smooth displacement from the homography (registered px), measured on a ``unbend_dpi`` copy;
    ``None`` if the print gives too few reliable patches."""
    scale = settings.unbend_dpi / settings.dpi
    blank = blank_print(template, settings.dpi, scale)
    small = _fit_to(shrunk(registered, scale), blank.shape)
    disp = measure_displacement(small, blank, settings.px_per_mm * scale, settings)
    return None if disp is None else disp.scaled((registered.shape[1], registered.shape[0]))


def sampling_maps(hom: np.ndarray, disp: Displacement, size: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """For every registered pixel, the scan pixel to sample: the homography's inverse at the displaced point.

    Computed every ``MAP_STEP`` pixels and interpolated (the mapping is smooth), as float32 maps for ``remap``.
    """
    w, h = size
    gx, gy = np.meshgrid(np.arange(0, w + MAP_STEP, MAP_STEP, dtype=float),
                         np.arange(0, h + MAP_STEP, MAP_STEP, dtype=float))
    dx, dy = disp.at(gx, gy)
    pts = np.stack([gx + dx, gy + dy], axis=-1).reshape(-1, 1, 2)
    scan = cv2.perspectiveTransform(pts, np.linalg.inv(hom)).reshape(gx.shape + (2,)).astype(np.float32)
    to_grid = np.array([[1 / MAP_STEP, 0, 0], [0, 1 / MAP_STEP, 0]])  # registered pixel -> grid node (exact)
    flags = cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP
    map_x = cv2.warpAffine(scan[..., 0], to_grid, (w, h), flags=flags, borderMode=cv2.BORDER_REPLICATE)
    map_y = cv2.warpAffine(scan[..., 1], to_grid, (w, h), flags=flags, borderMode=cv2.BORDER_REPLICATE)
    return map_x, map_y


def unbend(source: np.ndarray, hom: np.ndarray, disp: Displacement, paper: float) -> np.ndarray:
    """``source`` (the scan, or its shrunk copy that ``hom`` maps) registered through the homography and the
    displacement: the page as the flat form."""
    map_x, map_y = sampling_maps(hom, disp, disp.size)
    return cv2.remap(source, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT,
                     borderValue=int(paper))
