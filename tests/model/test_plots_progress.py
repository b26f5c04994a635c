"""Progress bars of recognise and train: the time left appears only once it has settled, the recognise bar
counts every digit once however the reads are sliced, and training shows epochs and batches (and logs each
epoch)."""

from __future__ import annotations

import io
import logging

import numpy as np
import pandas as pd

from pipeline.model import recognise
from pipeline.model.recognise import predict_rows
from pipeline.model.recogniser import DigitRecogniser
from pipeline.progress import SettledBar
from tests.model.conftest import StubModel, stub_digit


def test_the_time_left_is_hidden_until_it_has_settled():
    bar = SettledBar(total=100, file=io.StringIO(), disable=False)
    assert not bar.settled(1, 100, 60.0)  # 1% done: too early, however long it took
    assert not bar.settled(50, 100, 1.0)  # half done in a second: start-up costs still dominate
    assert bar.settled(5, 100, 5.0)
    bar.update(1)
    assert "estimating..." in str(bar) and "<00:" not in str(bar)
    bar.close()
    quick = SettledBar(total=10, file=io.StringIO(), disable=False, settle_s=0.0, settle_n=1)
    quick.update(2)
    assert "estimating" not in str(quick) and "<00:" in str(quick)
    quick.close()


def test_recognise_counts_each_digit_once_in_slices(monkeypatch):
    digits = np.stack([stub_digit(i % 10) for i in range(10)])
    rows = np.array([3, -1, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9])
    recogniser = DigitRecogniser(StubModel())
    whole = predict_rows(recogniser, digits, rows, batch_size=4)
    monkeypatch.setattr(recognise, "PROGRESS_STEP", 3)
    bar = SettledBar(total=10, file=io.StringIO(), disable=False)
    sliced = predict_rows(recogniser, digits, rows, batch_size=4, progress=bar)
    assert bar.n == 10  # distinct images, each once
    pd.testing.assert_frame_equal(sliced, whole)
    assert sliced["label"].tolist()[:3] == [3, pd.NA, 0]


def test_training_shows_epochs_and_batches_and_logs_each_epoch(caplog, capsys):
    import keras

    from pipeline.model.train import ProgressBars

    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)])
    model.compile(optimizer="sgd", loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  metrics=["accuracy"])
    x, y = np.random.default_rng(0).normal(size=(32, 4)).astype("float32"), np.arange(32) % 2
    bars = ProgressBars(epochs=2, steps=4, disable=False)
    with caplog.at_level(logging.INFO, logger="pipeline.model.train"):
        model.fit(x, y, batch_size=8, epochs=2, validation_data=(x, y), callbacks=[bars], verbose=0)
    err = capsys.readouterr().err
    assert "epochs: 100%" in err and "2/2" in err and "val_loss=" in err
    assert "epoch 1:" in err and "/4 [" in err  # the batch bar of the first epoch (4 batches)
    assert [r.getMessage().split(":")[0] for r in caplog.records] == ["epoch 1/2", "epoch 2/2"]
    assert bars.epoch_bar is None and bars.batch_bar is None  # closed
