"""The labelling loop: review exports the least confident crops; retrain fine-tunes and decides on promotion."""

from __future__ import annotations

from dataclasses import replace

import cv2
import numpy as np
import pandas as pd
import pytest

from pipeline.errors import InputFileError
from pipeline.model import registry
from pipeline.model.retrain import Scores, decide, load_labels, retrain
from pipeline.model.review import export_review, write_labelled_sheet
from pipeline.model.settings import RecogniseSettings, RetrainSettings, ReviewSettings

FAST = RetrainSettings(frozen_epochs=1, unfrozen_epochs=1, steps_per_epoch=3, batch_size=32)


@pytest.fixture
def reviewed(mnist_run, models_copy):
    """The mnist run recognised and exported for review, with the true labels filled in."""
    from pipeline.model.recognise import recognise_run

    run, truth = mnist_run
    models, _ = models_copy
    recognise_run(run, models / registry.CURRENT_NAME, RecogniseSettings())
    csv, n = export_review(run, run.parent / "labels.csv", ReviewSettings(limit=20))
    sheet = pd.read_csv(csv)
    sheet["label"] = truth[sheet["digit_row"]]
    sheet.to_csv(csv, index=False)
    return csv, sheet, run


def test_review_sheet_is_sorted_least_confident_first_with_images(reviewed):
    csv, sheet, run = reviewed
    assert len(sheet) == 20 and sheet["confidence"].is_monotonic_increasing
    assert {"sheet_id", "field", "box", "slot", "image", "predicted", "confidence", "label"} <= set(sheet.columns)
    digits = np.load(run / "digits.npy")
    for row in sheet.head(3).itertuples():
        image = cv2.imread(str(csv.parent / row.image), cv2.IMREAD_GRAYSCALE)
        assert np.array_equal(image, digits[row.digit_row])


def test_review_then_retrain_round_trip(reviewed, models_copy, mnist):
    csv, _, _ = reviewed
    models, meta = models_copy
    decision = retrain(csv, models / registry.CURRENT_NAME, models, FAST, mnist)
    new_meta = registry.read_metadata(models / decision.new_version)
    assert new_meta["parent"] == meta["version"] and new_meta["kind"] == "retrain"
    stored = new_meta["retrain"]["decision"]
    assert stored["promoted"] == decision.promoted and stored["old"]["mnist_test"] == decision.old.mnist_test
    assert decision.n_finetune + decision.n_holdout == 20
    expected = decision.new_version if decision.promoted else meta["version"]
    assert registry.current_version(models) == expected
    assert "MNIST test" in decision.summary()


def test_retrain_refuses_to_promote_a_worse_model(tmp_path, models_copy, mnist):
    models, meta = models_copy
    csv = write_labelled_sheet(mnist.x_test[:40], mnist.y_test[:40], tmp_path / "labels.csv")
    wrecked = replace(FAST, learning_rate=1e4, unfrozen_epochs=0)  # destroys the head's weights
    decision = retrain(csv, models / registry.CURRENT_NAME, models, wrecked, mnist)
    assert not decision.promoted
    assert decision.new.mnist_test < decision.old.mnist_test
    assert registry.current_version(models) == meta["version"]
    assert (models / decision.new_version / registry.MODEL_FILE).is_file()


@pytest.mark.parametrize(("old", "new", "promoted"), [
    (Scores(0.80, 0.990), Scores(0.90, 0.990), True),
    (Scores(0.80, 0.990), Scores(0.90, 0.9891), True),    # 0.09 points worse on MNIST: allowed
    (Scores(0.80, 0.990), Scores(0.90, 0.9885), False),   # 0.15 points worse: refused
    (Scores(0.80, 0.990), Scores(0.80, 0.995), False),    # not better on the new crops
])
def test_promotion_rule(old, new, promoted):
    assert decide(old, new, 0.1)[0] is promoted


def test_labels_are_validated(tmp_path, mnist):
    csv = write_labelled_sheet(mnist.x_test[:6], mnist.y_test[:6], tmp_path / "labels.csv")
    sheet = pd.read_csv(csv)
    sheet.loc[1, "label"] = None
    sheet.to_csv(csv, index=False)
    data = load_labels(csv)
    assert len(data.y) == 5 and data.n_skipped == 1 and data.x.shape == (5, 28, 28)
    sheet["label"] = sheet["label"].astype("object")
    sheet.loc[2, "label"] = "x"
    sheet.to_csv(csv, index=False)
    with pytest.raises(InputFileError, match="line 4"):
        load_labels(csv)


def test_non_png_crop_is_rejected(tmp_path, mnist):
    csv = write_labelled_sheet(mnist.x_test[:5], mnist.y_test[:5], tmp_path / "labels.csv")
    (tmp_path / "labels_crops" / "digit_000000.png").write_bytes(b"GIF89a not a png at all....")
    with pytest.raises(InputFileError, match="not a PNG"):
        load_labels(csv)
