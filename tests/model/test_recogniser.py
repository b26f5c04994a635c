"""DigitRecogniser: shapes, save/load round trip, safe mode, missing model, lazy TensorFlow import."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from pipeline.errors import ModelError
from pipeline.model import DigitRecogniser, registry
from pipeline.model.recogniser import padded_size
from pipeline.model.settings import NetworkSettings


def test_importing_the_stage_does_not_import_tensorflow():
    code = ("import sys, pipeline.model, pipeline.model.cli, pipeline.model.recognise, pipeline.model.review; "
            "bad = [m for m in ('tensorflow', 'keras') if m in sys.modules]; sys.exit(len(bad))")
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0


def test_predict_shapes_and_consistency(trained, mnist):
    models, _ = trained
    rec = DigitRecogniser.load(models / registry.CURRENT_NAME)
    pred = rec.predict(mnist.x_test[:64])
    assert len(pred) == 64 and pred.probs.shape == (64, 10)
    assert np.allclose(pred.probs.sum(1), 1.0, atol=1e-5)
    assert (pred.label != pred.label2).all() and (pred.prob >= pred.prob2).all()
    assert np.allclose(pred.confidence, pred.probs[np.arange(64), pred.label])
    assert (pred.label == mnist.y_test[:64]).mean() > 0.6  # tiny model, 3 short epochs: reads most digits


def test_padding_to_few_batch_shapes_leaves_the_logits_unchanged(trained, mnist):
    rec = DigitRecogniser.load(trained[0] / registry.CURRENT_NAME)
    x = mnist.x_test[:11]
    assert [padded_size(n, 4) for n in (1, 3, 4, 5, 11)] == [1, 4, 4, 8, 12]
    assert padded_size(600, 1000) == 1000 and padded_size(3, 1024) == 4
    whole = rec.logits(x, batch_size=4)
    assert whole.shape == (11, 10)
    assert np.allclose(whole[:3], rec.logits(x[:3], batch_size=4), atol=1e-5)
    assert np.allclose(whole, rec.logits(x, batch_size=1024), atol=1e-5)


def test_predict_empty_and_bad_input(trained):
    rec = DigitRecogniser.load(trained[0] / registry.CURRENT_NAME)
    assert len(rec.predict(np.zeros((0, 28, 28), np.uint8))) == 0
    with pytest.raises(ValueError, match="28, 28"):
        rec.predict(np.zeros((3, 32, 32), np.uint8))
    with pytest.raises(ValueError, match="uint8"):
        rec.predict(np.zeros((3, 28, 28), np.float32))


def test_save_load_round_trip(tmp_path, mnist):
    from pipeline.model.network import build_classifier
    from pipeline.model.train import save_version

    model = build_classifier(NetworkSettings(widths=(4,), dense=8))
    version = tmp_path / "models" / "v1"
    save_version(model, version, {"version": "v1", "temperature": 1.7, "reject_threshold": 0.8})
    loaded = DigitRecogniser.load(version)
    x = mnist.x_test[:16]
    assert np.allclose(loaded.logits(x), DigitRecogniser(model).logits(x), atol=1e-5)
    assert (loaded.temperature, loaded.reject_threshold, loaded.version) == (1.7, 0.8, "v1")


def test_safe_mode_refuses_a_lambda_layer(tmp_path):
    import keras

    inputs = keras.Input((28, 28, 1))
    outputs = keras.layers.Dense(10)(keras.layers.Flatten()(keras.layers.Lambda(lambda t: t * 2.0)(inputs)))
    folder = tmp_path / "evil"
    folder.mkdir()
    keras.Model(inputs, outputs).save(folder / registry.MODEL_FILE)
    registry.write_json_atomic(folder / registry.METADATA_FILE, {"version": "evil"})
    with pytest.raises(ModelError, match="safe"):
        DigitRecogniser.load(folder)


def test_clear_error_when_no_model_exists(tmp_path):
    with pytest.raises(ModelError, match="pipeline train"):
        DigitRecogniser.load(tmp_path / "models" / "current")


def test_corrupt_model_file_is_a_model_error(tmp_path):
    folder = tmp_path / "v1"
    folder.mkdir()
    (folder / registry.MODEL_FILE).write_bytes(b"not a zip")
    registry.write_json_atomic(folder / registry.METADATA_FILE, {})
    with pytest.raises(ModelError, match="model.keras"):
        DigitRecogniser.load(folder)


def test_a_corrupt_model_file_is_called_corrupt_not_missing(tmp_path):
    folder = tmp_path / "v1"
    folder.mkdir()
    (folder / registry.MODEL_FILE).write_bytes(b"PK\x03\x04 truncated")
    registry.write_json_atomic(folder / registry.METADATA_FILE, {})
    with pytest.raises(ModelError, match="corrupt") as info:
        DigitRecogniser.load(folder)
    assert "not found" not in str(info.value)


def test_test_time_views_shift_and_turn_each_digit(mnist):
    from pipeline.model.recogniser import TTA_ROTATIONS_DEG, test_time_views

    x = mnist.x_test[:5]
    views = test_time_views(x)
    assert len(views) == 4 + len(TTA_ROTATIONS_DEG)
    assert all(v.shape == x.shape and v.dtype == np.uint8 for v in views)
    np.testing.assert_array_equal(views[0][:, :, 1:], x[:, :, :-1])  # one pixel to the right
    assert (views[0][:, :, 0] == 0).all()  # nothing wraps round from the other edge
    assert not any(np.array_equal(v, x) for v in views)
    assert [len(v) for v in test_time_views(x[:0])] == [0] * len(views)


def test_only_doubtful_digits_are_read_again_in_views(trained, mnist):
    rec = DigitRecogniser.load(trained[0] / registry.CURRENT_NAME)
    x = mnist.x_test[:200]
    plain = rec.logits(x)
    np.testing.assert_array_equal(rec.read_logits(x), plain)  # tta_below 0: one view
    confident = DigitRecogniser.load(trained[0] / registry.CURRENT_NAME, tta_below=0.7)
    mixed = confident.read_logits(x)
    sure = rec.predict(x).confidence >= 0.7
    assert 0 < sure.sum() < len(x)  # the tiny model is unsure of some digits
    np.testing.assert_array_equal(mixed[sure], plain[sure])
    assert not np.allclose(mixed[~sure], plain[~sure])
