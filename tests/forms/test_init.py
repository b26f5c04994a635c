"""``template init``: boxes and combs found on a drawn reference (stacked combs in a table column, combs side by
side under column headers, separate boxes), written as a template that loads and reads its own reference; and the
shipped Lampiran template's boxes found on its real reference image (skipped when absent)."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from pipeline.forms.bench import LAMPIRAN, REAL_DIR, template_init_report
from pipeline.forms.init import compare_boxes, find_fields, guess_dpi, init_template, iou, template_px_boxes
from pipeline.forms.template import load_template

#: A4 at 150 dpi.
W, H, DPI = 1240, 1754, 150.0
WORDS = ["FORMULIR", "JUMLAH", "SUARA", "NOMOR", "NAMA", "CALON", "TANDA", "SAKSI", "KETUA", "DESA"]
#: Three stacked 3-box combs in the last column of a table: [x0, y0, x1, y1] each (shared walls).
STACKED = [(1000, 300, 1150, 380), (1000, 380, 1150, 460), (1000, 460, 1150, 540)]
#: Two rows of a men / women / total table, three 3-box combs side by side under three column headers.
SIDE_ROWS, SIDE_X, SIDE_W = [(760, 820), (820, 880)], [700, 850, 1000], 150
#: Four separate boxes (gaps between them).
SEPARATE = [(200 + 60 * i, 1100, 245 + 60 * i, 1160) for i in range(4)]


def draw_form(seed: int = 3) -> np.ndarray:
    """A blank form: a title box, text lines, a table with a number column and stacked combs, a three-column table
    of combs with a header, four separate boxes, and a signature table."""
    rng = np.random.default_rng(seed)
    page = np.full((H, W), 255, np.uint8)
    cv2.rectangle(page, (950, 60), (1180, 140), 0, 3)
    cv2.putText(page, "MODEL Z-9", (975, 112), cv2.FONT_HERSHEY_SIMPLEX, 1.0, 0, 2)
    for row in range(5):
        cv2.putText(page, " ".join(rng.choice(WORDS, 4)), (80, 120 + 30 * row), cv2.FONT_HERSHEY_PLAIN, 1.6, 0, 2)
    # Table 1: number column (singletons), label column, comb column.
    cv2.rectangle(page, (80, 240), (1150, 540), 0, 3)
    cv2.line(page, (80, 300), (1150, 300), 0, 3)
    cv2.putText(page, "JUMLAH", (1020, 280), cv2.FONT_HERSHEY_SIMPLEX, 0.8, 0, 2)
    for x in (140, 1000):
        cv2.line(page, (x, 240), (x, 540), 0, 3)
    for i, (x0, y0, x1, y1) in enumerate(STACKED):
        cv2.line(page, (80, y1), (1150, y1), 0, 3)
        for k in (1, 2):
            cv2.line(page, (x0 + k * (x1 - x0) // 3, y0), (x0 + k * (x1 - x0) // 3, y1), 0, 2)
        cv2.putText(page, str(i + 1), (100, y0 + 50), cv2.FONT_HERSHEY_SIMPLEX, 1.0, 0, 2)
        cv2.putText(page, " ".join(rng.choice(WORDS, 3)), (160, y0 + 50), cv2.FONT_HERSHEY_SIMPLEX, 1.0, 0, 2)
    # Table 2: header row of three column heads over rows of three combs each.
    top, bottom = 640, SIDE_ROWS[-1][1]
    cv2.rectangle(page, (80, top), (1150, bottom), 0, 3)
    cv2.line(page, (80, 700), (1150, 700), 0, 3)
    cv2.line(page, (700, 760), (1150, 760), 0, 3)  # a merged row "A." between the header and the combs
    for x in (700, 850, 1000):
        cv2.line(page, (x, top), (x, 700), 0, 3)
        cv2.line(page, (x, 760), (x, bottom), 0, 3)
    cv2.line(page, (700, 700), (700, 760), 0, 3)
    for head, x in zip(("L", "P", "J"), SIDE_X, strict=True):
        cv2.putText(page, head, (x + 65, 682), cv2.FONT_HERSHEY_SIMPLEX, 1.0, 0, 2)
    for y0, y1 in SIDE_ROWS:
        cv2.line(page, (80, y1), (1150, y1), 0, 3)
        for x in SIDE_X:
            for k in (1, 2):
                cv2.line(page, (x + k * SIDE_W // 3, y0), (x + k * SIDE_W // 3, y1), 0, 2)
        cv2.putText(page, " ".join(rng.choice(WORDS, 2)), (100, y0 + 40), cv2.FONT_HERSHEY_SIMPLEX, 0.9, 0, 2)
    # Separate boxes and a label.
    cv2.putText(page, "KODE", (80, 1140), cv2.FONT_HERSHEY_SIMPLEX, 1.0, 0, 2)
    for x0, y0, x1, y1 in SEPARATE:
        cv2.rectangle(page, (x0, y0), (x1, y1), 0, 2)
    # Signature table: wide cells only.
    cv2.rectangle(page, (80, 1300), (1150, 1560), 0, 3)
    for y in (1365, 1430, 1495):
        cv2.line(page, (80, y), (1150, y), 0, 2)
    cv2.line(page, (600, 1300), (600, 1560), 0, 2)
    return page


def expected_fields() -> list[list[tuple]]:
    """The drawn fields, boxes left to right, in the order init numbers them."""
    stacked = [[(x0 + k * (x1 - x0) / 3, y0, x0 + (k + 1) * (x1 - x0) / 3, y1) for k in range(3)]
               for x0, y0, x1, y1 in STACKED]
    side = [[(x + k * SIDE_W / 3, y0, x + (k + 1) * SIDE_W / 3, y1) for k in range(3)]
            for y0, y1 in SIDE_ROWS for x in SIDE_X]
    return stacked + side + [list(SEPARATE)]


def test_fields_found_on_a_drawn_form():
    page = draw_form()
    fields = find_fields(page, guess_dpi(page.shape))
    want = expected_fields()
    assert [len(f.boxes) for f in fields] == [len(w) for w in want]
    for got, boxes in zip(fields, want, strict=True):
        assert all(iou(g, b) > 0.8 for g, b in zip(got.boxes, boxes, strict=True)), (got, boxes)
    assert [f.comb for f in fields] == [True] * 9 + [False]


def test_init_writes_a_template_that_reads_its_reference(tmp_path):
    from pipeline.vision.page import read_page
    from pipeline.vision.settings import OK, ReadSettings

    page = draw_form()
    (tmp_path / "refs").mkdir()
    ref = tmp_path / "refs" / "z9.png"
    cv2.imwrite(str(ref), page)
    result = init_template(ref, tmp_path / "forms" / "z9.yaml")
    assert result.overlay.is_file() and cv2.imread(str(result.overlay)).shape == (H, W, 3)
    template = load_template(result.template)
    assert template.reference == ref.resolve() and template.reference_size == (W, H)
    assert [f.name for f in template.fields] == [f"field_{i:02d}" for i in range(1, 11)]
    assert {f.kind for f in template.fields} == {"count"} and template.rules == ()
    n = compare_boxes(template_px_boxes(template), [b for f in expected_fields() for b in f])
    assert n["missed"] == 0 and n["spurious"] == 0
    read = read_page(page, "z9", ReadSettings(workers=1, dpi=DPI), template)
    assert read.status == OK, read.reason


def test_cli_init_and_an_unreadable_reference(tmp_path, capsys):
    from pipeline.cli import main

    cv2.imwrite(str(tmp_path / "ref.png"), draw_form())
    assert main(["template", "init", str(tmp_path / "ref.png"), "--out", str(tmp_path / "my.yaml")]) == 0
    assert "10 field(s)" in capsys.readouterr().out and (tmp_path / "my_overlay.png").is_file()
    cv2.imwrite(str(tmp_path / "blank.png"), np.full((H, W), 255, np.uint8))
    assert main(["template", "init", str(tmp_path / "blank.png"), "--out", str(tmp_path / "b.yaml")]) != 0
    assert "no row" in capsys.readouterr().err


def test_compare_boxes_counts_found_missed_spurious():
    truth = [(0, 0, 10, 10), (10, 0, 20, 10), (20, 0, 30, 10)]
    found = [(1, 0, 11, 10), (10, 0, 20, 10), (50, 50, 60, 60)]
    n = compare_boxes(found, truth)
    assert (n["found"], n["missed"], n["spurious"]) == (2, 1, 1)


@pytest.mark.skipif(not (REAL_DIR / "lampiran_reference.jpg").is_file() or load_template(LAMPIRAN).reference is None,
                    reason="the c1_2014 development images are absent")
def test_shipped_lampiran_boxes_found_on_its_reference():
    n = template_init_report(load_template(LAMPIRAN))
    assert (n["found"], n["missed"], n["spurious"], n["fields_found"]) == (12, 0, 0, 4)
    if "certificate" in n:
        assert n["certificate"]["boxes_per_field"] == [3]


def test_guess_dpi_is_a4():
    assert guess_dpi((1164, 824)) == pytest.approx(99.5, abs=0.1) and guess_dpi((3508, 2480)) == pytest.approx(300, 1)
    assert Path(LAMPIRAN).is_file()
