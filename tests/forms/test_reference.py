"""Reference-image templates: parsing, validation (errors name the key), the reference search path, and the shipped
Lampiran template. None of these need the reference image itself."""

from __future__ import annotations

import copy
import re

import pytest
import yaml

from pipeline.errors import ConfigError
from pipeline.forms.bench import LAMPIRAN
from pipeline.forms.reference import REFERENCE_PATH_ENV, split_comb
from pipeline.forms.template import (
    DEFAULT_TEMPLATE,
    GEOMETRY_REFERENCE,
    MM_PER_INCH,
    REGISTER_FEATURES,
    REGISTER_FIDUCIALS,
    load_template,
    parse_template,
)

MINIMAL = {
    "name": "my_form", "geometry": "reference_image", "reference": "ref.png", "reference_size": [400, 600],
    "reference_dpi": 50, "registration": "reference_features", "filler_marks": ["x", "dash"],
    "fields": [
        {"name": "a", "kind": "count", "role": "candidate", "comb": [100, 100, 190, 150], "split": 3},
        {"name": "b", "kind": "count", "role": "candidate", "boxes": [[100, 160, 130, 210], [130, 160, 160, 210]]},
        {"name": "total", "kind": "count", "role": "valid", "comb": [100, 220, 190, 270], "split": 3},
    ],
    "rules": ["a + b == total"],
}


def with_change(path: str, value) -> dict:
    """A copy of MINIMAL with the key at ``path`` (dot-separated, list indices as numbers) set to ``value``
    (``...`` removes it)."""
    raw = copy.deepcopy(MINIMAL)
    *parents, last = path.split(".")
    node = raw
    for key in parents:
        node = node[int(key)] if key.isdigit() else node[key]
    if value is ...:
        del node[int(last) if last.isdigit() else last]
    else:
        node[int(last) if last.isdigit() else last] = value
    return raw


def test_minimal_template_parses_into_millimetres(tmp_path):
    t = parse_template(MINIMAL, tmp_path)
    assert t.geometry == GEOMETRY_REFERENCE and t.registration == REGISTER_FEATURES and t.uses_reference
    assert t.reference is None and str(tmp_path / "ref.png") in t.reference_places
    assert t.width_mm == pytest.approx(400 * MM_PER_INCH / 50)
    a = t.field("a")
    assert len(a.boxes) == 3 and a.role == "candidate" and a.party and not a.beside
    assert a.boxes[0].x == pytest.approx(100 * MM_PER_INCH / 50)
    assert a.boxes[0].x + a.boxes[0].w == pytest.approx(a.boxes[1].x)  # shared walls
    assert t.field("b").boxes[1].w == pytest.approx(30 * MM_PER_INCH / 50)
    assert [r.text for r in t.rules] == ["a + b == total"] and t.filler_marks == ("x", "dash")
    assert t.fiducials == () and t.orientation_mark is None


def test_comb_splits_into_equal_boxes_sharing_walls():
    boxes = split_comb((0.0, 0.0, 90.0, 10.0), 3)
    assert boxes == [(0.0, 0.0, 30.0, 10.0), (30.0, 0.0, 60.0, 10.0), (60.0, 0.0, 90.0, 10.0)]


@pytest.mark.parametrize(("path", "value", "key"), [
    ("geometry", "inches", "geometry"),
    ("reference_size", ..., "reference_size"),
    ("reference_size", [400], "reference_size"),
    ("reference_dpi", 5000, "reference_dpi"),
    ("reference", ..., "reference"),
    ("registration", "fiducials", "registration"),
    ("filler_marks", ["x", "star"], "filler_marks"),
    ("fields.0.comb", [100, 100, 90, 150], "fields[0] (a).comb"),
    ("fields.0.comb", [100, 100, 500, 150], "fields[0] (a).comb"),
    ("fields.0.split", 0, "fields[0] (a).split"),
    ("fields.0.kind", "number", "fields[0] (a).kind"),
    ("fields.0.role", "two words", "fields[0] (a).role"),
    ("fields.0.colour", "red", "fields[0].colour"),
    ("fields.1.boxes", [[100, 160, 130]], "fields[1] (b).boxes[0]"),
    ("fields.1.name", "a", "fields"),
    ("rules", ["a + c == total"], "rules[0]"),
    ("rules", ["a + b"], "rules[0]"),
    ("read", {"ink_threshold": "dark"}, "read.ink_threshold"),
    ("read", {"no_such_setting": 1}, "read.no_such_setting"),
    ("fill_in_areas", [[0, 0, 10]], "fill_in_areas[0]"),
    ("colour", "red", "colour"),
])
def test_bad_values_are_config_errors_naming_the_key(tmp_path, path, value, key):
    with pytest.raises(ConfigError, match=re.escape(f"form template {key}:")):
        parse_template(with_change(path, value), tmp_path)


def test_a_field_needs_boxes_or_a_comb_not_both(tmp_path):
    raw = with_change("fields.0.boxes", [[100, 100, 130, 150]])
    with pytest.raises(ConfigError, match="either 'boxes'"):
        parse_template(raw, tmp_path)


def test_reference_is_found_on_the_search_path(tmp_path, monkeypatch):
    elsewhere = tmp_path / "refs"
    elsewhere.mkdir()
    (elsewhere / "ref.png").write_bytes(b"png")
    forms = tmp_path / "forms"
    forms.mkdir()
    (forms / "my_form.yaml").write_text(yaml.safe_dump(MINIMAL))
    assert parse_template(MINIMAL, forms).reference is None
    monkeypatch.setenv(REFERENCE_PATH_ENV, str(elsewhere))
    assert parse_template(MINIMAL, forms).reference == (elsewhere / "ref.png").resolve()
    monkeypatch.delenv(REFERENCE_PATH_ENV)
    raw = dict(MINIMAL, reference_search=["../refs"])
    assert parse_template(raw, forms).reference == (elsewhere / "ref.png").resolve()


def test_shipped_lampiran_template():
    t = load_template(LAMPIRAN)
    assert t.name == "c1_2014_lampiran" and t.uses_reference and t.reference_size == (824, 1164)
    assert [f.name for f in t.fields] == ["pair_1", "pair_2", "valid", "invalid"]
    assert [f.role for f in t.fields] == ["candidate", "candidate", "valid", "invalid"]
    assert all(len(f.boxes) == 3 and f.kind == "count" for f in t.fields)
    assert [r.text for r in t.rules] == ["pair_1 + pair_2 == valid"] and "x" in t.filler_marks
    s = 100 / MM_PER_INCH  # template mm -> reference px
    first = t.field("pair_1").boxes[0]
    assert (round(first.x * s), round(first.y * s)) == (691, 260)


def test_the_acta_keeps_its_fiducial_registration():
    t = load_template(DEFAULT_TEMPLATE)
    assert t.registration == REGISTER_FIDUCIALS and not t.uses_reference and len(t.fiducials) == 4
    assert all(f.beside for f in t.fields) and t.filler_marks == ()
    assert t.rule("votes_add_up").text == "sum(candidate) + other_votes + invalid == total"  # its rules are data
