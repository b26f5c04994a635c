"""Report figures are titled and labelled: training curves name training vs validation and mark the best epoch,
the accuracy axis is zoomed so that differences show."""

from __future__ import annotations

import pandas as pd

from pipeline.report import figures
from pipeline.report.build import stop_reason_text

HISTORY = {"loss": [0.9, 0.3, 0.2], "val_loss": [0.5, 0.25, 0.3], "accuracy": [0.8, 0.95, 0.97],
           "val_accuracy": [0.9, 0.96, 0.95]}


def test_training_curves_are_labelled_with_the_best_epoch_and_why_training_stopped():
    fig = figures.training_figure(HISTORY, "early stopping", best_epoch=None)
    loss, acc = fig.axes
    assert [loss.get_title(), acc.get_title()] == ["Loss (lower is better)", "Accuracy (higher is better)"]
    assert loss.get_ylabel() == "cross-entropy loss" and acc.get_xlabel() == "epoch"
    assert [t.get_text() for t in loss.get_legend().get_texts()] == ["training", "validation", "best epoch (2)"]
    assert fig.get_suptitle() == "Training stopped: early stopping"


def test_stop_reason_in_words():
    assert stop_reason_text({"stop_reason": "max_epochs: reached the epoch limit"}) == (
        "the epoch limit, not early stopping")
    assert stop_reason_text({"stop_reason": "early_stopping: val_loss did not improve for 3 epochs"}) == (
        "early stopping (val_loss did not improve for 3 epochs)")
    assert stop_reason_text({}) is None


def test_accuracy_axis_is_zoomed_and_titled():
    fig = figures.accuracy_figure(pd.Series({"PAN": 0.97, "total votes": 0.99}))
    ax = fig.axes[0]
    assert ax.get_xlim() == (0.8, 1.0) and ax.get_title() == "Reading accuracy per field"
    fig = figures.accuracy_figure(pd.Series({"PAN": 0.52}))
    assert fig.axes[0].get_xlim()[0] == 0.5
