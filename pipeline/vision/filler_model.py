"""Learned filler check: is the ink of a box a filler mark (an X, a dash) or a digit?

MNIST has no filler marks, so the digit recogniser would read an X as a 4 or 7 and a dash as a 1. The geometric
rules of :mod:`pipeline.vision.filler` describe one clean X; handwritten ones are curved, cursive, lopsided or
broken and slip through them. This check is learned instead, from

* **filler**: X's and dashes drawn at random by :func:`draw_filler` (MNIST has none): two strokes (or one cursive
  path) with random crossing angle, rotation, aspect, arm lengths (down to a lambda-like short arm), bow,
  wobble, hooks at the ends, broken strokes and cursive joins; dashes straight, bowed, wavy, doubled or hooked;
  random pen width and resolution;
* **digits**: MNIST *train* digits (never the test split, never scikit-learn's or font-rendered digits),
  rendered at the same random resolutions and pen widths.

**Features** (:func:`features`): the ink's bounding box is scaled so that its longer side is 20 px in a 28x28
field (as MNIST digits are, aspect kept) and described by a histogram of oriented gradients (:func:`hog`: 4 x 4
cells, 9 orientations), plus the log aspect ratio, the ink density, and measures of the strokes thinned to one
pixel at a fixed size: stroke ends after spur pruning, forks, holes, pieces, and the geometric X measures of
:mod:`pipeline.vision.filler` (how far both diagonals are inked, the ink in the wedges between them). 154 numbers.

**Model**: three perceptrons, each with one hidden layer of 32 ReLU units and three outputs (digit / x / dash),
whose logits are averaged (on the tuning data the average of three kept the same share of digits and found about
2 points more X's than one alone). They are fitted by scikit-learn's ``MLPClassifier`` (Adam, seeds 0-2:
deterministic) by ``python -m pipeline.vision.filler_model train`` (about 5-10 minutes on two shared cores).
Their parameters (about 15,000 numbers) are the plain JSON file :data:`PARAMS` beside this module, read with
:func:`json.loads` (nothing executable is loaded); the reader needs only numpy.

**Decision**: a box is a filler mark when its filler score, the log-odds ``log((P(x) + P(dash)) / P(digit))``,
reaches the threshold stored with the parameters. :func:`choose_threshold` picks it on synthetic tuning data only,
never on a real form: the lowest score at which at most :data:`TUNE_MAX_DIGIT_RATE` (0.05 %) of the 10,000
MNIST-train digits held out of the fit (each rendered twice), and at most :data:`TUNE_MAX_CLASS_RATE` (0.2 %) of
those of any one class, are taken for filler. A digit taken for filler silently drops the field's leading digit,
while a missed X is read as a digit and usually caught (a low-confidence read, a failing rule), so the threshold
is set by the digits; the X's and dashes drawn with other seeds only report what that costs (on the tuning data,
0.1 % / 0.3 % would have found about 3 points more X's and taken three times as many digits). The kind reported
is the likelier of ``x`` and ``dash``, and only if the template declares it.

Held-out checks (:func:`evaluate`, ``python -m pipeline.vision.filler_model evaluate``): marks drawn by
:func:`draw_held_out`, whose drawing functions and styles the fit never saw (pressure-brush strokes through
jittered waypoints at rotations beyond the training range, back-to-back-arc cursive x's, tapered dashes), and
MNIST *test* digits of every class taken for filler.
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import cv2
import numpy as np

from pipeline.vision.filler import (
    MIN_REACH_PX,
    X_REACH,
    X_SPUR,
    _codes,
    _cover,
    arm_count,
    skeleton,
    stroke_ends,
    wedge_ink,
)

log = logging.getLogger(__name__)

#: Number of set bits of each neighbourhood code: a skeleton pixel's neighbours.
_POPCOUNT = np.array([bin(i).count("1") for i in range(256)], np.uint8)

#: The learned parameters (written by :func:`train`).
PARAMS = Path(__file__).with_name("filler_model.json")
#: Classes of the model, in the order of its outputs.
CLASSES = ("digit", "x", "dash")
#: Normalised field: the ink's longer side is scaled to ``FIT`` px in a ``SIDE`` x ``SIDE`` image (as MNIST).
SIDE, FIT = 28, 20
#: Side (px) the ink is scaled to for the stroke measures (skeleton, ends, forks, holes).
SHAPE_SIDE = 32
#: Histogram of oriented gradients over the normalised field (:func:`hog`): cell side (px) and bins.
HOG_CELL, HOG_BINS = 7, 9
#: Largest share of all the tuning digits, and of those of any one class, that may be taken for filler
#: (:func:`choose_threshold`).
TUNE_MAX_DIGIT_RATE, TUNE_MAX_CLASS_RATE = 0.0005, 0.002
#: Sizes of the training and tuning sets (filler marks drawn; MNIST-train digits split at ``MNIST_FIT``).
N_X, N_DASH, MNIST_FIT = 24000, 8000, 50000
N_TUNE_X, N_TUNE_DASH = 4000, 1500
#: Renderings of each MNIST-train digit (sizes, pens and cuts differ), for the fit and for the tuning.
DIGIT_RENDERS = 2
#: Seeds: training marks, tuning marks, digit rendering, held-out marks.
SEED_FIT, SEED_TUNE, SEED_DIGITS, SEED_HELD_OUT = 1501, 1502, 1503, 1599
#: The perceptrons: hidden units, L2 penalty, training epochs (scikit-learn's ``MLPClassifier``, Adam), how many
#: are fitted (seeds 0, 1, ...; their logits are averaged), and the decimals their parameters are kept to.
HIDDEN, ALPHA, EPOCHS, MEMBERS, DECIMALS = (32,), 1e-3, 80, 3, 5
#: Longer side (px) of rendered marks and digits: the resolutions a box's ink comes in.
INK_PX = (12, 64)
#: Share of its box's height that a mark's or digit's longer side fills (:func:`box_height_of`).
MARK_FILL = 0.75
#: Pen widths of drawn X's and dashes (fractions of the mark's longer side): up to the thick strokes of a soft
#: scan cut at a low ink level.
PEN_X, PEN_DASH = (0.03, 0.24), (0.02, 0.12)
#: Gaussian blur (px, random in this range) of a scan's softness, applied to marks and digits before the cut.
SCAN_BLUR = (0.0, 1.0)
#: Supersampling of the drawing canvas before the marks are scaled to their size.
SUPER = 4


# ---------------------------------------------------------------------------------------------------- features

def hog(img: np.ndarray, cell: int = HOG_CELL, bins: int = HOG_BINS) -> np.ndarray:
    """Histogram of oriented gradients of a float image: unsigned orientations in ``bins`` bins (linear vote
    between the two nearest), summed over ``cell`` px square cells, the whole normalised to sum 1."""
    gx = cv2.Sobel(img, cv2.CV_32F, 1, 0, ksize=1)
    gy = cv2.Sobel(img, cv2.CV_32F, 0, 1, ksize=1)
    mag = np.hypot(gx, gy)
    pos = (np.rad2deg(np.arctan2(gy, gx)) % 180.0) / (180.0 / bins) - 0.5
    lo = np.floor(pos).astype(int)
    frac = pos - lo
    h, w = img.shape
    ny, nx = h // cell, w // cell
    cells = (np.minimum(np.arange(h) // cell, ny - 1)[:, None] * nx + np.minimum(np.arange(w) // cell, nx - 1))
    index = np.concatenate([(cells * bins + lo % bins).ravel(), (cells * bins + (lo + 1) % bins).ravel()])
    votes = np.concatenate([(mag * (1 - frac)).ravel(), (mag * frac).ravel()])
    hist = np.bincount(index, votes, ny * nx * bins)
    return (hist / (hist.sum() + 1e-6)).astype(np.float32)


def _crop(mask: np.ndarray) -> np.ndarray:
    ys, xs = np.nonzero(mask)
    return mask[ys.min(): ys.max() + 1, xs.min(): xs.max() + 1]


def normalised(mask: np.ndarray, side: int = SIDE, fit: int = FIT) -> np.ndarray:
    """The ink's bounding box scaled (aspect kept) so its longer side is ``fit`` px, centred in a ``side`` field;
    float 0-1."""
    m = _crop(mask).astype(np.float32)
    h, w = m.shape
    scale = fit / max(h, w)
    nh, nw = max(1, round(h * scale)), max(1, round(w * scale))
    interp = cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
    small = cv2.resize(m, (nw, nh), interpolation=interp)
    out = np.zeros((side, side), np.float32)
    top, left = (side - nh) // 2, (side - nw) // 2
    out[top: top + nh, left: left + nw] = small
    return out


def _shape_measures(mask: np.ndarray) -> list[float]:
    """Stroke measures of the ink at a fixed size (:data:`SHAPE_SIDE`), independent of resolution and pen."""
    m = _crop(mask)
    h, w = m.shape
    scale = SHAPE_SIDE / max(h, w)
    nh, nw = max(3, round(h * scale)), max(3, round(w * scale))
    big = cv2.resize(m.astype(np.float32), (nw, nh), interpolation=cv2.INTER_AREA if scale < 1
                     else cv2.INTER_LINEAR) >= 0.5
    if not big.any():
        big = cv2.resize(m.astype(np.uint8), (nw, nh), interpolation=cv2.INTER_NEAREST) > 0
    skel = skeleton(np.pad(big, 1))
    spur = max(1, round(X_SPUR * min(nh, nw)))
    arms = arm_count(skel, spur)
    ends = int(stroke_ends(skel.astype(np.uint8)).sum())
    forks = int((skel & (_POPCOUNT[_codes(skel)] >= 3)).sum())
    filled = big.astype(np.uint8)
    n_parts, _ = cv2.connectedComponents(filled, connectivity=8)
    inv = np.pad(1 - filled, 1, constant_values=1)
    n_bg, labels, stats, _ = cv2.connectedComponentsWithStats(inv, connectivity=4)
    holes = int(sum(stats[i, cv2.CC_STAT_AREA] >= 4 for i in range(2, n_bg)))
    core = skel[1:-1, 1:-1]
    ch, cw = core.shape
    reach = max(MIN_REACH_PX, X_REACH * min(ch, cw))
    side = 2 * int(np.ceil(reach)) + 1
    near = cv2.dilate(big.astype(np.uint8), cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (side, side)))
    t = np.linspace(0.08, 0.92, 24)
    main = _cover(near, np.stack([t * (cw - 1), t * (ch - 1)], axis=1))
    anti = _cover(near, np.stack([(1 - t) * (cw - 1), t * (ch - 1)], axis=1))
    wedge = wedge_ink(core, reach) if core.any() else 1.0
    return [min(arms, 6) / 6, min(ends, 8) / 8, min(forks, 12) / 12, min(holes, 3) / 3, min(n_parts - 1, 4) / 4,
            min(main, anti), max(main, anti), wedge]


def features(mask: np.ndarray) -> np.ndarray:
    """Feature vector of one box's ink (a boolean mask; any size, cropped or not)."""
    mask = np.asarray(mask, bool)
    m = _crop(mask)
    h, w = m.shape
    img = normalised(m)
    grads = hog(cv2.GaussianBlur(img, (3, 3), 0.8))  # 4 x 4 cells x 9 bins
    extra = [np.log(w / h), float(m.mean()), *_shape_measures(m)]
    return np.concatenate([grads, np.asarray(extra, np.float32)]).astype(np.float32)


def feature_matrix(masks) -> np.ndarray:
    return np.stack([features(m) for m in masks])


# ------------------------------------------------------------------------------------------------------- model

Layers = tuple[tuple[np.ndarray, np.ndarray], ...]


def _member_logits(a: np.ndarray, layers: Layers) -> np.ndarray:
    for i, (w, b) in enumerate(layers):
        a = a @ w + b
        if i < len(layers) - 1:
            a = np.maximum(a, 0.0)
    return a


def _check_layers(layers: Layers, width: int) -> None:
    for w, b in layers:
        if w.ndim != 2 or w.shape[0] != width or b.shape != (w.shape[1],):
            raise ValueError(f"filler model shapes do not match: a layer {w.shape} after width {width}")
        width = w.shape[1]
    if width != len(CLASSES):
        raise ValueError(f"filler model shapes do not match: {width} outputs for {len(CLASSES)} classes")


@dataclass(frozen=True)
class FillerModel:
    """Small perceptrons (``members``, each a tuple of (weights, bias) layers with ReLU between them and one
    output per class of :data:`CLASSES`) on the standardised features, their logits averaged; and the threshold
    on the filler score (:meth:`filler_score`)."""

    mean: np.ndarray
    scale: np.ndarray
    members: tuple[Layers, ...]
    threshold: float

    def logits(self, feats: np.ndarray) -> np.ndarray:
        a = (np.atleast_2d(feats) - self.mean) / self.scale
        return np.mean([_member_logits(a, layers) for layers in self.members], axis=0)

    def probabilities(self, feats: np.ndarray) -> np.ndarray:
        z = self.logits(feats)
        e = np.exp(z - z.max(axis=1, keepdims=True))
        return e / e.sum(axis=1, keepdims=True)

    def filler_score(self, feats: np.ndarray) -> np.ndarray:
        """Log-odds that each row's ink is a filler mark (x or dash) rather than a digit."""
        z = self.logits(feats)
        return np.logaddexp(z[:, 1], z[:, 2]) - z[:, 0]

    def to_json(self, meta: dict) -> dict:
        r = lambda a: np.round(np.asarray(a, float), DECIMALS).tolist()  # noqa: E731
        return {"classes": list(CLASSES), "threshold": round(float(self.threshold), 4),
                "feature_mean": r(self.mean), "feature_scale": r(self.scale),
                "members": [[{"weights": r(w), "bias": r(b)} for w, b in layers] for layers in self.members],
                "meta": meta}

    @classmethod
    def from_json(cls, raw: dict) -> FillerModel:
        if raw.get("classes") != list(CLASSES):
            raise ValueError(f"filler model classes {raw.get('classes')!r}, expected {list(CLASSES)}")
        mean, scale = np.asarray(raw["feature_mean"], np.float64), np.asarray(raw["feature_scale"], np.float64)
        if scale.shape != mean.shape or mean.ndim != 1:
            raise ValueError(f"filler model shapes do not match: mean {mean.shape}, scale {scale.shape}")
        members = tuple(tuple((np.asarray(layer["weights"], np.float64), np.asarray(layer["bias"], np.float64))
                              for layer in member) for member in raw["members"])
        if not members:
            raise ValueError("filler model shapes do not match: no members")
        for layers in members:
            _check_layers(layers, len(mean))
        return cls(mean, scale, members, float(raw["threshold"]))


@lru_cache(maxsize=4)
def load_model(path: Path = PARAMS) -> FillerModel:
    """The learned parameters (plain JSON: nothing executable is read)."""
    return FillerModel.from_json(json.loads(Path(path).read_text()))


def learned_kind(mask: np.ndarray, marks: tuple[str, ...], model: FillerModel | None = None) -> str:
    """``"x"`` or ``"dash"`` if the learned check takes the ink for that filler mark and the template declares it
    (``marks``), else ``""``."""
    model = model or load_model()
    feats = features(mask)
    if model.filler_score(feats)[0] < model.threshold:
        return ""
    z = model.logits(feats)[0]
    kind = "x" if z[CLASSES.index("x")] >= z[CLASSES.index("dash")] else "dash"
    return kind if kind in marks else ""


# ------------------------------------------------------------------------------------------- synthetic strokes

def _bezier(p0, p1, p2, n: int = 32) -> np.ndarray:
    t = np.linspace(0, 1, n)[:, None]
    return (1 - t) ** 2 * p0 + 2 * (1 - t) * t * p1 + t ** 2 * p2


def _bowed(a: np.ndarray, b: np.ndarray, bow: float, n: int = 32) -> np.ndarray:
    """A quadratic curve from ``a`` to ``b`` bulging ``bow`` (a fraction of its length) to one side."""
    d = b - a
    normal = np.array([-d[1], d[0]])
    return _bezier(a, (a + b) / 2 + bow * normal, b, n)


def _wobble(path: np.ndarray, rng: np.random.Generator, amp: float) -> np.ndarray:
    """Low-frequency hand tremor across the path."""
    n = len(path)
    t = np.linspace(0, 1, n)
    d = np.gradient(path, axis=0)
    normal = np.stack([-d[:, 1], d[:, 0]], axis=1)
    normal /= np.linalg.norm(normal, axis=1, keepdims=True) + 1e-9
    off = sum(rng.normal(0, amp) * np.sin(np.pi * k * t + rng.uniform(0, np.pi)) for k in (1, 2, 3))
    return path + normal * off[:, None]


def _hook(path: np.ndarray, rng: np.random.Generator, at_end: bool) -> np.ndarray:
    """A short tail turned off the path's start or end (a pen landing or lifting)."""
    p = path if at_end else path[::-1]
    d = p[-1] - p[-4]
    d /= np.linalg.norm(d) + 1e-9
    ang = np.deg2rad(rng.choice([-1, 1]) * rng.uniform(60, 160))
    rot = np.array([[np.cos(ang), -np.sin(ang)], [np.sin(ang), np.cos(ang)]])
    tail = p[-1] + np.linspace(0, 1, 8)[1:, None] * (rot @ d) * rng.uniform(0.05, 0.15)
    p = np.vstack([p, tail])
    return p if at_end else p[::-1]


def _break(path: np.ndarray, rng: np.random.Generator) -> list[np.ndarray]:
    """The path with a small gap (a skipping pen)."""
    n = len(path)
    gap = max(1, int(n * rng.uniform(0.04, 0.12)))
    at = int(rng.integers(n // 5, max(n // 5 + 1, n - n // 5 - gap)))
    return [path[:at], path[at + gap:]]


def _x_paths(rng: np.random.Generator) -> list[np.ndarray]:
    """The strokes of one X in unit coordinates around (0, 0) (training style)."""
    a1 = np.deg2rad(45 + rng.normal(0, 12))
    a2 = np.deg2rad(135 + rng.normal(0, 12))
    paths = []
    short = rng.random() < 0.12  # a lambda-like X: one arm barely past the crossing
    for k, a in enumerate((a1, a2)):
        d = np.array([np.cos(a), np.sin(a)])
        lengths = rng.uniform(0.3, 0.55, 2)
        if short and k == 1:
            lengths[int(rng.integers(2))] = rng.uniform(0.12, 0.25)
        start, end = -lengths[0] * d, lengths[1] * d
        path = _bowed(start, end, rng.normal(0, 0.12))
        path = _wobble(path, rng, rng.uniform(0, 0.02))
        if rng.random() < 0.5:
            path = path[::-1]
        paths.append(path)
    paths[0] = paths[0] + rng.normal(0, 0.08, 2)  # the crossing off the strokes' middles
    if not short and rng.random() < 0.12:  # cursive: the pen runs on from one stroke's end to the other's start
        a, b = paths[0][-1], paths[1][0]
        join = _bowed(a, b, rng.uniform(0.05, 0.25) * rng.choice([-1, 1]), 16)
        paths = [np.vstack([paths[0], join[1:-1], paths[1]])]
    out = []
    for p in paths:
        if rng.random() < 0.2:
            p = _hook(p, rng, at_end=True)
        if rng.random() < 0.15:
            p = _hook(p, rng, at_end=False)
        out += _break(p, rng) if rng.random() < 0.1 else [p]
    return out


def _dash_paths(rng: np.random.Generator) -> list[np.ndarray]:
    """The strokes of one dash (straight, bowed, wavy, doubled or hooked) in unit coordinates."""
    half = rng.uniform(0.15, 0.5)
    a = np.deg2rad(rng.normal(0, 8))
    d = np.array([np.cos(a), np.sin(a)])
    path = _bowed(-half * d, half * d, rng.normal(0, 0.08))
    if rng.random() < 0.2:  # wavy, a tilde
        t = np.linspace(0, 1, len(path))
        path = path + np.stack([np.zeros_like(t), rng.uniform(0.03, 0.08) * np.sin(2 * np.pi * t * rng.uniform(
            0.8, 1.6) + rng.uniform(0, np.pi))], axis=1)
    path = _wobble(path, rng, rng.uniform(0, 0.01))
    paths = [path]
    if rng.random() < 0.1:  # doubled, "="
        paths.append(path + np.array([rng.normal(0, 0.03), rng.uniform(0.15, 0.3) * half * 2]))
    out = []
    for p in paths:
        if rng.random() < 0.12:
            p = _hook(p, rng, at_end=bool(rng.random() < 0.5))
        out.append(p)
    return out


def _transform(paths: list[np.ndarray], rng: np.random.Generator, rot_sd: float, squash: tuple[float, float]
               ) -> list[np.ndarray]:
    r = np.deg2rad(rng.normal(0, rot_sd))
    rot = np.array([[np.cos(r), -np.sin(r)], [np.sin(r), np.cos(r)]])
    sx = np.exp(rng.uniform(np.log(squash[0]), np.log(squash[1])))
    return [(p @ rot.T) * np.array([sx, 1.0]) for p in paths]


def render(paths: list[np.ndarray], rng: np.random.Generator, widths: list[np.ndarray] | None = None,
           pen: tuple[float, float] = (0.03, 0.16), ink_px: tuple[int, int] = INK_PX,
           blur: tuple[float, float] = (0.0, 0.0)) -> np.ndarray:
    """Boolean mask (cropped) of ``paths`` drawn with a random pen at a random size: the longer side of the
    strokes' extent is ``ink_px`` px, the pen's width a fraction ``pen`` of it (or ``widths`` per point, same
    fraction units, stamped as discs)."""
    pts = np.vstack(paths)
    lo, hi = pts.min(axis=0), pts.max(axis=0)
    extent = max(float((hi - lo).max()), 1e-3)
    size = int(rng.integers(ink_px[0], ink_px[1] + 1))
    width = rng.uniform(*pen) * size
    px = size * SUPER / extent
    margin = int(np.ceil(width * SUPER)) + 2
    canvas_hw = np.ceil((hi - lo) * px).astype(int)[::-1] + 2 * margin + 1
    canvas = np.zeros(tuple(canvas_hw), np.uint8)
    for i, p in enumerate(paths):
        q = ((p - lo) * px + margin).astype(np.float32)
        if widths is None:
            cv2.polylines(canvas, [np.round(q * 16).astype(np.int32)], False, 255,
                          max(1, round(width * SUPER)), cv2.LINE_AA, shift=4)
        else:
            for (x, y), wd in zip(q, widths[i], strict=True):
                cv2.circle(canvas, (round(x * 16), round(y * 16)), max(1, round(wd * size * SUPER / 2 * 16)),
                           255, -1, cv2.LINE_AA, shift=4)
    small = cv2.resize(canvas, (max(1, canvas.shape[1] // SUPER), max(1, canvas.shape[0] // SUPER)),
                       interpolation=cv2.INTER_AREA)
    sigma = rng.uniform(*blur) if blur[1] > 0 else 0.0
    if sigma > 0.1:  # a scan's softness: strokes come out rounder and, cut at a low level, thicker
        small = cv2.GaussianBlur(small, (0, 0), sigma)
    mask = small >= 255 * rng.uniform(0.3, 0.6)
    if not mask.any():
        mask = small >= small.max()
    return _crop(mask)


def draw_filler(kind: str, rng: np.random.Generator) -> np.ndarray:
    """A random X or dash (training style), as a cropped boolean mask."""
    if kind == "x":
        return render(_transform(_x_paths(rng), rng, 10, (0.6, 1.6)), rng, pen=PEN_X, blur=SCAN_BLUR)
    if kind == "dash":
        return render(_transform(_dash_paths(rng), rng, 0, (1.0, 1.0)), rng, pen=PEN_DASH, blur=SCAN_BLUR)
    raise ValueError(kind)


def render_digit(digit28: np.ndarray, rng: np.random.Generator, ink_px: tuple[int, int] = INK_PX) -> np.ndarray:
    """An MNIST digit (28x28 grey) as a box's cropped ink mask at a random size, cut at a random grey level and
    its pen thinned or thickened a little."""
    src = _crop(digit28 > 0)
    ys, xs = np.nonzero(digit28 > 0)
    grey = digit28[ys.min(): ys.max() + 1, xs.min(): xs.max() + 1].astype(np.float32) / 255
    h, w = src.shape
    size = int(rng.integers(ink_px[0], ink_px[1] + 1))
    scale = size / max(h, w)
    big = cv2.resize(grey, (max(1, round(w * scale)), max(1, round(h * scale))), interpolation=cv2.INTER_LINEAR
                     if scale >= 1 else cv2.INTER_AREA)
    sigma = rng.uniform(*SCAN_BLUR)
    if sigma > 0.1:
        big = cv2.GaussianBlur(big, (0, 0), sigma)
    mask = (big >= rng.uniform(0.25, 0.6)).astype(np.uint8)
    change = rng.random()
    if size >= 24 and change < 0.2:
        mask = cv2.dilate(mask, np.ones((2, 2), np.uint8))
    elif size >= 24 and change < 0.3:
        eroded = cv2.erode(mask, np.ones((2, 2), np.uint8))
        mask = eroded if eroded.sum() > 0.4 * mask.sum() else mask
    if not mask.any():
        mask = (big >= big.max()).astype(np.uint8)
    return _crop(mask > 0)


# --------------------------------------------------------------------------------- held-out synthetic strokes

def _spline(points: np.ndarray, n: int = 40) -> np.ndarray:
    """Catmull-Rom curve through ``points``."""
    p = np.vstack([points[0], points, points[-1]])
    out = []
    for i in range(1, len(p) - 2):
        t = np.linspace(0, 1, n // (len(p) - 3) + 2)[:-1, None]
        p0, p1, p2, p3 = p[i - 1], p[i], p[i + 1], p[i + 2]
        out.append(0.5 * (2 * p1 + (-p0 + p2) * t + (2 * p0 - 5 * p1 + 4 * p2 - p3) * t ** 2
                          + (-p0 + 3 * p1 - 3 * p2 + p3) * t ** 3))
    out.append(points[-1:])
    return np.vstack(out)


def _pressure(n: int, rng: np.random.Generator) -> np.ndarray:
    """Pen width along a brush stroke (fraction of the mark's size): thin at the ends, swelling in between."""
    t = np.linspace(0, 1, n)
    base = rng.uniform(0.04, 0.12)
    return base * (0.45 + 0.55 * np.sin(np.pi * t) ** rng.uniform(0.3, 1.2)) * (1 + rng.normal(0, 0.05, n))


#: The held-out styles (:func:`draw_held_out`), each named ``<style>_<kind>``.
HELD_OUT_STYLES = ("brush_x", "arcs_x", "brush_dash")


def draw_held_out(style: str, rng: np.random.Generator) -> np.ndarray:
    """A filler mark in a style the model was not fitted on (cropped boolean mask):

    * ``brush_x``: two pressure-brush strokes (:func:`_pressure`) through 4-6 jittered waypoints, turned by up to
      +-35 degrees (training: a normal spread of 8), crossing anywhere in the middle third;
    * ``arcs_x``: a cursive x made of two back-to-back arcs, ``)(``, touching or crossing at the middle;
    * ``brush_dash``: a tapered brush dash through jittered waypoints, tilted up to +-12 degrees.
    """
    if style == "brush_x":
        cross = rng.uniform(-0.17, 0.17, 2)
        paths = []
        for a in (rng.uniform(25, 65), rng.uniform(115, 155)):
            d = np.array([np.cos(np.deg2rad(a)), np.sin(np.deg2rad(a))])
            n = int(rng.integers(4, 7))
            t = np.linspace(-rng.uniform(0.25, 0.5), rng.uniform(0.25, 0.5), n)
            way = cross + t[:, None] * d + rng.normal(0, 0.025, (n, 2))
            paths.append(_spline(way))
        paths = _rotate(paths, rng.uniform(-35, 35))
        return render(paths, rng, widths=[_pressure(len(p), rng) for p in paths], ink_px=(12, 60))
    if style == "arcs_x":
        overlap = rng.uniform(-0.02, 0.06)  # < 0: a small gap between the arcs' apexes
        height, depth = rng.uniform(0.7, 1.0), rng.uniform(0.2, 0.4)
        t = np.linspace(-1, 1, 30)
        left = np.stack([overlap - depth * t ** 2, t * height / 2], axis=1)
        right = np.stack([depth * t ** 2 - overlap, t * height / 2], axis=1)
        paths = _rotate([_wobble(left, rng, 0.01), _wobble(right, rng, 0.01)], rng.normal(0, 10))
        return render(paths, rng, pen=(0.04, 0.14), ink_px=(12, 60))
    if style == "brush_dash":
        n = int(rng.integers(3, 6))
        half = rng.uniform(0.2, 0.5)
        way = np.stack([np.linspace(-half, half, n), rng.normal(0, 0.02, n)], axis=1)
        paths = _rotate([_spline(way)], rng.uniform(-12, 12))
        return render(paths, rng, widths=[_pressure(len(paths[0]), rng) * 0.8], ink_px=(12, 60))
    raise ValueError(style)


def _rotate(paths: list[np.ndarray], degrees: float) -> list[np.ndarray]:
    r = np.deg2rad(degrees)
    rot = np.array([[np.cos(r), -np.sin(r)], [np.sin(r), np.cos(r)]])
    return [p @ rot.T for p in paths]


# -------------------------------------------------------------------------------------- training and tuning

def _marks(kind: str, n: int, seed: int) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [draw_filler(kind, rng) for _ in range(n)]


def _digits(images: np.ndarray, seed: int) -> list[np.ndarray]:
    """Each digit rendered :data:`DIGIT_RENDERS` times (all of them once, then again)."""
    rng = np.random.default_rng(seed)
    return [render_digit(d, rng) for _ in range(DIGIT_RENDERS) for d in images]


def choose_threshold(digit_scores: np.ndarray, digit_labels: np.ndarray, max_rate: float = TUNE_MAX_DIGIT_RATE,
                     max_class_rate: float = TUNE_MAX_CLASS_RATE) -> float:
    """The lowest threshold on the filler score at which at most ``max_rate`` of all the digits, and at most
    ``max_class_rate`` of the digits of every class, score at or above it."""
    def above(scores: np.ndarray, rate: float) -> float:
        ranked = np.sort(scores)[::-1]
        allowed = int(np.floor(rate * len(ranked)))
        return float(np.nextafter(ranked[allowed], np.inf)) if allowed < len(ranked) else -np.inf

    thr = above(digit_scores, max_rate)
    for label in np.unique(digit_labels):
        thr = max(thr, above(digit_scores[digit_labels == label], max_class_rate))
    return thr


def train(out: Path = PARAMS) -> dict:
    """Fit the model on synthetic marks and MNIST-train digits, choose its threshold on the tuning split, write
    ``out`` and return the tuning figures."""
    from sklearn.neural_network import MLPClassifier

    from pipeline.mnist import load_mnist

    start = time.perf_counter()
    mnist = load_mnist()
    fit_d, tune_d = mnist.x_train[:MNIST_FIT], mnist.x_train[MNIST_FIT:]
    tune_l = np.tile(mnist.y_train[MNIST_FIT:], DIGIT_RENDERS)
    x_fit = feature_matrix(_digits(fit_d, SEED_DIGITS) + _marks("x", N_X, SEED_FIT)
                           + _marks("dash", N_DASH, SEED_FIT + 1))
    y_fit = np.concatenate([np.zeros(len(fit_d) * DIGIT_RENDERS, int), np.ones(N_X, int), np.full(N_DASH, 2)])
    log.info("features of %d fit samples in %.0f s", len(y_fit), time.perf_counter() - start)
    mean = x_fit.mean(axis=0).astype(np.float64)
    scale = x_fit.std(axis=0).astype(np.float64) + 1e-6
    z = (x_fit.astype(np.float64) - mean) / scale
    members, iterations = [], []
    for seed in range(MEMBERS):
        clf = MLPClassifier(HIDDEN, alpha=ALPHA, max_iter=EPOCHS, random_state=seed).fit(z, y_fit)
        # rounded as the JSON file has them, so that the threshold is chosen on the model that is shipped
        members.append(tuple((np.round(w, DECIMALS), np.round(b, DECIMALS))
                             for w, b in zip(clf.coefs_, clf.intercepts_, strict=True)))
        iterations.append(int(clf.n_iter_))
    model = FillerModel(np.round(mean, DECIMALS), np.round(scale, DECIMALS), tuple(members), 0.0)
    tune_digits = model.filler_score(feature_matrix(_digits(tune_d, SEED_DIGITS + 1)))
    threshold = round(choose_threshold(tune_digits, tune_l) + 5e-5, 4)
    model = FillerModel(model.mean, model.scale, model.members, threshold)
    tune_x = model.filler_score(feature_matrix(_marks("x", N_TUNE_X, SEED_TUNE)))
    tune_dash = model.filler_score(feature_matrix(_marks("dash", N_TUNE_DASH, SEED_TUNE + 1)))
    per_class = {str(k): f"{int((tune_digits[tune_l == k] >= threshold).sum())}/{int((tune_l == k).sum())}"
                 for k in range(10)}
    figures = {"threshold": threshold, "max_digit_rate": TUNE_MAX_DIGIT_RATE,
               "max_class_rate": TUNE_MAX_CLASS_RATE,
               "tune_digits_taken": f"{int((tune_digits >= threshold).sum())}/{len(tune_l)}",
               "tune_digits_taken_per_class": per_class,
               "tune_x_found": f"{int((tune_x >= threshold).sum())}/{N_TUNE_X}",
               "tune_dash_found": f"{int((tune_dash >= threshold).sum())}/{N_TUNE_DASH}",
               "seconds": round(time.perf_counter() - start, 1)}
    meta = {"written_by": "python -m pipeline.vision.filler_model train", "mnist": "train split only",
            "fit": {"mnist_train": MNIST_FIT, "digit_renders": DIGIT_RENDERS, "x": N_X, "dash": N_DASH,
                    "seeds": [SEED_FIT, SEED_DIGITS],
                    "hidden": list(HIDDEN), "alpha": ALPHA, "epochs": EPOCHS, "members": MEMBERS,
                    "iterations": iterations},
            "tuning": figures}
    out.write_text(json.dumps(model.to_json(meta), separators=(",", ":")) + "\n")
    load_model.cache_clear()
    return figures


def box_height_of(mask: np.ndarray) -> int:
    """The height of the box a mark or digit of this ink would be written in: its longer side fills
    :data:`MARK_FILL` of it (an MNIST digit, 20 px, in a 27 px box)."""
    return round(max(mask.shape) / MARK_FILL)


def evaluate(n: int = 1000) -> dict:
    """Held-out figures of the whole check (:func:`pipeline.vision.filler.filler_kind`, the geometric dash test
    then the learned check) next to the geometric rules alone (:func:`pipeline.vision.filler.geometric_kind`):
    ``n`` marks of each :func:`draw_held_out` style read as their kind, and MNIST *test* digits of each class
    (all of them) taken for filler."""
    from pipeline.mnist import load_mnist
    from pipeline.vision.filler import filler_kind, geometric_kind

    marks = ("x", "dash")
    rng = np.random.default_rng(SEED_HELD_OUT)
    out: dict = {"threshold": load_model().threshold}
    for style in HELD_OUT_STYLES:
        kind = style.rsplit("_", 1)[1]
        masks = [draw_held_out(style, rng) for _ in range(n)]
        out[style] = {"n": n, "found": sum(filler_kind(m, box_height_of(m), marks) == kind for m in masks),
                      "found_geometric": sum(geometric_kind(m, box_height_of(m), marks) == kind for m in masks)}
    mnist = load_mnist()
    for label in range(10):
        digits = [_crop(d > 96) for d in mnist.x_test[mnist.y_test == label]]
        out[f"mnist_test_{label}"] = {
            "n": len(digits), "taken_for_filler": sum(bool(filler_kind(m, box_height_of(m), marks)) for m in digits),
            "taken_geometric": sum(bool(geometric_kind(m, box_height_of(m), marks)) for m in digits)}
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m pipeline.vision.filler_model", description=__doc__.split(
        "\n")[0])
    parser.add_argument("command", choices=["train", "evaluate"])
    parser.add_argument("--n", type=int, default=1000, help="held-out marks drawn per style (evaluate)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    result = train() if args.command == "train" else evaluate(args.n)
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
