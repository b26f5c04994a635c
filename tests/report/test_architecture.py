"""The CNN's layer table comes from the saved model's config.json alone: shapes, parameters, width formulas."""

from __future__ import annotations

import json
import zipfile

from pipeline.report import architecture

LAYERS = [
    {"class_name": "InputLayer", "config": {"name": "digit", "batch_shape": [None, 28, 28, 1]}},
    {"class_name": "Conv2D", "config": {"name": "conv", "filters": 16, "kernel_size": [3, 3], "strides": [1, 1],
                                        "padding": "same", "use_bias": False}},
    {"class_name": "BatchNormalization", "config": {"name": "bn"}},
    {"class_name": "ReLU", "config": {"name": "relu"}},
    {"class_name": "MaxPooling2D", "config": {"name": "pool", "pool_size": [2, 2], "strides": [2, 2],
                                              "padding": "valid"}},
    {"class_name": "Conv2D", "config": {"name": "conv_b", "filters": 8, "kernel_size": [3, 3], "strides": [1, 1],
                                        "padding": "valid", "use_bias": True}},
    {"class_name": "MaxPooling2D", "config": {"name": "pool_b", "pool_size": [2, 2], "strides": [2, 2],
                                              "padding": "valid"}},
    {"class_name": "Dropout", "config": {"name": "drop", "rate": 0.25}},
    {"class_name": "Flatten", "config": {"name": "flat"}},
    {"class_name": "Dense", "config": {"name": "logits", "units": 10}},
]


def write_model(folder, layers) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(folder / "model.keras", "w") as z:
        z.writestr("config.json", json.dumps({"class_name": "Functional", "config": {"layers": layers}}))


def test_layers_get_shapes_parameters_and_worked_width_formulas(tmp_path):
    write_model(tmp_path / "v1", LAYERS)
    arch = architecture.architecture(tmp_path / "v1")
    rows = {r["name"]: r for r in arch["rows"]}
    assert rows["conv"]["shape"] == "28 x 28 x 16" and rows["conv"]["params"] == 144
    assert rows["conv"]["formula"] == "W = (28 + 2·1 − 3) / 1 + 1 = 28"
    assert rows["bn"]["params"] == 64 and rows["pool"]["shape"] == "14 x 14 x 16"
    assert rows["pool"]["what"].startswith("keeps the strongest response in each 2x2 window: the map shrinks 4x")
    assert rows["conv_b"]["formula"] == "W = (14 + 2·0 − 3) / 1 + 1 = 12" and rows["conv_b"]["params"] == 1160
    assert rows["pool_b"]["formula"] == "W = (12 + 2·0 − 2) / 2 + 1 = 6"
    assert rows["drop"]["what"].startswith("during training only, switches off 25%")
    assert rows["flat"]["shape"] == "288" and rows["logits"]["params"] == 2890
    assert arch["total"] == 144 + 64 + 1160 + 2890


def test_odd_widths_are_rounded_down_and_marked():
    assert architecture._width(7, 2, 2, "valid") == (0, 3, "W = ⌊(7 + 2·0 − 2) / 2⌋ + 1 = 3")


def test_no_model_unknown_layers_or_a_broken_file_give_no_table(tmp_path):
    assert architecture.architecture(tmp_path / "none") is None
    write_model(tmp_path / "odd", [*LAYERS[:2], {"class_name": "Attention", "config": {}}])
    assert architecture.architecture(tmp_path / "odd") is None
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "model.keras").write_bytes(b"not a zip")
    assert architecture.architecture(tmp_path / "bad") is None
