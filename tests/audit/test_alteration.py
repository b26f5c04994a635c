import dataclasses
import json

import cv2
import numpy as np
import pandas as pd
import pytest

from pipeline.audit.alteration import (
    DETECTOR_JSON,
    INPUTS_KEY,
    MIN_RELATIVE_FIELDS,
    SHEET_RELATIVE,
    Detector,
    Novelty,
    apply_detector,
    choose_threshold,
    feature_matrix,
    fit_detector,
    fit_novelty,
    load_detector,
    save_detector,
    sheet_relative,
    uses_sheet_relative,
)
from pipeline.audit.features import feature_names, field_features
from pipeline.audit.settings import AlterationSettings
from pipeline.errors import ConfigError, ModelError
from tests.audit.conftest import ACTA, clean_values, field_image
from tests.audit.test_features import BOXES, pen_field, write_digit

SMALL = AlterationSettings(hidden_units=(8,), max_iter=300)
NETWORK_ONLY = AlterationSettings(hidden_units=(8,), max_iter=300, novelty=False)


def toy_features(rng, n, altered):
    return np.vstack([field_features(field_image(rng, altered)) for _ in range(n)])


def honest_fields(rng, n):
    """Clean fields of one to three digits, each field in one pen width drawn from 2-6 pixels."""
    out = []
    for _ in range(n):
        digits = "".join(rng.choice(list("0127"), int(rng.integers(1, 4))))
        width = int(rng.integers(2, 7))
        out.append(field_features(pen_field(rng, digits, (width,) * len(digits))))
    return np.vstack(out)


def overwritten_fields(rng, n):
    """Fields with one digit written over another in the same box (a "0" over a "7", a "2" over a "1", ...)."""
    out = []
    for _ in range(n):
        under, top = rng.choice(list("0127"), 2, replace=False)
        img = pen_field(rng, "1" + under, (3, 3))
        write_digit(img, 2, str(top), int(rng.integers(3, 6)), 30, int(rng.integers(-3, 4)))
        out.append(field_features(img))
    return np.vstack(out)


def hatched_field(rng):
    """A field whose last digit is scratched out with dense parallel hatching: a trace no toy detector saw."""
    img = pen_field(rng, "12", (3, 3))
    x0, y0, x1, y1 = BOXES[2]
    for k in range(-60, 60, 5):
        cv2.line(img, (x0 + 4 + k, y1 - 6), (x0 + 4 + k + 40, y0 + 6), 35, 2)
    img[:, :x0 - 6] = pen_field(rng, "12", (3, 3))[:, :x0 - 6]
    return img


@pytest.fixture(scope="module")
def toy_detector():
    """A detector trained on 40 toy field images (crossed out + fluid + written beside vs clean)."""
    rng = np.random.default_rng(0)
    x = np.vstack([toy_features(rng, 20, False), toy_features(rng, 20, True)])
    y = np.array([False] * 20 + [True] * 20)
    return fit_detector(x, y, NETWORK_ONLY)


def test_features_have_their_names():
    x = field_features(field_image(np.random.default_rng(1)))
    assert x.shape == (len(feature_names()),) and np.isfinite(x).all()


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
    d = fit_detector(x, y, NETWORK_ONLY)
    mlp = MLPClassifier(hidden_layer_sizes=(8,), alpha=SMALL.l2, max_iter=300, random_state=0).fit(
        (x - d.mean) / d.scale, y.astype(int))
    assert d.predict(x) == pytest.approx(mlp.predict_proba((x - d.mean) / d.scale)[:, 1])


def test_save_and_load_round_trip_without_pickle(tmp_path, toy_detector):
    clean = toy_features(np.random.default_rng(4), 20, False)
    det = dataclasses.replace(toy_detector, threshold=0.4, metadata={"a": 1}, novelty=fit_novelty(clean, SMALL))
    save_detector(det, tmp_path)
    loaded = load_detector(tmp_path)
    x = toy_features(np.random.default_rng(3), 4, True)
    assert loaded.threshold == 0.4 and loaded.predict(x) == pytest.approx(det.predict(x))
    assert loaded.novelty.at == det.novelty.at and (loaded.novelty.span == det.novelty.span).all()
    with np.load(tmp_path / "detector.npz", allow_pickle=False) as z:
        assert all(z[k].dtype != object for k in z.files)


def test_missing_detector_and_corrupt_one_are_errors(tmp_path, toy_detector):
    with pytest.raises(ModelError, match="train-alteration.*--no-alteration"):
        load_detector(tmp_path / "nowhere")
    save_detector(toy_detector, tmp_path)
    meta = json.loads((tmp_path / DETECTOR_JSON).read_text())
    (tmp_path / DETECTOR_JSON).write_text(json.dumps({**meta, "feature_names": ["other"]}))
    with pytest.raises(ModelError, match="other features"):
        load_detector(tmp_path)
    old = {k: v for k, v in meta.items() if k != "features_version"}  # saved before features were versioned
    (tmp_path / DETECTOR_JSON).write_text(json.dumps(old))
    with pytest.raises(ModelError, match="version 1 of the feature code.*retrain"):
        load_detector(tmp_path)
    (tmp_path / DETECTOR_JSON).write_text(json.dumps(meta))
    assert load_detector(tmp_path).threshold == toy_detector.threshold
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
    keys, x = feature_matrix(rundir, ["a", "b", "c"], ACTA.count_fields)
    assert len(keys) == 28 and x.shape[1] == len(feature_names())  # c has no images: skipped, not fatal
    table = pd.DataFrame({"status": ["ok", "ok", "ok"], "pri": [120] * 3}, index=pd.Index(["a", "b", "c"]))
    out, flags = apply_detector(table, det, rundir, rundir / "out", ACTA)
    assert out.loc["b", "altered"] and not out.loc["a", "altered"] and pd.isna(out.loc["c", "altered"])
    assert out.loc["b", "alteration_score"] == out.loc["b", "pri_alteration"]
    assert [f.sheet_id for f in flags] == ["b"] and flags[0].fields[0] == "pri"
    assert flags[0].evidence["images"]["pri"] == "../fields/b/pri.png"


def test_a_rows_score_does_not_depend_on_the_rows_scored_with_it():
    """Whole and streamed audits score a field in batches of different sizes: its score must be the same bits."""
    rng = np.random.default_rng(5)
    n_in, n_hidden, n_rows = len(feature_names()), 64, 1000
    d = Detector(rng.normal(size=n_in), rng.uniform(0.5, 2, n_in),
                 (rng.normal(size=(n_in, n_hidden)) / 4, rng.normal(size=(n_hidden, 1)) / 4),
                 (rng.normal(size=n_hidden), rng.normal(size=1)), 0.5, {})
    x = rng.normal(size=(n_rows, n_in)) * 3
    whole = d.predict(x)
    alone = np.concatenate([d.predict(x[i:i + 1]) for i in range(n_rows)])
    chunks = np.concatenate([d.predict(x[i:i + 7]) for i in range(0, n_rows, 7)])
    assert whole.tobytes() == alone.tobytes() == chunks.tobytes()


def test_novelty_is_half_at_its_level_and_counts_the_most_unusual_feature():
    clean = np.random.default_rng(8).normal(size=(2000, 3))
    nov = fit_novelty(clean, AlterationSettings(novelty_field_fpr=0.01))
    assert np.mean(nov.level(clean) >= nov.at) == pytest.approx(0.01, abs=0.002)
    x = np.array([nov.centre, nov.centre + [0, 0, 2 * nov.at * nov.span[2]]])
    assert nov.predict(x)[1] == pytest.approx(1 - np.exp(-nov.slope) / 2)
    assert nov.predict(x)[0] == 0.0
    assert Novelty(nov.centre, nov.span, nov.at, nov.slope).predict(x[:1]) == pytest.approx(nov.predict(x)[:1])


@pytest.fixture(scope="module")
def pen_detector():
    """Trained on honest fields (each in one pen width) against digits written over digits."""
    rng = np.random.default_rng(10)
    x = np.vstack([honest_fields(rng, 60), overwritten_fields(rng, 30)])
    y = np.arange(90) >= 60
    return fit_detector(x, y, AlterationSettings(hidden_units=(8,), max_iter=500, novelty_field_fpr=0.01))


def test_honest_pen_pressure_differences_between_digits_are_not_alterations(pen_detector):
    """Clean fields whose neighbouring digits differ in stroke weight and ink tone score below the threshold,
    while digits written over digits score above it."""
    rng = np.random.default_rng(11)
    mixed = np.vstack([field_features(pen_field(rng, digits, widths, tones)) for digits, widths, tones in (
        ("120", (2, 6, 3), (40, 25, 70)), ("71", (6, 2), (30, 80, 40)), ("207", (3, 5, 2), (60, 30, 45)),
        ("10", (2, 6), (70, 30, 40)), ("712", (5, 2, 6), (30, 70, 35)))])
    assert pen_detector.predict(mixed).max() < 0.5
    assert pen_detector.predict(overwritten_fields(rng, 10)).min() >= 0.5


def test_novelty_flags_a_trace_the_network_never_saw(pen_detector):
    """Hatching is in no training example: the network alone may call it clean, the novelty score does not."""
    x = field_features(hatched_field(np.random.default_rng(12)))[None, :]
    assert pen_detector.novelty.predict(x)[0] > 0.5 and pen_detector.predict(x)[0] > 0.5



def test_the_novelty_score_leaves_the_papers_own_measures_out():
    """Toner banding, shadows and faded copies move the paper measures as much as an eraser or fluid does, so the
    novelty score (which knows no damage style) does not look at them; the network does."""
    from pipeline.audit.alteration import novelty_features

    names, used = feature_names(), novelty_features()
    left_out = {n for n, u in zip(names, used, strict=True) if not u}
    assert {"box_grey_max", "box_paper_drop_max", "box_bright_max", "box_flat_max", "flat"} <= left_out
    assert {"box_junctions_max", "box_line_gap_max", "strike_long", "beside_ink", "box_holes_max"}.isdisjoint(left_out)
    rng = np.random.default_rng(14)
    nov = fit_novelty(rng.normal(size=(500, len(names))), SMALL)
    assert np.isinf(nov.span[~used]).all() and np.isfinite(nov.span[used]).all()


def test_sheet_relative_inputs_take_the_sheets_median_out_whatever_the_order():
    ids = np.array(["a", "b", "a", "b", "a"])
    x = np.array([[1.0, 10.0], [5.0, 0.0], [2.0, 30.0], [7.0, 4.0], [9.0, 20.0]])
    rel = sheet_relative(ids, x)
    assert rel.tolist() == [[-1.0, -10.0], [-1.0, -2.0], [0.0, 10.0], [1.0, 2.0], [7.0, 0.0]]
    order = np.array([4, 1, 0, 3, 2])
    assert (sheet_relative(ids[order], x[order]) == rel[order]).all()
    assert sheet_relative(np.array([], str), np.zeros((0, 2))).shape == (0, 2)


def test_a_sheet_wide_shift_does_not_move_a_sheet_relative_detectors_scores():
    """Scan damage that thickens every field of a sheet alike (ink bleed) leaves sheet-relative inputs unchanged,
    while a field-input detector sees new raw values."""
    rng = np.random.default_rng(3)
    ids = np.repeat([f"s{i}" for i in range(40)], 5)
    x = rng.normal(size=(200, 3))
    y = np.zeros(200, bool)
    y[::5] = True
    x[y] += 3.0
    relative = fit_detector(sheet_relative(ids, x), y, NETWORK_ONLY)
    relative = relative.with_threshold(0.5, {INPUTS_KEY: SHEET_RELATIVE})
    shifted = x + np.repeat(rng.normal(scale=5.0, size=(40, 3)), 5, axis=0)
    assert relative.sheet_relative
    assert relative.score(ids, shifted) == pytest.approx(relative.score(ids, x))
    field_only = relative.with_threshold(0.5, {})
    assert not field_only.sheet_relative and field_only.score(ids, x) == pytest.approx(field_only.predict(x))


def test_sheet_relative_inputs_need_three_count_fields():
    s = AlterationSettings()
    assert s.inputs == SHEET_RELATIVE
    assert uses_sheet_relative(s, MIN_RELATIVE_FIELDS) and not uses_sheet_relative(s, MIN_RELATIVE_FIELDS - 1)
    assert not uses_sheet_relative(dataclasses.replace(s, inputs="field"), 14)
    with pytest.raises(ConfigError, match="alteration.inputs"):
        AlterationSettings(inputs="pixels")
