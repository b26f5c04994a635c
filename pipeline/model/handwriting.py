"""Handwriting-style augmentation in NumPy, one batch at a time: the ways people write that MNIST under-represents.

MNIST's writers were American census staff and students; tally sheets are filled by many other hands. Each
function here takes a float32 ``(N, 28, 28)`` stack (0-255, white on black, MNIST-normalised) and a seeded
:class:`numpy.random.Generator`, draws the same number of random values whatever the images hold (so a batch's
result depends only on its images, labels and seed), and works on the whole stack at once (array arithmetic and
SciPy filters; the one resampling is an OpenCV ``remap`` per image, about 10 us each):

* :func:`warp`: one resampling for a smooth elastic distortion (Simard et al. 2003), slant (shear) and a
  horizontal squeeze (narrow digits with thin loops).
* :func:`stroke_width`: 2x2 grey dilation or erosion (felt pen vs fine ballpoint).
* :func:`pen_pressure`: lighter ink and gaps where the pen skipped.
* :func:`flag_ones`, :func:`cross_sevens`, :func:`close_fours`: a European "1" with an up-stroke (and
  sometimes a foot), a European "7" with a crossbar, a closed "4". They touch only digits of that label, so
  every label stays right.
* :func:`wall_cut`, :func:`smear`: what the paper and the reader do to a digit rather than the writer: one side
  of a digit that lay on a box wall erased with the wall, and ink swollen by bleed. Held-out sheets showed these
  as most of the crops misread (a "0" cut open at the wall read as "6"; bled digits read as anything).

:func:`handwriting_batch` chains them for training (:class:`~pipeline.model.settings.HandwritingSettings`);
:func:`held_out_style` is the family kept out of training (heavy elastic + thick strokes,
:class:`~pipeline.model.settings.HeldOutStyleSettings`) on which calibration is fitted and measured.
"""

from __future__ import annotations

import cv2
import numpy as np
from scipy import ndimage

from pipeline.model.settings import HandwritingSettings, HeldOutStyleSettings

SIDE = 28
#: Centre of a 28x28 image in pixel coordinates: shear and squeeze act about it.
CENTRE = 13.5
MAX_PIXEL = 255.0
#: Grey level above which a pixel counts as ink when finding where strokes are.
INK_LEVEL = 128.0
#: Square footprint of the stroke-width change: about one pixel wider or narrower.
MORPH_SIZE = 2
#: Labels with a style variant.
ONE, FOUR, SEVEN = 1, 4, 7
#: At most this many gaps per faint digit.
MAX_GAPS = 2
#: Where a European "7"'s crossbar sits, as a share of the digit's height from its top.
CROSSBAR_HEIGHT = (0.45, 0.62)
#: Crossbar tilt: rise over its half length, in pixels.
CROSSBAR_TILT_PX = 1.0
#: Foot of a European "1": half length in pixels.
FOOT_HALF_PX = (2.5, 4.0)
#: The elastic field's Gaussian is cut at this many sigmas (smooth enough, and half the cost of SciPy's 4).
GAUSS_TRUNCATE = 2.0

_YY, _XX = np.mgrid[0:SIDE, 0:SIDE].astype(np.float32)


def _uniform(rng: np.random.Generator, pair: tuple[float, float], n: int) -> np.ndarray:
    """``n`` draws from ``U(pair[0], pair[1])`` as float32."""
    return rng.uniform(pair[0], pair[1], n).astype(np.float32)


def _chosen(rng: np.random.Generator, p: float, n: int) -> np.ndarray:
    """A boolean mask picking each of ``n`` images with probability ``p``."""
    return rng.random(n) < p


def resample(x: np.ndarray, src_y: np.ndarray, src_x: np.ndarray) -> np.ndarray:
    """Bilinear sampling of each image of ``x`` at its own source coordinates (outside the frame is black)."""
    out = np.empty(x.shape, np.float32)
    src_y, src_x = np.ascontiguousarray(src_y, np.float32), np.ascontiguousarray(src_x, np.float32)
    for i in range(len(x)):
        out[i] = cv2.remap(np.ascontiguousarray(x[i], np.float32), src_x[i], src_y[i], cv2.INTER_LINEAR,
                           borderMode=cv2.BORDER_CONSTANT, borderValue=0.0)
    return out


def elastic_field(rng: np.random.Generator, n: int, amplitude_px: np.ndarray, sigma: float) -> np.ndarray:
    """Smooth random displacements ``(2, N, 28, 28)`` (dy, dx) whose largest magnitude per image is
    ``amplitude_px``: white noise blurred by a Gaussian of ``sigma`` pixels, rescaled."""
    noise = rng.uniform(-1.0, 1.0, (2, n, SIDE, SIDE)).astype(np.float32)
    smooth = ndimage.gaussian_filter(noise, sigma=(0, 0, sigma, sigma), mode="constant", truncate=GAUSS_TRUNCATE)
    peak = np.abs(smooth).reshape(2, n, -1).max(axis=(0, 2))
    return smooth * (amplitude_px / np.maximum(peak, 1e-6))[None, :, None, None]


def warp(x: np.ndarray, displacement: np.ndarray | None, shear: np.ndarray, squeeze: np.ndarray) -> np.ndarray:
    """Resample once: the output pixel (y, x) takes the input at ``x' = c + (x - c) / squeeze + shear (y - c)``
    plus ``displacement`` (``(2, N, 28, 28)`` or ``None``). ``shear > 0`` leans the digit right; ``squeeze < 1``
    makes it narrower."""
    sx = CENTRE + (_XX[None] - CENTRE) / squeeze[:, None, None] + shear[:, None, None] * (_YY[None] - CENTRE)
    sy = np.broadcast_to(_YY[None], x.shape).astype(np.float32)
    if displacement is not None:
        sy, sx = sy + displacement[0], sx + displacement[1]
    return resample(x, sy, sx)


def stroke_width(x: np.ndarray, thicken: np.ndarray, thin: np.ndarray) -> np.ndarray:
    """Strokes about a pixel wider where ``thicken``, narrower where ``thin`` (2x2 grey dilation/erosion)."""
    out = x.copy()
    if thicken.any():
        out[thicken] = ndimage.grey_dilation(x[thicken], size=(1, MORPH_SIZE, MORPH_SIZE))
    if thin.any():
        out[thin] = ndimage.grey_erosion(x[thin], size=(1, MORPH_SIZE, MORPH_SIZE))
    return out


def random_ink_pixel(x: np.ndarray, u: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per image, the ink pixel (value > ``INK_LEVEL``) at rank ``u * count`` in raster order:
    ``(row, col, has_ink)``; ``u`` in ``[0, 1)`` comes from the caller's generator."""
    ink = (x > INK_LEVEL).reshape(len(x), -1)
    counts = ink.sum(axis=1)
    rank = np.floor(u * counts)
    flat = np.argmax(np.cumsum(ink, axis=1) > rank[:, None], axis=1)
    return (flat // SIDE).astype(np.float32), (flat % SIDE).astype(np.float32), counts > 0


def pen_pressure(x: np.ndarray, rng: np.random.Generator, s: HandwritingSettings) -> np.ndarray:
    """Light pressure: the ink scaled to ``s.faint`` of its level for ``p_faint`` of the digits, and for
    ``p_gap`` of them up to ``MAX_GAPS`` soft discs of ink removed on the strokes (where the pen skipped)."""
    n = len(x)
    faint = _chosen(rng, s.p_faint, n)
    level = np.where(faint, _uniform(rng, s.faint, n), 1.0).astype(np.float32)
    out = x * level[:, None, None]
    for k in range(MAX_GAPS):
        gap = _chosen(rng, s.p_gap if k == 0 else s.p_gap / 2, n)
        radius = _uniform(rng, s.gap_radius, n)
        row, col, has_ink = random_ink_pixel(x, rng.random(n))
        dist = np.hypot(_YY[None] - row[:, None, None], _XX[None] - col[:, None, None])
        keep = np.clip(dist - radius[:, None, None], 0.0, 1.0)
        out = np.where((gap & has_ink)[:, None, None], out * keep, out)
    return out


def _ink_extent(ink: np.ndarray, axis: int) -> tuple[np.ndarray, np.ndarray]:
    """First and last index holding ink along the other axis of each ``(N, 28, 28)`` boolean mask (``axis`` 1:
    columns, 2: rows); 0 and 27 for an image without ink."""
    lines = ink.any(axis=axis)
    first = np.argmax(lines, axis=1)
    last = SIDE - 1 - np.argmax(lines[:, ::-1], axis=1)
    return first.astype(np.float32), last.astype(np.float32)


def wall_cut(x: np.ndarray, rng: np.random.Generator, s: HandwritingSettings) -> np.ndarray:
    """For ``p_wall_cut`` of the digits, the ink within ``wall_cut`` of the digit's extent from one side erased
    (left or right; top or bottom for ``p_wall_cut_rows`` of them): the part of a stroke that lay on a box line
    the reader removed."""
    n = len(x)
    cut = _chosen(rng, s.p_wall_cut, n)
    rows = _chosen(rng, s.p_wall_cut_rows, n)
    far_side = _chosen(rng, 0.5, n)
    share = _uniform(rng, s.wall_cut, n)
    ink = x > INK_LEVEL
    col0, col1 = _ink_extent(ink, 1)
    row0, row1 = _ink_extent(ink, 2)
    lo, hi = np.where(rows, row0, col0), np.where(rows, row1, col1)
    depth = share * (hi - lo + 1)
    coord = np.where(rows[:, None, None], _YY[None], _XX[None])
    near = np.where(far_side[:, None, None], coord > (hi - depth)[:, None, None],
                    coord < (lo + depth)[:, None, None])
    return np.where(cut[:, None, None] & near, 0.0, x).astype(np.float32)


def smear(x: np.ndarray, rng: np.random.Generator, s: HandwritingSettings) -> np.ndarray:
    """For ``p_smear`` of the digits, ink bled into the paper: a Gaussian blur of ``smear_sigma`` with the ink
    raised by ``smear_gain`` (clipped), so strokes swell and small loops fill."""
    n = len(x)
    picked = _chosen(rng, s.p_smear, n)
    sigma = _uniform(rng, s.smear_sigma, n)
    gain = _uniform(rng, s.smear_gain, n)
    out = x.copy()
    for i in np.flatnonzero(picked):
        out[i] = np.minimum(cv2.GaussianBlur(x[i], (0, 0), float(sigma[i])) * gain[i], MAX_PIXEL)
    return out


def segment_ink(y0: np.ndarray, x0: np.ndarray, y1: np.ndarray, x1: np.ndarray, width: np.ndarray,
                level: np.ndarray) -> np.ndarray:
    """An anti-aliased straight stroke per image from ``(y0, x0)`` to ``(y1, x1)``, ``width`` pixels wide and
    ``level`` bright: ``(N, 28, 28)`` float32."""
    dy, dx = (y1 - y0)[:, None, None], (x1 - x0)[:, None, None]
    py, px = _YY[None] - y0[:, None, None], _XX[None] - x0[:, None, None]
    t = np.clip((py * dy + px * dx) / np.maximum(dy * dy + dx * dx, 1e-6), 0.0, 1.0)
    dist = np.hypot(py - t * dy, px - t * dx)
    cover = np.clip(width[:, None, None] / 2 + 0.5 - dist, 0.0, 1.0)
    return (cover * level[:, None, None]).astype(np.float32)


def ink_level(x: np.ndarray) -> np.ndarray:
    """The brightness of each digit's own strokes (its brightest pixel), so added strokes match the pen."""
    return x.reshape(len(x), -1).max(axis=1)


def ink_rows(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """First and last row holding ink, per image (0 and 27 for an image without ink)."""
    rows = (x > INK_LEVEL).any(axis=2)
    top = np.argmax(rows, axis=1)
    bottom = SIDE - 1 - np.argmax(rows[:, ::-1], axis=1)
    return top.astype(np.float32), bottom.astype(np.float32)


def ink_centre_in_row(x: np.ndarray, row: np.ndarray, columns: np.ndarray | None = None) -> tuple[np.ndarray,
                                                                                                     np.ndarray]:
    """Mean column of the ink in ``row`` of each image (within the boolean ``columns`` mask ``(N, 28)`` if given):
    ``(column, found)``."""
    r = np.clip(np.round(row).astype(int), 0, SIDE - 1)
    line = x[np.arange(len(x)), r] > INK_LEVEL
    if columns is not None:
        line &= columns
    count = line.sum(axis=1)
    centre = (line * _XX[0][None]).sum(axis=1) / np.maximum(count, 1)
    return centre.astype(np.float32), count > 0


def _add_stroke(x: np.ndarray, mask: np.ndarray, ends: tuple[np.ndarray, ...], width: np.ndarray) -> np.ndarray:
    """``x`` with a stroke (``ends`` = y0, x0, y1, x1) drawn over the images where ``mask`` holds."""
    out = x.copy()
    if mask.any():
        stroke = segment_ink(*(end[mask] for end in ends), width[mask], ink_level(x[mask]))
        out[mask] = np.maximum(x[mask], stroke)
    return out


def flag_ones(x: np.ndarray, labels: np.ndarray, rng: np.random.Generator, s: HandwritingSettings) -> np.ndarray:
    """European "1"s: for ``p_flag_one`` of the 1s, a short up-stroke from the top of the stem down to the left
    (``flag_length`` px at ``flag_angle_deg`` below the horizontal); ``p_foot`` of those also get a foot."""
    n = len(x)
    flag = (labels == ONE) & _chosen(rng, s.p_flag_one, n)
    foot = flag & _chosen(rng, s.p_foot, n)
    length, angle = _uniform(rng, s.flag_length, n), np.radians(_uniform(rng, s.flag_angle_deg, n))
    width, half_foot = _uniform(rng, s.added_stroke_px, n), _uniform(rng, FOOT_HALF_PX, n)
    top, bottom = ink_rows(x)
    top_x, top_found = ink_centre_in_row(x, top)
    bottom_x, bottom_found = ink_centre_in_row(x, bottom)
    out = _add_stroke(x, flag & top_found, (top, top_x, top + length * np.sin(angle),
                                            top_x - length * np.cos(angle)), width)
    return _add_stroke(out, foot & bottom_found, (bottom, bottom_x - half_foot, bottom, bottom_x + half_foot), width)


def cross_sevens(x: np.ndarray, labels: np.ndarray, rng: np.random.Generator, s: HandwritingSettings) -> np.ndarray:
    """European "7"s: for ``p_crossed_seven`` of the 7s, a short, slightly tilted bar across the stem
    about half-way down."""
    n = len(x)
    crossed = (labels == SEVEN) & _chosen(rng, s.p_crossed_seven, n)
    height, half = _uniform(rng, CROSSBAR_HEIGHT, n), _uniform(rng, s.crossbar_length, n) / 2
    tilt, width = _uniform(rng, (-CROSSBAR_TILT_PX, CROSSBAR_TILT_PX), n), _uniform(rng, s.added_stroke_px, n)
    top, bottom = ink_rows(x)
    row = top + height * (bottom - top)
    stem, found = ink_centre_in_row(x, row)
    return _add_stroke(x, crossed & found, (row + tilt, stem - half, row - tilt, stem + half), width)


def close_fours(x: np.ndarray, labels: np.ndarray, rng: np.random.Generator, s: HandwritingSettings) -> np.ndarray:
    """Closed "4"s: for ``p_closed_four`` of the 4s, a stroke joining the top of the left arm to the top of the
    stem (the topmost ink left and right of the digit's centre of mass), so the open top becomes a closed one."""
    n = len(x)
    close = (labels == FOUR) & _chosen(rng, s.p_closed_four, n)
    width = _uniform(rng, s.added_stroke_px, n)
    mass = np.maximum(x.sum(axis=(1, 2)), 1e-6)
    cx = (x * _XX[None]).sum(axis=(1, 2)) / mass
    left = _XX[0][None] < cx[:, None] - 1.0
    right = _XX[0][None] > cx[:, None]
    ink = x > INK_LEVEL
    ends, found = [], np.ones(n, bool)
    for side in (left, right):
        rows = (ink & side[:, None, :]).any(axis=2)
        row = np.argmax(rows, axis=1).astype(np.float32)
        col, ok = ink_centre_in_row(x, row, side)
        ends += [row, col]
        found &= rows.any(axis=1) & ok
    return _add_stroke(x, close & found, tuple(ends), width)


def handwriting_batch(x: np.ndarray, labels: np.ndarray, rng: np.random.Generator, s: HandwritingSettings,
                      fraction: float) -> np.ndarray:
    """A ``fraction`` of the batch given the training family of handwriting changes, the rest unchanged.

    Order: style variants of 1, 7 and 4 (found on the digit as written), stroke width, one warp (elastic, slant,
    squeeze), a wall cut and bleed, then pen pressure. Returns float32 ``(N, 28, 28)``, 0-255.
    """
    x = np.asarray(x, dtype=np.float32)
    picked = _chosen(rng, fraction, len(x))
    out = x.copy()
    if picked.any():
        out[picked] = restyle(x[picked], np.asarray(labels)[picked], rng, s)
    return out


def restyle(x: np.ndarray, labels: np.ndarray, rng: np.random.Generator, s: HandwritingSettings) -> np.ndarray:
    """Every digit of ``x`` through the training family, each change with its own probability (see
    :func:`handwriting_batch` for the order); float32 0-255 out."""
    n = len(x)
    out = close_fours(cross_sevens(flag_ones(x, labels, rng, s), labels, rng, s), labels, rng, s)
    thick = _chosen(rng, s.p_thick, n)
    out = stroke_width(out, thick, ~thick & _chosen(rng, s.p_thin, n))
    elastic = _chosen(rng, s.p_elastic, n) * _uniform(rng, s.elastic_px, n)
    shear = _chosen(rng, s.p_slant, n) * _uniform(rng, s.slant, n)
    squeeze = np.where(_chosen(rng, s.p_narrow, n), _uniform(rng, s.narrow, n), 1.0).astype(np.float32)
    out = warp(out, elastic_field(rng, n, elastic, s.elastic_sigma), shear, squeeze)
    out = smear(wall_cut(out, rng, s), rng, s)
    return np.clip(pen_pressure(out, rng, s), 0.0, MAX_PIXEL).astype(np.float32)


def disc(radius: float) -> np.ndarray:
    """A boolean disc footprint of ``radius`` pixels."""
    r = int(np.ceil(radius))
    yy, xx = np.mgrid[-r:r + 1, -r:r + 1]
    return yy * yy + xx * xx <= radius * radius


def held_out_style(x: np.ndarray, seed: int, s: HeldOutStyleSettings | None = None) -> np.ndarray:
    """The held-out family: strokes dilated by a disc of ``thick_radius`` px, then a heavy, kinky elastic
    distortion (``elastic_px`` at ``elastic_sigma``). Deterministic for ``seed``; uint8 ``(N, 28, 28)`` out."""
    s = s or HeldOutStyleSettings()
    rng = np.random.default_rng(seed)
    x = np.asarray(x, dtype=np.float32)
    n = len(x)
    radius = _uniform(rng, s.thick_radius, n)
    out = np.empty_like(x)
    for r in np.unique(radius.round(1)):
        rows = radius.round(1) == r
        out[rows] = ndimage.grey_dilation(x[rows], footprint=disc(float(r))[None])
    amplitude = _uniform(rng, s.elastic_px, n)
    out = warp(out, elastic_field(rng, n, amplitude, s.elastic_sigma), np.zeros(n, np.float32),
               np.ones(n, np.float32))
    return np.clip(np.round(out), 0, MAX_PIXEL).astype(np.uint8)
