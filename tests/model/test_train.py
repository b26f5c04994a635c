"""The real ``train`` on a tiny network: versioned output, metadata, current link, reports."""

from __future__ import annotations

import json
import os

from pipeline.model import registry
from pipeline.model.evaluate import CALIBRATION_PNG, CONFUSION_PNG, COVERAGE_PNG, METRICS_FILE


def test_train_writes_a_version_with_metadata_and_current_link(trained, tiny_settings):
    models, meta = trained
    version = models / meta["version"]
    assert (version / registry.MODEL_FILE).is_file()
    on_disk = json.loads((version / registry.METADATA_FILE).read_text())
    assert on_disk["version"] == meta["version"] and on_disk["parent"] is None
    for key in ("data", "settings", "metrics", "created", "temperature", "reject_threshold", "epochs_run",
                "stop_reason", "train_seconds"):
        assert key in on_disk, key
    assert len(on_disk["data"]["sha256_train"]) == 64
    assert on_disk["settings"]["subset"] == tiny_settings.subset
    assert 1 <= on_disk["epochs_run"] <= tiny_settings.epochs and on_disk["stop_reason"]
    assert 0.0 < on_disk["temperature"] and 0.0 <= on_disk["reject_threshold"] <= 1.0
    link = models / registry.CURRENT_NAME
    assert link.is_symlink() and not os.path.isabs(os.readlink(link))
    assert registry.current_version(models) == meta["version"]


def test_train_reports_metrics_and_figures(trained):
    models, meta = trained
    reports = models.parent / "reports"
    metrics = json.loads((reports / METRICS_FILE).read_text())
    assert metrics["version"] == meta["version"]
    assert 0.5 < metrics["test_accuracy"] <= 1.0 and metrics["n_test"] == 10000
    assert metrics["test_ece_after"] <= metrics["test_ece_before"] + 0.01
    assert metrics["accuracy_coverage_curve"][0]["coverage"] == 1.0
    for png in (CONFUSION_PNG, CALIBRATION_PNG, COVERAGE_PNG):
        assert (reports / png).read_bytes()[:4] == b"\x89PNG"


def test_new_versions_get_distinct_names(tmp_path):
    when = registry.utc_now()
    first = registry.new_version_dir(tmp_path, when)
    first.mkdir()
    assert registry.new_version_dir(tmp_path, when) != first


def test_train_records_held_out_style_calibration(trained, tiny_settings):
    _, meta = trained
    held = meta["metrics"]["held_out_style"]
    assert held["n"] == 10000 and 0.0 <= held["ece_after"] <= 1.0 and 0.0 <= held["accuracy"] <= 1.0
    assert {"ece_before", "ece_in_domain_temperature", "in_domain_temperature"} <= set(held)
    expected = round(meta["data"]["n_val"] * tiny_settings.calibration_style_fraction)
    assert meta["metrics"]["calibration_set"]["n_held_out_style"] == expected
    assert "handwriting" in meta and "held_out_style" in meta
    assert 0.0 <= meta["metrics"]["test_ece_after_in_domain_temperature"] <= 1.0


def test_training_stream_is_the_same_for_the_same_seed_and_keeps_labels(mnist):
    from dataclasses import replace

    import numpy as np

    from pipeline.model.settings import HandwritingSettings, TrainSettings
    from pipeline.model.train import make_training_stream

    x, y = mnist.x_train[:96], mnist.y_train[:96]
    settings = replace(TrainSettings(), batch_size=32, handwriting_fraction=1.0)

    def first_batches(s):
        stream, steps = make_training_stream(x, y, s, HandwritingSettings())
        return steps, [(a.numpy(), b.numpy()) for a, b in stream.take(4)]

    steps, one = first_batches(settings)
    _, two = first_batches(settings)
    _, other = first_batches(replace(settings, seed=settings.seed + 1))
    pairs = zip(one, two, strict=True)
    assert steps == 3 and all(np.array_equal(a, c) and np.array_equal(b, d) for (a, b), (c, d) in pairs)
    assert not np.array_equal(one[0][0], other[0][0])
    assert one[0][0].shape == (32, 28, 28, 1) and one[0][0].dtype == np.float32
    # labels travel with their own images: every label of an epoch appears as often as in y
    epoch_labels = np.concatenate([b for _, b in one[:steps]])
    assert sorted(epoch_labels.tolist()) == sorted(y.tolist())
    assert not np.array_equal(one[0][0], one[3][0])  # the next epoch is reshuffled and restyled afresh


def test_calibration_set_adds_held_out_style_copies(mnist):
    from dataclasses import replace

    import numpy as np

    from pipeline.model.settings import TrainSettings
    from pipeline.model.train import Split, calibration_set

    split = Split(mnist.x_train[:10], mnist.y_train[:10], mnist.x_train[10:30], mnist.y_train[10:30])
    x, y, n = calibration_set(split, replace(TrainSettings(), calibration_style_fraction=0.5))
    assert n == 10 and len(x) == len(y) == 30 and x.dtype == np.uint8
    assert np.array_equal(x[:20], split.x_val) and set(y[20:].tolist()) <= set(split.y_val.tolist())
    x0, _, n0 = calibration_set(split, replace(TrainSettings(), calibration_style_fraction=0.0))
    assert n0 == 0 and np.array_equal(x0, split.x_val)
