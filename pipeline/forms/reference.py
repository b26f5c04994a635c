"""Reference-image templates: a form described in pixels on a scan of it, with explicit box rectangles.

A template of this kind reads (every key is checked, and an error names the key at fault)::

    name: c1_2014_lampiran
    geometry: reference_image           # pixels on the reference image
    reference: lampiran_reference.jpg   # relative to the template file (or found on the search path)
    reference_size: [824, 1164]         # its width and height in pixels
    reference_dpi: 100                  # pixels per inch of the reference (the scale the reader's mm refer to)
    registration: reference_features    # or: fiducials (only for mm templates)
    filler_marks: [x, dash, zero]       # what users write in unused leading boxes
    fields:
      - {name: pair_1, kind: count, role: candidate, comb: [691, 260, 789, 325], split: 3}
      - {name: code, kind: id, boxes: [[10, 10, 40, 50], [40, 10, 70, 50]]}
    rules: ["pair_1 + pair_2 == valid"]

Rectangles are ``[x0, y0, x1, y1]`` in reference pixels, the printed lines included; a ``comb`` is one rectangle
split into ``split`` boxes of equal width (boxes that share their walls). The reference image is looked for next to
the template, then in every folder of ``$TALLY_FORM_REFERENCES`` (``os.pathsep``-separated), then in the folders
the template lists under ``reference_search`` (relative to the template file). A template whose image is not found
still parses (``Template.reference`` is ``None``); registration then fails naming every place looked in.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from pipeline.errors import ConfigError
from pipeline.forms.semantics import check_role, parse_semantics
from pipeline.forms.template import (
    FIELD_KINDS,
    GEOMETRY_REFERENCE,
    MM_PER_INCH,
    REGISTER_FEATURES,
    Field,
    Rect,
    Template,
)

#: Environment variable: extra folders to look for reference images in.
REFERENCE_PATH_ENV = "TALLY_FORM_REFERENCES"
#: Filler marks a template may declare.
FILLER_MARKS = ("x", "dash", "zero")
#: Keys a reference-image template may have.
TOP_KEYS = frozenset({"name", "title", "geometry", "reference", "reference_size", "reference_dpi", "registration",
                      "reference_search", "filler_marks", "fields", "rules", "description", "fill_in_areas", "read",
                      "station_key", "forensic_levels", "leader"})
#: Keys a field of a reference-image template may have.
FIELD_KEYS = frozenset({"name", "label", "kind", "role", "boxes", "comb", "split", "options", "party", "party_of"})
#: Largest number of boxes in one field.
MAX_BOXES = 20
#: Plausible range of a reference image's resolution.
DPI_RANGE = (30.0, 1200.0)


def _fail(where: str, message: str) -> ConfigError:
    return ConfigError(f"form template {where}: {message}")


def _rect(value: object, where: str, size: tuple[int, int]) -> tuple[float, float, float, float]:
    """A ``[x0, y0, x1, y1]`` rectangle inside the reference image, checked."""
    if (not isinstance(value, Sequence) or isinstance(value, str) or len(value) != 4
            or not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in value)):
        raise _fail(where, f"expected [x0, y0, x1, y1] in reference pixels, got {value!r}")
    x0, y0, x1, y1 = (float(v) for v in value)
    if not (x1 > x0 and y1 > y0):
        raise _fail(where, f"rectangle {value!r} is empty: x1 must exceed x0 and y1 exceed y0")
    if x0 < 0 or y0 < 0 or x1 > size[0] or y1 > size[1]:
        raise _fail(where, f"rectangle {value!r} lies outside the {size[0]}x{size[1]} reference image")
    return x0, y0, x1, y1


def _to_mm(rect: tuple[float, float, float, float], dpi: float) -> Rect:
    s = MM_PER_INCH / dpi
    x0, y0, x1, y1 = rect
    return Rect(x0 * s, y0 * s, (x1 - x0) * s, (y1 - y0) * s)


def split_comb(rect: tuple[float, float, float, float], n: int) -> list[tuple[float, float, float, float]]:
    """A comb rectangle cut into ``n`` boxes of equal width that share their walls, left to right."""
    x0, y0, x1, y1 = rect
    w = (x1 - x0) / n
    return [(x0 + i * w, y0, x0 + (i + 1) * w, y1) for i in range(n)]


def _field_boxes(spec: dict, where: str, size: tuple[int, int]) -> list[tuple[float, float, float, float]]:
    """The boxes of one field: an explicit list (``boxes``) or a comb split in ``split`` (exactly one of them)."""
    if ("boxes" in spec) == ("comb" in spec):
        raise _fail(where, "give either 'boxes' (a list of [x0, y0, x1, y1]) or 'comb' with 'split'")
    if "comb" in spec:
        n = spec.get("split")
        if not isinstance(n, int) or isinstance(n, bool) or not 1 <= n <= MAX_BOXES:
            raise _fail(f"{where}.split", f"expected a whole number of boxes from 1 to {MAX_BOXES}, got {n!r}")
        return split_comb(_rect(spec["comb"], f"{where}.comb", size), n)
    if "split" in spec:
        raise _fail(f"{where}.split", "only goes with 'comb'")
    boxes = spec["boxes"]
    if not isinstance(boxes, list) or not 1 <= len(boxes) <= MAX_BOXES:
        raise _fail(f"{where}.boxes", f"expected a list of 1 to {MAX_BOXES} rectangles, got {boxes!r}")
    return [_rect(b, f"{where}.boxes[{i}]", size) for i, b in enumerate(boxes)]


def parse_field(spec: object, index: int, size: tuple[int, int], dpi: float) -> Field:
    """One field of a reference-image template, validated (errors name ``fields[i].key``)."""
    where = f"fields[{index}]"
    if not isinstance(spec, dict):
        raise _fail(where, f"expected a mapping, got {spec!r}")
    unknown = sorted(set(spec) - FIELD_KEYS)
    if unknown:
        raise _fail(f"{where}.{unknown[0]}", f"unknown key; a field may have {sorted(FIELD_KEYS)}")
    name = spec.get("name")
    if not isinstance(name, str) or not name.isidentifier():
        raise _fail(f"{where}.name", f"expected a name made of letters, digits and _, got {name!r}")
    where = f"fields[{index}] ({name})"
    kind = spec.get("kind")
    if kind not in FIELD_KINDS:
        raise _fail(f"{where}.kind", f"{kind!r} is not one of {FIELD_KINDS}")
    role = check_role(spec.get("role"), where)
    boxes = tuple(_to_mm(b, dpi) for b in _field_boxes(spec, where, size))
    options = tuple(str(o) for o in spec.get("options", ()))
    if kind == "choice" and len(options) != len(boxes):
        raise _fail(f"{where}.options", f"a choice field needs one option per box ({len(boxes)}), got {options}")
    return Field(name=name, label=str(spec.get("label", name)), kind=kind, boxes=boxes, options=options,
                 party=bool(spec.get("party", role == "candidate")), party_of=spec.get("party_of"), role=role,
                 beside=False)


def _size(raw: dict) -> tuple[int, int]:
    size = raw.get("reference_size")
    if (not isinstance(size, list) or len(size) != 2
            or not all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in size)):
        raise _fail("reference_size", f"expected [width, height] of the reference image in pixels, got {size!r}")
    return size[0], size[1]


def _dpi(raw: dict) -> float:
    dpi = raw.get("reference_dpi")
    if not isinstance(dpi, (int, float)) or isinstance(dpi, bool) or not DPI_RANGE[0] <= dpi <= DPI_RANGE[1]:
        raise _fail("reference_dpi", f"expected the reference image's resolution in dpi ({DPI_RANGE[0]:g}-"
                                     f"{DPI_RANGE[1]:g}), got {dpi!r}")
    return float(dpi)


def reference_places(name: str, base_dir: Path, search: Sequence[str]) -> list[Path]:
    """Where a reference image called ``name`` is looked for, in order (see the module docstring)."""
    env = [Path(p) for p in os.environ.get(REFERENCE_PATH_ENV, "").split(os.pathsep) if p]
    return [base_dir / name] + [d / name for d in env] + [(base_dir / d / name) for d in search]


def _reference(raw: dict, base_dir: Path) -> tuple[Path | None, tuple[str, ...]]:
    name = raw.get("reference")
    if not isinstance(name, str) or not name:
        raise _fail("reference", f"expected the file name of the reference image, got {name!r}")
    search = raw.get("reference_search", [])
    if not isinstance(search, list) or not all(isinstance(s, str) for s in search):
        raise _fail("reference_search", f"expected a list of folders, got {search!r}")
    places = reference_places(name, base_dir, search)
    found = next((p.resolve() for p in places if p.is_file()), None)
    return found, tuple(str(p) for p in places)


def _fill_in_areas(raw: dict, size: tuple[int, int]) -> None:
    """Check ``fill_in_areas``: rectangles of handwriting outside the fields (names, signatures) that registration
    must not take features from."""
    areas = raw.get("fill_in_areas", [])
    if not isinstance(areas, list):
        raise _fail("fill_in_areas", f"expected a list of [x0, y0, x1, y1], got {areas!r}")
    for i, rect in enumerate(areas):
        _rect(rect, f"fill_in_areas[{i}]", size)


def read_overrides(raw: dict) -> dict:
    """The template's ``read`` section: reader settings tuned to this form's paper (e.g. ``faint_ink_threshold``
    above a tinted watermark); each key must be a setting of the ``read`` config section."""
    from dataclasses import fields as dataclass_fields

    from pipeline.vision.settings import ReadSettings

    section = raw.get("read", {})
    if not isinstance(section, dict):
        raise _fail("read", f"expected a mapping of reader settings, got {section!r}")
    known = {f.name: f for f in dataclass_fields(ReadSettings)}
    for key, value in section.items():
        if key not in known or key in ("template", "workers", "dpi"):
            raise _fail(f"read.{key}", "not a reader setting a template may tune")
        if not isinstance(value, (int, float)) or isinstance(value, bool):
            raise _fail(f"read.{key}", f"expected a number, got {value!r}")
    return dict(section)


def _filler_marks(raw: dict) -> tuple[str, ...]:
    marks = raw.get("filler_marks", [])
    if not isinstance(marks, list) or any(m not in FILLER_MARKS for m in marks):
        raise _fail("filler_marks", f"expected a list drawn from {list(FILLER_MARKS)}, got {marks!r}")
    return tuple(marks)


def parse_reference_template(raw: dict, base_dir: Path) -> Template:
    """Build a :class:`Template` from a reference-image template mapping (module docstring), validated.

    Raises:
        ConfigError: a key is missing, unknown or has a bad value; the message names it.
    """
    unknown = sorted(set(raw) - TOP_KEYS)
    if unknown:
        raise _fail(unknown[0], f"unknown key; a reference-image template may have {sorted(TOP_KEYS)}")
    if raw.get("geometry") != GEOMETRY_REFERENCE:
        raise _fail("geometry", f"expected 'mm' or '{GEOMETRY_REFERENCE}', got {raw.get('geometry')!r}")
    name = raw.get("name")
    if not isinstance(name, str) or not name:
        raise _fail("name", f"expected the template's name, got {name!r}")
    registration = raw.get("registration", REGISTER_FEATURES)
    if registration != REGISTER_FEATURES:
        raise _fail("registration", f"a reference-image template registers by '{REGISTER_FEATURES}', "
                                    f"got {registration!r} (fiducials need a millimetre template)")
    size, dpi = _size(raw), _dpi(raw)
    _fill_in_areas(raw, size)
    read_overrides(raw)
    specs = raw.get("fields")
    if not isinstance(specs, list) or not specs:
        raise _fail("fields", "expected a non-empty list of fields")
    fields = tuple(parse_field(spec, i, size, dpi) for i, spec in enumerate(specs))
    seen: set[str] = set()
    for f in fields:
        if f.name in seen:
            raise _fail("fields", f"two fields are called '{f.name}'")
        seen.add(f.name)
    reference, places = _reference(raw, base_dir)
    width_mm, height_mm = size[0] * MM_PER_INCH / dpi, size[1] * MM_PER_INCH / dpi
    return Template(name=name, width_mm=width_mm, height_mm=height_mm, fields=fields,
                    frame=Rect(0.0, 0.0, width_mm, height_mm), frame_line_mm=0.0, fiducials=(),
                    orientation_mark=None, raw=raw, geometry=GEOMETRY_REFERENCE, registration=REGISTER_FEATURES,
                    reference=reference, reference_size=size, reference_dpi=dpi, reference_places=places,
                    filler_marks=_filler_marks(raw), **parse_semantics(raw, fields))
