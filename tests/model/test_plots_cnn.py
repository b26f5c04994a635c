"""The model page's teaching figures on a tiny untrained CNN: the first-layer filters, the feature maps of one
digit through the layers (pooling really is a 2x2 maximum) and augmented training digits."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from pipeline.model.network import build_classifier
from pipeline.model.plots import augmented_png, feature_maps, feature_maps_png, filters_png, first_layer_filters
from pipeline.model.settings import NetworkSettings


@pytest.fixture(scope="module")
def model():
    return build_classifier(NetworkSettings(widths=(4, 8), dense=8))


@pytest.fixture
def digit() -> np.ndarray:
    image = np.zeros((28, 28), np.uint8)
    image[6:22, 12:16] = 255  # a "1"
    image[6:9, 9:13] = 200
    return image


def test_filters_are_the_first_convolutions_weights(model, tmp_path):
    name, weights = first_layer_filters(model)
    assert name == "conv0_0" and weights.shape == (4, 3, 3)
    assert np.allclose(weights[2], model.get_layer("conv0_0").get_weights()[0][:, :, 0, 2])
    info = filters_png(model, tmp_path / "filters.png")
    assert info == {"layer": "conv0_0", "n_filters": 4, "size": 3}
    assert Image.open(tmp_path / "filters.png").size[0] > 300


def test_feature_maps_follow_the_layers_and_pooling_compresses(model, digit, tmp_path):
    maps = feature_maps(model, digit)
    assert [(n, m.shape) for n, _, m in maps] == [
        ("conv0_0_relu", (28, 28, 4)), ("conv0_1_relu", (28, 28, 4)), ("conv0_pool", (14, 14, 4)),
        ("conv1_0_relu", (14, 14, 8)), ("conv1_1_relu", (14, 14, 8)), ("conv1_pool", (7, 7, 8))]
    assert [p for _, p, _ in maps] == [False, False, True, False, False, True]
    before, pooled = maps[1][2], maps[2][2]
    assert np.allclose(pooled, before.reshape(14, 2, 14, 2, 4).max(axis=(1, 3)), atol=1e-5)
    assert (maps[0][2] >= 0).all()  # after ReLU
    rows = feature_maps_png(model, digit, "a 1 from sheet s1, field PAN", tmp_path / "maps.png")
    assert [r["name"] for r in rows] == [n for n, _, _ in maps] and rows[2]["pooling"]
    assert (tmp_path / "maps.png").stat().st_size > 10_000


def test_augmented_digits_vary_but_stay_digits(digit, tmp_path):
    digits = np.stack([digit, np.flipud(digit)])
    versions = augmented_png(digits, np.array([1, 7]), tmp_path / "augment.png", per_digit=5, seed=3)
    assert versions.shape == (2, 5, 28, 28)
    assert versions.min() >= 0 and versions.max() <= 255
    assert all(not np.allclose(v, digit) for v in versions[0])  # every version differs from the original
    assert len({v.tobytes() for v in versions[0]}) == 5  # and from each other
    assert all(v.sum() > 0.5 * digit.astype(float).sum() for v in versions[0])  # the ink survives
    again = augmented_png(digits, np.array([1, 7]), tmp_path / "again.png", per_digit=5, seed=3)
    assert np.allclose(again, versions)  # seeded: the page shows the same examples on every build


def test_the_report_draws_them_from_a_saved_model_and_keeps_them_while_it_is_unchanged(model, digit, tmp_path):
    import pandas as pd

    from pipeline.forms import load_template
    from pipeline.report.build import cnn_figures

    acta = load_template()
    version = tmp_path / "models" / "v1"
    version.mkdir(parents=True)
    model.save(version / "model.keras")
    rundir = tmp_path / "run"
    rundir.mkdir()
    np.save(rundir / "digits.npy", np.stack([np.zeros_like(digit), digit]))
    pd.DataFrame({"sheet_id": ["s1", "s2", "s3"], "field": ["pan", "total_votes", "section"], "digit_row": [0, 1, 0],
                  "label": [0, 1, 0], "confidence": [0.5, 0.99, 0.999]}).to_parquet(rundir / "digits_read.parquet")
    out = tmp_path / "report"
    info = cnn_figures(version, rundir, out, acta)
    # the most confident digit of a vote count, even where an identifier's digit reads more confidently
    assert info["digit"] == "a 1 read at 99.0% from sheet s2, field VOTACION TOTAL"  # the form's own label
    assert info["filters"]["n_filters"] == 4 and [m["shape"] for m in info["maps"]][2] == "14 x 14 x 4"
    assert {"filters", "maps"} <= set(info["figures"]) and all((out / f).is_file() for f in info["figures"].values())
    before = (out / info["figures"]["maps"]).stat().st_mtime_ns
    assert cnn_figures(version, rundir, out, acta) == info
    assert (out / info["figures"]["maps"]).stat().st_mtime_ns == before  # kept, not redrawn
    assert cnn_figures(tmp_path / "models" / "none", rundir, tmp_path / "r2", acta) == {}
    (tmp_path / "models" / "bad").mkdir()
    (tmp_path / "models" / "bad" / "model.keras").write_text("not a model")
    assert cnn_figures(tmp_path / "models" / "bad", rundir, tmp_path / "r3", acta) == {}  # logged, never raised
