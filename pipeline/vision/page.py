"""Reading one page: register it, then read every field of the template (the Python API's ``read_page``)."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field, replace

import cv2
import numpy as np

from pipeline.forms.template import Template, load_template
from pipeline.vision import settings as st
from pipeline.vision.align import register_reference
from pipeline.vision.boxes import snap_geometry
from pipeline.vision.fields import (
    FieldDigit,
    FieldGeometry,
    SegmentedField,
    TickRead,
    geometry_of,
    is_single_digit,
    read_ticks,
    segment_numeric,
    sheet_digits,
)
from pipeline.vision.filler import mark_fillers
from pipeline.vision.normalise import MNIST_SIZE
from pipeline.vision.register import (
    OrientationUncertain,
    Registration,
    RegistrationError,
    line_agreement,
    register,
    warp_from_source,
    warp_source,
    warp_to_template,
)
from pipeline.vision.segment import SegmentParams
from pipeline.vision.settings import ReadSettings
from pipeline.vision.unbend import Displacement, estimate_displacement, unbend

log = logging.getLogger(__name__)

#: A page is upside down when it was scanned with this many clockwise quarter turns.
UPSIDE_DOWN = 2


@dataclass(frozen=True)
class DigitCrop:
    """One row of ``crops.parquet``: a digit box (or one slot of a split box) of a numeric field.

    ``box`` is the box index in reading order, or -1, -2, ... for digits written beside the boxes (left to right);
    ``digit_row`` indexes :attr:`PageRead.digits` (-1 when there is no ink: an empty box). All rectangles are in
    template pixels at the reading dpi, end-exclusive: ``x0 y0 x1 y1`` the crop's ink (the box for an empty one),
    ``box_x0 .. box_y1`` the printed box, ``field_x0 field_y0`` the top-left corner of the field image.
    ``filler`` names the filler mark (``x``, ``dash``) found in an unused leading box, which is then ``empty``.
    """

    sheet_id: str
    field: str
    box: int
    slot: int
    box_status: str
    digit_row: int
    x0: int
    y0: int
    x1: int
    y1: int
    ink_pixels: int
    ink_mean: float
    n_components: int
    box_x0: int
    box_y0: int
    box_x1: int
    box_y1: int
    field_x0: int
    field_y0: int
    filler: str = ""


@dataclass(frozen=True)
class Mark:
    """One row of ``marks.csv``: a tick box (``option`` is the choice letter, or ``SI`` for a yes-tick)."""

    sheet_id: str
    field: str
    option: str
    ink_ratio: float
    ticked: bool


@dataclass(frozen=True, eq=False)
class PageRead:
    """Everything read from one page. Pages that are not the form have a status, a reason and nothing else.

    ``homography`` maps scan pixels onto ``registered`` (the template at the reading dpi).
    """

    sheet_id: str
    status: str
    reason: str = ""
    score: float = 0.0
    registered: np.ndarray | None = field(default=None, repr=False)
    crops: tuple[DigitCrop, ...] = ()
    digits: np.ndarray = field(default_factory=lambda: np.zeros((0, MNIST_SIZE, MNIST_SIZE), np.uint8), repr=False)
    marks: tuple[Mark, ...] = ()
    field_images: dict[str, np.ndarray] = field(default_factory=dict, repr=False)
    rotation_fixed_deg: float = 0.0
    flipped: bool = False
    n_fiducials: int = 0
    residual_px: float = float("nan")
    line_agreement: float = 0.0
    template_fit: float = 0.0
    orientation_margin: float = float("nan")
    unbent_mm: float = 0.0
    displacement: Displacement | None = field(default=None, repr=False)
    homography: np.ndarray | None = field(default=None, repr=False)


def as_grey(image: np.ndarray) -> np.ndarray:
    """A uint8 page as one grey channel (BGR or BGRA colour is converted).

    Raises:
        ValueError: the array is not an 8-bit grey or colour image.
    """
    if image.dtype != np.uint8:
        raise ValueError(f"expected a uint8 image, got dtype {image.dtype}")
    if image.ndim == 2:
        return image
    if image.ndim == 3 and image.shape[2] in (3, 4):
        return cv2.cvtColor(image, cv2.COLOR_BGR2GRAY if image.shape[2] == 3 else cv2.COLOR_BGRA2GRAY)
    if image.ndim == 3 and image.shape[2] == 1:
        return image[:, :, 0]
    raise ValueError(f"expected a grey (H, W) or colour (H, W, 3|4) image, got shape {image.shape}")


def _caveats(reg: Registration) -> str:
    notes = []
    if reg.n_fiducials < 4:
        notes.append(f"registered on {reg.n_fiducials} of 4 corner squares (no perspective correction)")
    if not reg.mark_found:
        notes.append("orientation mark not found where expected; orientation taken from the fit to the whole form")
    return "; ".join(notes)


def _read_fields(registered: np.ndarray, reg: Registration, template: Template, settings: ReadSettings
                 ) -> tuple[list[FieldDigit], list[TickRead], dict[str, np.ndarray], dict[str, FieldGeometry]]:
    """Every field of the page: crops (normalised once the writer's style is known from all of them), tick
    marks, field images, and each field's geometry (a reference-image template's boxes snapped onto the printed
    lines: :mod:`pipeline.vision.boxes`).

    A faint writer (pencil, a light hand: :func:`writer_ink` below ``faint_writer_ink``) is read again with the ink
    thresholds lowered in proportion to the writer's own ink, so that the faintest strokes of the sheet's digits
    are not lost; erasure remains stay as much fainter than that writer's ink as they were.
    """
    segmented, ticks, images, geoms = _segment_fields(registered, reg, template, settings)
    ink = writer_ink(segmented, settings.writer_min_digits)
    if ink is not None and ink < settings.faint_writer_ink:
        factor = max(settings.faint_writer_floor, ink / settings.writer_reference_ink)
        segmented, ticks, images, geoms = _segment_fields(registered, reg, template, settings.with_ink_scaled(factor))
    return sheet_digits(segmented, settings), ticks, images, geoms


def writer_ink(fields: list[SegmentedField], min_digits: int) -> float | None:
    """Median darkness (0 paper, 1 print black) of the single digits of a sheet: how dark its writer's pen is;
    ``None`` with fewer than ``min_digits`` digits."""
    inks = [float(f.dark[r.piece.y0:r.piece.y1, r.piece.x0:r.piece.x1][r.piece.mask].mean())
            for f in fields for r in f.reads if is_single_digit(r)]
    return float(np.median(inks)) if len(inks) >= min_digits else None


def _segment_fields(registered: np.ndarray, reg: Registration, template: Template, settings: ReadSettings
                    ) -> tuple[list[SegmentedField], list[TickRead], dict[str, np.ndarray], dict[str, FieldGeometry]]:
    """Every field of the page segmented with ``settings``' ink thresholds."""
    params = SegmentParams.from_settings(settings)
    segmented: list[SegmentedField] = []
    ticks: list[TickRead] = []
    images: dict[str, np.ndarray] = {}
    geoms: dict[str, FieldGeometry] = {}
    for f in template.fields:
        geom = geometry_of(f, template, settings)
        if template.uses_reference:
            geom = snap_geometry(registered, geom, reg.black, settings)
        geoms[f.name] = geom
        if f.is_numeric:
            images[f.name], field = segment_numeric(registered, geom, reg.black, settings, params)
            if template.filler_marks:
                field = with_fillers(field, template.filler_marks)
            segmented.append(field)
        else:
            images[f.name], marks = read_ticks(registered, geom, reg.black, settings)
            ticks += marks
    return segmented, ticks, images, geoms


def with_fillers(field: SegmentedField, marks: tuple[str, ...]) -> SegmentedField:
    """``field`` with the filler marks of its leading boxes read as empty boxes (:mod:`pipeline.vision.filler`)."""
    heights = [y1 - y0 for _, y0, _, y1 in field.geom.boxes]
    reads, kinds = mark_fillers(field.reads, heights, marks)
    return SegmentedField(field.geom, reads, field.dark, kinds) if kinds else field


def _crop_rows(sheet_id: str, digits: list[FieldDigit], geoms: dict[str, FieldGeometry]
               ) -> tuple[tuple[DigitCrop, ...], np.ndarray]:
    """Table rows for the crops and the stacked MNIST images they point to."""
    rows, images = [], []
    for d in digits:
        row = -1
        if d.image is not None:
            row = len(images)
            images.append(d.image)
        origin = geoms[d.field].region[:2]
        rows.append(DigitCrop(sheet_id, d.field, d.box, d.slot, d.status, row, *d.bbox, d.ink_pixels,
                              round(d.ink_mean, 4), d.n_components, *d.box_rect, *origin, d.filler))
    stack = np.stack(images) if images else np.zeros((0, MNIST_SIZE, MNIST_SIZE), np.uint8)
    return tuple(rows), stack


def registered_page(grey: np.ndarray, reg: Registration, template: Template,
                    settings: ReadSettings) -> tuple[np.ndarray, float, Displacement | None]:
    """The page warped onto the template, its line agreement, and the displacement it was unbent by (if any).

    A page whose printed lines land worse than ``unbend_below`` (curled, wavy) is unbent
    (:mod:`pipeline.vision.unbend`); the unbent page is kept only if its lines land better.
    """
    source, hom = warp_source(grey, reg, settings)
    registered = warp_from_source(source, hom, reg, template, settings)
    agreement = line_agreement(registered, reg, template, settings)
    if agreement >= settings.unbend_below:
        return registered, agreement, None
    disp = estimate_displacement(registered, template, settings)
    if disp is None:
        return registered, agreement, None
    unbent = unbend(source, hom, disp, reg.paper)
    unbent_agreement = line_agreement(unbent, reg, template, settings)
    if unbent_agreement <= agreement:
        return registered, agreement, None
    return unbent, unbent_agreement, disp


def read_page(image: np.ndarray, sheet_id: str, settings: ReadSettings | None = None,
              template: Template | None = None) -> PageRead:
    """Register one scanned page onto the form and cut every numeric field into MNIST-normalised digits.

    Args:
        image: the page, uint8 grey or BGR colour, any resolution from about 100 dpi up, any quarter turn.
        sheet_id: the page's join key, copied into every row.
        settings: reader settings (defaults if ``None``).
        template: the form (the packaged acta, or ``settings.template``, if ``None``).

    Returns:
        A :class:`PageRead`; pages that do not show the form come back with status ``not_a_form`` and a reason.
    """
    settings = settings or ReadSettings()
    template = template or (load_template(settings.template) if settings.template else load_template())
    grey = as_grey(image)
    if template.uses_reference:
        return read_reference_page(grey, sheet_id, template, settings)
    try:
        reg = register(grey, template, settings)
    except OrientationUncertain as exc:
        return PageRead(sheet_id, st.ORIENTATION_UNCERTAIN, f"orientation not clear: {exc}")
    except RegistrationError as exc:
        return PageRead(sheet_id, st.NOT_A_FORM, f"not this form: {exc}")
    registered, agreement, disp = registered_page(grey, reg, template, settings)
    score = reg.n_fiducials / len(template.fiducials) * agreement
    common = dict(score=round(score, 4), rotation_fixed_deg=round(reg.rotation_deg, 2),
                  flipped=reg.quarter_turns == UPSIDE_DOWN, n_fiducials=reg.n_fiducials,
                  residual_px=round(reg.residual_px, 2), line_agreement=round(agreement, 4),
                  template_fit=round(reg.template_fit, 4), orientation_margin=round(reg.orientation_margin, 4),
                  displacement=disp, unbent_mm=round(disp.largest_px / settings.px_per_mm, 2) if disp else 0.0,
                  homography=reg.homography)
    if score < settings.min_registration_score:
        return PageRead(sheet_id, st.NOT_A_FORM, f"not this form: only {agreement:.0%} of the printed lines are "
                        f"where the form has them (registration score {score:.2f} < "
                        f"{settings.min_registration_score})", **common)
    digits, ticks, images, geoms = _read_fields(registered, reg, template, settings)
    crops, stack = _crop_rows(sheet_id, digits, geoms)
    marks = tuple(Mark(sheet_id, t.field, t.option, round(t.ink_ratio, 4), t.ticked) for t in ticks)
    return PageRead(sheet_id, st.OK, _caveats(reg), registered=registered, crops=crops, digits=stack, marks=marks,
                    field_images=images, **common)


def template_settings(settings: ReadSettings, template: Template) -> ReadSettings:
    """``settings`` with the template's own ``read`` overrides (reference-image templates; validated on load)."""
    overrides = template.raw.get("read") or {}
    return replace(settings, **overrides) if overrides else settings


def read_reference_page(grey: np.ndarray, sheet_id: str, template: Template, settings: ReadSettings) -> PageRead:
    """:func:`read_page` for a template registered on its reference image (:mod:`pipeline.vision.align`).

    The registration score is the correlation of the page's print with the reference's; ``template_fit`` repeats
    it, ``orientation_margin`` is the winning quarter turn's lead in matched features (NaN when the first turn was
    taken without trying the others), and ``line_agreement`` the share of the boxes' printed outlines found.
    """
    settings = template_settings(settings, template)
    try:
        aligned = register_reference(grey, template, settings)
    except RegistrationError as exc:
        return PageRead(sheet_id, st.NOT_A_FORM, f"not this form: {exc}")
    reg = aligned.registration
    registered = warp_to_template(grey, reg, template, settings)
    digits, ticks, images, geoms = _read_fields(registered, reg, template, settings)
    crops, stack = _crop_rows(sheet_id, digits, geoms)
    marks = tuple(Mark(sheet_id, t.field, t.option, round(t.ink_ratio, 4), t.ticked) for t in ticks)
    return PageRead(sheet_id, st.OK, f"{aligned.inliers} features matched the reference", score=round(
        aligned.correlation, 4), registered=registered, crops=crops, digits=stack, marks=marks, field_images=images,
        rotation_fixed_deg=round(reg.rotation_deg, 2), flipped=reg.quarter_turns == UPSIDE_DOWN, n_fiducials=0,
        residual_px=round(reg.residual_px, 2), line_agreement=round(aligned.line_agreement, 4),
        template_fit=round(reg.template_fit, 4), orientation_margin=round(reg.orientation_margin, 4),
        homography=reg.homography)
