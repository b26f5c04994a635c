"""The shipped template of the "MODEL C 1 PPWP" certificate page (Indonesia 2014, sections I-III): it parses, its
fields follow the documented naming scheme and lie where the scheme says, its rules name only its fields, and the
hand-checked truth of the development set's two certificate pages satisfies / violates the rules as the data's
README says (``sertifikat_reference.jpg`` adds up; ``salah.jpg`` has a total that disagrees with its rows). Tests
that need ``../shared/data/forms/c1_2014/`` skip when it is absent."""

from __future__ import annotations

import cv2
import numpy as np
import pandas as pd
import pytest

from pipeline.audit import rules as rule_engine
from pipeline.forms.bench import CERTIFICATE, CERTIFICATE_FORM_TYPE, REAL_DIR, failing_rules, init_figures
from pipeline.forms.template import FIELD_ROLES, GEOMETRY_REFERENCE, MM_PER_INCH, REGISTER_FEATURES, load_template

TRUTH = REAL_DIR / "truth.csv"
ABSENT = "the c1_2014 development set is absent"
needs_truth = pytest.mark.skipif(not TRUTH.is_file(), reason=ABSENT)
#: Section I: rows A.1-A.5 and B.1-B.5, each in the columns laki-laki / perempuan / jumlah.
SECTION_I = [f"{s}{row}_{col}" for s in "ab" for row in range(1, 6) for col in "lpj"]
NAMES = SECTION_I + ["ii_1", "ii_2", "ii_3", "ii_4", "iii_1", "iii_2", "iii_3"]
#: What the README of the development set says fails on each certificate page's truth values: salah.jpg's A.1 and
#: A.5 totals (338) disagree with their men + women (167 + 221 = 388); the reference adds up.
FAILING_ON_TRUTH = {"sertifikat_reference": [], "salah": ["a1_row", "a5_row"]}


@pytest.fixture(scope="module")
def cert():
    return load_template(CERTIFICATE)


def truth_rows(cert) -> pd.DataFrame:
    """One row per certificate page of truth.csv (index: the image's stem), one column per field (empty: NA)."""
    truth = pd.read_csv(TRUTH, dtype={"value": "Int64"})
    truth = truth[truth["form_type"] == CERTIFICATE_FORM_TYPE]
    by_label = {f.label: f.name for f in cert.fields}
    truth = truth.assign(name=truth["field"].map(by_label), sheet=truth["image"].str.rsplit(".", n=1).str[0])
    assert truth["name"].notna().all(), "every truth label is a field's label"
    return truth.pivot(index="sheet", columns="name", values="value").reindex(columns=NAMES).astype("Float64")


def failed(cert, row: pd.DataFrame) -> tuple[list[str], list[str]]:
    """The rules that fail on a one-row frame, and those that cannot be evaluated (an empty field)."""
    fail, unknown = [], []
    for rule in cert.rules:
        result = rule_engine.evaluate(rule_engine.parse_rule(rule.text), row)
        fail += [rule.name] if bool(result.failed[0]) else []
        unknown += [] if bool(result.evaluable[0]) else [rule.name]
    return fail, unknown


def test_template_parses(cert):
    assert cert.name == "c1_2014_certificate" and cert.geometry == GEOMETRY_REFERENCE
    assert cert.registration == REGISTER_FEATURES and cert.reference_size == (1275, 2100)
    assert [f.name for f in cert.fields] == NAMES
    assert all(f.kind == "count" and len(f.boxes) == 3 for f in cert.fields)
    assert set(cert.filler_marks) == {"x", "dash", "zero"}
    assert {f.role for f in cert.fields} - {None} <= set(FIELD_ROLES)
    assert cert.role_field("registered") == "a5_j" and cert.role_field("total") == "iii_3"
    assert len({f.label for f in cert.fields}) == len(cert.fields)


def test_fields_lie_where_their_names_say(cert):
    """Rows top to bottom (A.1 ... B.5, then II, then III); columns laki-laki, perempuan, jumlah left to right."""
    ys = [cert.field(f"{s}{row}_l").bounds.y for s in "ab" for row in range(1, 6)]
    ys += [cert.field(n).bounds.y for n in NAMES[len(SECTION_I):]]
    assert ys == sorted(ys)
    for s in "ab":
        for row in range(1, 6):
            men, women, total = (cert.field(f"{s}{row}_{c}").bounds for c in "lpj")
            assert men.x < women.x < total.x and abs(men.y - total.y) < 1.0
    assert {round(cert.field(n).bounds.x) for n in NAMES[len(SECTION_I):]} == {round(cert.field("a1_j").bounds.x)}


def test_rules_name_only_fields_of_the_template(cert):
    names = {f.name for f in cert.fields if f.is_numeric}
    assert len(cert.rules) == 20 and len({r.name for r in cert.rules}) == 20
    for rule in cert.rules:
        parsed = rule_engine.parse_rule(rule.text)
        assert set(parsed.names) <= names, rule.text
        assert parsed.op == "==" and not rule.soft
    texts = {r.text for r in cert.rules}
    assert {f"{s}{row}_l + {s}{row}_p == {s}{row}_j" for s in "ab" for row in range(1, 6)} <= texts
    assert {"ii_1 == ii_2 + ii_3 + ii_4", "iii_3 == iii_1 + iii_2", "ii_4 == b5_j", "iii_3 == ii_4"} <= texts


def test_rules_on_a_made_up_sheet(cert):
    """A sheet that adds up passes every rule; one changed total fails its row, its column sum and the cross-checks."""
    values = {}
    for s, rows in (("a", [(190, 199), (0, 1), (0, 0), (5, 3)]), ("b", [(134, 132), (0, 1), (0, 0), (5, 3)])):
        for row, (men, women) in enumerate(rows, 1):
            values |= {f"{s}{row}_l": men, f"{s}{row}_p": women, f"{s}{row}_j": men + women}
        for c in "lpj":
            values[f"{s}5_{c}"] = sum(values[f"{s}{row}_{c}"] for row in range(1, 5))
    values |= {"iii_1": 270, "iii_2": 5, "iii_3": 275, "ii_4": 275, "ii_2": 0, "ii_3": 125, "ii_1": 400}
    row = pd.DataFrame([values]).astype("Float64")
    assert failed(cert, row) == ([], [])
    row["b5_j"] = 285
    assert failed(cert, row)[0] == ["b5_row", "b5_j_sum", "ballots_used_voters"]


@needs_truth
def test_truth_values_satisfy_and_violate_the_rules_as_the_readme_says(cert):
    wide = truth_rows(cert)
    assert sorted(wide.index) == sorted(FAILING_ON_TRUTH)
    for sheet, expected in FAILING_ON_TRUTH.items():
        as_read = wide.loc[[sheet]]
        fail, unknown = failed(cert, as_read)
        assert fail == expected
        # an empty row (every box empty) has no value, so the rules naming it are not evaluated ...
        empty = set(as_read.columns[as_read.isna().iloc[0]])
        assert set(unknown) == {r.name for r in cert.rules if set(rule_engine.parse_rule(r.text).names) & empty}
        # ... and on paper means 0: then every rule is evaluated, with the same outcome
        assert failed(cert, as_read.fillna(0)) == (expected, [])


@needs_truth
def test_bench_finds_the_same_failing_rules_on_the_truth(cert):
    assert failing_rules(truth_rows(cert), cert) == {k: v for k, v in FAILING_ON_TRUTH.items() if v}


@pytest.mark.skipif(not (REAL_DIR / "sertifikat_reference.jpg").is_file(), reason=ABSENT)
def test_template_init_finds_the_shipped_boxes(cert):
    n = init_figures(REAL_DIR / "sertifikat_reference.jpg", cert)
    assert (n["found"], n["missed"], n["spurious"], n["fields_found"]) == (111, 0, 0, 37)


#: How far (reference px, 150 dpi) a box's inner wall may lie from the centre of the printed line between the boxes.
WALL_TOLERANCE_PX = 1.25


def _printed_wall(grey, x: float, y0: float, y1: float) -> float:
    """The centre (px, edge coordinates) of the printed vertical line nearest ``x`` between rows ``y0`` and ``y1``
    of the reference: its columns dark along most of the rows (handwriting crosses a row, a rule runs down it)."""
    rows = grey[int(y0) + 5:int(y1) - 5]
    lo = int(x) - 6
    fill = (rows[:, lo:int(x) + 7] < 205).mean(axis=0)
    fill[fill < 0.9] = 0
    assert fill.any(), f"no printed line near x = {x}"
    return float((fill * np.arange(lo, lo + len(fill))).sum() / fill.sum()) + 0.5


@pytest.mark.skipif(not (REAL_DIR / "sertifikat_reference.jpg").is_file(), reason=ABSENT)
def test_inner_walls_are_the_printed_lines(cert):
    """Every wall between two boxes of a field is the printed line of the reference (within WALL_TOLERANCE_PX),
    so drawn digits are centred in their printed boxes and no printed wall lies inside a box: split in equal
    thirds, section I's jumlah combs (whose last box holds the table's thick border) had their inner walls 1-3 px
    right of the print, and I.B.4 jumlah's wall inside its middle box was read as an extra "1"."""
    grey = cv2.imread(str(REAL_DIR / "sertifikat_reference.jpg"), cv2.IMREAD_GRAYSCALE)
    scale = cert.reference_dpi / MM_PER_INCH
    off = {}
    for f in cert.fields:
        for left in f.boxes[:-1]:
            x = (left.x + left.w) * scale
            off[(f.name, round(x, 1))] = round(x - _printed_wall(grey, x, left.y * scale, (left.y + left.h) * scale), 2)
    assert {k: v for k, v in off.items() if abs(v) > WALL_TOLERANCE_PX} == {}
