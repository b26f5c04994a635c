"""model stage: the digit recogniser (Keras CNN on MNIST), its calibration, versions and retraining.

``DigitRecogniser`` is the interface the rest of the pipeline uses; importing this package does not import
TensorFlow (Keras is loaded only when a model is built, trained or loaded).
"""

from pipeline.model.recogniser import DigitRecogniser, Predictions

__all__ = ["DigitRecogniser", "Predictions"]
