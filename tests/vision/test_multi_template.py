"""Several templates in one run: each page is read with the template that registers best (``page_type`` in
``pages.csv``), a page two templates fit about as well is ``template_uncertain``, the run folder records every
template, and ``recognise`` gives each page its own template's fields. Two small synthetic reference-image forms
are drawn in the test; the real development images are used only when ``../shared`` is there."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest
import yaml

from pipeline.errors import ConfigError
from pipeline.forms.runs import TEMPLATES_DIR, page_templates, run_templates, sheet_templates
from pipeline.forms.template import RUN_TEMPLATE_FILE, load_template
from pipeline.model.recognise import recognise_run
from pipeline.model.settings import RecogniseSettings
from pipeline.vision import settings as st
from pipeline.vision.batch import PAGE_COLUMNS, read_batch
from pipeline.vision.page import TEMPLATE_UNCERTAIN, choose_fit, fit_templates, read_page, read_page_best
from pipeline.vision.settings import ReadSettings
from tests.model.conftest import use_stub_recogniser

#: Size of the synthetic reference images (pixels), and the resolution they are declared at.
W, H, REF_DPI = 600, 840, 72
#: Two 3-box combs at the same place on both forms ([x0, y0, x1, y1], reference pixels).
COMBS = [[380, 300, 470, 340], [380, 360, 470, 400]]
#: The area around the combs that the random print keeps clear.
CLEAR_Y = (280, 420)
SETTINGS = ReadSettings(dpi=100, workers=1)
REAL_DIR = Path("../shared/data/forms/c1_2014")
TEMPLATES = Path(__file__).parents[2] / "pipeline" / "forms" / "templates"


def draw_form(seed: int) -> np.ndarray:
    """A printed form: a frame, random words and boxes (its landmarks, different for every seed) and the combs."""
    rng = np.random.default_rng(seed)
    img = np.full((H, W), 255, np.uint8)
    cv2.rectangle(img, (20, 20), (W - 20, H - 20), 0, 2)
    for _ in range(40):
        x, y = int(rng.integers(30, W - 200)), int(rng.integers(40, H - 40))
        if CLEAR_Y[0] <= y <= CLEAR_Y[1] and x > 200:
            continue
        word = "".join(chr(int(c)) for c in rng.integers(65, 91, int(rng.integers(3, 9))))
        cv2.putText(img, word, (x, y), cv2.FONT_HERSHEY_SIMPLEX, float(rng.uniform(0.5, 1.0)), 0, 2)
    for _ in range(12):
        x0, y0 = int(rng.integers(30, W - 120)), int(rng.integers(30, H - 80))
        if CLEAR_Y[0] <= y0 <= CLEAR_Y[1]:
            continue
        cv2.rectangle(img, (x0, y0), (x0 + int(rng.integers(30, 100)), y0 + int(rng.integers(20, 60))), 0, 2)
    for x0, y0, x1, y1 in COMBS:
        cv2.rectangle(img, (x0, y0), (x1, y1), 0, 2)
        for k in (1, 2):
            x = x0 + (x1 - x0) * k // 3
            cv2.line(img, (x, y0), (x, y1), 0, 2)
    return img


def make_template(folder: Path, name: str, seed: int, reference: str | None = None) -> Path:
    """A reference-image template of the form drawn with ``seed`` (fields ``<name>_0``, ``<name>_1``)."""
    reference = reference or f"{name}.png"
    if not (folder / reference).is_file():
        cv2.imwrite(str(folder / reference), draw_form(seed))
    raw = {"name": name, "geometry": "reference_image", "reference": reference, "reference_size": [W, H],
           "reference_dpi": REF_DPI, "registration": "reference_features",
           "fields": [{"name": f"{name}_{i}", "kind": "count", "comb": c, "split": 3} for i, c in enumerate(COMBS)]}
    path = folder / f"{name}.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


def scanned(seed: int, angle: float = 3.0, turns: int = 0) -> np.ndarray:
    """A filled-in page of the form drawn with ``seed``: a digit in each comb, turned by ``angle`` degrees and
    ``turns`` clockwise quarter turns."""
    page = draw_form(seed)
    for x0, _y0, _, y1 in COMBS:
        cv2.putText(page, "7", (x0 + 62, y1 - 8), cv2.FONT_HERSHEY_SIMPLEX, 1.0, 0, 2)
    page = cv2.warpAffine(page, cv2.getRotationMatrix2D((W / 2, H / 2), angle, 1.0), (W, H), borderValue=255)
    return np.ascontiguousarray(np.rot90(page, -turns))


@pytest.fixture
def forms(tmp_path) -> tuple[Path, Path]:
    folder = tmp_path / "forms"
    folder.mkdir()
    return make_template(folder, "form_a", 1), make_template(folder, "form_b", 2)


def test_each_page_is_read_with_the_template_that_registers_best(forms):
    a, b = load_template(forms[0]), load_template(forms[1])
    for seed, template, turns in ((1, a, 0), (2, b, 0), (2, b, 2)):
        read = read_page_best(scanned(seed, turns=turns), "s", [a, b], SETTINGS)
        assert read.status == st.OK and read.page_type == template.name
        assert {c.field for c in read.crops} == {f.name for f in template.fields}
        alone = read_page(scanned(seed, turns=turns), "s", SETTINGS, template)  # read exactly as with it alone
        assert alone.page_type == template.name and alone.crops == read.crops
        assert np.array_equal(alone.digits, read.digits)


def test_the_screen_changes_no_choice_and_says_why_a_template_was_left_out(forms):
    a, b = load_template(forms[0]), load_template(forms[1])
    page = scanned(1, turns=1)
    screened, full = fit_templates(page, "s", [a, b], SETTINGS), fit_templates(page, "s", [a, b], SETTINGS, False)
    assert [f.ok for f in screened] == [f.ok for f in full] == [True, False]
    assert "at the orientation 'form_a' registered with" in screened[1].failure.reason
    assert choose_fit(screened).template is a


def test_a_page_two_templates_fit_alike_is_template_uncertain_and_not_read(forms, tmp_path):
    twin = make_template(forms[0].parent, "form_a_again", 1, reference="form_a.png")  # the same form, other name
    read = read_page_best(scanned(1), "s", [load_template(forms[0]), load_template(twin)], SETTINGS)
    assert read.status == TEMPLATE_UNCERTAIN and read.page_type == "" and not read.crops
    assert "'form_a'" in read.reason and "'form_a_again'" in read.reason and "0.1" in read.reason


def test_a_page_of_no_form_names_every_templates_reason(forms):
    blank = np.full((H, W), 255, np.uint8)
    cv2.putText(blank, "NOTHING HERE", (100, 400), cv2.FONT_HERSHEY_SIMPLEX, 1.5, 0, 3)
    read = read_page_best(blank, "s", [load_template(p) for p in forms], SETTINGS)
    assert read.status == st.NOT_A_FORM and read.page_type == ""
    assert "none of the 2 forms registers" in read.reason and "'form_a'" in read.reason and "'form_b'" in read.reason


@pytest.fixture
def mixed_scans(tmp_path) -> Path:
    scans = tmp_path / "scans"
    scans.mkdir()
    for name, seed, turns in (("p1", 1, 0), ("p2", 2, 0), ("p3", 1, 2), ("p4", 2, 1)):
        cv2.imwrite(str(scans / f"{name}.png"), scanned(seed, turns=turns))
    return scans


def test_a_mixed_batch_names_each_pages_template_and_records_both(forms, mixed_scans, tmp_path, monkeypatch):
    run = read_batch([mixed_scans], tmp_path / "run", SETTINGS, templates=[str(p) for p in forms])
    pages = pd.read_csv(run / "pages.csv", keep_default_na=False)
    assert list(pages.columns) == PAGE_COLUMNS
    assert dict(zip(pages["sheet_id"], pages["page_type"], strict=True)) == {
        "p1": "form_a", "p2": "form_b", "p3": "form_a", "p4": "form_b"}
    assert not (run / RUN_TEMPLATE_FILE).exists()
    assert sorted(p.name for p in (run / TEMPLATES_DIR).iterdir()) == ["form_a.yaml", "form_b.yaml"]
    assert sorted(run_templates(run)) == ["form_a", "form_b"]
    assert page_templates(run) == {"p1": "form_a", "p2": "form_b", "p3": "form_a", "p4": "form_b"}
    assert sheet_templates(run)["p4"].name == "form_b"
    crops = pd.read_parquet(run / "crops.parquet")
    assert set(crops[crops["sheet_id"] == "p2"]["field"]) == {"form_b_0", "form_b_1"}

    use_stub_recogniser(monkeypatch)
    recognise_run(run, None, RecogniseSettings())
    fields = pd.read_parquet(run / "fields.parquet")
    assert fields.groupby("sheet_id", sort=False)["field"].apply(list).to_dict() == {
        "p1": ["form_a_0", "form_a_1"], "p2": ["form_b_0", "form_b_1"],
        "p3": ["form_a_0", "form_a_1"], "p4": ["form_b_0", "form_b_1"]}

    again = read_batch([mixed_scans], run, SETTINGS, templates=[str(forms[0])])  # one template: as runs always were
    assert (again / RUN_TEMPLATE_FILE).is_file() and not (again / TEMPLATES_DIR).exists()
    pages = pd.read_csv(again / "pages.csv", keep_default_na=False)
    assert dict(zip(pages["sheet_id"], pages["page_type"], strict=True)) == {
        "p1": "form_a", "p2": "", "p3": "form_a", "p4": ""}
    assert list(run_templates(again)) == ["form_a"]


def test_templates_of_one_name_are_refused(forms, mixed_scans, tmp_path):
    other = tmp_path / "other"
    other.mkdir()
    clash = make_template(other, "form_a", 2)
    with pytest.raises(ConfigError, match="both named 'form_a'"):
        read_batch([mixed_scans], tmp_path / "run", SETTINGS, templates=[str(forms[0]), str(clash)])


@pytest.mark.skipif(not (REAL_DIR / "truth.csv").is_file(), reason=f"{REAL_DIR} (the development set) is absent")
def test_real_lampiran_and_certificate_pages_get_their_own_template():
    templates = [load_template(TEMPLATES / f"c1_2014_{page}.yaml") for page in ("lampiran", "certificate")]
    if any(t.reference is None for t in templates):
        pytest.skip("a reference image of the shipped C1 templates is absent")
    settings = ReadSettings()
    for image, expected in (("ok.jpg", "c1_2014_lampiran"), ("salah.jpg", "c1_2014_certificate")):
        read = read_page_best(cv2.imread(str(REAL_DIR / image), cv2.IMREAD_GRAYSCALE), Path(image).stem, templates,
                              settings)
        assert (read.status, read.page_type) == (st.OK, expected), read.reason
