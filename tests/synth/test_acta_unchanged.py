"""The acta's synthetic sheets stay what they were before the generator learnt other templates (issue 15).

Recorded fingerprints (``data/acta_fingerprint.npz``) of a few sheets of a classic, tampered batch and of a wide
(``all`` styles, quarter turns) batch: a hash of their truth.csv and boxes.csv rows (floats rounded to 6 decimals,
so a different OpenCV build's last-bit differences do not count) and the mean grey of every 16 x 16 pixel block of
the rendered scan (equal within ``PIXEL_TOLERANCE`` grey levels: a moved or changed digit, stroke, stain or scan
setting moves some block far more). A deliberate change to the acta's generator must regenerate the file:
``python -m tests.synth.test_acta_unchanged`` (and say why in the change).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from pipeline.synth import SynthSettings, render_sheet
from tests.synth.common import FAST, TAMPERED

GOLDEN = Path(__file__).with_name("data") / "acta_fingerprint.npz"
BLOCK = 16
PIXEL_TOLERANCE = 2.0
INDICES = (1, 2, 3, 4)
CASES = {"classic": {**FAST, **TAMPERED, "seed": 11},
         "all": {**FAST, "seed": 5, "style_set": "all", "quarter_turn_rate": 0.3}}


def _canonical(value: object) -> object:
    if isinstance(value, float):
        return round(value, 6)
    if isinstance(value, str) and value.startswith("["):  # the homography, a JSON list of floats
        return [round(v, 6) for v in json.loads(value)]
    if isinstance(value, (np.integer, np.bool_)):
        return value.item()
    return value


def rows_hash(rows: list[dict]) -> str:
    """sha256 of table rows with floats rounded (a truth row, or a sheet's boxes rows)."""
    canonical = [{k: _canonical(v) for k, v in row.items()} for row in rows]
    return hashlib.sha256(json.dumps(canonical, sort_keys=True, default=str).encode()).hexdigest()


def block_means(image: np.ndarray) -> np.ndarray:
    """Mean grey of every BLOCK x BLOCK block (float32)."""
    grey = image if image.ndim == 2 else cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
    h, w = grey.shape[0] // BLOCK * BLOCK, grey.shape[1] // BLOCK * BLOCK
    return grey[:h, :w].reshape(h // BLOCK, BLOCK, w // BLOCK, BLOCK).mean(axis=(1, 3)).astype(np.float32)


def fingerprints(digits) -> dict[str, object]:
    """The fingerprint of every recorded sheet, by ``<case>_<index>_<part>``."""
    out = {}
    for case, kw in CASES.items():
        settings = SynthSettings(**kw)
        for index in INDICES:
            sheet = render_sheet(index, settings, digits)
            key = f"{case}_{index}"
            out[f"{key}_truth"] = rows_hash([sheet.truth])
            out[f"{key}_boxes"] = rows_hash(sheet.boxes)
            out[f"{key}_pixels"] = block_means(sheet.image)
    return out


@pytest.fixture(scope="module")
def current(digits):
    return fingerprints(digits)


@pytest.fixture(scope="module")
def golden():
    with np.load(GOLDEN, allow_pickle=False) as data:
        return {k: data[k] for k in data.files}


@pytest.mark.parametrize("case", list(CASES))
@pytest.mark.parametrize("index", INDICES)
def test_acta_sheets_are_unchanged(current, golden, case, index):
    key = f"{case}_{index}"
    assert current[f"{key}_truth"] == str(golden[f"{key}_truth"]), "truth.csv row changed"
    assert current[f"{key}_boxes"] == str(golden[f"{key}_boxes"]), "boxes.csv rows changed"
    pixels, recorded = current[f"{key}_pixels"], golden[f"{key}_pixels"].astype(np.float32)
    assert pixels.shape == recorded.shape
    assert float(np.abs(pixels - recorded).max()) <= PIXEL_TOLERANCE, "the scan's pixels changed"


if __name__ == "__main__":  # regenerate the recorded fingerprints (a deliberate change to the acta generator)
    from pipeline.mnist import load_mnist
    from pipeline.synth import DigitSource

    GOLDEN.parent.mkdir(exist_ok=True)
    prints = fingerprints(DigitSource.from_mnist(load_mnist(allow_download=False)))
    np.savez_compressed(GOLDEN, **{k: np.asarray(v, np.float16) if isinstance(v, np.ndarray) else np.asarray(v)
                                   for k, v in prints.items()})
    print(f"wrote {GOLDEN}")
