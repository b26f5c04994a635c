"""Settings of the synthetic scan generator (config section ``synth``).

Every knob of the generator lives here: the electoral model, the tampering rates, the pen and the scan
artefacts. A range is a ``(low, high)`` pair sampled uniformly per sheet (or per digit); a rate is a probability
per sheet. YAML lists are accepted wherever a tuple is expected. Invalid values raise :class:`ConfigError`
naming the setting, so a bad ``--config`` fails before any sheet is drawn.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from pipeline.config import MAX_IMAGE_PIXELS
from pipeline.errors import ConfigError

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
A4_MM = (210.0, 297.0)
MM_PER_INCH = 25.4

_RANGES = ("registered_voters", "jpeg_quality", "stroke_scale", "slant_deg", "digit_height", "digit_width",
           "pressure", "crop_mm", "noise_sigma", "blur_sigma")
_RATES = ("zero_blank_rate", "rep_present", "altered_rate_absent", "altered_rate_present", "fabricated_rate",
          "adjust_totals_rate", "arithmetic_error_rate", "new_pen_rate", "blue_ink_rate", "upside_down_rate",
          "grey_rate", "stain_rate", "fold_rate", "stamp_rate", "signature_rate", "lighting", "paper_texture",
          "dark_background_rate")


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

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if isinstance(value, list):  # YAML gives lists; keep the dataclass hashable
                object.__setattr__(self, f.name, tuple(value))
        _validate(self)

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
    if not (0 <= s.rotation_deg <= 45 and 0 <= s.perspective <= 0.1 and 0 <= s.translate_mm <= 30
            and -30 <= s.crop_mm[0] and s.crop_mm[1] <= 15 and s.position_jitter <= 0.3):
        _fail("rotation_deg/perspective/translate_mm/crop_mm",
              (s.rotation_deg, s.perspective, s.translate_mm, s.crop_mm),
              "rotation 0-45, perspective 0-0.1, translation 0-30 mm, crop -30..15 mm, position_jitter <= 0.3")
