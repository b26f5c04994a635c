"""Filler marks in fields: every box an X or dash reads 0 (the writer's zero); fillers before digits read the
digits; fillers with blanks and no digit need review (stub model, no Keras)."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd

from pipeline.model.fields import build_fields, filler_field
from pipeline.model.recognise import recognise_frames
from pipeline.model.recogniser import DigitRecogniser
from pipeline.model.settings import RecogniseSettings
from tests.model.conftest import StubModel, crops_frame, stub_digit

THRESHOLD = 0.9


def run_fields(spec: dict[str, list[tuple]]) -> pd.DataFrame:
    """``spec``: field -> list of ``(box, status, label, filler)``; fields.parquet rows indexed by field."""
    rows, images, fillers = [], [], []
    for field, crops in spec.items():
        for box, status, label, filler in crops:
            row = -1
            if label is not None:
                row = len(images)
                images.append(stub_digit(label))
            rows.append(("sheet1", field, box, 0, status, row))
            fillers.append(filler)
    digits = np.stack(images) if images else np.zeros((0, 28, 28), np.uint8)
    crops = crops_frame(rows).assign(filler=fillers)
    recogniser = DigitRecogniser(StubModel(), temperature=1.0, reject_threshold=THRESHOLD)
    _, fields = recognise_frames(crops, digits, recogniser, RecogniseSettings(), list(spec))
    return fields.set_index("field")


def test_every_box_a_filler_mark_reads_zero():
    f = run_fields({"xxx": [(0, "empty", None, "x"), (1, "empty", None, "x"), (2, "empty", None, "x")],
                    "dashes": [(0, "empty", None, "dash"), (1, "empty", None, "dash")],
                    "mixed": [(0, "empty", None, "x"), (1, "empty", None, "dash"), (2, "empty", None, "x")]})
    for name in ("xxx", "dashes", "mixed"):
        row = f.loc[name]
        assert row["value"] == 0 and row["text"] == "0" and row["n_digits"] == 0, name
        assert not row["needs_review"] and row["confidence"] == 1.0, name
        assert json.loads(row["alternatives"]) == [[0, 1.0]], name
    assert f.loc["xxx", "n_filler"] == 3 and f.loc["dashes", "n_filler"] == 2


def test_fillers_then_digits_read_the_digits():
    f = run_fields({"a": [(0, "empty", None, "x"), (1, "empty", None, "x"), (2, "digit", 7, "")],
                    "b": [(0, "empty", None, "dash"), (1, "digit", 4, ""), (2, "digit", 2, "")]})
    assert f.loc["a", "value"] == 7 and f.loc["a", "text"] == "7" and not f.loc["a", "needs_review"]
    assert f.loc["b", "value"] == 42 and f.loc["b", "n_filler"] == 1 and not f.loc["b", "needs_review"]


def test_plain_empty_field_stays_empty_and_fillers_with_blanks_need_review():
    f = run_fields({"blank": [(0, "empty", None, ""), (1, "empty", None, ""), (2, "empty", None, "")],
                    "partial": [(0, "empty", None, "x"), (1, "empty", None, "x"), (2, "empty", None, "")]})
    assert pd.isna(f.loc["blank", "value"]) and not f.loc["blank", "needs_review"]
    assert f.loc["blank", "n_filler"] == 0
    assert pd.isna(f.loc["partial", "value"]) and f.loc["partial", "needs_review"]


def test_crops_without_a_filler_column_read_as_before():
    digits_read = crops_frame([("s", "pan", b, 0, "empty", -1) for b in range(3)])
    for name in ("label", "confidence", "label2", "confidence2", *[f"p{i}" for i in range(10)]):
        digits_read[name] = np.nan
    fields = build_fields(digits_read, ["pan"], THRESHOLD, 3)
    assert pd.isna(fields.loc[0, "value"]) and fields.loc[0, "n_filler"] == 0


def test_filler_field_kinds():
    class Row:
        def __init__(self, status, filler):
            self.box_status, self.filler = status, filler

    assert filler_field([Row("empty", "x"), Row("empty", "dash")]) == "zero"
    assert filler_field([Row("empty", "x"), Row("empty", "")]) == "partial"
    assert filler_field([Row("empty", ""), Row("empty", None)]) == ""
