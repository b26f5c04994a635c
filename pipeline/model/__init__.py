"""model stage: the digit recogniser (Keras CNN on MNIST), its calibration, versions and retraining.

``DigitRecogniser`` is the interface the rest of the pipeline uses; importing this package does not import
TensorFlow (Keras is loaded only when a model is built, trained or loaded).
"""

from __future__ import annotations

import importlib

#: Public name -> the module defining it (imported on first use).
_EXPORTS = {
    "DigitRecogniser": "pipeline.model.recogniser",
    "Predictions": "pipeline.model.recogniser",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    """Import a public name's module on first use (PEP 562), so that importing the package (as every
    ``python -m pipeline`` call does through its command modules) loads no heavy library."""
    if name in _EXPORTS:
        value = getattr(importlib.import_module(_EXPORTS[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
