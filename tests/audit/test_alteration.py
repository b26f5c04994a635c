import json

import numpy as np
import pandas as pd
import pytest

from pipeline.audit.alteration import (
    DETECTOR_JSON,
    Detector,
    apply_detector,
    choose_threshold,
    feature_matrix,
    fit_detector,
    load_detector,
    save_detector,
)
from pipeline.audit.features import feature_names, field_features, sheet_context
from pipeline.audit.settings import AlterationSettings
from pipeline.errors import ModelError
from tests.audit.conftest import clean_values, field_image

SMALL = AlterationSettings(hidden_units=(8,), max_iter=300)


def toy_features(rng, n, altered):
    keys = pd.DataFrame({"sheet_id": [f"s{i}" for i in range(n)], "field": "pri"})
    return sheet_context(keys, np.vstack([field_features(field_image(rng, altered)) for _ in range(n)]))


@pytest.fixture(scope="module")
def toy_detector():
    """A detector trained on 40 toy field images (crossed out + fluid + written beside vs clean)."""
    rng = np.random.default_rng(0)
    x = np.vstack([toy_features(rng, 20, False), toy_features(rng, 20, True)])
    y = np.array([False] * 20 + [True] * 20)
    return fit_detector(x, y, SMALL)


def test_features_have_their_names():
    x = field_features(field_image(np.random.default_rng(1)))
    assert x.shape == (len(feature_names()) - 10,) and np.isfinite(x).all()


def test_detector_learns_the_toy_case(toy_detector):
    rng = np.random.default_rng(99)
    clean, altered = toy_detector.predict(toy_features(rng, 10, False)), toy_detector.predict(
        toy_features(rng, 10, True))
    assert clean.max() < 0.5 < altered.min()


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
def test_numpy_forward_pass_matches_sklearn():
    from sklearn.neural_network import MLPClassifier

    rng = np.random.default_rng(2)
    x, y = rng.normal(size=(60, 5)), rng.random(60) < 0.5
    d = fit_detector(x, y, SMALL)
    mlp = MLPClassifier(hidden_layer_sizes=(8,), alpha=SMALL.l2, max_iter=300, random_state=0).fit(
        (x - d.mean) / d.scale, y.astype(int))
    assert d.predict(x) == pytest.approx(mlp.predict_proba((x - d.mean) / d.scale)[:, 1])


def test_save_and_load_round_trip_without_pickle(tmp_path, toy_detector):
    det = Detector(toy_detector.mean, toy_detector.scale, toy_detector.weights, toy_detector.biases, 0.4, {"a": 1})
    save_detector(det, tmp_path)
    loaded = load_detector(tmp_path)
    x = toy_features(np.random.default_rng(3), 4, True)
    assert loaded.threshold == 0.4 and loaded.predict(x) == pytest.approx(det.predict(x))
    with np.load(tmp_path / "detector.npz", allow_pickle=False) as z:
        assert all(z[k].dtype != object for k in z.files)


def test_missing_detector_is_none_and_corrupt_one_is_an_error(tmp_path, toy_detector):
    assert load_detector(tmp_path / "nowhere") is None
    save_detector(toy_detector, tmp_path)
    meta = json.loads((tmp_path / DETECTOR_JSON).read_text())
    (tmp_path / DETECTOR_JSON).write_text(json.dumps({**meta, "feature_names": ["other"]}))
    with pytest.raises(ModelError, match="other features"):
        load_detector(tmp_path)
    (tmp_path / "detector.npz").write_bytes(b"not an npz")
    with pytest.raises(ModelError, match="cannot load"):
        load_detector(tmp_path)


def test_threshold_keeps_target_recall_with_best_precision():
    scores = np.array([0.1, 0.2, 0.3, 0.35, 0.6, 0.7, 0.8, 0.9])
    labels = np.array([0, 0, 1, 0, 1, 1, 1, 1], bool)
    t, precision, recall = choose_threshold(scores, labels, 0.8)
    assert t == 0.6 and recall == 0.8 and precision == 1.0
    t, _, recall = choose_threshold(scores, labels, 1.0)
    assert t == 0.3 and recall == 1.0


def test_apply_detector_scores_and_flags_sheets(run_factory, toy_detector):
    det = Detector(toy_detector.mean, toy_detector.scale, toy_detector.weights, toy_detector.biases, 0.5, {})
    rundir = run_factory({"a": {"values": clean_values()}, "b": {"values": clean_values()},
                          "c": {"values": clean_values()}}, images={"a": False, "b": True})
    keys, x = feature_matrix(rundir, ["a", "b", "c"])
    assert len(keys) == 28 and x.shape[1] == len(feature_names())  # c has no images: skipped, not fatal
    table = pd.DataFrame({"status": ["ok", "ok", "ok"], "pri": [120] * 3}, index=pd.Index(["a", "b", "c"]))
    out, flags = apply_detector(table, det, rundir, rundir / "out")
    assert out.loc["b", "altered"] and not out.loc["a", "altered"] and pd.isna(out.loc["c", "altered"])
    assert out.loc["b", "alteration_score"] == out.loc["b", "pri_alteration"]
    assert [f.sheet_id for f in flags] == ["b"] and flags[0].fields[0] == "pri"
    assert flags[0].evidence["images"]["pri"] == "../fields/b/pri.png"
