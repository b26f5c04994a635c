"""Settings of the reader (config section ``read``), and the page statuses it reports.

Lengths are in millimetres on the printed form so that every threshold means the same thing at any reading
resolution; :class:`ReadSettings` converts them to pixels at ``dpi``.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from pipeline.config import MAX_IMAGE_PIXELS
from pipeline.errors import ConfigError
from pipeline.forms.template import MM_PER_INCH

#: File name extensions the reader picks up when given a folder.
SCAN_EXTENSIONS = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp", ".pdf")

# Page statuses written to ``pages.csv``.
OK = "ok"
NOT_A_FORM = "not_a_form"
ORIENTATION_UNCERTAIN = "orientation_uncertain"
UNREADABLE = "unreadable"
TOO_LARGE = "too_large"
EMPTY_FILE = "empty_file"
NO_PAGES = "no_pages"
PAGE_LIMIT = "page_limit"
DUPLICATE_ID = "duplicate_id"
ERROR = "error"

# Box statuses written to ``crops.parquet``.
BOX_EMPTY = "empty"
BOX_DIGIT = "digit"
BOX_AMBIGUOUS = "ambiguous"


@dataclass(frozen=True)
class ReadSettings:
    """Everything the reader can be told; defaults suit 150-300 dpi scans of the acta template.

    Attributes:
        dpi: reading resolution: pages are registered onto the template rendered at this dpi, PDFs rendered at it.
        workers: processes for a batch; ``None`` uses every core, 1 reads in the calling process.
        template: form template YAML; ``None`` is the packaged acta.
        max_pixels: largest page (width x height) that will be decoded.
        max_pdf_pages: pages read from one PDF or multi-page TIFF; the rest get one ``page_limit`` row.
        detect_dpi: resolution of the coarse fiducial search.
        fiducial_size_tolerance: relative size error allowed for a fiducial or orientation-mark candidate.
        fiducial_min_fill: smallest ink fraction of a candidate's bounding box (solid squares are near 1).
        max_candidates: candidates kept for the search of the fiducial layout (best size match first).
        max_shape_error: largest residual of a similarity fit of the fiducial layout, as a fraction of its diagonal;
            what perspective and fiducial noise may add before a layout is rejected (phone photos shift each
            corner by up to 5% of the page: about 0.1 of the diagonal).
        max_layouts_scored: best-shaped layouts of each size scored against the whole template.
        good_template_fit: share of the form's print found on the page above which layouts of four fiducials are
            trusted and layouts of three are not tried.
        min_template_fit: share of the form's print a layout must find on the page; below it the page is
            ``not_a_form``.
        orientation_margin: smallest lead of the best quarter turn's template fit over every other turn's; a page
            with less is ``orientation_uncertain`` and is not read.
        unbend_below: pages whose printed lines agree less than this after the homography are unbent (curl).
        unbend_dpi: resolution of the patch matching that measures a page's bend.
        unbend_patch_mm: side of the printed patches matched against the blank form.
        unbend_search_mm: farthest a patch is looked for from where the homography puts it.
        unbend_refine_mm: farthest a patch is looked for in the second, refining pass.
        unbend_grid_mm: spacing of the grid of the displacement fitted through the patch shifts.
        unbend_stiffness: weight of the displacement's stretching penalty, per patch matched.
        mark_tolerance_mm: distance from its expected place within which the orientation mark counts as found
            (evidence recorded in ``pages.csv``; the orientation is decided by the template fit).
        min_registration_score: pages scoring below this are ``not_a_form``.
        line_sample_mm: spacing of the points on the printed lines used for the line-agreement score.
        min_contrast: darkness (0-255) below which nothing counts as print, whatever the page's histogram.
        ink_threshold: darkness, as a fraction of the page's print black, above which a pixel is ink.
        faint_ink_threshold: fainter pixels still count as ink where they connect to ink (hysteresis).
        paper_window_mm: width of the neighbourhood whose lightest grey is taken as the local paper white; wider
            than any pen stroke or filled loop, narrower than stains, folds and shading. A bled stroke lying on a
            bled box line is dark over more than 2.5 mm, and the paper found there was that ink, so the stroke
            faded out of the darkness; chosen on held-out tuning sheets (seed 3707, 200 sheets: wrong untampered
            fields 219 / 214 / 201 / 209 / 232 at 2.5 / 3 / 3.5 / 4 / 5 mm).
        line_search_mm: how far around its template position a printed box line is looked for: as far as
            registration can be off on a curled or phone-photographed page. At 0.8 mm the lines of such pages
            stayed in the digits' crops (corners and bars read as digits); 1.2 mm reads sheets of the training
            styles exactly as well (150 sheets, seed 4001: 97.54% of untampered fields at 0.8, 1.0 and 1.2 mm,
            97.44% at 1.5 mm) and removes those lines.
        fold_clear_mm: faint lines crossing a field (folds) are sought at least this far from its boxes, beyond
            where a strike-through overshoots them.
        band_sample_mm: least width of a field image's rows, away from its boxes, on which the darkness of a band
            crossing the page is measured and taken out of the row (:func:`pipeline.vision.fields.flatten_rows`).
        line_halo_mm: ink this close to where the template draws a box line is line, even where it is faded or
            painted over (registration is accurate to a fraction of that).
        line_min_fill: fraction of a box edge that must be dark for a row/column to count as printed line.
        min_component_mm2: ink components smaller than this are specks unless they lie within a digit.
        min_stroke_mm: the thinnest pen stroke; ink nowhere this thick (a hairline, e.g. a paper fold) is no digit.
        fragment_join_mm: a speck or fragment this close to a digit's bounding box joins the digit.
        touching_box_widths: a digit wider than this many boxes is taken for touching digits and split if clean.
        split_max_ink_mm: most ink (mm of stroke) a column may hold for touching digits to be cleanly split there.
        strike_min_mm: a strike-through (ink spanning the boxes it crosses edge to edge) is at least this wide.
        strike_bridge_mm: gaps this wide (a removed box line) are bridged when looking for strike-throughs.
        min_digit_height_mm: ink shorter than this is part of a digit (a bar, a dot) or dirt, never a digit.
        beside_gap_mm: ink must start this far right of the last box to count as written beside the boxes.
        beside_right_mm: right edge (template x, mm) of the area beside count boxes read for replacements.
        field_margin_mm: margin kept around a field's boxes in its field image.
        tick_inset_mm: inset from a tick box's edges that excludes its printed outline.
        tick_threshold: ink fraction of a tick box interior above which it is ticked.
        jpeg_quality: quality of ``registered/<sheet_id>.jpg``.
        writer_normalisation: undo the sheet writer's squeeze and slant relative to MNIST before normalising
            (:mod:`pipeline.vision.normalise`); off, every digit keeps its proportions as in plain MNIST.
        writer_min_digits: fewest single digits on a sheet from which its writer's style (and ink) is estimated.
        faint_writer_ink: a sheet whose digits' median darkness (0 paper, 1 print black) is below this is written
            faintly (pencil, a light hand) and is read again with its ink thresholds lowered.
        writer_reference_ink: the median darkness of an ordinary pen's digits; a faint writer's thresholds are
            scaled by its own ink over this.
        faint_writer_floor: the thresholds are never scaled below this fraction.
        trace_darkness: a box read empty after a field's first digit (or in a field read with no digit, on forms
            without filler marks) whose inside still holds a faint component (over the lowered faint-ink threshold)
            darker somewhere than this, other than a band across the box, holds a digit too faint or broken to
            read: the box is ``ambiguous`` and its field goes to review. Chosen on the held-out tuning batch (seed
            3707, 200 sheets): of the boxes read empty, the 30 that held a digit had insides 0.10-0.76 dark at their
            darkest (29 of them >= 0.142; the lightest had too few faint pixels to count), the 3,612 empty ones
            at most 0.171 (the one of them above 0.12 that is no band across the box lay before a digit).
        writer_max_width_factor: largest widening (or narrowing) applied for a writer.
        writer_max_shear: largest slant correction (horizontal shift per unit of height) applied for a writer.
    """

    dpi: float = 200.0
    workers: int | None = None
    template: str | None = None
    #: Several form templates for a batch mixing forms (``python -m pipeline run`` and ``make run`` read with them
    #: when no ``--form`` is given): each page is read with the one that registers best.
    templates: tuple[str, ...] = ()
    max_pixels: int = MAX_IMAGE_PIXELS
    max_pdf_pages: int = 500
    detect_dpi: float = 50.0
    fiducial_size_tolerance: float = 0.45
    fiducial_min_fill: float = 0.7
    max_candidates: int = 12
    max_shape_error: float = 0.15
    max_layouts_scored: int = 8
    good_template_fit: float = 0.8
    min_template_fit: float = 0.5
    orientation_margin: float = 0.15
    unbend_below: float = 0.9
    unbend_dpi: float = 100.0
    unbend_patch_mm: float = 12.0
    unbend_search_mm: float = 8.0
    unbend_refine_mm: float = 1.5
    unbend_grid_mm: float = 30.0
    unbend_stiffness: float = 0.0005
    mark_tolerance_mm: float = 2.5
    min_registration_score: float = 0.6
    line_sample_mm: float = 1.5
    min_contrast: float = 40.0
    ink_threshold: float = 0.25
    faint_ink_threshold: float = 0.12
    paper_window_mm: float = 3.5
    line_search_mm: float = 1.2
    fold_clear_mm: float = 2.5
    band_sample_mm: float = 10.0
    line_halo_mm: float = 0.35
    line_min_fill: float = 0.85
    min_component_mm2: float = 0.3
    min_stroke_mm: float = 0.35
    fragment_join_mm: float = 1.5
    touching_box_widths: float = 1.15
    split_max_ink_mm: float = 0.5
    strike_min_mm: float = 8.0
    strike_bridge_mm: float = 0.8
    min_digit_height_mm: float = 2.0
    beside_gap_mm: float = 1.0
    beside_right_mm: float = 150.0
    field_margin_mm: float = 2.0
    tick_inset_mm: float = 0.8
    tick_threshold: float = 0.06
    jpeg_quality: int = 90
    writer_normalisation: bool = True
    writer_min_digits: int = 6
    faint_writer_ink: float = 0.33
    writer_reference_ink: float = 0.45
    faint_writer_floor: float = 0.6
    trace_darkness: float = 0.12
    writer_max_width_factor: float = 1.5
    writer_max_shear: float = 0.4

    def __post_init__(self) -> None:
        if not 50 <= self.dpi <= 600:
            raise ConfigError(f"read dpi must be between 50 and 600, got {self.dpi}")
        if self.workers is not None and self.workers < 1:
            raise ConfigError(f"read workers must be at least 1, got {self.workers}")
        if not 0 < self.trace_darkness <= 1:
            raise ConfigError(f"read trace_darkness must be a darkness in (0, 1], got {self.trace_darkness}")
        if self.max_pixels < 1 or self.max_pdf_pages < 1:
            raise ConfigError("read max_pixels and max_pdf_pages must be positive")
        object.__setattr__(self, "templates", check_template_list(self.templates))
        if self.template and self.templates:
            raise ConfigError("read.template and read.templates are both set; give one form as read.template, or "
                              "every form of a mixed batch as read.templates")

    @property
    def forms(self) -> tuple[str, ...]:
        """The form template files to read with: ``templates``, else ``template``, else none (the packaged acta)."""
        return self.templates or ((self.template,) if self.template else ())

    @property
    def px_per_mm(self) -> float:
        """Pixels per millimetre at the reading resolution."""
        return self.dpi / MM_PER_INCH

    def px(self, mm: float) -> float:
        """``mm`` millimetres in reading-resolution pixels."""
        return mm * self.px_per_mm

    def with_ink_scaled(self, factor: float) -> ReadSettings:
        """These settings with both ink thresholds (``ink_threshold``, ``faint_ink_threshold``) times ``factor``:
        how a faint writer, or one faint box, is read again."""
        return replace(self, ink_threshold=self.ink_threshold * factor,
                       faint_ink_threshold=self.faint_ink_threshold * factor)


def check_template_list(value) -> tuple[str, ...]:
    """``read.templates`` as a tuple: a list of distinct, non-empty template file names.

    Raises:
        ConfigError: naming the key and the entry at fault.
    """
    if isinstance(value, str) or not isinstance(value, (list, tuple)):
        raise ConfigError(f"read.templates must be a list of form template files, not {value!r}")
    for item in value:
        if not isinstance(item, str) or not item.strip():
            raise ConfigError(f"read.templates: {item!r} is not a form template file name")
    if len(set(value)) != len(value):
        raise ConfigError(f"read.templates lists a template twice: {list(value)}")
    return tuple(value)
