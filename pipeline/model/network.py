"""The digit CNN: conv blocks with BatchNorm, pooling and dropout, ending in 10 logits.

The saved model maps float32 ``(N, 28, 28, 1)`` images with values 0-255 (white digit on black, MNIST style) to
unnormalised logits; softmax with the calibrated temperature is applied by :class:`DigitRecogniser`, so
calibration never needs the model file to change. Only built-in Keras layers are used, so the file loads with
``safe_mode=True`` and no custom objects.
"""

from __future__ import annotations

import keras

from pipeline.model.settings import NetworkSettings

IMAGE_SHAPE = (28, 28, 1)
N_CLASSES = 10
#: Name prefix of the layers that form the convolutional base (frozen first when fine-tuning).
CONV_PREFIX = "conv"
HEAD_PREFIX = "head"
#: BatchNorm moving-average momentum: 0.9 settles within a few dozen steps, so short fine-tuning runs work too.
BN_MOMENTUM = 0.9


def _conv_block(x, filters: int, index: int, dropout: float):
    for j in range(2):
        x = keras.layers.Conv2D(filters, 3, padding="same", use_bias=False, name=f"{CONV_PREFIX}{index}_{j}")(x)
        x = keras.layers.BatchNormalization(momentum=BN_MOMENTUM, name=f"{CONV_PREFIX}{index}_{j}_bn")(x)
        x = keras.layers.ReLU(name=f"{CONV_PREFIX}{index}_{j}_relu")(x)
    x = keras.layers.MaxPooling2D(name=f"{CONV_PREFIX}{index}_pool")(x)
    return keras.layers.Dropout(dropout, name=f"{CONV_PREFIX}{index}_drop")(x)


def build_classifier(settings: NetworkSettings) -> keras.Model:
    """The CNN: ``len(widths)`` conv blocks, flatten, one dense layer, 10 logits."""
    inputs = keras.Input(IMAGE_SHAPE, name="digit")
    x = keras.layers.Rescaling(1.0 / 255.0, name="scale")(inputs)
    for i, filters in enumerate(settings.widths):
        x = _conv_block(x, filters, i, settings.dropout)
    x = keras.layers.Flatten(name=f"{HEAD_PREFIX}_flatten")(x)
    x = keras.layers.Dense(settings.dense, use_bias=False, name=f"{HEAD_PREFIX}_dense")(x)
    x = keras.layers.BatchNormalization(momentum=BN_MOMENTUM, name=f"{HEAD_PREFIX}_bn")(x)
    x = keras.layers.ReLU(name=f"{HEAD_PREFIX}_relu")(x)
    x = keras.layers.Dropout(settings.dense_dropout, name=f"{HEAD_PREFIX}_drop")(x)
    logits = keras.layers.Dense(N_CLASSES, name=f"{HEAD_PREFIX}_logits")(x)
    return keras.Model(inputs, logits, name="digit_cnn")


def set_base_trainable(model: keras.Model, trainable: bool) -> None:
    """Freeze or unfreeze the convolutional base; the head always stays trainable."""
    for layer in model.layers:
        if layer.name.startswith(CONV_PREFIX):
            layer.trainable = trainable
