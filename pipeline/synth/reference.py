"""The paper of a reference-image template: its reference scan with every field's boxes blanked, scanned again.

A reference-image template (:mod:`pipeline.forms.reference`) describes a form by a scan of it, and that scan is
often a *filled* sheet (the Lampiran reference's four combs hold 50, 29, 79 and 7). Synthetic sheets start from
the reference, so the old handwriting is removed first (:func:`blank_reference`), once per process:

1. for each field, the area of its boxes (grown by ``BLANK_MARGIN_MM``) is taken, and its paper level is the
   median grey there; everything darker than the paper by ``INK_DROP`` grey levels is dark;
2. the printed box lines are the dark pixels that survive a morphological opening with a straight line
   ``LINE_FRACTION`` of a box's side long (horizontal near the boxes' top and bottom walls, vertical near their
   side walls, within ``WALL_BAND_MM`` of where the template puts them), grown by one pixel;
3. the rest of the dark pixels is handwriting; grown by ``INK_GROW_PX`` (its soft edges), minus the lines, it is
   painted with the field's **paper colour estimated around it**: the median colour of the area's pixels that are
   neither dark nor near the handwriting, with the paper's own grain (its standard deviation there) added.

So the printed lines stay as they were printed, and a tinted watermark under the boxes is replaced by plain paper
only where the old strokes lay. Handwriting outside the fields (names, signatures, the station number) stays: it
is the same on every synthetic sheet, as the fields' print is.

The blanked reference (colour, BGR) is resized to the scan's resolution and then scanned like the acta's page
(:mod:`pipeline.synth.scan`: placement, lighting and paper texture, blur, sensor noise, paper tint, greyscale for
``grey`` scans), but in colour, so a colour form keeps its colours.
"""

from __future__ import annotations

import cv2
import numpy as np

from pipeline.forms.render import read_reference_image
from pipeline.forms.template import MM_PER_INCH, Field, Template
from pipeline.synth.damage import multiply
from pipeline.synth.scan import UNIFORM_SD, ScanParams, _paper_field, placement

#: Margin around a field's boxes that is searched for old handwriting (strokes overshoot the boxes).
BLANK_MARGIN_MM = 1.0
#: A pixel darker than the paper by this many grey levels is ink or print.
INK_DROP = 40
#: A printed line is at least this fraction of a box's side long, and within ``WALL_BAND_MM`` of a box wall.
LINE_FRACTION = 0.6
WALL_BAND_MM = 1.0
#: Handwriting is grown by this many pixels (its anti-aliased edge) before it is painted over.
INK_GROW_PX = 2
#: Seed of the paper grain added to the painted pixels (the blank reference is the same in every process).
GRAIN_SEED = 2014

#: Blanked references already made in this process, by (template name, reference path), and their resizes.
_BLANK: dict[tuple[str, str], np.ndarray] = {}
_PAGES: dict[tuple[str, str, int], np.ndarray] = {}


def read_reference(template: Template) -> np.ndarray:
    """The template's reference image in colour (BGR).

    Raises:
        ConfigError: the reference is not found (naming every place looked in) or cannot be read.
    """
    return read_reference_image(template, cv2.IMREAD_COLOR)


def _px(mm: float, dpi: float) -> int:
    return round(mm * dpi / MM_PER_INCH)


def _line_mask(dark: np.ndarray, field: Field, origin: tuple[int, int], dpi: float) -> np.ndarray:
    """The printed box lines among the ``dark`` pixels of a field's area (whose top-left is ``origin``)."""
    h, w = dark.shape
    band = max(1, _px(WALL_BAND_MM, dpi))
    near_h, near_v = np.zeros_like(dark), np.zeros_like(dark)
    ox, oy = origin
    for b in field.boxes:
        x0, y0, x1, y1 = (_px(b.x, dpi) - ox, _px(b.y, dpi) - oy, _px(b.x + b.w, dpi) - ox, _px(b.y + b.h, dpi) - oy)
        for y in (y0, y1):
            near_h[max(0, y - band):max(0, y + band + 1), max(0, x0 - band):max(0, x1 + band + 1)] = True
        for x in (x0, x1):
            near_v[max(0, y0 - band):max(0, y1 + band + 1), max(0, x - band):max(0, x + band + 1)] = True
    box_w = min(_px(b.w, dpi) for b in field.boxes)
    box_h = min(_px(b.h, dpi) for b in field.boxes)
    d = dark.astype(np.uint8)
    horizontal = cv2.morphologyEx(d, cv2.MORPH_OPEN, np.ones((1, max(3, round(LINE_FRACTION * box_w))), np.uint8))
    vertical = cv2.morphologyEx(d, cv2.MORPH_OPEN, np.ones((max(3, round(LINE_FRACTION * box_h)), 1), np.uint8))
    lines = ((horizontal > 0) & near_h) | ((vertical > 0) & near_v)
    return cv2.dilate(lines.astype(np.uint8), np.ones((3, 3), np.uint8)).astype(bool)[:h, :w]


def blank_field(image: np.ndarray, field: Field, dpi: float, rng: np.random.Generator) -> int:
    """Paint the handwriting in ``field``'s boxes of ``image`` (BGR, modified in place, ``dpi`` its resolution)
    with the paper colour around it, keeping the printed lines (module docstring); returns the pixels painted."""
    b = field.bounds
    margin = _px(BLANK_MARGIN_MM, dpi)
    x0, y0 = max(0, _px(b.x, dpi) - margin), max(0, _px(b.y, dpi) - margin)
    x1 = min(image.shape[1], _px(b.x + b.w, dpi) + margin)
    y1 = min(image.shape[0], _px(b.y + b.h, dpi) + margin)
    area = image[y0:y1, x0:x1]
    grey = cv2.cvtColor(area, cv2.COLOR_BGR2GRAY)
    paper_level = float(np.median(grey))
    dark = grey < paper_level - INK_DROP
    lines = _line_mask(dark, field, (x0, y0), dpi)
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * INK_GROW_PX + 1,) * 2)
    ink = cv2.dilate((dark & ~lines).astype(np.uint8), kernel).astype(bool) & ~lines
    if not ink.any():
        return 0
    near = cv2.dilate(ink.astype(np.uint8), kernel).astype(bool)
    paper = area[~dark & ~near & ~lines]
    if len(paper) < 10:
        paper = area[~dark]
    colour = np.median(paper, axis=0)
    grain = paper.astype(np.float32).std(axis=0) if len(paper) > 1 else np.zeros(3, np.float32)
    fill = colour + rng.normal(0, 1, (int(ink.sum()), 3)) * grain
    area[ink] = np.clip(fill + 0.5, 0, 255).astype(np.uint8)
    return int(ink.sum())


def blank_reference(template: Template) -> np.ndarray:
    """The template's reference image (BGR, at its own resolution) with every field's boxes blanked (module
    docstring); made once per process (read-only)."""
    key = (template.name, str(template.reference))
    if key not in _BLANK:
        image = read_reference(template).copy()
        rng = np.random.default_rng(GRAIN_SEED)
        for f in template.fields:
            blank_field(image, f, template.reference_dpi, rng)
        image.setflags(write=False)
        _BLANK[key] = image
    return _BLANK[key]


def blank_page(template: Template, dpi: int) -> np.ndarray:
    """The blanked reference at the template's size at ``dpi`` (BGR, read-only; cached per resolution)."""
    key = (template.name, str(template.reference), dpi)
    if key not in _PAGES:
        ref = blank_reference(template)
        size = template.size_px(dpi)
        shrink = size[0] < ref.shape[1]
        page = cv2.resize(ref, size, interpolation=cv2.INTER_AREA if shrink else cv2.INTER_CUBIC)
        page.setflags(write=False)
        _PAGES[key] = page
    return _PAGES[key]


def scanned_reference_page(template: Template, params: ScanParams, rng: np.random.Generator,
                           texture: float) -> tuple[np.ndarray, np.ndarray]:
    """The blanked reference as the scanner sees it (placed, lit, textured, blurred, noisy, tinted; grey for a
    ``grey`` scan) and the homography from template pixels at the scan's dpi to it: :func:`pipeline.synth.scan.
    scanned_page` in colour (a reference-image template has no fiducials to keep inside the image)."""
    hom, size = placement(params, template, keep_fiducials=False)
    page = cv2.warpPerspective(blank_page(template, params.dpi), hom, size, flags=cv2.INTER_LINEAR,
                               borderMode=cv2.BORDER_CONSTANT, borderValue=(params.background,) * 3)
    page = multiply(page, _paper_field(rng, size, params.lighting, texture))
    if params.blur_sigma > 0:
        page = cv2.GaussianBlur(page, (0, 0), params.blur_sigma)
    gain = params.noise_sigma / UNIFORM_SD
    noise = rng.integers(0, 256, page.shape[:2], dtype=np.uint8)
    page = cv2.addWeighted(page, 1.0, cv2.merge([noise] * 3), gain, -128 * gain)
    if params.grey:
        return cv2.multiply(cv2.cvtColor(page, cv2.COLOR_BGR2GRAY), float(np.mean(params.paper_tint))), hom
    levels = np.arange(256)
    luts = [np.clip(levels * c + 0.5, 0, 255).astype(np.uint8) for c in params.paper_tint]
    return cv2.merge([cv2.LUT(ch, lut) for ch, lut in zip(cv2.split(page), luts, strict=True)]), hom
