"""The digit CNN layer by layer, read from the saved model's ``config.json`` (no TensorFlow needed).

For each layer: its kind in words, what it does (in the terms of an introductory CNN course), its output size and
its parameter count; for every convolution and pooling layer the output-width formula W = (N + 2P - F) / S + 1
worked out with the layer's own N, P, F and S. The ``.keras`` file is a zip archive: only its ``config.json`` is
read, and only a sequential chain of the layer kinds below is understood (anything else gives no table).
"""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

MODEL_FILE = "model.keras"
CONFIG_MEMBER = "config.json"
#: A config larger than this is not a digit CNN's: refuse to read it.
MAX_CONFIG_BYTES = 5_000_000
#: What each layer kind does, in words.
WHAT = {
    "InputLayer": "the digit image: 28 x 28 pixels, one grey channel",
    "Rescaling": "scales the pixel values to 0-1",
    "Conv2D": "{filters} filters of {f}x{f} pixels slide over the map; each learns one pattern (a stroke, an edge, "
              "a corner, later a loop) and answers how strongly it sees it at every position",
    "BatchNormalization": "rescales each channel to a steady mean and spread, which makes training faster and "
                          "steadier",
    "ReLU": "keeps positive responses and sets negative ones to 0 (the non-linearity)",
    "Activation": "applies a non-linear function to every value",
    "MaxPooling2D": "keeps the strongest response in each {f}x{f} window: the map shrinks {ratio}x, the network "
                    "cares less where exactly a stroke is",
    "Dropout": "during training only, switches off {rate:.0%} of the values at random so the network cannot rely on "
               "any one of them (fights overfitting)",
    "Flatten": "lays the maps out as one long vector for the dense layers",
    "Dense": "{units} units, each weighing every input value",
}


def read_layers(model_dir: Path) -> list[dict]:
    """The layer list of ``model_dir/model.keras`` (``[]`` when there is no model or it cannot be read)."""
    path = Path(model_dir) / MODEL_FILE
    try:
        with zipfile.ZipFile(path) as archive:
            info = archive.getinfo(CONFIG_MEMBER)
            if info.file_size > MAX_CONFIG_BYTES:
                return []
            config = json.loads(archive.read(info))
    except (OSError, KeyError, ValueError, zipfile.BadZipFile):
        return []
    layers = config.get("config", {}).get("layers") if isinstance(config, dict) else None
    return layers if isinstance(layers, list) else []


def _pair(value, default: int = 1) -> int:
    """The first of a Keras ``(h, w)`` pair (the network is square), or ``value`` itself."""
    if isinstance(value, list | tuple):
        return int(value[0]) if value else default
    return int(value) if isinstance(value, int) else default


def _width(n: int, f: int, s: int, padding: str) -> tuple[int, int, str]:
    """``(P, W, formula)``: the padding, the output width and the formula worked out (rounded down, marked
    with ⌊ ⌋, when the window does not fit a whole number of times)."""
    p = (f - 1) // 2 if padding == "same" else 0
    w = (n + 2 * p - f) // s + 1
    inner = f"({n} + 2·{p} − {f}) / {s}"
    exact = (n + 2 * p - f) % s == 0
    return p, w, f"W = {inner if exact else '⌊' + inner + '⌋'} + 1 = {w}"


def layer_rows(layers: list[dict]) -> list[dict]:
    """One row per layer: ``name``, ``kind``, ``what``, ``shape`` (e.g. ``28 x 28 x 16``), ``params`` and, for
    convolution and pooling, ``formula``. ``[]`` when a layer kind is not understood."""
    rows, shape = [], None
    for layer in layers:
        kind, c = layer.get("class_name"), layer.get("config", {})
        formula, params, what = "", 0, WHAT.get(kind)
        if what is None:
            return []
        if kind == "InputLayer":
            shape = list(c.get("batch_shape") or c.get("batch_input_shape") or [])[1:]
        elif shape is None:
            return []
        elif kind == "Conv2D":
            f, s = _pair(c.get("kernel_size")), _pair(c.get("strides"))
            p, w, formula = _width(shape[0], f, s, str(c.get("padding")))
            params = (f * f * shape[2] + (1 if c.get("use_bias", True) else 0)) * int(c["filters"])
            what = what.format(filters=c["filters"], f=f)
            shape = [w, w, int(c["filters"])]
        elif kind == "MaxPooling2D":
            f = _pair(c.get("pool_size"), 2)
            s = _pair(c.get("strides"), f) if c.get("strides") else f
            p, w, formula = _width(shape[0], f, s, str(c.get("padding")))
            what = what.format(f=f, ratio=(shape[0] // max(w, 1)) ** 2)
            shape = [w, w, shape[2]]
        elif kind == "BatchNormalization":
            params = 4 * shape[-1]
        elif kind == "Dropout":
            what = what.format(rate=float(c.get("rate", 0)))
        elif kind == "Flatten":
            size = 1
            for d in shape:
                size *= d
            shape = [size]
        elif kind == "Dense":
            params = (shape[-1] + (1 if c.get("use_bias", True) else 0)) * int(c["units"])
            what = what.format(units=c["units"])
            shape = [int(c["units"])]
        rows.append({"name": str(c.get("name", "")), "kind": kind, "what": what,
                     "shape": " x ".join(str(d) for d in shape), "params": params, "formula": formula})
    return rows


def architecture(model_dir: Path | None) -> dict | None:
    """The layer table and the total parameter count of the model in ``model_dir`` (``None`` without one)."""
    rows = layer_rows(read_layers(model_dir)) if model_dir is not None else []
    return {"rows": rows, "total": sum(r["params"] for r in rows)} if rows else None
