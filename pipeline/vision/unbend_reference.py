"""Unbending a page registered on a reference image (``geometry: reference_image``): curl on that path.

A reference-image template is registered by one homography (:mod:`pipeline.vision.align`), exact for a flat page
only. A curled sheet bows between its edges, and the fields (often in one column near a page edge, as the
Lampiran's combs are) can sit millimetres from where the homography puts them: more than the boxes' snapping
(:mod:`pipeline.vision.boxes`) follows, and with the box walls themselves tilted across a comb.

The form's own print says where it went. The registered page is compared, patch by patch, with the reference
scan's print (:func:`reference_print`: the reference's print layer, box interiors blanked so its old handwriting
cannot answer, printed table rules and box outlines kept) by the coarse-to-fine, robust patch matching and
fitting that unbends the acta against its rendered blank (:mod:`pipeline.vision.unbend`), with one difference:
only patches whose print fixes both coordinates count (:func:`isotropy`; a patch of one long table rule matches
anywhere along it). The displacement's **field residual** is its largest value at the corners of the
template's boxes (mm): how far the fields are from where the homography puts them. A page is unbent only when
that residual reaches :data:`UNBEND_MIN_MM`; below it the page is read exactly as registered (flat pages are
untouched), and the unbent page is kept only if the boxes' printed outlines land at least as well on it as on
the registered page (:func:`pipeline.vision.align.line_agreement`). The measurement's local correction (the
costlier half) is skipped when the coarse polynomial says the page is flat (:data:`COARSE_FLAT_MM`).

Measured 2026-12-07 on synthetic Lampiran sheets at 100 dpi, read at 200 dpi: flat sheets show a field residual
of at most 0.34 mm (50 classic-style sheets, seed 4101) and 0.58 mm (138 held-out-style sheets, seeds 4102 and
4301; the homography's own error on a strongly tilted scan), curled ones (curl 1-4 mm) 0.3-9.6 mm. On 80 fresh
held-out sheets (seed 4301, 21 curled) 16 pages were unbent, none of them flat; the boxes' largest true
placement error went from 8.0 to 0.74 mm, untampered fields read exactly from 178/255 to 210/255 (on curled
sheets 22/68 to 54/68, on flat ones 156/187 unchanged). 40 classic-style sheets read identically. Of the 15
real C1 images one Lampiran scan (``ok.jpg``) is unbent (2.7 mm; its outlines' agreement 0.70 -> 0.97), and
every field reads as before. The measurement costs about 0.1 s a page (0.3 s when the page is curled).
"""

from __future__ import annotations

import cv2
import numpy as np

from pipeline.forms.template import Template
from pipeline.vision import align
from pipeline.vision.register import Registration, warp_from_source, warp_source
from pipeline.vision.settings import ReadSettings
from pipeline.vision.unbend import (
    Displacement,
    coarse_displacement,
    patch_shifts,
    refined_displacement,
    shrunk,
    unbend,
)

#: Smallest field residual (mm: the measured displacement at the template's box corners) for a page to be
#: unbent. Flat synthetic Lampiran sheets stay below 0.6 mm; curled ones that read badly without it are above it.
UNBEND_MIN_MM = 0.8
#: A page whose coarse displacement (the polynomial alone) is below ``COARSE_FLAT_MM`` at its fields (its field
#: residual) and below ``COARSE_PAGE_MM`` everywhere on the page is taken as flat without the local correction
#: (two thirds of the measurement's time). On 160 synthetic Lampiran sheets (seeds 4102 and 4301, held-out
#: styles) every sheet whose full measurement reached ``UNBEND_MIN_MM`` was above one or the other: the fields
#: of a sheet curled along its other axis can look flat to the polynomial while the page shows a bend of 2-4 mm;
#: flat sheets show a coarse field residual of at most 0.55 mm and a bend under 1 mm on all but 2 of 112.
COARSE_FLAT_MM = 0.4
COARSE_PAGE_MM = 1.0
#: Box interiors are blanked on the reference print this many reference pixels inside the boxes' rectangles
#: (whose edges are the printed lines), so the lines stay and the reference's own handwriting goes.
INTERIOR_INSET_PX = 4

#: Smallest ratio of the weaker to the stronger direction of a reference patch's print (the eigenvalues of its
#: gradients' structure tensor) for its match to count: a patch of one long rule (a table's horizontal line) is
#: found anywhere along the rule, and its shift along it is noise.
MIN_ISOTROPY = 0.1

#: Reference prints already made, by (reference path, template name, fields, size).
_PRINTS: dict[tuple, np.ndarray] = {}


def reference_print(template: Template, size: tuple[int, int]) -> np.ndarray:
    """The reference's print layer (:func:`pipeline.vision.align.print_layer`) with every box's interior blanked
    (``INTERIOR_INSET_PX`` inside its rectangle) and the ``fill_in_areas`` blanked, resized to ``size`` = ``(w,
    h)`` with area averaging (cached, read-only).

    Raises:
        RegistrationError: the reference image is missing or unusable.
    """
    key = (str(template.reference), template.name, template.fields, repr(template.raw.get("fill_in_areas")), size)
    if key not in _PRINTS:
        layer = align.print_layer(align.reference_model(template).grey).copy()
        inset = INTERIOR_INSET_PX
        for x0, y0, x1, y1 in align._reference_rects(template):
            layer[max(0, round(y0) + inset): round(y1) - inset, max(0, round(x0) + inset): round(x1) - inset] = 255
        for x0, y0, x1, y1 in template.raw.get("fill_in_areas", []) or []:
            layer[max(0, round(y0)): round(y1), max(0, round(x0)): round(x1)] = 255
        out = cv2.resize(layer, size, interpolation=cv2.INTER_AREA)
        out.setflags(write=False)
        _PRINTS[key] = out
    return _PRINTS[key]


def box_corners_px(template: Template, settings: ReadSettings) -> np.ndarray:
    """The corners of every box of the template, in template pixels at the reading dpi (N x 2)."""
    return np.array([(x, y) for f in template.fields for b in f.boxes
                     for x, y in ((b.x, b.y), (b.x + b.w, b.y), (b.x, b.y + b.h), (b.x + b.w, b.y + b.h))],
                    float) * settings.px_per_mm


def field_residual_mm(disp: Displacement, template: Template, settings: ReadSettings) -> float:
    """The largest displacement (mm) at the template's box corners: how far its fields are from the homography's
    placement."""
    pts = box_corners_px(template, settings)
    if len(pts) == 0:
        return 0.0
    dx, dy = disp.at(pts[:, 0], pts[:, 1])
    return float(np.hypot(dx, dy).max() / settings.px_per_mm)


def isotropy(patch: np.ndarray) -> float:
    """Ratio (0-1) of the smaller to the larger eigenvalue of the structure tensor of ``patch``'s grey gradients:
    near 0 for print running one way only (its position along that way is not determined), 1 for print alike in
    every direction."""
    gy, gx = np.gradient(patch.astype(np.float64))
    sxx, syy, sxy = float((gx * gx).sum()), float((gy * gy).sum()), float((gx * gy).sum())
    root = np.hypot(sxx - syy, 2 * sxy)
    big = (sxx + syy + root) / 2
    return 0.0 if big <= 0 else float((sxx + syy - root) / 2 / big)


def located_shifts(registered: np.ndarray, blank: np.ndarray, patch: int,
                   search: int) -> tuple[np.ndarray, np.ndarray]:
    """:func:`pipeline.vision.unbend.patch_shifts` of the patches whose print fixes both coordinates
    (:func:`isotropy` at least ``MIN_ISOTROPY``)."""
    centres, shifts = patch_shifts(registered, blank, patch, search)
    keep = [isotropy(blank[round(cy - patch / 2): round(cy - patch / 2) + patch,
                           round(cx - patch / 2): round(cx - patch / 2) + patch]) >= MIN_ISOTROPY
            for cx, cy in centres]
    keep = np.array(keep, bool).reshape(-1)
    return centres[keep], shifts[keep]


def measure_reference_displacement(registered: np.ndarray, template: Template, settings: ReadSettings,
                                   coarse_below_mm: float = 0.0) -> Displacement | None:
    """The displacement (registered px) of ``registered`` (the page on the template at the reading dpi) from the
    reference's print, measured on a ``unbend_dpi`` copy of both; ``None`` if too few patches match. When the
    coarse pass's field residual is below ``coarse_below_mm`` and its largest displacement below
    ``COARSE_PAGE_MM``, the page is flat and the coarse pass is returned without its local correction."""
    scale = settings.unbend_dpi / settings.dpi
    small = align.print_layer(shrunk(registered, scale))
    blank = reference_print(template, (small.shape[1], small.shape[0]))
    full = (registered.shape[1], registered.shape[0])
    coarse = coarse_displacement(small, blank, settings.px_per_mm * scale, settings, located_shifts)
    if coarse is None:
        return None
    scaled = coarse.scaled(full)
    if (field_residual_mm(scaled, template, settings) < coarse_below_mm
            and scaled.largest_px / settings.px_per_mm < COARSE_PAGE_MM):
        return scaled
    return refined_displacement(small, blank, coarse, settings.px_per_mm * scale, settings, located_shifts).scaled(full)


def outline_agreement(registered: np.ndarray, template: Template) -> float:
    """:func:`pipeline.vision.align.line_agreement` of a page on the template, taken at the reference's size."""
    model = align.reference_model(template)
    h, w = model.grey.shape
    return align.line_agreement(cv2.resize(registered, (w, h), interpolation=cv2.INTER_AREA), model)


def unbent_reference_page(grey: np.ndarray, reg: Registration, template: Template, settings: ReadSettings
                          ) -> tuple[np.ndarray, Displacement | None, float | None]:
    """The page warped onto the reference-image template, unbent when it shows curl (module docstring), the
    displacement it was unbent by and the boxes' outline agreement on the unbent page (``None, None``: registered
    by the homography alone, exactly as before)."""
    source, hom = warp_source(grey, reg, settings)
    registered = warp_from_source(source, hom, reg, template, settings)
    disp = measure_reference_displacement(registered, template, settings, COARSE_FLAT_MM)
    if disp is None or field_residual_mm(disp, template, settings) < UNBEND_MIN_MM:
        return registered, None, None
    unbent = unbend(source, hom, disp, reg.paper)
    agreement = outline_agreement(unbent, template)
    if agreement < outline_agreement(registered, template):
        return registered, None, None
    return unbent, disp, agreement
