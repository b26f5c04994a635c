"""Field values from hand-made crops: reading order, empty boxes, replacements, ambiguity (stub model, no Keras)."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from pipeline.model.fields import DigitRead, alternatives, field_value, label_options, needs_review
from pipeline.model.recognise import recognise_frames
from pipeline.model.recogniser import DigitRecogniser
from pipeline.model.settings import RecogniseSettings
from tests.model.conftest import StubModel, crops_frame, stub_digit

THRESHOLD = 0.9
#: A crop status of :func:`run_fields`: ``ambiguous`` with ``struck`` set.
STRUCK = "struck"


def run_fields(spec: dict[str, list[tuple]], unsure: dict[int, int] | None = None,
               required: tuple[str, ...] = ()) -> pd.DataFrame:
    """``spec``: field -> list of ``(box, slot, status, label)`` (status ``STRUCK``: an ``ambiguous`` box the reader
    found struck through); ``required``: fields always written (ids); returns fields.parquet rows indexed by field."""
    rows, images, struck = [], [], []
    for field, crops in spec.items():
        for box, slot, status, label in crops:
            row = -1
            if label is not None:
                row = len(images)
                images.append(stub_digit(label, (unsure or {}).get(row, 0)))
            rows.append(("sheet1", field, box, slot, "ambiguous" if status == STRUCK else status, row))
            struck.append(status == STRUCK)
    digits = np.stack(images) if images else np.zeros((0, 28, 28), np.uint8)
    recogniser = DigitRecogniser(StubModel(), temperature=1.0, reject_threshold=THRESHOLD)
    crops = crops_frame(rows)
    if any(struck):
        crops["struck"] = struck
    _, fields = recognise_frames(crops, digits, recogniser, RecogniseSettings(), list(spec), required=required)
    return fields.set_index("field")


def test_digits_in_box_order_with_leading_empty_box():
    f = run_fields({"pan": [(2, 0, "digit", 7), (0, 0, "empty", None), (1, 0, "digit", 4)]}).loc["pan"]
    assert f["text"] == "47" and f["value"] == 47 and f["n_digits"] == 2
    assert not f["needs_review"] and not f["replaced"] and f["struck_text"] == ""


def test_all_empty_field_has_no_value_and_needs_no_review():
    f = run_fields({"pps": [(0, 0, "empty", None), (1, 0, "empty", None), (2, 0, "empty", None)]}).loc["pps"]
    assert f["text"] == "" and pd.isna(f["value"]) and f["n_digits"] == 0
    assert f["confidence"] == 1.0 and not f["needs_review"] and json.loads(f["alternatives"]) == []


def test_an_id_read_blank_needs_review_a_blank_count_does_not():
    """An id is always written: read with no digit, a digit was lost (a toner band over the row), not read."""
    blank = [(0, 0, "empty", None), (1, 0, "empty", None)]
    f = run_fields({"district": blank, "pps": blank, "section": [(0, 0, "digit", 3), (1, 0, "digit", 5)]},
                   required=("district", "section"))
    assert f.loc["district", "needs_review"] and pd.isna(f.loc["district", "value"])
    assert not f.loc["pps", "needs_review"] and not f.loc["section", "needs_review"]
    assert f.loc["section", "value"] == 35


def test_an_id_of_a_sheets_own_template_read_blank_needs_review():
    from pipeline.model.fields import review_unwritten

    table = pd.DataFrame({"sheet_id": ["a", "a", "b"], "field": ["station", "pan", "station"],
                          "n_digits": [0, 0, 0], "value": pd.array([None, None, 0], dtype="Int64"),
                          "needs_review": [False, False, False]})
    out = review_unwritten(table, {"a": ["station"], "b": ["station"]})
    assert out["needs_review"].tolist() == [True, False, False]  # b's station is the writer's zero (filler marks)
    assert review_unwritten(table, ())["needs_review"].tolist() == [False, False, False]


def test_split_box_slots_read_left_to_right():
    f = run_fields({"pri": [(1, 1, "digit", 9), (0, 0, "digit", 1), (1, 0, "digit", 2)]}).loc["pri"]
    assert f["text"] == "129" and f["value"] == 129


def test_beside_crops_replace_the_boxes_and_keep_struck_text():
    crops = [(0, 0, "ambiguous", 1), (1, 0, "ambiguous", 2), (2, 0, "ambiguous", 3),
             (-2, 0, "digit", 5), (-1, 0, "digit", 4)]
    f = run_fields({"pan": crops}).loc["pan"]
    assert f["replaced"] and f["text"] == "45" and f["value"] == 45
    assert f["struck_text"] == "???" and not f["needs_review"]


def test_boxes_ambiguous_only_for_a_strike_with_nothing_beside_are_read_as_digits_for_review():
    # a large digit filling its box looks like a strike-through to the reader; with no replacement written
    # beside the boxes, the number is read (not lost as NA), unsure or not, and a person checks it
    f = run_fields({"pan": [(0, 0, "digit", 1), (1, 0, STRUCK, 3)]}, unsure={1: 255}).loc["pan"]
    assert f["text"] == "13" and f["value"] == 13 and f["needs_review"] and not f["replaced"]
    sure = run_fields({"pan": [(0, 0, STRUCK, 4), (1, 0, STRUCK, 2)]}).loc["pan"]
    assert sure["text"] == "42" and sure["value"] == 42 and sure["needs_review"]
    # other ambiguity (ink crossing into a neighbouring box) still reads "?" and NA when unsure
    other = run_fields({"pan": [(0, 0, "digit", 1), (1, 0, "ambiguous", 3)]}, unsure={1: 255}).loc["pan"]
    assert other["text"] == "1?" and pd.isna(other["value"])


def test_a_struck_number_with_a_replacement_beside_reads_the_replacement():
    crops = [(0, 0, STRUCK, 1), (1, 0, STRUCK, 2), (-1, 0, "digit", 5)]
    f = run_fields({"pan": crops}).loc["pan"]
    assert f["replaced"] and f["value"] == 5 and f["struck_text"] == "??" and not f["needs_review"]


def test_a_filler_x_first_taken_for_a_strike_sends_its_field_to_review():
    def field(struck: bool) -> pd.Series:
        crops = crops_frame([("sheet1", "pan", 0, 0, "empty", -1), ("sheet1", "pan", 1, 0, "digit", 0)])
        crops["filler"], crops["struck"] = ["x", ""], [struck, False]
        recogniser = DigitRecogniser(StubModel(), temperature=1.0, reject_threshold=THRESHOLD)
        _, fields = recognise_frames(crops, stub_digit(7)[None], recogniser, RecogniseSettings(), ["pan"])
        return fields.set_index("field").loc["pan"]

    plain, struck = field(False), field(True)
    assert plain["value"] == struck["value"] == 7 and plain["n_filler"] == struck["n_filler"] == 1
    assert not plain["needs_review"] and struck["needs_review"]


def test_ambiguous_box_gives_question_mark_and_na_when_unclear():
    f = run_fields({"pan": [(0, 0, "digit", 1), (1, 0, "ambiguous", 3)]}, unsure={1: 255}).loc["pan"]
    assert f["text"] == "1?" and pd.isna(f["value"]) and f["needs_review"]
    alts = json.loads(f["alternatives"])
    assert [v for v, _ in alts[:2]] == [13, 14] and alts[0][1] == pytest.approx(alts[1][1], rel=1e-3)


def test_ambiguous_box_takes_a_clear_alternative():
    f = run_fields({"pan": [(0, 0, "digit", 1), (1, 0, "ambiguous", 3)]}).loc["pan"]
    assert f["text"] == "1?" and f["value"] == 13 and f["needs_review"]


def test_low_confidence_digit_is_read_but_flagged():
    f = run_fields({"pan": [(0, 0, "digit", 6)]}, unsure={0: 200}).loc["pan"]
    assert f["text"] == "6" and f["value"] == 6 and f["needs_review"]
    assert f["min_digit_confidence"] < THRESHOLD and f["confidence"] == pytest.approx(f["min_digit_confidence"])


def test_confidence_is_product_over_digits():
    f = run_fields({"pan": [(0, 0, "digit", 2), (1, 0, "digit", 3)]}, unsure={0: 100, 1: 150}).loc["pan"]
    alts = json.loads(f["alternatives"])
    assert f["confidence"] == pytest.approx(alts[0][1], rel=1e-4) and alts[0][0] == 23


def test_field_without_crops_is_listed_and_needs_review():
    rows = run_fields({"pan": [(0, 0, "digit", 2)], "pri": []})
    assert set(rows.index) == {"pan", "pri"} and rows.loc["pri", "needs_review"] and rows.loc["pri", "n_crops"] == 0


def read_digit(probs: dict[int, float]) -> DigitRead:
    """A digit read with the calibrated probabilities ``probs`` (labels not named get 0)."""
    vector = tuple(probs.get(label, 0.0) for label in range(10))
    (l1, p1), (l2, p2) = sorted(enumerate(vector), key=lambda lp: -lp[1])[:2]
    return DigitRead(l1, p1, l2, p2, False, vector)


def test_alternatives_are_top_products_of_the_digit_probabilities():
    digits = [read_digit({1: 0.6, 7: 0.4}), read_digit({2: 0.9, 3: 0.1})]
    alts = alternatives(digits, 3)
    assert [v for v, _ in alts] == [12, 72, 13]
    assert [p for _, p in alts] == pytest.approx([0.54, 0.36, 0.06])
    assert field_value(digits, alts, 0.99) == 12


def test_every_label_is_an_option_with_its_calibrated_probability():
    options = label_options(read_digit({4: 0.92, 9: 0.04, 6: 0.03, 0: 0.01}))
    assert options == [(4, 0.92), (9, 0.04), (6, 0.03), (0, 0.01)]  # most likely first, zeros left out
    assert label_options(DigitRead(None, 0.0, None, 0.0, True)) == []  # no image, no option


def test_alternatives_include_a_third_choice_digit():
    digits = [read_digit({1: 1.0}), read_digit({4: 0.92, 9: 0.05, 6: 0.03})]
    alts = dict(alternatives(digits, 8))
    assert alts[16] == pytest.approx(0.03) and alts[19] == pytest.approx(0.05)
    assert 71 not in alts  # a label of probability 0 gives no reading


def run_fields_with(settings: RecogniseSettings, spec: dict[str, list[tuple]],
                    unsure: dict[int, int]) -> pd.DataFrame:
    """Like :func:`run_fields` with other recognise settings."""
    rows, images = [], []
    for field, crops in spec.items():
        for box, slot, status, label in crops:
            rows.append(("sheet1", field, box, slot, status, len(images)))
            images.append(stub_digit(label, unsure.get(len(images), 0)))
    recogniser = DigitRecogniser(StubModel(), temperature=1.0, reject_threshold=THRESHOLD)
    _, fields = recognise_frames(crops_frame(rows), np.stack(images), recogniser, settings, list(spec))
    return fields.set_index("field")


#: Three digits that each pass THRESHOLD (about 0.96 each) but whose product (about 0.88) does not.
EACH_PASSES = {"pan": [(0, 0, "digit", 1), (1, 0, "digit", 2), (2, 0, "digit", 3)]}
SLIGHTLY_UNSURE = {0: 110, 1: 110, 2: 110}


def test_field_whose_joint_probability_is_low_needs_review_though_every_digit_passes():
    f = run_fields_with(RecogniseSettings(), EACH_PASSES, SLIGHTLY_UNSURE).loc["pan"]
    assert f["min_digit_confidence"] >= THRESHOLD > f["confidence"]
    assert f["value"] == 123 and f["needs_review"]


def test_min_field_confidence_sets_the_field_threshold_and_zero_turns_it_off():
    lenient = run_fields_with(RecogniseSettings(min_field_confidence=0.5), EACH_PASSES, SLIGHTLY_UNSURE).loc["pan"]
    off = run_fields_with(RecogniseSettings(min_field_confidence=0.0), EACH_PASSES, SLIGHTLY_UNSURE).loc["pan"]
    strict = run_fields_with(RecogniseSettings(min_field_confidence=0.99), {"pan": [(0, 0, "digit", 4)]},
                             {0: 110}).loc["pan"]
    assert not lenient["needs_review"] and not off["needs_review"]
    assert strict["min_digit_confidence"] >= THRESHOLD and strict["needs_review"]


def test_needs_review_rule_on_its_own():
    sure, unsure = read_digit({3: 0.97}), read_digit({3: 0.5, 8: 0.5})
    assert not needs_review(1, [sure], 3, 0.9, 0.9)
    assert needs_review(2, [sure, sure, sure], 333, 0.9, 0.95)  # 0.97 ** 3 = 0.913 < 0.95
    assert needs_review(1, [unsure], 3, 0.6, 0.0)  # a field threshold of 0 leaves the digit rule
    assert needs_review(0, [], None, 0.9, 0.9) and not needs_review(3, [], None, 0.9, 0.9)  # empty boxes


def test_bench_field_figures_count_silent_errors_under_both_rules():
    from pipeline.model.bench import field_review_figures

    # three fields of three digits: sure and right; each digit 0.96 and one wrong; one digit below 0.9 and wrong
    confidence = np.array([0.999, 0.999, 0.999, 0.96, 0.96, 0.96, 0.99, 0.5, 0.99, 0.7])
    correct = np.array([True, True, True, True, False, True, True, False, True, True])
    figures = field_review_figures(confidence, correct, 0.9, 0.9)
    assert figures["n_fields"] == 3 and figures["wrong"] == pytest.approx(2 / 3)
    assert figures["silent_wrong_digit_rule"] == pytest.approx(1 / 3)  # the 0.96 x 3 field passes digit by digit
    assert figures["silent_wrong_field_rule"] == 0.0 and figures["review_field_rule"] == pytest.approx(2 / 3)


def test_an_empty_box_between_written_digits_sends_the_field_to_review():
    from types import SimpleNamespace

    from pipeline.model.fields import has_gap, read_field

    def crop(box: int, status: str, label: float = float("nan")) -> SimpleNamespace:
        probs = {f"p{d}": (0.999 if d == label else 0.0001) if status == "digit" else float("nan") for d in range(10)}
        return SimpleNamespace(box=box, slot=0, box_status=status, label=label, confidence=0.999 if status == "digit"
                               else float("nan"), label2=float("nan"), confidence2=0.0, **probs)

    hole = [crop(0, "digit", 6), crop(1, "empty"), crop(2, "digit", 4)]  # 6_4: the 0 of 604 was not seen
    leading = [crop(0, "empty"), crop(1, "digit", 6), crop(2, "digit", 4)]
    trailing = [crop(0, "digit", 6), crop(1, "digit", 4), crop(2, "empty")]
    assert has_gap(hole) and not has_gap(leading) and not has_gap(trailing)
    assert read_field("s", "pan", hole, 0.9, 3).needs_review
    assert not read_field("s", "pan", leading, 0.9, 3).needs_review
    assert not read_field("s", "pan", trailing, 0.9, 3).needs_review
