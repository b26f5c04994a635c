"""Synthetic sheets of any template (issue 15, point 4): a reference-image template's filled reference blanked,
counts that obey the template's rules, filler marks in unused leading boxes, the acta's tampering and scan damage,
and the acta's ground-truth files.

Most tests use a small reference template made here (a drawn form whose boxes hold "handwriting", so blanking is
tested too); the shipped Lampiran template is tested where its reference image (the development set) is present.
"""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest
import yaml

from pipeline.cli import main
from pipeline.errors import ConfigError
from pipeline.forms import load_template
from pipeline.forms.template import MM_PER_INCH
from pipeline.synth import SynthSettings, generate_batch, render_sheet
from pipeline.synth.form_bench import score_run
from pipeline.synth.formplan import honest_counts, rule_system
from pipeline.synth.formsheet import plan_form_sheet
from pipeline.synth.reference import blank_reference, read_reference
from pipeline.synth.sheet import is_acta, sheet_rngs
from tests.synth.common import TAMPERED, folder_hashes

LAMPIRAN = Path(__file__).resolve().parents[2] / "pipeline" / "forms" / "templates" / "c1_2014_lampiran.yaml"
#: The made-up form: 60 dpi, three 3-box combs in a table column, one 2-box comb; "handwriting" in its boxes.
DPI = 60
SIZE = (496, 702)
COMBS = {"alpha": [380, 150, 470, 200], "beta": [380, 200, 470, 250], "total": [380, 250, 470, 300],
         "spoilt": [410, 300, 470, 350]}
FORM_RULES = ["alpha + beta == total"]
#: Low resolution, one process; some tampering.
FORM_FAST = {"dpi": 80, "workers": 1, "gallery_sheets": 4}


def _draw_form(path: Path) -> None:
    """A filled form: frame, title, table rules, the combs, and grey digits written in some boxes."""
    img = np.full((SIZE[1], SIZE[0], 3), (238, 242, 246), np.uint8)
    cv2.rectangle(img, (20, 20), (SIZE[0] - 20, SIZE[1] - 20), (0, 0, 0), 2)
    cv2.putText(img, "MODEL TEST FORM", (40, 70), cv2.FONT_HERSHEY_SIMPLEX, 0.9, (0, 0, 0), 2)
    for y in (150, 200, 250, 300, 350):
        cv2.line(img, (20, y), (SIZE[0] - 20, y), (0, 0, 0), 1)
    for x0, y0, x1, y1 in COMBS.values():
        cv2.rectangle(img, (x0, y0), (x1, y1), (0, 0, 0), 1)
        n = 3 if x1 - x0 == 90 else 2
        for k in range(1, n):
            x = x0 + k * (x1 - x0) // n
            cv2.line(img, (x, y0), (x, y1), (0, 0, 0), 1)
    for (x0, y0, x1, _), text in zip(COMBS.values(), ("27", "315", "342", "4"), strict=True):
        n = 3 if x1 - x0 == 90 else 2
        for k, ch in enumerate(reversed(text)):  # right-aligned, one digit per box
            left = x0 + (n - 1 - k) * (x1 - x0) // n
            cv2.putText(img, ch, (left + 6, y0 + 40), cv2.FONT_HERSHEY_SIMPLEX, 1.1, (90, 70, 60), 2)
    cv2.imwrite(str(path), img)


@pytest.fixture(scope="module")
def form(tmp_path_factory) -> Path:
    """The template YAML of the made-up filled form (its reference beside it)."""
    folder = tmp_path_factory.mktemp("form")
    _draw_form(folder / "reference.png")
    fields = [{"name": name, "kind": "count", "comb": rect, "split": 3 if rect[2] - rect[0] == 90 else 2,
               "role": {"alpha": "candidate", "beta": "candidate", "total": "valid", "spoilt": "invalid"}[name]}
              for name, rect in COMBS.items()]
    raw = {"name": "test_form", "geometry": "reference_image", "reference": "reference.png",
           "reference_size": list(SIZE), "reference_dpi": DPI, "registration": "reference_features",
           "filler_marks": ["x", "dash", "zero"], "fields": fields, "rules": FORM_RULES}
    path = folder / "test_form.yaml"
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return path


@pytest.fixture(scope="module")
def template(form):
    return load_template(form)


@pytest.fixture(scope="module")
def settings():
    return SynthSettings(sheets=8, seed=21, **FORM_FAST, **{**TAMPERED, "altered_rate_absent": 0.5})


@pytest.fixture(scope="module")
def batch(tmp_path_factory, settings, digits, template) -> Path:
    return generate_batch(settings, tmp_path_factory.mktemp("formbatch") / "batch", digits, template)


def _written(row, field: str) -> int:
    value = row[f"{field}_written"]
    return 0 if pd.isna(value) else int(value)


def test_batch_has_the_acta_files_and_the_template(batch, truth, boxes, settings):
    assert sorted(p.name for p in batch.iterdir()) == ["boxes.csv", "gallery.png", "manifest.json", "sheets",
                                                       "template.yaml", "truth.csv"]
    assert len(truth) == settings.sheets == len(list((batch / "sheets").glob("*.jpg")))
    for f in COMBS:
        assert {f, f"{f}_written", f"{f}_alteration", f"{f}_style", f"{f}_filler", f"{f}_filler_boxes"} <= set(truth)
    assert {"altered", "fabricated", "alteration_kinds", "alteration_styles", "arithmetic_error", "rules_failed",
            "filler_habit", "homography", "dpi", "scan_damage", "quarter_turns", "pen_colour"} <= set(truth)
    assert {"sheet_id", "field", "box", "digit", "mnist_index", "altered", "alteration", "filler"} <= set(boxes)
    manifest = json.loads((batch / "manifest.json").read_text())
    assert manifest["template"] == "test_form" and manifest["form"]["rules"] == FORM_RULES
    assert manifest["mnist"]["split"] == "test"
    assert [f.name for f in load_template(batch / "template.yaml").fields] == list(COMBS)


def test_honest_counts_obey_the_rules_and_fit_the_boxes(template, settings):
    system = rule_system(template)
    assert system.free == ("alpha", "beta", "spoilt") and set(system.determined) == {"total"}
    for index in range(1, 200):
        values = honest_counts(sheet_rngs(7, index)["content"], settings, template, system)
        assert values["alpha"] + values["beta"] == values["total"]
        assert all(0 <= values[f.name] <= f.max_value for f in template.fields)


def test_truth_satisfies_the_rules_unless_tampered_or_slipped(truth):
    for row in truth.itertuples():
        assert row.alpha + row.beta == row.total  # honest counts always add up
        holds = _written(row._asdict(), "alpha") + _written(row._asdict(), "beta") == _written(row._asdict(), "total")
        assert holds == (not isinstance(row.rules_failed, str) or row.rules_failed == "")
        if not (row.altered or row.fabricated or row.arithmetic_error):
            assert holds


def test_leading_boxes_hold_the_sheets_filler_mark(truth, boxes, template):
    seen = set()
    for row in truth.to_dict("records"):
        for f in template.fields_of_kind("count"):
            if row[f"{f.name}_alteration"] != "none" or pd.isna(row[f"{f.name}_written"]):
                continue
            written, habit = int(row[f"{f.name}_written"]), row["filler_habit"] if isinstance(row["filler_habit"],
                                                                                            str) else ""
            mine = boxes[(boxes["sheet_id"] == row["sheet_id"]) & (boxes["field"] == f.name)].sort_values("box")
            marks = mine["filler"].fillna("").tolist()
            all_filler = habit in ("x", "dash") and (mine["digit"] < 0).all()
            lead = len(f.boxes) if all_filler else len(f.boxes) - len(str(written)) if habit else 0
            assert marks == [habit] * lead + [""] * (len(f.boxes) - lead)
            assert row[f"{f.name}_filler_boxes"] == lead
            digits = mine["digit"].tolist()
            if all_filler:
                assert written == 0
            else:
                assert int("".join(str(d) for d in digits if d >= 0)) == written
                assert digits[:lead] == ([0] * lead if habit == "zero" else [-1] * lead)
            seen.add(habit)
    assert seen & {"x", "dash"}


def test_boxes_use_mnist_test_digits(boxes, mnist):
    drawn = boxes[boxes["mnist_index"] >= 0]
    assert (mnist.y_test[drawn["mnist_index"].to_numpy()] == drawn["digit"].to_numpy()).all()


def test_tampering_styles_and_a_crossout_left_of_a_table_column(tmp_path, digits, template):
    settings = SynthSettings(sheets=12, seed=5, style_set="all", **FORM_FAST,
                             **{**TAMPERED, "fabricated_rate": 0.0, "alteration_weights": (0.0, 0.0, 0.0, 1.0)})
    out = generate_batch(settings, tmp_path / "crossout", digits, template)
    t, b = pd.read_csv(out / "truth.csv"), pd.read_csv(out / "boxes.csv")
    assert t["altered"].all() and set(t["alteration_kinds"]) == {"crossout"}
    left = b[b["position"] == "left"]
    assert len(left) and (left["x1_mm"] <= template.field("alpha").boxes[0].x).all()
    assert set(b["style"]) & {"strike", "scribble", "hatching"}


def test_blanking_removes_the_old_handwriting_and_keeps_the_lines(template):
    before, after = read_reference(template), blank_reference(template)
    grey_b, grey_a = (cv2.cvtColor(i, cv2.COLOR_BGR2GRAY).astype(int) for i in (before, after))
    for name, (x0, y0, x1, y1) in COMBS.items():
        inside = (slice(y0 + 3, y1 - 2), slice(x0 + 3, x1 - 2))
        n = 3 if x1 - x0 == 90 else 2
        walls = [x0 + k * (x1 - x0) // n for k in range(n + 1)]
        interior = np.ones_like(grey_a[inside], bool)
        for x in walls:
            interior[:, max(0, x - x0 - 3 - 3):max(0, x - x0 - 3 + 4)] = False
        assert (grey_b[inside][interior] < 150).sum() > 20, name  # the reference was filled in
        assert (grey_a[inside][interior] < 150).sum() == 0, name  # ... and is blank now
        for x in walls:
            assert grey_a[y0 + 10:y1 - 10, x].mean() < 60, (name, x)  # the printed walls stay
    outside = (slice(40, 140), slice(30, 480))
    assert np.array_equal(before[outside], after[outside])


def test_same_seed_gives_byte_identical_form_batches(tmp_path, digits, template):
    settings = SynthSettings(sheets=3, seed=4, **FORM_FAST)
    one = folder_hashes(generate_batch(settings, tmp_path / "one", digits, template))
    two = folder_hashes(generate_batch(SynthSettings(sheets=3, seed=4, **{**FORM_FAST, "workers": 2}),
                                       tmp_path / "two", digits, template))
    assert one == two


def test_render_sheet_dispatches_on_the_template(digits, template):
    from pipeline.forms import load_template as acta

    assert is_acta(acta()) and not is_acta(template)
    sheet = render_sheet(2, SynthSettings(**FORM_FAST), digits, template)
    assert sheet.truth["template"] == "test_form" and "station_type" not in sheet.truth
    h = np.asarray(json.loads(sheet.truth["homography"])).reshape(3, 3)
    w, hgt = template.size_px(sheet.truth["dpi"])
    mapped = cv2.perspectiveTransform(np.array([[[w / 2, hgt / 2]]], np.float64), h)[0, 0]
    assert 0 < mapped[0] < sheet.image.shape[1] and 0 < mapped[1] < sheet.image.shape[0]


def test_perfect_reads_score_perfectly(tmp_path, batch, truth, boxes, template):
    """score_run on a run folder that says exactly what the truth says."""
    read_dpi = 200.0
    run = tmp_path / "run"
    run.mkdir()
    pages = []
    for row in truth.itertuples():
        to_template = np.diag([read_dpi / row.dpi, read_dpi / row.dpi, 1.0])
        h = to_template @ np.linalg.inv(np.asarray(json.loads(row.homography)).reshape(3, 3))
        pages.append({"sheet_id": row.sheet_id, "status": "ok", "homography": json.dumps(h.ravel().tolist())})
    pd.DataFrame(pages).to_csv(run / "pages.csv", index=False)
    fields = [{"sheet_id": r["sheet_id"], "field": f, "value": r[f"{f}_written"], "needs_review": False}
              for r in truth.to_dict("records") for f in COMBS]
    pd.DataFrame(fields).astype({"value": "Int64"}).to_parquet(run / "fields.parquet")
    crops = boxes[boxes["position"] == "box"][["sheet_id", "field", "box", "digit", "filler"]].copy()
    crops["slot"] = 0
    crops["filler"] = crops["filler"].fillna("").where(crops["digit"] < 0, "")
    crops["box_status"] = np.where(crops["digit"] >= 0, "digit", "empty")
    crops.drop(columns="digit").to_parquet(run / "crops.parquet")
    score = score_run(batch, run, template, read_dpi)
    assert score["registration"]["share"] == 1.0 and score["registration"]["corner_error_mm_max"] < 0.01
    assert score["fields"]["untampered_exact"]["share"] == 1.0 and score["fields"]["silent_wrong"]["hits"] == 0
    marks = score["filler"]["marks_read_as_filler"]
    assert marks["n"] > 0 and marks["share"] == 1.0
    assert score["filler"]["digits_taken_for_filler"]["hits"] == 0


def test_contradictory_rules_are_refused(tmp_path, template):
    raw = {**template.raw, "reference_search": [str(template.reference.parent)],
           "rules": ["alpha + beta == total", "alpha + beta == total + 1"]}
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(raw))
    with pytest.raises(ConfigError, match="contradict"):
        rule_system(load_template(path))


def test_chained_rules_of_a_larger_form_all_hold(tmp_path, template, settings):
    """Men + women = total on every row and rows summing to a total row, as on the certificate page."""
    rects = [[x, y, x + 60, y + 30] for y in (40, 80, 120) for x in (100, 200, 300)]
    names = [f"{row}_{col}" for row in ("a1", "a2", "a3") for col in ("l", "p", "j")]
    fields = [{"name": n, "kind": "count", "comb": r, "split": 3} for n, r in zip(names, rects, strict=True)]
    rules = [f"{r}_l + {r}_p == {r}_j" for r in ("a1", "a2", "a3")]
    rules += [f"a1_{c} + a2_{c} == a3_{c}" for c in ("l", "p", "j")]
    raw = {**template.raw, "reference_search": [str(template.reference.parent)], "fields": fields, "rules": rules}
    path = tmp_path / "chain.yaml"
    path.write_text(yaml.safe_dump(raw))
    chain = load_template(path)
    system = rule_system(chain)
    assert len(system.free) == 4  # 9 counts, 6 identities of rank 5
    for index in range(1, 50):
        values = honest_counts(sheet_rngs(3, index)["content"], settings, chain, system)
        assert system.holds(values) == []
    plan = plan_form_sheet(1, settings, chain)
    assert set(plan.fields) == set(names)


def test_cli_fills_a_template(tmp_path, form):
    out = tmp_path / "cli"
    assert main(["synth", "--form", str(form), "--sheets", "2", "--seed", "3", "--dpi", "80", "--workers", "1",
                 "--out", str(out)]) == 0
    t = pd.read_csv(out / "truth.csv")
    assert (t["template"] == "test_form").all() and (out / "template.yaml").is_file()


@pytest.mark.skipif(load_template(LAMPIRAN).reference is None, reason="the Lampiran reference image is absent")
def test_lampiran_batch_keeps_its_rule_and_filler_marks(tmp_path, digits):
    lampiran = load_template(LAMPIRAN)
    out = generate_batch(SynthSettings(sheets=4, seed=2, dpi=100, workers=1, gallery_sheets=2), tmp_path / "l",
                         digits, lampiran)
    t, b = pd.read_csv(out / "truth.csv"), pd.read_csv(out / "boxes.csv")
    assert (t["pair_1"] + t["pair_2"] == t["valid"]).all()
    clean = t[~t["altered"] & ~t["fabricated"] & ~t["arithmetic_error"]]
    assert (clean["rules_failed"].fillna("") == "").all()
    assert set(b["filler"].dropna()) <= {"x", "dash", "zero"}
    img = cv2.imread(str(out / "sheets" / "s000001.jpg"))
    assert abs(img.shape[0] - lampiran.height_mm / MM_PER_INCH * 100) < 60
    blank = cv2.cvtColor(blank_reference(lampiran), cv2.COLOR_BGR2GRAY)
    for f in lampiran.fields:  # the reference's 50, 29, 79, 7 are gone from the box interiors
        for box in f.boxes:
            x0, y0, x1, y1 = (round(v * lampiran.reference_dpi / MM_PER_INCH)
                              for v in (box.x, box.y, box.x + box.w, box.y + box.h))
            assert (blank[y0 + 5:y1 - 5, x0 + 5:x1 - 5] < 150).sum() == 0, f.name


def test_a_millimetre_template_other_than_the_acta_is_filled_too(tmp_path, digits):
    """A printed (mm, fiducial) form with an id, three counts and a rule: the form generator draws it on its
    rendered blank, fiducials kept inside the scan."""
    from pipeline.forms.template import DEFAULT_TEMPLATE

    raw = yaml.safe_load(DEFAULT_TEMPLATE.read_text())
    keep = {"section", "pan", "pri", "total_votes"}
    raw.update(name="mm_form", fields=[{k: v for k, v in f.items() if k not in ("party", "role")}
                                       for f in raw["fields"] if f["name"] in keep],
               rules=["pan + pri == total_votes"], texts=[], lines=[])
    for key in ("station_key", "forensic_levels", "leader", "id_ranges"):
        raw.pop(key, None)
    path = tmp_path / "mm.yaml"
    path.write_text(yaml.safe_dump(raw))
    mm = load_template(path)
    assert not is_acta(mm) and not mm.uses_reference
    out = generate_batch(SynthSettings(sheets=3, seed=2, **FORM_FAST), tmp_path / "mm", digits, mm)
    t = pd.read_csv(out / "truth.csv")
    assert (t["pan"] + t["pri"] == t["total_votes"]).all() and t["section"].between(1000, 9999).all()


def test_a_missing_reference_image_is_a_config_error_before_any_sheet(tmp_path, form, capsys):
    from pipeline.errors import ExitCode

    raw = yaml.safe_load(form.read_text())
    raw["reference"] = "nowhere.png"
    path = tmp_path / "lost.yaml"
    path.write_text(yaml.safe_dump(raw))
    out = tmp_path / "lost"
    assert main(["synth", "--form", str(path), "--sheets", "2", "--out", str(out)]) == ExitCode.config_error
    assert "nowhere.png" in capsys.readouterr().err and not (out / "sheets").exists()
