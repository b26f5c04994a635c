"""The tally-sheet template: typed records loaded from the YAML form description.

The template is the single source of truth for geometry: the renderer draws it, the synthetic generator writes
into its boxes, and the reader maps scans back onto it. Geometry is kept in millimetres; ``*_px`` helpers
convert at a given resolution.

Two kinds of template (``geometry``):

* ``mm`` (the default, the 1988 acta): a printed page in millimetres, fields as rows of equal boxes, registered
  on four corner fiducials (``registration: fiducials``).
* ``reference_image``: a form of unknown print size described in pixels on a reference scan shipped beside the
  template (:mod:`pipeline.forms.reference` parses it). Pixels become millimetres through ``reference_dpi``, so
  the reader's millimetre thresholds keep their meaning; the page is registered by matching local features with
  the reference (``registration: reference_features``, :mod:`pipeline.vision.align`).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import yaml

from pipeline.errors import ConfigError

MM_PER_INCH = 25.4
#: An A4 page, width and height in millimetres (the acta's paper; a reference scan of unknown print size is guessed
#: to be one).
A4_MM = (210.0, 297.0)
DEFAULT_TEMPLATE = Path(__file__).with_name("acta1988.yaml")
FIELD_KINDS = ("id", "count", "choice", "tick")
#: Geometry kinds: millimetres on a printed page, or pixels on a reference image.
GEOMETRY_MM, GEOMETRY_REFERENCE = "mm", "reference_image"
#: Registration kinds: the printed corner fiducials, or local features matched with the reference image.
REGISTER_FIDUCIALS, REGISTER_FEATURES = "fiducials", "reference_features"
#: The file in a run folder that keeps the template the run was read with (written by the reader for any template
#: but the packaged acta; :func:`run_template`).
RUN_TEMPLATE_FILE = "template.yaml"
#: The folder of a run read with several templates, one ``<name>.yaml`` each (:mod:`pipeline.forms.runs`).
RUN_TEMPLATES_DIR = "templates"
TEMPLATE_SUFFIX = ".yaml"
#: What a count field means to the audit, the forensics and the report. The words are those a results-table
#: mapping binds (:data:`pipeline.audit.table_mapping.KNOWN_ROLES`), plus ``candidate`` for a party's or
#: candidate's votes; a typo in a template is refused rather than silently ignored.
FIELD_ROLES: dict[str, str] = {
    "candidate": "votes for one party or candidate (the choices of the forensics)",
    "registered": "registered voters",
    "received": "ballots received by the station",
    "issued": "ballots issued to voters",
    "cancelled": "unused ballots cancelled",
    "found": "ballots found in the boxes",
    "valid": "valid votes, all choices together",
    "invalid": "invalid (null) votes",
    "lost": "ballots lost",
    "not_counted": "ballots not counted on receipt",
    "total": "total votes cast (where the form has such a line)",
    "left_over": "ballots left over",
    "other_votes": "votes counted in the total that belong to no listed choice (write-ins, unregistered candidates)",
}
#: Largest number of characters of a rule's or a level's name (names appear in flags and file names).
MAX_NAME_CHARS = 64


@dataclass(frozen=True)
class Rect:
    """Axis-aligned rectangle in millimetres (top-left corner, width, height)."""

    x: float
    y: float
    w: float
    h: float

    def to_px(self, dpi: float) -> tuple[int, int, int, int]:
        """Pixel box ``(x0, y0, x1, y1)`` at ``dpi``, end-exclusive."""
        s = dpi / MM_PER_INCH
        return (round(self.x * s), round(self.y * s), round((self.x + self.w) * s), round((self.y + self.h) * s))

    def overlaps(self, other: Rect) -> bool:
        """True when the interiors of the two rectangles intersect."""
        return (self.x < other.x + other.w and other.x < self.x + self.w
                and self.y < other.y + other.h and other.y < self.y + self.h)


@dataclass(frozen=True)
class Field:
    """One field of the form: a row of digit boxes (``id``/``count``), or tick boxes (``choice``/``tick``).

    ``boxes`` are in reading order. For ``choice`` fields ``options`` names each box; a ``tick`` field has one box.
    ``party`` marks the per-party vote counts; ``party_of`` links a representative tick to its party's count.
    ``role`` says what the field counts (one of :data:`FIELD_ROLES`: ``candidate``, ``valid``, ``invalid`` ...).
    ``beside``: a count field's replacement digits may be written right of its boxes (the acta; not where the
    boxes fill a table column).
    """

    name: str
    label: str
    kind: str
    boxes: tuple[Rect, ...]
    options: tuple[str, ...] = ()
    party: bool = False
    party_of: str | None = None
    role: str | None = None
    beside: bool = True

    @property
    def is_numeric(self) -> bool:
        """Fields written with handwritten digits (ids and counts)."""
        return self.kind in ("id", "count")

    @property
    def always_written(self) -> bool:
        """Whether the field is never left blank on a filled-in sheet: a station's ids (kind ``id``). A count may be
        blank (nobody voted for that party), an id never is, so an id read with no digit at all is a digit the
        reader lost (a faint pen, a toner band over the row) and goes to review, not a blank reading."""
        return self.kind == "id"

    @property
    def max_value(self) -> int:
        """Largest number the boxes can hold (numeric fields only)."""
        return 10 ** len(self.boxes) - 1

    @property
    def bounds(self) -> Rect:
        """Smallest rectangle containing every box of the field."""
        x0 = min(b.x for b in self.boxes)
        y0 = min(b.y for b in self.boxes)
        x1 = max(b.x + b.w for b in self.boxes)
        y1 = max(b.y + b.h for b in self.boxes)
        return Rect(x0, y0, x1 - x0, y1 - y0)


@dataclass(frozen=True)
class FormRule:
    """One arithmetic rule of a form, as data: ``text`` in the grammar of :mod:`pipeline.audit.rules`.

    ``name`` identifies the rule in flags and reports (``votes_add_up``), ``label`` says it in words for a reader
    ("party votes + unregistered + null = total votes"; the text itself when none is given). A ``soft`` rule is a
    warning, not a failure. ``tolerance``: largest gap, in votes, still taken as holding (None: the audit's
    setting). A YAML rule is either its text (named ``rule_<i>``) or a mapping with ``rule`` and optional
    ``name``, ``label``, ``soft``, ``tolerance``.
    """

    name: str
    text: str
    label: str = ""
    soft: bool = False
    tolerance: int | None = None

    @property
    def title(self) -> str:
        """The label if one was given, else the rule's text."""
        return self.label or self.text


@dataclass(frozen=True)
class Template:
    """The whole printed form. ``raw`` keeps the YAML mapping for the renderer's decorative elements.

    Reference-image templates have no fiducials and no orientation mark; ``reference`` is the resolved path of
    their reference image (``None`` when it is not found: ``reference_places`` lists where it was looked for),
    ``reference_size`` its (width, height) in pixels and ``reference_dpi`` the scale their pixels are read at.
    ``filler_marks`` are what the form's users write in unused leading boxes (``x``, ``dash``, ``zero``) and
    ``rules`` the form's arithmetic as data (``pair_1 + pair_2 == valid``; :mod:`pipeline.audit.rules`). A rule
    may name a field or a role (``sum(candidate)``: every field of that role; :meth:`rule_bindings`).

    Station identity and forensic scopes, for the audit: ``station_key`` lists the fields that together identify
    one polling station (default: every id and choice field, in form order); ``forensic_levels`` names the scopes
    the forensics test, each with the fields that key it (``district: [state, district]``; default none: the whole
    batch only); ``leader`` is the ruling party or incumbent whose representatives' absence the audit compares
    (default None: the choice with most votes in the batch). ``id_ranges`` bounds id fields, ``(field, low,
    high)`` (``high`` None: the largest number the boxes hold); an id field not listed must lie between
    :data:`pipeline.forms.semantics.DEFAULT_ID_LOW` and its box limit.
    """

    name: str
    width_mm: float
    height_mm: float
    fields: tuple[Field, ...]
    frame: Rect
    frame_line_mm: float
    fiducials: tuple[Rect, ...]
    orientation_mark: Rect | None
    raw: dict
    geometry: str = GEOMETRY_MM
    registration: str = REGISTER_FIDUCIALS
    reference: Path | None = None
    reference_size: tuple[int, int] | None = None
    reference_dpi: float | None = None
    reference_places: tuple[str, ...] = ()
    filler_marks: tuple[str, ...] = ()
    rules: tuple[FormRule, ...] = ()
    station_key: tuple[str, ...] = ()
    forensic_levels: tuple[tuple[str, tuple[str, ...]], ...] = ()
    leader: str | None = None
    id_ranges: tuple[tuple[str, int, int | None], ...] = ()

    def size_px(self, dpi: float) -> tuple[int, int]:
        """Page size ``(width, height)`` in pixels at ``dpi``."""
        s = dpi / MM_PER_INCH
        return round(self.width_mm * s), round(self.height_mm * s)

    def field(self, name: str) -> Field:
        """The field called ``name``; raises ``KeyError`` naming the known fields otherwise."""
        for f in self.fields:
            if f.name == name:
                return f
        raise KeyError(f"no field '{name}' in template '{self.name}'; fields: {[f.name for f in self.fields]}")

    def fields_of_kind(self, *kinds: str) -> tuple[Field, ...]:
        """Fields whose kind is one of ``kinds``, in template order."""
        return tuple(f for f in self.fields if f.kind in kinds)

    @property
    def parties(self) -> tuple[str, ...]:
        """Names of the per-party count fields, in form order."""
        return tuple(f.name for f in self.fields if f.party)

    def role_fields(self, role: str) -> tuple[str, ...]:
        """Names of the fields with ``role``, in form order (empty when the form has none)."""
        if role not in FIELD_ROLES:
            raise KeyError(f"unknown role '{role}'; known: {', '.join(FIELD_ROLES)}")
        return tuple(f.name for f in self.fields if f.role == role)

    def role_field(self, role: str) -> str | None:
        """The one field with ``role`` (None when the form has none).

        Raises:
            ConfigError: several fields have the role, so "the" field is ambiguous.
        """
        names = self.role_fields(role)
        if len(names) > 1:
            raise ConfigError(f"template '{self.name}': several fields have role '{role}' ({', '.join(names)})")
        return names[0] if names else None

    def rule_bindings(self) -> dict[str, tuple[str, ...]]:
        """Every name a rule may use, with the fields it stands for: each numeric field by its own name, and each
        role the form uses by the name of the role (its fields, summed)."""
        from pipeline.forms.semantics import rule_bindings
        return rule_bindings(self.fields)

    def rule(self, name: str) -> FormRule:
        """The rule called ``name``; raises ``KeyError`` naming the known rules otherwise."""
        for r in self.rules:
            if r.name == name:
                return r
        raise KeyError(f"no rule '{name}' in template '{self.name}'; rules: {[r.name for r in self.rules]}")

    @property
    def uses_reference(self) -> bool:
        """True for a template registered by matching features with its reference image."""
        return self.registration == REGISTER_FEATURES

    def reference_to_template(self, dpi: float) -> float:
        """Scale from reference-image pixels to template pixels at ``dpi``."""
        if self.reference_dpi is None:
            raise ValueError(f"template '{self.name}' has no reference image")
        return dpi / self.reference_dpi

    def fiducial_centres_mm(self) -> list[tuple[float, float]]:
        """Centres of the four corner fiducials: top-left, top-right, bottom-right, bottom-left."""
        return [(r.x + r.w / 2, r.y + r.h / 2) for r in self.fiducials]


def _row_of_boxes(x: float, y: float, n: int, w: float, h: float, gap: float) -> tuple[Rect, ...]:
    return tuple(Rect(x + i * (w + gap), y, w, h) for i in range(n))


def _parse_field(spec: dict, defaults: dict) -> Field:
    kind = spec["kind"]
    if kind not in FIELD_KINDS:
        raise ConfigError(f"field '{spec.get('name')}': kind '{kind}' is not one of {FIELD_KINDS}")
    geom = {**defaults["digit_box" if kind in ("id", "count") else "tick_box"], **spec.get("box", {})}
    options = tuple(spec.get("options", ()))
    n = spec.get("boxes", len(options) or 1)
    boxes = _row_of_boxes(spec["x"], spec["y"], n, geom["width"], geom["height"], geom["gap"])
    from pipeline.forms.semantics import check_role
    party = bool(spec.get("party", False))
    role = check_role(spec.get("role", "candidate" if party else None), f"field '{spec.get('name')}'")
    return Field(name=spec["name"], label=spec.get("label", spec["name"]), kind=kind, boxes=boxes,
                 options=options, party=party, party_of=spec.get("party_of"), role=role)


def _fiducials(page_w: float, page_h: float, frame: Rect, size: float, inset: float) -> tuple[Rect, ...]:
    left, top = frame.x + inset, frame.y + inset
    right, bottom = frame.x + frame.w - inset - size, frame.y + frame.h - inset - size
    return (Rect(left, top, size, size), Rect(right, top, size, size),
            Rect(right, bottom, size, size), Rect(left, bottom, size, size))


def parse_template(raw: dict, base_dir: Path | None = None) -> Template:
    """Build a :class:`Template` from its YAML mapping (``base_dir``: the folder of the file, for a reference
    image named relative to it).

    Raises:
        ConfigError: a key is missing or has a bad value; the message names it.
    """
    if not isinstance(raw, dict):
        raise ConfigError(f"a form template must be a mapping, got {type(raw).__name__}")
    from pipeline.forms.semantics import parse_semantics
    if raw.get("geometry", GEOMETRY_MM) != GEOMETRY_MM:
        from pipeline.forms.reference import parse_reference_template
        return parse_reference_template(raw, base_dir or Path.cwd())
    if raw.get("registration", REGISTER_FIDUCIALS) != REGISTER_FIDUCIALS:
        raise ConfigError(f"form template registration: a millimetre template registers by "
                          f"'{REGISTER_FIDUCIALS}', got {raw.get('registration')!r} ('{REGISTER_FEATURES}' needs "
                          f"geometry: {GEOMETRY_REFERENCE})")
    try:
        fr = raw["frame"]
        frame = Rect(fr["x"], fr["y"], fr["width"], fr["height"])
        fid = raw["fiducials"]
        om = raw["orientation_mark"]
        fields = tuple(_parse_field(spec, raw) for spec in raw["fields"])
        return Template(**parse_semantics(raw, fields),
            name=raw["name"], width_mm=raw["page"]["width"], height_mm=raw["page"]["height"], fields=fields,
            frame=frame, frame_line_mm=fr.get("line", raw.get("line_width", 0.35)),
            fiducials=_fiducials(raw["page"]["width"], raw["page"]["height"], frame, fid["size"], fid["inset"]),
            orientation_mark=Rect(om["x"], om["y"], om["size"], om["size"]), raw=raw)
    except KeyError as exc:
        raise ConfigError(f"template '{raw.get('name', '?')}' lacks required key {exc}") from exc


def portable_raw(template: Template) -> dict:
    """The template's YAML mapping, made loadable from any folder: a reference image that was found is named by
    its absolute folder (first in ``reference_search``)."""
    raw = dict(template.raw)
    if template.reference is not None:
        raw["reference_search"] = [str(template.reference.parent), *raw.get("reference_search", [])]
    return raw


@lru_cache(maxsize=8)
def load_template(path: Path = DEFAULT_TEMPLATE) -> Template:
    """Load and parse a template YAML file (cached: templates are immutable)."""
    try:
        raw = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(f"{path}: cannot read form template ({exc})") from exc
    return parse_template(raw, Path(path).parent)


def run_template(rundir: Path) -> Template:
    """The one template the run folder ``rundir`` was read with: its ``template.yaml`` (the reader records any
    template but the packaged acta there, with the reference image's folder written in), else the one
    ``templates/<name>.yaml`` of a run read with one recorded template there, else the packaged acta.

    A run read with several templates (``templates/`` holding several files) has no one template: its stages take
    each page's template from :func:`pipeline.forms.runs.sheet_templates` instead, and this refuses it rather than
    answer the acta.

    Not cached: a run folder may be read again with another template.

    Raises:
        ConfigError: the recorded template cannot be read or does not parse, ``templates/`` holds several templates,
            or the folder holds both layouts (the message names the folder or file).
    """
    path = Path(rundir) / RUN_TEMPLATE_FILE
    folder = Path(rundir) / RUN_TEMPLATES_DIR
    recorded = sorted(folder.glob(f"*{TEMPLATE_SUFFIX}")) if folder.is_dir() else []
    if recorded and path.is_file():
        raise ConfigError(f"{rundir}: holds both {RUN_TEMPLATE_FILE} and {RUN_TEMPLATES_DIR}/, so which templates it "
                          "was read with is not clear; read the scans into it again")
    if len(recorded) > 1:
        raise ConfigError(f"{folder}: the run was read with {len(recorded)} templates "
                          f"({', '.join(p.stem for p in recorded)}), so it has no one template; take each page's "
                          "template from pipeline.forms.runs.sheet_templates (page_type of pages.csv)")
    if recorded:
        return read_run_template(recorded[0], named=True)
    if not path.is_file():
        return load_template()
    return read_run_template(path)


def read_run_template(path: Path, named: bool = False) -> Template:
    """A template recorded in a run folder at ``path``; ``named``: its name must be the file's stem (a
    ``templates/<name>.yaml`` file).

    Raises:
        ConfigError: the file cannot be read, does not parse, or is named otherwise than its template (naming it).
    """
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(f"{path}: cannot read the run's form template ({exc})") from exc
    try:
        template = parse_template(raw, path.parent)
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc}") from exc
    if named and template.name != path.stem:
        raise ConfigError(f"{path}: the template is named '{template.name}', but its file says '{path.stem}'")
    return template
