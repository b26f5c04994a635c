"""Settings of the synthetic scan generator (config section ``synth``).

Every knob of the generator lives here: the electoral model, the tampering rates, the pen and the scan
artefacts. A range is a ``(low, high)`` pair sampled uniformly per sheet (or per digit); a rate is a probability
per sheet. YAML lists are accepted wherever a tuple is expected. Invalid values raise :class:`ConfigError`
naming the setting, so a bad ``--config`` fails before any sheet is drawn.

The wider range (issue 13) is switched on by ``style_set`` (``classic``, the default, is today's generator, so
existing tests and benchmarks stay valid). Each new style belongs to exactly one of two disjoint groups
(:mod:`pipeline.synth.styles`), so benches can measure on styles kept out of training:

========= ===================================================== ================================================
family    ``train``                                             ``heldout``
========= ===================================================== ================================================
tampering trace, digit_over_digit, retrace, erase, fluid,       other_pen_over, fluid_odd, scribble, hatching
          strike
writer    black, blue, red pens; ``hand_usual`` (the            dark_blue, green, pencil; ``hand_unusual`` (the
          ``stroke_scale``/``slant_deg``/``pressure`` ranges);  ``wide_*`` ranges outside those); ``field_pen``
          ``field_weight`` (honest weight/pressure changes      (some fields honestly written with a second pen)
          between fields)
scan      light_bleed, photocopy, faded, tilt (perspective up   heavy_bleed, banding, shadow, curl,
          to ``tilt_perspective``)                              strong_perspective (``strong_perspective``)
========= ===================================================== ================================================

``all`` draws from both groups; ``exclude_styles`` drops named styles (leave-one-style-out). A scan-damage style
in the active group is applied with its ``*_rate``; a tampering style is drawn uniformly among the active styles
of the visible kind ``alteration_weights`` picks. ``quarter_turn_rate``, ``perspective`` and ``jpeg_quality``
(e.g. ``[40, 95]``) apply in every style set.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from pipeline.config import MAX_IMAGE_PIXELS
from pipeline.errors import ConfigError
from pipeline.forms.template import A4_MM, MM_PER_INCH
from pipeline.synth.styles import ALL_STYLES, PEN_COLOURS, STYLE_SETS, active_styles, kinds_with_styles

IMAGE_FORMATS = ("jpg", "png", "pdf")
VISIBLE_KINDS = ("overwrite", "erase", "fluid", "crossout")
ALTERATION_KINDS = ("none", *VISIBLE_KINDS, "fabricated")
STATION_TYPES = ("B", "C", "E")
#: Valid-vote shares of the 1988 presidential election (PAN PRI PPS PARM PFCRN PMS PDM PRT, the template's
#: party order): PRI 50.7 %, the four FDN parties backing Cardenas 31 %, PAN 16.8 %.
NATIONAL_SHARES_1988 = (0.168, 0.507, 0.092, 0.061, 0.105, 0.036, 0.013, 0.004)
#: Chance that each party had a representative at a station (same order); PRI was nearly always there.
REP_PRESENT_1988 = (0.32, 0.97, 0.10, 0.08, 0.12, 0.14, 0.05, 0.04)
MIN_DPI, MAX_DPI = 72, 600

_RANGES = ("registered_voters", "jpeg_quality", "stroke_scale", "slant_deg", "digit_height", "digit_width",
           "pressure", "crop_mm", "noise_sigma", "blur_sigma", "wide_stroke_scale", "wide_slant_deg",
           "wide_pressure", "field_weight_spread", "light_bleed_mm", "heavy_bleed_mm", "banding_depth",
           "banding_period_mm", "shadow_depth", "curl_mm", "tilt_perspective", "strong_perspective")
_RATES = ("zero_blank_rate", "rep_present", "altered_rate_absent", "altered_rate_present", "fabricated_rate",
          "adjust_totals_rate", "arithmetic_error_rate", "new_pen_rate", "blue_ink_rate", "upside_down_rate",
          "grey_rate", "stain_rate", "fold_rate", "stamp_rate", "signature_rate", "lighting", "paper_texture",
          "dark_background_rate", "field_pen_rate", "bleed_rate", "banding_rate", "shadow_rate", "curl_rate",
          "photocopy_rate", "faded_rate", "tilt_rate", "strong_perspective_rate", "quarter_turn_rate",
          "wide_pressure", "banding_depth", "shadow_depth")
#: Largest scan-damage strengths the generator accepts (beyond these a sheet is no longer a plausible scan).
MAX_BLEED_MM = 1.0
MAX_CURL_MM = 15.0
MAX_PERSPECTIVE = 0.1


@dataclass(frozen=True)
class SynthSettings:
    """Everything that decides what a synthetic batch looks like.

    Sheets are drawn from ``(seed, index)`` alone, so the output does not depend on ``workers``.
    """

    sheets: int = 300
    seed: int = 1
    #: Scan resolution; ``dpi_choices`` (non-empty) instead draws each sheet's resolution from the list.
    dpi: int = 200
    dpi_choices: tuple[int, ...] = ()
    #: ``jpg`` and ``png`` write one file per sheet; ``pdf`` writes one multi-page ``sheets.pdf`` (JPEG pages).
    image_format: str = "jpg"
    jpeg_quality: tuple[int, int] = (70, 90)
    #: Worker processes; 0 uses every CPU core.
    workers: int = 0
    #: Sheets shown in ``gallery.png`` (half clean, half altered where the batch has them).
    gallery_sheets: int = 8

    # --- electoral model -------------------------------------------------------------------------------
    #: Districts the batch is spread over (each with its own party shares and turnout).
    districts: int = 12
    registered_voters: tuple[int, int] = (200, 750)
    turnout_mean: float = 0.50
    turnout_sd: float = 0.10
    party_shares: tuple[float, ...] = NATIONAL_SHARES_1988
    #: Dirichlet concentrations: lower = more variation of shares between districts / between stations.
    district_concentration: float = 25.0
    station_concentration: float = 150.0
    null_share_mean: float = 0.03
    unregistered_share_mean: float = 0.002
    #: Ballots received = registered voters + up to this many spares.
    extra_ballots: int = 10
    station_type_weights: tuple[float, float, float] = (0.60, 0.35, 0.05)
    rep_present: tuple[float, ...] = REP_PRESENT_1988
    #: Chance that a count of 0 is left blank instead of written as "0".
    zero_blank_rate: float = 0.30

    # --- tampering ---------------------------------------------------------------------------------------
    #: Chance of a visible alteration when no opposition representative / some were present.
    altered_rate_absent: float = 0.47
    altered_rate_present: float = 0.22
    #: Relative weights of the visible kinds: overwrite, erase, fluid, crossout.
    alteration_weights: tuple[float, float, float, float] = (0.35, 0.20, 0.20, 0.25)
    #: Chance of a clean fabricated change (independent of visible alterations).
    fabricated_rate: float = 0.05
    #: Chance that the tamperer also fixes total votes and ballots left over so the arithmetic still holds.
    adjust_totals_rate: float = 0.25
    max_altered_fields: int = 3
    #: Honest addition mistakes in total votes or ballots left over.
    arithmetic_error_rate: float = 0.03
    #: Chance that an alteration is written with a different pen from the rest of the sheet.
    new_pen_rate: float = 0.5

    # --- pen ---------------------------------------------------------------------------------------------
    #: Stroke width relative to MNIST's (felt pen > 1.5); each sheet draws its writer from these ranges.
    stroke_scale: tuple[float, float] = (0.65, 1.05)
    #: Slant in degrees, positive leaning right.
    slant_deg: tuple[float, float] = (-6.0, 14.0)
    #: Digit height as a fraction of the box height.
    digit_height: tuple[float, float] = (0.70, 0.85)
    #: Digit width relative to MNIST's proportions (people squeeze digits into the narrow boxes).
    digit_width: tuple[float, float] = (0.72, 0.92)
    #: Placement jitter as a fraction of the box size.
    position_jitter: float = 0.07
    #: Ink opacity per digit (pen pressure).
    pressure: tuple[float, float] = (0.75, 1.0)
    blue_ink_rate: float = 0.6

    # --- scan artefacts ----------------------------------------------------------------------------------
    #: Largest absolute rotation of the page on the scanner.
    rotation_deg: float = 5.0
    #: Largest corner displacement as a fraction of the page diagonal (0 = flat-bed, 0.03 = phone photo).
    perspective: float = 0.006
    #: Largest shift of the page on the scanner bed.
    translate_mm: float = 4.0
    #: Margin cut off each side of the page (negative = extra scanner background around it).
    crop_mm: tuple[float, float] = (-6.0, 4.0)
    #: Shrink/shift the page so the four corner fiducials always stay wholly inside the image.
    keep_fiducials: bool = True
    upside_down_rate: float = 0.02
    #: Strongest darkening by uneven lighting (0 = even light).
    lighting: float = 0.22
    #: Contrast of the paper's mottled texture.
    paper_texture: float = 0.012
    #: Sensor noise standard deviation in grey levels.
    noise_sigma: tuple[float, float] = (1.0, 3.5)
    #: Optical blur: Gaussian sigma in pixels at 200 dpi (scaled with the resolution).
    blur_sigma: tuple[float, float] = (0.3, 1.0)
    #: Chance that a sheet is scanned in greyscale instead of colour.
    grey_rate: float = 0.15
    #: Chance of a dark scanner lid / background around the page.
    dark_background_rate: float = 0.25
    stain_rate: float = 0.25
    fold_rate: float = 0.35
    stamp_rate: float = 0.7
    signature_rate: float = 0.9
    #: Allow stamps and signatures over the digit and tick boxes.
    marks_over_boxes: bool = False
    #: Chance that the finished scan is turned by a quarter turn: 90, 180 or 270 degrees, drawn uniformly
    #: (``np.rot90``; recorded as ``quarter_turns`` 1-3 counter-clockwise). Applies in every style set.
    quarter_turn_rate: float = 0.0

    # --- wider range: style groups (module docstring; pipeline.synth.styles) -----------------------------
    #: ``classic`` (today's generator), ``train``, ``heldout`` or ``all``.
    style_set: str = "classic"
    #: Style names removed from the chosen group (e.g. ``[hatching]`` for leave-one-style-out).
    exclude_styles: tuple[str, ...] = ()
    #: Pen colours the writer styles may use (intersected with the group's colours).
    pen_colours: tuple[str, ...] = PEN_COLOURS
    #: The whole range of hands; ``hand_unusual`` draws from these outside the usual (``stroke_scale``,
    #: ``slant_deg``, ``pressure``) ranges, ``hand_usual`` from the usual ones.
    wide_stroke_scale: tuple[float, float] = (0.45, 1.6)
    wide_slant_deg: tuple[float, float] = (-15.0, 25.0)
    wide_pressure: tuple[float, float] = (0.5, 1.0)
    #: Chance that a sheet's honest fields differ in pen: ``field_weight`` (stroke weight and pressure per
    #: field, by a factor from ``field_weight_spread``) or ``field_pen`` (a block of fields in a second pen).
    #: Honest, so never an alteration.
    field_pen_rate: float = 0.3
    field_weight_spread: tuple[float, float] = (0.75, 1.35)
    # --- wider range: scan damage (each applied with its rate when its style is in the group) ------------
    #: Ink bleed: dark strokes (ink and print) spread by this many mm (``light_bleed`` / ``heavy_bleed``).
    bleed_rate: float = 0.3
    light_bleed_mm: tuple[float, float] = (0.04, 0.1)
    heavy_bleed_mm: tuple[float, float] = (0.12, 0.3)
    #: Toner banding: periodic horizontal or vertical bands darker by up to ``banding_depth``.
    banding_rate: float = 0.3
    banding_depth: tuple[float, float] = (0.06, 0.2)
    banding_period_mm: tuple[float, float] = (3.0, 25.0)
    #: Cast shadow (a hand or phone): a smooth dark region from one edge, darker by up to ``shadow_depth``.
    shadow_rate: float = 0.3
    shadow_depth: tuple[float, float] = (0.25, 0.55)
    #: Paper curl: a cylinder-like bend displacing the page by up to ``curl_mm`` (printed lines bow).
    curl_rate: float = 0.3
    curl_mm: tuple[float, float] = (1.0, 4.0)
    #: Photocopy look (grey, high contrast, toner speckle) and a faded copy (low contrast, grey paper).
    photocopy_rate: float = 0.2
    faded_rate: float = 0.2
    #: Perspective styles: the largest corner shift (fraction of the page diagonal) is drawn from the range,
    #: replacing ``perspective`` for that sheet (``tilt`` moderate, ``strong_perspective`` phone-photo).
    tilt_rate: float = 0.3
    tilt_perspective: tuple[float, float] = (0.006, 0.02)
    strong_perspective_rate: float = 0.3
    strong_perspective: tuple[float, float] = (0.02, 0.05)

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if isinstance(value, list):  # YAML gives lists; keep the dataclass hashable
                object.__setattr__(self, f.name, tuple(value))
        _validate(self)

    def styles(self) -> frozenset[str]:
        """The style names this batch draws from (``style_set`` without ``exclude_styles``)."""
        return active_styles(self.style_set, self.exclude_styles)

    def resolutions(self) -> tuple[int, ...]:
        """The scan resolutions sheets are drawn at."""
        return self.dpi_choices or (self.dpi,)

    def for_manifest(self) -> dict:
        """Settings that decide the output (``workers`` does not, so it is left out)."""
        return {k: v for k, v in dataclasses.asdict(self).items() if k != "workers"}


def _fail(name: str, value: object, expected: str) -> None:
    raise ConfigError(f"synth setting '{name}' = {value!r}: expected {expected}")


def _check_range(name: str, value: object) -> None:
    if not (isinstance(value, tuple) and len(value) == 2 and all(isinstance(v, (int, float)) for v in value)
            and value[0] <= value[1]):
        _fail(name, value, "a (low, high) pair with low <= high")


def _check_rate(name: str, value: object) -> None:
    values = value if isinstance(value, tuple) else (value,)
    if not all(isinstance(v, (int, float)) and 0 <= v <= 1 for v in values):
        _fail(name, value, "probabilities between 0 and 1")


def _check_resolution(s: SynthSettings) -> None:
    for dpi in s.resolutions():
        if not (isinstance(dpi, int) and MIN_DPI <= dpi <= MAX_DPI):
            _fail("dpi", dpi, f"an integer between {MIN_DPI} and {MAX_DPI}")
        pixels = (A4_MM[0] * dpi / MM_PER_INCH) * (A4_MM[1] * dpi / MM_PER_INCH)
        if pixels > MAX_IMAGE_PIXELS:
            _fail("dpi", dpi, f"at most {MAX_IMAGE_PIXELS} pixels per page")


def _check_styles(s: SynthSettings) -> None:
    """The style group, the exclusions and the pen palette name known styles and leave something to draw."""
    if s.style_set not in STYLE_SETS:
        _fail("style_set", s.style_set, f"one of {', '.join(STYLE_SETS)}")
    for name, known in (("exclude_styles", ALL_STYLES), ("pen_colours", frozenset(PEN_COLOURS))):
        value = getattr(s, name)
        if not (isinstance(value, tuple) and all(isinstance(v, str) and v in known for v in value)):
            _fail(name, value, f"a list of names from {', '.join(sorted(known))}")
    if not s.pen_colours:
        _fail("pen_colours", s.pen_colours, "at least one pen colour")
    active = s.styles()
    if not kinds_with_styles(active):
        _fail("exclude_styles", s.exclude_styles, f"at least one tampering style left in '{s.style_set}'")
    if s.style_set != "classic" and not active & set(s.pen_colours):
        _fail("pen_colours", s.pen_colours, f"a colour of the '{s.style_set}' group not excluded")
    if s.style_set != "classic" and not active & {"hand_usual", "hand_unusual"}:
        _fail("exclude_styles", s.exclude_styles, "at least one of hand_usual, hand_unusual")


def _check_damage(s: SynthSettings) -> None:
    """Scan damage strengths stay plausible."""
    if not (s.light_bleed_mm[0] >= 0 and max(s.light_bleed_mm[1], s.heavy_bleed_mm[1]) <= MAX_BLEED_MM
            and s.heavy_bleed_mm[0] >= 0):
        _fail("light_bleed_mm/heavy_bleed_mm", (s.light_bleed_mm, s.heavy_bleed_mm), f"0-{MAX_BLEED_MM} mm")
    if not (0 <= s.curl_mm[0] and s.curl_mm[1] <= MAX_CURL_MM):
        _fail("curl_mm", s.curl_mm, f"0-{MAX_CURL_MM} mm")
    if not (s.banding_period_mm[0] > 0):
        _fail("banding_period_mm", s.banding_period_mm, "a positive period in mm")
    for name in ("tilt_perspective", "strong_perspective"):
        low, high = getattr(s, name)
        if not (0 <= low and high <= MAX_PERSPECTIVE):
            _fail(name, (low, high), f"fractions of the page diagonal between 0 and {MAX_PERSPECTIVE}")
    if not (0 < s.wide_stroke_scale[0] and 0 < s.field_weight_spread[0] and 0 <= s.wide_pressure[0]):
        _fail("wide_stroke_scale/field_weight_spread", (s.wide_stroke_scale, s.field_weight_spread),
              "positive scales")
    if s.wide_stroke_scale[0] < 0.3:
        _fail("wide_stroke_scale", s.wide_stroke_scale, "stroke scales >= 0.3")


def _validate(s: SynthSettings) -> None:
    """Reject settings that cannot produce a sensible batch, naming the offending one."""
    for name in ("sheets", "districts", "gallery_sheets", "max_altered_fields", "extra_ballots", "workers"):
        value = getattr(s, name)
        minimum = 1 if name in ("sheets", "districts", "max_altered_fields") else 0
        if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
            _fail(name, value, f"an integer >= {minimum}")
    if not isinstance(s.seed, int) or s.seed < 0:
        _fail("seed", s.seed, "a non-negative integer")
    if s.image_format not in IMAGE_FORMATS:
        _fail("image_format", s.image_format, f"one of {', '.join(IMAGE_FORMATS)}")
    _check_resolution(s)
    for name in _RANGES:
        _check_range(name, getattr(s, name))
    for name in _RATES:
        _check_rate(name, getattr(s, name))
    if not (1 <= s.jpeg_quality[0] and s.jpeg_quality[1] <= 100):
        _fail("jpeg_quality", s.jpeg_quality, "qualities between 1 and 100")
    if not (100 <= s.registered_voters[0] and s.registered_voters[1] + s.extra_ballots <= 999):
        _fail("registered_voters", s.registered_voters, "voters between 100 and 999 - extra_ballots (3 boxes)")
    if s.stroke_scale[0] < 0.3 or s.digit_height[1] > 1.0 or s.digit_height[0] <= 0.2:
        _fail("stroke_scale/digit_height", (s.stroke_scale, s.digit_height),
              "stroke_scale >= 0.3 and digit_height within (0.2, 1]")
    for name in ("party_shares", "alteration_weights", "station_type_weights"):
        weights = getattr(s, name)
        if not (isinstance(weights, tuple) and all(w >= 0 for w in weights) and sum(weights) > 0):
            _fail(name, weights, "non-negative weights with a positive sum")
    if len(s.alteration_weights) != len(VISIBLE_KINDS) or len(s.station_type_weights) != len(STATION_TYPES):
        _fail("alteration_weights/station_type_weights", (s.alteration_weights, s.station_type_weights),
              f"{len(VISIBLE_KINDS)} and {len(STATION_TYPES)} weights")
    if len(s.party_shares) != len(s.rep_present):
        _fail("rep_present", s.rep_present, f"one rate per party ({len(s.party_shares)}), like party_shares")
    if not (0 < s.turnout_mean < 1 and 0 <= s.turnout_sd < 0.5 and 0 <= s.null_share_mean < 0.5
            and 0 <= s.unregistered_share_mean < 0.5):
        _fail("turnout_mean/turnout_sd/null_share_mean", (s.turnout_mean, s.turnout_sd, s.null_share_mean),
              "turnout in (0, 1), sd and vote shares below 0.5")
    _check_styles(s)
    _check_damage(s)
    if not (0 <= s.rotation_deg <= 45 and 0 <= s.perspective <= MAX_PERSPECTIVE and 0 <= s.translate_mm <= 30
            and -30 <= s.crop_mm[0] and s.crop_mm[1] <= 15 and s.position_jitter <= 0.3):
        _fail("rotation_deg/perspective/translate_mm/crop_mm",
              (s.rotation_deg, s.perspective, s.translate_mm, s.crop_mm),
              "rotation 0-45, perspective 0-0.1, translation 0-30 mm, crop -30..15 mm, position_jitter <= 0.3")
