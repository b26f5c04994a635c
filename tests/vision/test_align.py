"""Reference-image templates end to end on a synthetic form: feature registration (turns, scale, perspective),
pages that are not the form, explicit-box field cutting with shared walls, and filler marks; then the shipped
Lampiran template on the real development images (skipped when they are absent)."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
import yaml

from pipeline.forms.bench import LAMPIRAN, REAL_DIR, draw_stroke
from pipeline.forms.template import load_template
from pipeline.vision import settings as st
from pipeline.vision.align import register_reference
from pipeline.vision.filler import filler_kind, is_x, mark_fillers, skeleton
from pipeline.vision.page import read_page
from pipeline.vision.segment import BoxRead, Piece

from .conftest import paste_digit, place, similarity

#: The synthetic form is drawn in base units scaled by S (a 1200x1700 reference at 144 dpi).
S = 2
REF_W, REF_H, REF_DPI = 600 * S, 850 * S, 72 * S
COMBS = {name: tuple(v * S for v in rect) for name, rect in
         {"left": (420, 300, 510, 360), "right": (420, 361, 510, 421), "total": (420, 422, 510, 482)}.items()}
#: A tick box ("witness present") in the signature table.
TICK = tuple(v * S for v in (500, 548, 530, 576))
WORDS = ["FORMULIR", "REKAPITULASI", "PEMILIHAN", "KECAMATAN", "DESA", "PROVINSI", "JUMLAH", "SUARA", "SAH",
         "NOMOR", "NAMA", "PASANGAN", "CALON", "TANDA", "TANGAN", "SAKSI", "KETUA", "ANGGOTA"]


def _s(*values: float) -> tuple[int, ...]:
    return tuple(round(v * S) for v in values)


def draw_text_page(seed: int) -> np.ndarray:
    """A page of another layout: only lines of words, no table."""
    rng = np.random.default_rng(seed)
    page = np.full((REF_H, REF_W), 255, np.uint8)
    for row in range(40):
        cv2.putText(page, " ".join(rng.choice(WORDS, 4)), _s(30 + 15 * (row % 3), 40 + row * 20),
                    cv2.FONT_HERSHEY_PLAIN, 1.0 * S, 0, S)
    return page


def draw_reference(seed: int = 7) -> np.ndarray:
    """A blank form with varied print: a title box, a logo, text lines, a table whose last column holds three
    3-box combs sharing their walls, and a signature table."""
    rng = np.random.default_rng(seed)
    page = np.full((REF_H, REF_W), 255, np.uint8)
    cv2.rectangle(page, _s(430, 30), _s(570, 80), 0, 2 * S)
    cv2.putText(page, "MODEL X-1", _s(445, 62), cv2.FONT_HERSHEY_SIMPLEX, 0.6 * S, 0, 2 * S)
    cv2.circle(page, _s(70, 60), 28 * S, 0, 2 * S)
    cv2.fillPoly(page, [np.array([_s(55, 70), _s(70, 40), _s(85, 70)], np.int32)], 0)
    for row in range(8):
        cv2.putText(page, " ".join(rng.choice(WORDS, 3)), _s(40, 130 + row * 18), cv2.FONT_HERSHEY_PLAIN,
                    1.0 * S, 0, S)
    cv2.rectangle(page, _s(30, 270), _s(570, 482), 0, 2 * S)
    cv2.line(page, _s(420, 270), _s(420, 482), 0, 2 * S)
    for y in (300, 361, 422):
        cv2.line(page, _s(30, y), _s(570, y), 0, 2 * S)
    for x0, y0, x1, y1 in COMBS.values():
        for i in (1, 2):
            x = x0 + i * (x1 - x0) // 3
            cv2.line(page, (x, y0), (x, y1), 0, S)
        cv2.line(page, (x1, y0), (x1, y1), 0, 2 * S)
    for i, label in enumerate(["PASANGAN SATU", "PASANGAN DUA", "JUMLAH SUARA SAH"]):
        cv2.putText(page, f"{i + 1}. {label}", _s(45, 340 + i * 61), cv2.FONT_HERSHEY_SIMPLEX, 0.55 * S, 0, S)
    cv2.rectangle(page, _s(30, 540), _s(570, 780), 0, 2 * S)
    for k in range(1, 6):
        cv2.line(page, _s(30, 540 + 40 * k), _s(570, 540 + 40 * k), 0, S)
        cv2.putText(page, f"{k} {rng.choice(WORDS)} {rng.choice(WORDS)}", _s(40, 570 + 40 * (k - 1)),
                    cv2.FONT_HERSHEY_PLAIN, 1.1 * S, 0, S)
    cv2.line(page, _s(300, 540), _s(300, 780), 0, S)
    cv2.rectangle(page, TICK[:2], (TICK[2] - 1, TICK[3] - 1), 0, S)
    return page


def synthetic_form_raw(name: str) -> dict:
    """The synthetic form's template (its reference image ``ref.png`` beside it): the combs and the tick box."""
    return {"name": name, "geometry": "reference_image", "reference": "ref.png",
            "reference_size": [REF_W, REF_H], "reference_dpi": REF_DPI, "registration": "reference_features",
            "fields": [{"name": field, "kind": "count", "role": "candidate", "comb": list(rect), "split": 3}
                       for field, rect in COMBS.items()] + [{"name": "witness", "kind": "tick", "boxes": [list(TICK)]}]}


@pytest.fixture(scope="module")
def form(tmp_path_factory):
    """The synthetic form's reference image and template (written side by side), and its blank page."""
    folder = tmp_path_factory.mktemp("form")
    blank = draw_reference()
    cv2.imwrite(str(folder / "ref.png"), blank)
    raw = {**synthetic_form_raw("synthetic_x1"), "filler_marks": ["x", "dash", "zero"],
           "rules": ["left + right == total"]}
    (folder / "x1.yaml").write_text(yaml.safe_dump(raw))
    return load_template(folder / "x1.yaml"), blank


def fill(blank: np.ndarray, mnist, digits: dict[str, list[int | str]]) -> tuple[np.ndarray, dict]:
    """The blank form with each comb's boxes holding an MNIST test digit of the label given, an ``"x"`` (drawn
    X) or ``None`` (left empty), and the tick box ticked."""
    page = blank.copy()
    x0, y0, x1, y1 = TICK
    cv2.polylines(page, [np.array([[x0 + 10, y0 + 28], [x0 + 24, y1 - 10], [x1 - 8, y0 + 6]], np.int32)], False,
                  0, 4)
    rng = np.random.default_rng(3)
    for name, cells in digits.items():
        x0, y0, x1, y1 = COMBS[name]
        w = (x1 - x0) / 3
        for i, cell in enumerate(cells):
            centre = (x0 + (i + 0.5) * w, y0 + (y1 - y0) * 0.55)
            if cell == "x":
                side = round(w * 0.8)
                stroke = draw_stroke("x", rng, side=side)
                cx, cy = round(centre[0]) - side // 2, round(centre[1]) - side // 2
                page[cy:cy + side, cx:cx + side][stroke] = 0
            elif cell is not None:
                index = int(np.flatnonzero(mnist.y_test == cell)[i + 5 * len(name)])
                paste_digit(page, mnist.x_test[index], centre, (y1 - y0) * 0.4)
    return page, digits


@pytest.mark.parametrize(("angle", "scale", "perspective"), [(0, 1.0, 0), (180, 0.7, 0), (2.5, 1.3, 0.05),
                                                              (90, 1.1, 0), (-93, 0.8, -0.04)])
def test_registration_maps_the_form_back(form, settings, angle, scale, perspective):
    template, blank = form
    hom = similarity(blank.shape, angle, scale, perspective=perspective)
    scan, full = place(blank, hom, margin=60 if angle % 180 == 0 else 300 * S)
    reg = register_reference(scan, template, settings).registration
    points = np.float32([[30, 270], [570, 482], [420, 300], [510, 780], [300, 540]]) * S
    on_scan = cv2.perspectiveTransform(points[None], full)[0]
    back = cv2.perspectiveTransform(on_scan[None], reg.homography)[0]
    error_mm = np.linalg.norm(back - points * settings.dpi / REF_DPI, axis=1).max() / settings.px_per_mm
    assert error_mm < 0.8, error_mm
    assert reg.quarter_turns == round(-angle / 90) % 4  # OpenCV turns anticlockwise, pages report clockwise


def test_a_page_of_another_form_is_not_a_form(form, settings):
    template, _ = form
    for page in (np.full((800, 600), 250, np.uint8), draw_text_page(99)):
        read = read_page(page, "other", settings, template)
        assert read.status == st.NOT_A_FORM and read.reason.startswith("not this form")


def test_missing_reference_is_a_status_row_naming_where_it_looked(form, settings, tmp_path):
    template, blank = form
    raw = dict(template.raw, reference="nowhere.png")
    (tmp_path / "t.yaml").write_text(yaml.safe_dump(raw))
    read = read_page(blank, "p", settings, load_template(tmp_path / "t.yaml"))
    assert read.status == st.NOT_A_FORM and "nowhere.png" in read.reason and str(tmp_path) in read.reason


def test_fields_are_cut_box_by_box_with_leading_fillers_empty(form, settings, mnist):
    template, blank = form
    page, written = fill(blank, mnist, {"left": ["x", 4, 7], "right": [None, 1, 2], "total": [None, 5, 9]})
    scan, _ = place(page, similarity(page.shape, 178.5, 1.3), margin=70)
    read = read_page(scan, "s1", settings, template)
    assert read.status == st.OK and read.flipped
    crops = {(c.field, c.box): c for c in read.crops if c.box >= 0}
    for (name, cells) in written.items():
        for box, cell in enumerate(cells):
            c = crops[(name, box)]
            if cell == "x":
                assert c.box_status == st.BOX_EMPTY and c.filler == "x"
            elif cell is None:
                assert c.box_status == st.BOX_EMPTY and c.filler == ""
            else:
                assert c.box_status == st.BOX_DIGIT and c.digit_row >= 0, (name, box, c)
    assert len(read.digits) == 6
    assert [(m.field, m.option, m.ticked) for m in read.marks] == [("witness", "SI", True)]


def test_drawn_x_and_dash_are_filler_and_digits_are_not(mnist):
    rng = np.random.default_rng(0)
    marks = ("x", "dash")
    xs = [filler_kind(_crop(draw_stroke("x", rng)), 64, marks) for _ in range(60)]
    dashes = [filler_kind(_crop(draw_stroke("dash", rng)), 64, marks) for _ in range(60)]
    assert xs.count("x") >= 55 and dashes.count("dash") == 60
    for label in (1, 4, 7):
        idx = np.flatnonzero(mnist.y_test == label)[:150]
        taken = sum(bool(filler_kind(_crop(mnist.x_test[i] > 96), 27, marks)) for i in idx)
        assert taken <= 2, (label, taken)


def test_only_leading_boxes_are_filler():
    x = _crop(draw_stroke("x", np.random.default_rng(1)))
    one = np.ones((40, 8), bool)
    reads = [BoxRead(0, 0, st.BOX_DIGIT, Piece(0, 0, x)), BoxRead(1, 0, st.BOX_DIGIT, Piece(0, 0, one)),
             BoxRead(2, 0, st.BOX_DIGIT, Piece(0, 0, x))]
    out, kinds = mark_fillers(reads, [64, 64, 64], ("x",))
    assert kinds == {0: "x"} and out[0].status == st.BOX_EMPTY and out[2].status == st.BOX_DIGIT


def test_skeleton_is_one_pixel_wide():
    bar = np.zeros((20, 40), bool)
    bar[8:13, 5:35] = True
    skel = skeleton(bar)
    assert skel.sum() > 20 and skel.sum(axis=0).max() == 1
    assert not is_x(bar)


def _crop(mask: np.ndarray) -> np.ndarray:
    ys, xs = np.nonzero(mask)
    return mask[ys.min(): ys.max() + 1, xs.min(): xs.max() + 1]


REAL = Path(REAL_DIR)
needs_real = pytest.mark.skipif(not (REAL / "lampiran_reference.jpg").is_file(),
                                reason="the real C1 2014 images (../shared/data/forms/c1_2014) are absent")


@needs_real
@pytest.mark.parametrize(("image", "status", "flipped"), [
    ("terbalik.jpg", st.OK, True), ("1420467-005804400104.jpg", st.OK, False), ("miring.jpg", st.OK, False),
    ("sertifikat_reference.jpg", st.NOT_A_FORM, False)])
def test_real_lampiran_pages_register(settings, image, status, flipped):
    template = load_template(LAMPIRAN)
    read = read_page(cv2.imread(str(REAL / image), cv2.IMREAD_GRAYSCALE), Path(image).stem, settings, template)
    assert read.status == status, read.reason
    assert read.flipped == flipped
    if status == st.OK:
        assert {c.field for c in read.crops} == {"pair_1", "pair_2", "valid", "invalid"}


def test_blank_of_a_reference_template_is_its_reference(form):
    from pipeline.forms.render import render_blank

    template, blank = form
    page = render_blank(template, REF_DPI / 2)
    assert page.shape == (REF_H // 2, REF_W // 2)


def test_a_run_records_its_template_and_filler_marks(form, mnist, tmp_path):
    import pandas as pd

    from pipeline.vision.batch import TEMPLATE_FILE, read_batch
    from pipeline.vision.settings import ReadSettings

    template, blank = form
    page, _ = fill(blank, mnist, {"left": ["x", 4, 7], "right": [None, 1, 2], "total": [None, 5, 9]})
    cv2.imwrite(str(tmp_path / "sheet.png"), page)
    source = next(iter(template.reference_places))
    settings = ReadSettings(workers=1, template=str(Path(source).with_name("x1.yaml")))
    out = read_batch([tmp_path / "sheet.png"], tmp_path / "run", settings)
    recorded = load_template(out / TEMPLATE_FILE)
    assert recorded.fields == template.fields and recorded.reference == template.reference
    crops = pd.read_parquet(out / "crops.parquet")
    assert crops.loc[(crops["field"] == "left") & (crops["box"] == 0), "filler"].tolist() == ["x"]
    assert pd.read_csv(out / "pages.csv")["status"].tolist() == [st.OK]


def test_template_check_draws_boxes_and_lists_every_page(form, mnist, tmp_path):
    import csv

    from pipeline.cli import main

    template, blank = form
    page, _ = fill(blank, mnist, {"left": ["x", 4, 7], "right": [None, 1, 2], "total": [None, 5, 9]})
    cv2.imwrite(str(tmp_path / "good.png"), page)
    cv2.imwrite(str(tmp_path / "blank.png"), np.full((700, 500), 250, np.uint8))
    yaml_path = Path(template.reference).with_name("x1.yaml")
    rc = main(["template", "check", str(yaml_path), str(tmp_path / "good.png"), str(tmp_path / "blank.png"),
               "--out", str(tmp_path / "check")])
    assert rc == 0
    with (tmp_path / "check" / "check.csv").open() as fh:
        rows = {r["sheet_id"]: r for r in csv.DictReader(fh)}
    assert rows["good"]["status"] == st.OK and float(rows["good"]["registration_score"]) > 0.5
    assert rows["blank"]["status"] == st.NOT_A_FORM and rows["blank"]["reason"]
    drawn = cv2.imread(str(tmp_path / "check" / "good.png"))
    assert drawn.shape[0] > blank.shape[0] * 200 / REF_DPI  # the page at 200 dpi under a header


def test_the_blank_reference_reads_empty(form, settings):
    template, blank = form
    read = read_page(blank, "blank", settings, template)
    assert read.status == st.OK and read.score > 0.95
    assert {c.box_status for c in read.crops} == {st.BOX_EMPTY} and len(read.digits) == 0
    assert [m.ticked for m in read.marks] == [False]
