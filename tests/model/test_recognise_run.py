"""``recognise`` on a run folder: both tables per docs/DATA.md, exit codes for bad input and a missing model."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from pipeline.cli import main
from pipeline.errors import ExitCode, InputFileError
from pipeline.forms import load_template
from pipeline.model import registry
from pipeline.model.recognise import crops_path, load_digits

DIGIT_COLUMNS = ["sheet_id", "field", "box", "slot", "label", "prob", "label2", "prob2", "confidence"]
FIELD_COLUMNS = ["sheet_id", "field", "text", "value", "confidence", "n_digits", "min_digit_confidence",
                 "needs_review", "alternatives"]


def test_recognise_cli_writes_both_tables(mnist_run, trained):
    run, truth = mnist_run
    assert main(["recognise", str(run), "--model", str(trained[0] / registry.CURRENT_NAME)]) == 0
    crops = pd.read_parquet(run / "crops.parquet")
    digits = pd.read_parquet(run / "digits_read.parquet")
    fields = pd.read_parquet(run / "fields.parquet")
    assert set(DIGIT_COLUMNS) <= set(digits.columns) and len(digits) == len(crops)
    with_image = digits[digits["digit_row"] >= 0]
    assert (with_image.sort_values("digit_row")["label"].to_numpy() == truth).mean() > 0.6
    assert digits.loc[digits["digit_row"] < 0, "label"].isna().all()
    assert set(FIELD_COLUMNS) <= set(fields.columns)
    numeric = [f.name for f in load_template().fields if f.is_numeric]
    assert len(fields) == 12 * len(numeric) and str(fields["value"].dtype) == "Int64"
    pan = fields[fields["field"] == "pan"].set_index("sheet_id")
    assert pan.loc["s0", "n_digits"] == 2 and pan.loc["s1", "n_digits"] == 3


def test_recognise_without_model_exits_with_model_error(mnist_run, tmp_path, capsys):
    run, _ = mnist_run
    code = main(["recognise", str(run), "--model", str(tmp_path / "none" / "current")])
    assert code == ExitCode.model_error and "train" in capsys.readouterr().err


def test_missing_crops_is_an_input_error(tmp_path, capsys):
    assert main(["recognise", str(tmp_path)]) == ExitCode.input_file
    assert "crops.parquet" in capsys.readouterr().err


def test_bad_digits_file_is_rejected(mnist_run):
    run, _ = mnist_run
    crops = pd.read_parquet(crops_path(run))
    np.save(run / "digits.npy", np.zeros((5, 28, 28), np.float32))
    with pytest.raises(InputFileError, match="uint8"):
        load_digits(run, crops)
    np.save(run / "digits.npy", np.zeros((2, 28, 28), np.uint8))
    with pytest.raises(InputFileError, match="refers to row"):
        load_digits(run, crops)


def test_crops_missing_a_column_is_rejected(tmp_path):
    pd.DataFrame({"sheet_id": ["a"], "field": ["pan"]}).to_parquet(tmp_path / "crops.parquet")
    with pytest.raises(InputFileError, match="digit_row"):
        crops_path(tmp_path)


def test_streaming_in_small_chunks_gives_the_same_tables(tmp_path, monkeypatch):
    """One sheet at a time or all at once: the same rows and values in both tables."""
    from pipeline.model.recognise import recognise_run
    from pipeline.model.settings import RecogniseSettings
    from tests.model.conftest import crops_frame, stub_digit, use_stub_recogniser

    use_stub_recogniser(monkeypatch)
    crop_rows = [(f"s{s}", field, box, 0, "empty" if (s + box) % 4 == 0 else "digit", -1)
                 for s in range(5) for field in ("pan", "pri") for box in range(3)]
    crop_rows = [(*r[:5], i if r[4] == "digit" else -1) for i, r in enumerate(crop_rows)]
    images = [stub_digit(i % 10, unsure=(37 * i) % 256) for i in range(len(crop_rows))]
    tables = {}
    for chunk in (1, 2, 100):
        run = tmp_path / f"run{chunk}"
        run.mkdir()
        crops_frame(crop_rows).to_parquet(run / "crops.parquet")
        np.save(run / "digits.npy", np.stack(images))
        summary = recognise_run(run, None, RecogniseSettings(), stream_sheets=chunk)
        assert summary.n_sheets == 5
        tables[chunk] = [pd.read_parquet(run / f) for f in ("digits_read.parquet", "fields.parquet")]
    for chunk in (1, 2):
        for got, want in zip(tables[chunk], tables[100], strict=True):
            pd.testing.assert_frame_equal(got, want)


def test_empty_crops_still_write_both_tables(tmp_path, monkeypatch):
    from pipeline.model.recognise import recognise_run
    from pipeline.model.settings import RecogniseSettings
    from tests.model.conftest import crops_frame, use_stub_recogniser

    use_stub_recogniser(monkeypatch)
    crops_frame([]).astype({"box": "int64", "slot": "int64", "digit_row": "int64"}).to_parquet(
        tmp_path / "crops.parquet")
    np.save(tmp_path / "digits.npy", np.zeros((0, 28, 28), np.uint8))
    summary = recognise_run(tmp_path, None, RecogniseSettings(), stream_sheets=2)
    assert summary.n_digits == 0 and len(pd.read_parquet(tmp_path / "fields.parquet")) == 0
    assert len(pd.read_parquet(tmp_path / "digits_read.parquet")) == 0


def test_digit_file_reads_the_rows_the_array_holds(tmp_path, monkeypatch):
    """Reading a chunk's images from the file (not a memory map) changes no prediction."""
    from pipeline.model.recognise import DigitFile, recognise_frames
    from pipeline.model.recogniser import DigitRecogniser
    from pipeline.model.settings import RecogniseSettings
    from tests.model.conftest import StubModel, crops_frame, stub_digit

    images = np.stack([stub_digit(i % 10, unsure=(53 * i) % 256) for i in range(12)])
    np.save(tmp_path / "digits.npy", images)
    digits = DigitFile(tmp_path / "digits.npy", len(images))
    assert len(digits) == 12
    np.testing.assert_array_equal(digits[np.array([0, 3, 4, 11])], images[[0, 3, 4, 11]])
    recogniser = DigitRecogniser(StubModel(), 1.0, 0.5)
    crops = crops_frame([("s0", "pan", box, 0, "digit", row) for box, row in enumerate((7, 3, 9))]
                        + [("s0", "pri", 0, 0, "empty", -1)])
    from_file = recognise_frames(crops, digits, recogniser, RecogniseSettings(), ["pan", "pri"])
    from_array = recognise_frames(crops, images, recogniser, RecogniseSettings(), ["pan", "pri"])
    for got, want in zip(from_file, from_array, strict=True):
        pd.testing.assert_frame_equal(got, want)
