"""Reading one page: register it, then read every field of the template (the Python API's ``read_page``).

A run may hold pages of several forms (``read --form A.yaml --form B.yaml``): :func:`read_page_best` registers
the page with every template and reads it with the one that registers best.

* **Matching.** Each template's registration (:func:`fit_template`) gives a registration score in 0-1 (a
  reference-image template: the correlation of the page's print with its reference's; a fiducial template: the
  share of its fiducials found times its line agreement) or a reason it does not register. Templates are tried in
  the order given. Once one registers, the page's orientation is known, and every later reference-image template
  is first **screened** at that orientation only (:func:`screen_inliers`: one feature match, no refinement): with
  fewer than ``align.MIN_INLIERS`` matched features it cannot register there and is not tried further. A form
  that would register only at another quarter turn than the first one's is not the same physical page, so the
  screen loses nothing that could be read; it saves most of a non-matching template's cost (its four quarter
  turns and the refinement).
* **Margin rule.** Of the templates that register, the best score wins if it leads the runner-up's by at least
  :data:`TEMPLATE_MARGIN`; otherwise the page is ``template_uncertain`` (a reason names both templates and their
  scores) and nothing of it is read. No template registering gives the status of the most promising failure
  (``orientation_uncertain`` before ``not_a_form``) with every template's reason.
* The winner is read with the registration it was matched with (no second registration), exactly as a run with
  that template alone reads it; :attr:`PageRead.page_type` names it (``pages.csv`` column ``page_type``).

Measured 2026-12-07 on the 15 real C1 images (``../shared/data/forms/c1_2014``), Lampiran and certificate
templates in that order, CPU seconds per page (best of 2, one thread, a shared 2-core machine): the 13 Lampiran
pages take a median 0.27 s with the Lampiran template alone, 0.55 s with both templates, 1.05 s with both and no
screen. The screen rules the certificate out on 10 of them (3-23 features matched, 25 needed); on the other 3 it
is registered in full and fails. All 15 pages got the right template, and each was read exactly as with its
template alone.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from functools import cache

import cv2
import numpy as np

from pipeline.forms.template import Template, load_template
from pipeline.vision import align
from pipeline.vision import settings as st
from pipeline.vision.align import Alignment, register_reference
from pipeline.vision.boxes import snap_geometry
from pipeline.vision.fields import (
    FieldDigit,
    FieldGeometry,
    SegmentedField,
    TickRead,
    field_darkness,
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
    scan_axis_slope,
    warp_from_source,
    warp_source,
)
from pipeline.vision.segment import SegmentParams
from pipeline.vision.settings import ReadSettings
from pipeline.vision.streaks import Streaks, find_streaks
from pipeline.vision.unbend import Displacement, estimate_displacement, unbend
from pipeline.vision.unbend_reference import unbent_reference_page

log = logging.getLogger(__name__)

#: A page is upside down when it was scanned with this many clockwise quarter turns.
UPSIDE_DOWN = 2
#: Status of a page that two templates register on with scores closer than :data:`TEMPLATE_MARGIN`: which form it
#: is cannot be told, so it is not read.
TEMPLATE_UNCERTAIN = "template_uncertain"
#: Smallest lead of the best template's registration score over the runner-up's for a page to be read with it: a
#: tenth of the score's 0-1 range. Genuine pages of one form spread over 0.63-0.82 with scan quality (the 13 real
#: Lampiran images), so a smaller difference between two templates says nothing about which form a page is.
TEMPLATE_MARGIN = 0.1
#: Failure statuses of a page no template registers on, most promising first: an uncertain orientation means
#: that template found its form on the page.
FAILURE_ORDER = (st.ORIENTATION_UNCERTAIN, st.NOT_A_FORM)


@dataclass(frozen=True)
class DigitCrop:
    """One row of ``crops.parquet``: a digit box (or one slot of a split box) of a numeric field.

    ``box`` is the box index in reading order, or -1, -2, ... for digits written beside the boxes (left to right);
    ``digit_row`` indexes :attr:`PageRead.digits` (-1 when there is no ink: an empty box). All rectangles are in
    template pixels at the reading dpi, end-exclusive: ``x0 y0 x1 y1`` the crop's ink (the box for an empty one),
    ``box_x0 .. box_y1`` the printed box, ``field_x0 field_y0`` the top-left corner of the field image.
    ``filler`` names the filler mark (``x``, ``dash``) found in an unused leading box, which is then ``empty``.
    ``struck``: a box taken for struck through that is read anyway: an ``ambiguous`` one in a field where the
    digit under the strike may be read, or a leading box whose strike was a filler X
    (:func:`pipeline.vision.fields.readable_or_filler`).
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
    struck: bool = False


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

    ``homography`` maps scan pixels onto ``registered`` (the template at the reading dpi); ``page_type`` is the
    name of the template the page was read with ("" when it was not read).
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
    page_type: str = ""


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
    flats: dict = {}
    segmented, ticks, images, geoms = _segment_fields(registered, reg, template, settings, flats)
    ink = writer_ink(segmented, settings.writer_min_digits)
    if ink is not None and ink < settings.faint_writer_ink:
        factor = max(settings.faint_writer_floor, ink / settings.writer_reference_ink)
        segmented, ticks, images, geoms = _segment_fields(registered, reg, template, settings.with_ink_scaled(factor),
                                                          flats)
    return sheet_digits(segmented, settings), ticks, images, geoms


def writer_ink(fields: list[SegmentedField], min_digits: int) -> float | None:
    """Median darkness (0 paper, 1 print black) of the single digits of a sheet: how dark its writer's pen is;
    ``None`` with fewer than ``min_digits`` digits."""
    inks = [float(f.dark[r.piece.y0:r.piece.y1, r.piece.x0:r.piece.x1][r.piece.mask].mean())
            for f in fields for r in f.reads if is_single_digit(r)]
    return float(np.median(inks)) if len(inks) >= min_digits else None


def _segment_fields(registered: np.ndarray, reg: Registration, template: Template, settings: ReadSettings,
                    flats: dict | None = None
                    ) -> tuple[list[SegmentedField], list[TickRead], dict[str, np.ndarray], dict[str, FieldGeometry]]:
    """Every field of the page segmented with ``settings``' ink thresholds.

    ``flats`` keeps each numeric field's darkness (:func:`pipeline.vision.fields.field_darkness`) by where the field
    is: it does not depend on the ink thresholds, so a faint writer's sheet, read again with them lowered, reuses it
    (the same field image, the same darkness).
    """
    params = SegmentParams.from_settings(settings)
    # the streaks are looked for once, when a field's darkness is first needed (a faint writer's second reading
    # reuses every darkness, so it never needs them)
    streaks = cache(lambda: page_streaks(registered, reg, template, settings))
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
            key = (geom.region, geom.boxes)
            flat = None if flats is None else flats.get(key)
            if flat is None:
                x0, y0, x1, y1 = geom.region
                down = streaks()
                flat = field_darkness(registered[y0:y1, x0:x1], geom, reg.black, settings,
                                      scan_axis_slope(reg.homography, ((x0 + x1) / 2, (y0 + y1) / 2)),
                                      None if down is None else down.over(geom.region))
                if flats is not None:
                    flats[key] = flat
            images[f.name], field = segment_numeric(registered, geom, reg.black, settings, params, flat,
                                                    blank_traces=not template.filler_marks)
            if template.filler_marks:
                field = with_fillers(field, template.filler_marks)
            segmented.append(field)
        else:
            images[f.name], marks = read_ticks(registered, geom, reg.black, settings)
            ticks += marks
    return segmented, ticks, images, geoms


def page_streaks(registered: np.ndarray, reg: Registration, template: Template,
                 settings: ReadSettings) -> Streaks | None:
    """The streaks down a page registered on its fiducials (:mod:`pipeline.vision.streaks`), if any; a
    reference-image form's page is not looked at (its blank paper is not known from a rendered form)."""
    if template.uses_reference:
        return None
    height, width = registered.shape[:2]
    slope = scan_axis_slope(reg.homography, ((width - 1) / 2, (height - 1) / 2), down=True)
    return find_streaks(registered, reg.black, template, settings, slope)


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
                              round(d.ink_mean, 4), d.n_components, *d.box_rect, *origin, d.filler, d.struck))
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
        A :class:`PageRead` whose ``page_type`` is the template's name; pages that do not show the form come back
        with status ``not_a_form`` and a reason (and no ``page_type``).
    """
    settings = settings or ReadSettings()
    template = template or (load_template(settings.template) if settings.template else load_template())
    grey = as_grey(image)
    return read_fit(grey, fit_template(grey, sheet_id, template, settings))


@dataclass(frozen=True, eq=False)
class Fit:
    """One template's registration of one page, before any field is read.

    ``failure`` is the page's row when the template does not register (status, reason, evidence), else ``None``;
    ``score`` the registration score (0-1) and ``quarter_turns`` the page's clockwise quarter turns when it does.
    What reading the fields needs is kept: ``alignment`` (a reference-image template) or ``registration`` with the
    ``registered`` page and the evidence row ``common`` (a fiducial template); ``settings`` are the template's own.
    """

    sheet_id: str
    template: Template
    settings: ReadSettings
    failure: PageRead | None = None
    score: float = 0.0
    quarter_turns: int = 0
    alignment: Alignment | None = None
    registration: Registration | None = None
    registered: np.ndarray | None = field(default=None, repr=False)
    common: dict = field(default_factory=dict, repr=False)

    @property
    def ok(self) -> bool:
        """Whether the template registers on the page."""
        return self.failure is None


def fit_template(grey: np.ndarray, sheet_id: str, template: Template, settings: ReadSettings) -> Fit:
    """Register ``grey`` onto ``template`` (fiducials or reference image), without reading any field."""
    if template.uses_reference:
        return fit_reference(grey, sheet_id, template, settings)
    return fit_fiducials(grey, sheet_id, template, settings)


def fit_fiducials(grey: np.ndarray, sheet_id: str, template: Template, settings: ReadSettings) -> Fit:
    """:func:`fit_template` for a template with corner squares (:mod:`pipeline.vision.register`): the score is the
    share of fiducials found times the line agreement, at least ``settings.min_registration_score``."""
    try:
        reg = register(grey, template, settings)
    except OrientationUncertain as exc:
        return Fit(sheet_id, template, settings, PageRead(sheet_id, st.ORIENTATION_UNCERTAIN,
                                                          f"orientation not clear: {exc}"))
    except RegistrationError as exc:
        return Fit(sheet_id, template, settings, PageRead(sheet_id, st.NOT_A_FORM, f"not this form: {exc}"))
    registered, agreement, disp = registered_page(grey, reg, template, settings)
    score = reg.n_fiducials / len(template.fiducials) * agreement
    common = dict(score=round(score, 4), rotation_fixed_deg=round(reg.rotation_deg, 2),
                  flipped=reg.quarter_turns == UPSIDE_DOWN, n_fiducials=reg.n_fiducials,
                  residual_px=round(reg.residual_px, 2), line_agreement=round(agreement, 4),
                  template_fit=round(reg.template_fit, 4), orientation_margin=round(reg.orientation_margin, 4),
                  displacement=disp, unbent_mm=round(disp.largest_px / settings.px_per_mm, 2) if disp else 0.0,
                  homography=reg.homography)
    if score < settings.min_registration_score:
        return Fit(sheet_id, template, settings, PageRead(
            sheet_id, st.NOT_A_FORM, f"not this form: only {agreement:.0%} of the printed lines are where the form "
            f"has them (registration score {score:.2f} < {settings.min_registration_score})", **common))
    return Fit(sheet_id, template, settings, score=score, quarter_turns=reg.quarter_turns, registration=reg,
               registered=registered, common=common)


def fit_reference(grey: np.ndarray, sheet_id: str, template: Template, settings: ReadSettings) -> Fit:
    """:func:`fit_template` for a template registered on its reference image (:mod:`pipeline.vision.align`): the
    score is the correlation of the page's print with the reference's."""
    settings = template_settings(settings, template)
    try:
        aligned = register_reference(grey, template, settings)
    except RegistrationError as exc:
        return Fit(sheet_id, template, settings, PageRead(sheet_id, st.NOT_A_FORM, f"not this form: {exc}"))
    return Fit(sheet_id, template, settings, score=aligned.correlation,
               quarter_turns=aligned.registration.quarter_turns, alignment=aligned)


def read_fit(grey: np.ndarray, fit: Fit) -> PageRead:
    """Read every field of the page with the template it was registered on (``fit``); a template that did not
    register gives its failure row. ``page_type`` is the template's name on a page that was read."""
    if fit.failure is not None:
        return fit.failure
    if fit.alignment is not None:
        read = read_aligned(grey, fit.sheet_id, fit.template, fit.settings, fit.alignment)
    else:
        read = read_registered(fit)
    return replace(read, page_type=fit.template.name)


def read_registered(fit: Fit) -> PageRead:
    """The fields of a page registered on a fiducial template (:func:`fit_fiducials`)."""
    reg, template, settings = fit.registration, fit.template, fit.settings
    digits, ticks, images, geoms = _read_fields(fit.registered, reg, template, settings)
    crops, stack = _crop_rows(fit.sheet_id, digits, geoms)
    marks = tuple(Mark(fit.sheet_id, t.field, t.option, round(t.ink_ratio, 4), t.ticked) for t in ticks)
    return PageRead(fit.sheet_id, st.OK, _caveats(reg), registered=fit.registered, crops=crops, digits=stack,
                    marks=marks, field_images=images, **fit.common)


def template_settings(settings: ReadSettings, template: Template) -> ReadSettings:
    """``settings`` with the template's own ``read`` overrides (reference-image templates; validated on load)."""
    overrides = template.raw.get("read") or {}
    return replace(settings, **overrides) if overrides else settings


def read_reference_page(grey: np.ndarray, sheet_id: str, template: Template, settings: ReadSettings) -> PageRead:
    """:func:`read_page` for a template registered on its reference image (:mod:`pipeline.vision.align`).

    The registration score is the correlation of the page's print with the reference's; ``template_fit`` repeats
    it, ``orientation_margin`` is the winning quarter turn's lead in matched features (NaN when the first turn was
    taken without trying the others), and ``line_agreement`` the share of the boxes' printed outlines found. A
    curled page is unbent before its fields are cut (:mod:`pipeline.vision.unbend_reference`; ``displacement``
    and ``unbent_mm`` then say by how much, and ``line_agreement`` is taken on the unbent page).
    """
    return read_fit(grey, fit_reference(grey, sheet_id, template, settings))


def read_aligned(grey: np.ndarray, sheet_id: str, template: Template, settings: ReadSettings,
                 aligned: Alignment) -> PageRead:
    """The fields of a page aligned with a reference-image template (``settings``: the template's own), unbent
    first when it shows curl (:func:`pipeline.vision.unbend_reference.unbent_reference_page`)."""
    reg = aligned.registration
    registered, disp, unbent_agreement = unbent_reference_page(grey, reg, template, settings)
    agreement = aligned.line_agreement if unbent_agreement is None else unbent_agreement
    digits, ticks, images, geoms = _read_fields(registered, reg, template, settings)
    crops, stack = _crop_rows(sheet_id, digits, geoms)
    marks = tuple(Mark(sheet_id, t.field, t.option, round(t.ink_ratio, 4), t.ticked) for t in ticks)
    return PageRead(sheet_id, st.OK, f"{aligned.inliers} features matched the reference", score=round(
        aligned.correlation, 4), registered=registered, crops=crops, digits=stack, marks=marks, field_images=images,
        rotation_fixed_deg=round(reg.rotation_deg, 2), flipped=reg.quarter_turns == UPSIDE_DOWN, n_fiducials=0,
        residual_px=round(reg.residual_px, 2), line_agreement=round(agreement, 4),
        template_fit=round(reg.template_fit, 4), orientation_margin=round(reg.orientation_margin, 4),
        displacement=disp, unbent_mm=round(disp.largest_px / settings.px_per_mm, 2) if disp else 0.0,
        homography=reg.homography)


def upright_turn(quarter_turns: int) -> int:
    """The clockwise quarter turns that bring a page scanned with ``quarter_turns`` clockwise turns upright."""
    return -quarter_turns % 4


def screen_inliers(grey: np.ndarray, template: Template, quarter_turns: int) -> int:
    """Features of ``grey`` that match ``template``'s reference (ratio test and RANSAC, as registration counts them)
    with the page turned upright for ``quarter_turns``: one feature match, no refinement. Fewer than
    ``align.MIN_INLIERS`` means the template cannot register on the page at that orientation.

    Raises:
        RegistrationError: the template's reference image is missing or unusable.
    """
    model = align.reference_model(template)
    page, _ = align.scaled_to(grey, max(model.grey.shape))
    return align.match_turn(align.print_layer(page), model, upright_turn(quarter_turns)).inliers


def screened_out(sheet_id: str, template: Template, settings: ReadSettings, inliers: int, anchor: Fit) -> Fit:
    """The failed :class:`Fit` of a template that the screen ruled out (:func:`screen_inliers`)."""
    return Fit(sheet_id, template, settings, PageRead(sheet_id, st.NOT_A_FORM, (
        f"not this form: only {inliers} features match the reference image at the orientation "
        f"'{anchor.template.name}' registered with (at least {align.MIN_INLIERS} needed)")))


def fit_templates(grey: np.ndarray, sheet_id: str, templates: Sequence[Template], settings: ReadSettings,
                  screen: bool = True) -> list[Fit]:
    """Every template's :class:`Fit` on the page, in the order given; after the first template that registers,
    reference-image templates are screened at its orientation first (module docstring; ``screen=False`` registers
    every template in full)."""
    fits: list[Fit] = []
    anchor: Fit | None = None
    for template in templates:
        if screen and anchor is not None and template.uses_reference:
            try:
                inliers = screen_inliers(grey, template, anchor.quarter_turns)
            except RegistrationError as exc:
                fits.append(Fit(sheet_id, template, settings, PageRead(sheet_id, st.NOT_A_FORM,
                                                                       f"not this form: {exc}")))
                continue
            if inliers < align.MIN_INLIERS:
                fits.append(screened_out(sheet_id, template, settings, inliers, anchor))
                continue
        fit = fit_template(grey, sheet_id, template, settings)
        fits.append(fit)
        if anchor is None and fit.ok:
            anchor = fit
    return fits


def choose_fit(fits: Sequence[Fit], margin: float = TEMPLATE_MARGIN) -> Fit | PageRead:
    """The fit to read the page with, or the page's row when none can be: ``template_uncertain`` when the two best
    registered templates' scores are less than ``margin`` apart, else (nothing registered) the most promising
    failure (:data:`FAILURE_ORDER`) with every template's reason."""
    if not fits:
        raise ValueError("choose_fit needs at least one template's fit")
    sheet_id = fits[0].sheet_id
    ranked = sorted((f for f in fits if f.ok), key=lambda f: f.score, reverse=True)
    if len(ranked) >= 2 and ranked[0].score - ranked[1].score < margin:
        best, second = ranked[:2]
        return PageRead(sheet_id, TEMPLATE_UNCERTAIN, (
            f"registers with '{best.template.name}' (score {best.score:.2f}) and '{second.template.name}' (score "
            f"{second.score:.2f}): a lead of {best.score - second.score:.2f} < {margin}; which form this page is "
            "cannot be told, so it is not read"), score=round(best.score, 4))
    if ranked:
        return ranked[0]
    failures = [f.failure for f in fits]
    rank = {status: i for i, status in enumerate(FAILURE_ORDER)}
    first = min(failures, key=lambda r: rank.get(r.status, len(FAILURE_ORDER)))
    reasons = "; ".join(f"'{f.template.name}': {f.failure.reason}" for f in fits)
    return replace(first, reason=f"none of the {len(fits)} forms registers: {reasons}")


def with_lead(read: PageRead, fits: Sequence[Fit], winner: Fit) -> PageRead:
    """``read`` with its reason noting the winner's lead over the best other registered template, if any."""
    others = [f for f in fits if f.ok and f is not winner]
    if not others:
        return read
    runner = max(others, key=lambda f: f.score)
    note = f"leads '{runner.template.name}' by {winner.score - runner.score:.2f} in registration score"
    return replace(read, reason=f"{read.reason}; {note}" if read.reason else note)


def read_page_best(image: np.ndarray, sheet_id: str, templates: Sequence[Template],
                   settings: ReadSettings | None = None, screen: bool = True,
                   margin: float = TEMPLATE_MARGIN) -> PageRead:
    """Read a page with whichever of ``templates`` registers best on it (module docstring: matching, margin rule).

    With one template this is :func:`read_page`. The page is registered once per template at most; the winner's
    registration is the one its fields are read with, so the page reads exactly as in a run of that template
    alone (its reason also gives the lead over the runner-up, when another template registered).

    Returns:
        A :class:`PageRead` whose ``page_type`` is the winning template's name; ``template_uncertain``,
        ``not_a_form`` or ``orientation_uncertain`` (no ``page_type``) when the page cannot be read.
    """
    settings = settings or ReadSettings()
    if not templates:
        raise ValueError("read_page_best needs at least one template")
    grey = as_grey(image)
    if len(templates) == 1:
        return read_fit(grey, fit_template(grey, sheet_id, templates[0], settings))
    fits = fit_templates(grey, sheet_id, templates, settings, screen)
    chosen = choose_fit(fits, margin)
    if isinstance(chosen, PageRead):
        return chosen
    return with_lead(read_fit(grey, chosen), fits, chosen)
