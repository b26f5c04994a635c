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
