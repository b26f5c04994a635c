"""model stage: the digit recogniser (Keras CNN on MNIST), its calibration, versions and retraining.

``DigitRecogniser`` is the interface the rest of the pipeline uses; importing this package does not import
TensorFlow (Keras is loaded only when a model is built, trained or loaded).
"""

from __future__ import annotations

from pipeline.lazy import lazy_getattr

#: Public name -> the module defining it (imported on first use).
_EXPORTS = {
    "DigitRecogniser": "pipeline.model.recogniser",
    "Predictions": "pipeline.model.recogniser",
}

__all__ = sorted(_EXPORTS)


__getattr__ = lazy_getattr(__name__, _EXPORTS, globals())
