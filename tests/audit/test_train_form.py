"""``train-alteration --form``: a detector trained for a form other than the acta (issue 15) records its template
and its fields' box layout, is saved in ``<detector folder>/<template name>/``, and the audit of that form's runs
picks it from the acta's folder; the acta's layout and features are what they were. Tiny toy images, seconds."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest
import yaml

from pipeline.audit.alteration import (
    FIELD_INPUTS,
    INPUTS_KEY,
    LAYOUTS_KEY,
    TEMPLATE_KEY,
    Detector,
    for_form,
    form_folder,
    load_detector,
    save_detector,
)
from pipeline.audit.features import ACTA_LAYOUT, FieldLayout, feature_names, field_features, locate_boxes
from pipeline.audit.settings import AlterationSettings
from pipeline.audit.train import check_out, default_out, field_layouts, train_alteration
from pipeline.errors import ConfigError
from pipeline.forms import load_template
from pipeline.forms.template import RUN_TEMPLATE_FILE, parse_template

FORM = "toy_column_form"
#: A reference-image form of two 3-box combs whose boxes share their walls (a table column: nothing is written
#: beside them), 100 px per inch.
RAW = {"name": FORM, "geometry": "reference_image", "reference": "toy_reference.png", "reference_size": [400, 300],
       "reference_dpi": 100, "registration": "reference_features",
       "fields": [{"name": "first", "kind": "count", "role": "candidate", "comb": [200, 40, 299, 105], "split": 3},
                  {"name": "second", "kind": "count", "role": "candidate", "comb": [200, 106, 299, 171],
                   "split": 3}]}
#: Field image: the comb (99 x 65 reference px, at 2x) with an 8 px margin all round.
MARGIN, SCALE = 8, 2


def toy_template(folder: Path):
    folder.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(folder / "toy_reference.png"), np.full((300, 400), 235, np.uint8))
    (folder / RUN_TEMPLATE_FILE).write_text(yaml.safe_dump(RAW), encoding="utf-8")
    return parse_template(RAW, folder)


def comb_image(rng: np.random.Generator, altered: bool) -> np.ndarray:
    """A shared-wall comb of three boxes with a digit-like loop in each; ``altered``: one box scribbled over."""
    w, h = 99 * SCALE, 65 * SCALE
    img = np.clip(rng.normal(228, 3, (h + 2 * MARGIN, w + 2 * MARGIN)), 0, 255).astype(np.uint8)
    cv2.rectangle(img, (MARGIN, MARGIN), (MARGIN + w, MARGIN + h), 25, 2)
    for i in (1, 2):
        x = MARGIN + round(i * w / 3)
        cv2.line(img, (x, MARGIN), (x, MARGIN + h), 25, 2)
    for i in range(3):
        cx = MARGIN + round((i + 0.5) * w / 3) + int(rng.integers(-4, 5))
        cv2.ellipse(img, (cx, MARGIN + h // 2), (12 + int(rng.integers(0, 5)), 30), 0, 0, 360, 45, 3)
    if altered:
        i = int(rng.integers(0, 3))
        x0 = MARGIN + round(i * w / 3) + 8
        for k in range(7):
            cv2.line(img, (x0, MARGIN + 20 + 12 * k), (x0 + 48, MARGIN + 14 + 12 * k), 30, 3)
    return img


def toy_batch(root: Path, n: int = 16) -> tuple[Path, Path]:
    """A synthetic batch (truth.csv, template.yaml) and its read run folder (pages.csv, template.yaml, fields/)."""
    batch, rundir = root / "batch", root / "run"
    toy_template(batch)
    toy_template(rundir)
    rng = np.random.default_rng(3)
    truth, pages = [], []
    for k in range(n):
        sid = f"s{k:03d}"
        altered = k % 2 == 1
        folder = rundir / "fields" / sid
        folder.mkdir(parents=True)
        for f in ("first", "second"):
            cv2.imwrite(str(folder / f"{f}.png"), comb_image(rng, altered and f == "second"))
        truth.append({"sheet_id": sid, "altered": altered, "first_written": 12, "second_written": 34,
                      "first_alteration": "none", "second_alteration": "overwrite" if altered else "none"})
        pages.append({"sheet_id": sid, "status": "ok"})
    pd.DataFrame(truth).to_csv(batch / "truth.csv", index=False)
    pd.DataFrame(pages).to_csv(rundir / "pages.csv", index=False)
    return batch, rundir


SMALL = AlterationSettings(sheets=10, folds=2, target_recall=0.5, hidden_units=(4,), max_iter=50)


def test_layout_of_a_table_column_comb_and_the_acta(tmp_path):
    template = toy_template(tmp_path)
    layout = FieldLayout.of(template.field("first"))
    walls, index = layout.edges
    assert not layout.beside and len(walls) == 4 and index == ((0, 1), (1, 2), (2, 3))
    assert FieldLayout.from_json(layout.to_json()) == layout
    assert field_layouts(load_template()) is None  # the acta keeps the features it always had
    assert ACTA_LAYOUT.beside and len(ACTA_LAYOUT.edges[0]) == 6


def test_boxes_of_a_shared_wall_comb_are_found(tmp_path):
    template = toy_template(tmp_path)
    img = comb_image(np.random.default_rng(0), False)
    boxes = locate_boxes(img < 128, FieldLayout.of(template.field("first")))
    right = [MARGIN, MARGIN + 66, MARGIN + 132, MARGIN + 198]
    assert [b[0] for b in boxes] == pytest.approx(right[:3], abs=3)
    assert [b[2] for b in boxes] == pytest.approx(right[1:], abs=3)
    assert boxes[0][1] == pytest.approx(MARGIN, abs=3) and boxes[0][3] == pytest.approx(MARGIN + 130, abs=3)
    # no replacement area: the two measures of the area beside the boxes are 0 however much ink the comb holds
    x = field_features(img, FieldLayout.of(template.field("first")))
    names = feature_names()
    assert x[names.index("beside_ink")] == 0 and x[names.index("beside_components")] == 0


def test_train_for_a_form_saves_its_template_and_the_audit_picks_it(tmp_path):
    batch, rundir = toy_batch(tmp_path)
    models = tmp_path / "models"
    acta = train_alteration(SMALL, models, batch=batch, rundir=rundir)  # any detector in the top folder...
    acta = acta.with_threshold(acta.threshold, {**acta.metadata, TEMPLATE_KEY: "acta1988"})
    acta = replace(acta, metadata={k: v for k, v in acta.metadata.items() if k != LAYOUTS_KEY})
    save_detector(acta, models)  # ...standing for the acta's
    out = form_folder(models, FORM)
    detector = train_alteration(SMALL, out, batch=batch, rundir=rundir)
    saved = load_detector(out)
    assert saved.metadata[TEMPLATE_KEY] == FORM == detector.metadata[TEMPLATE_KEY]
    assert set(saved.metadata[LAYOUTS_KEY]) == {"first", "second"}
    assert saved.layouts(("first", "second"))["first"].beside is False
    # two count fields are too few to judge a field against its sheet's others: it takes each field's own features
    assert saved.metadata[INPUTS_KEY] == FIELD_INPUTS and not saved.sheet_relative
    # the audit of this form's run, given the top folder, picks the form's own detector
    picked, skipped = for_form(load_detector(models), FORM)
    assert skipped is None and picked.folder == out and picked.metadata[TEMPLATE_KEY] == FORM
    # the acta's runs keep the acta's detector, and a form without one is still not scored
    top, skipped = for_form(load_detector(models), "acta1988")
    assert skipped is None and top.folder == models
    none, skipped = for_form(load_detector(models), "another_form")
    assert none is None and "another_form" in skipped


def test_a_forms_detector_never_replaces_another_forms(tmp_path):
    n = len(feature_names())
    det = Detector(np.zeros(n), np.ones(n), (np.zeros((n, 1)),), (np.zeros(1),), 0.5, {TEMPLATE_KEY: "acta1988"})
    save_detector(det, tmp_path)
    check_out(tmp_path, "acta1988")
    with pytest.raises(ConfigError, match="acta1988"):
        check_out(tmp_path, FORM)
    assert default_out(None).name == "alteration"
    assert default_out(toy_template(tmp_path / "form")).name == FORM
