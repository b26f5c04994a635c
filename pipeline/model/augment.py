"""Training-only augmentation imitating pen and scan variation, as one Keras layer.

Real tally sheets differ from MNIST in slant, size, position, stroke width (ballpoint vs felt pen), scanner blur and
noise. :class:`PenScanAugment` draws one random affine transform per digit (rotation, shear, zoom, shift, applied
with a single interpolation so the digit is resampled once), then randomly thickens or thins the strokes with a
grey-level dilation/erosion, blurs, and adds noise. It runs inside the training graph only (``training=True``), so
it is never saved into the model file and inference stays untouched. Pixel values are 0-255, white on black.
"""

from __future__ import annotations

import math

import keras
from keras import ops

from pipeline.model.settings import AugmentSettings

#: Centre of a 28x28 image in pixel coordinates: transforms rotate and zoom about it.
CENTRE = 13.5
MAX_PIXEL = 255.0
#: Stroke-width change: a 2x2 grey-level dilation/erosion widens/narrows strokes by about one pixel.
MORPH_SIZE = 2
#: 3x3 binomial blur kernel, a cheap stand-in for a Gaussian with sigma about 0.7 px (a soft scanner).
BLUR_KERNEL = ((1.0, 2.0, 1.0), (2.0, 4.0, 2.0), (1.0, 2.0, 1.0))


@keras.saving.register_keras_serializable(package="tally_audit")
class PenScanAugment(keras.layers.Layer):
    """Random affine + stroke width + blur + noise, applied per image when ``training`` is true."""

    def __init__(self, settings: AugmentSettings | None = None, seed: int = 0, **kwargs):
        super().__init__(**kwargs)
        self.settings = settings or AugmentSettings()
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed)
        kernel = ops.convert_to_tensor(BLUR_KERNEL, dtype="float32")
        self.blur_kernel = ops.reshape(kernel / ops.sum(kernel), (3, 3, 1, 1))

    def _uniform(self, n, low: float, high: float):
        return keras.random.uniform((n,), low, high, seed=self.seed_generator)

    def affine_params(self, n):
        """Per-image ``(N, 8)`` projective transforms mapping output pixels to input pixels."""
        s = self.settings
        angle = self._uniform(n, -math.radians(s.rotation_deg), math.radians(s.rotation_deg))
        shear = ops.tan(self._uniform(n, -math.radians(s.shear_deg), math.radians(s.shear_deg)))
        inv_zoom = 1.0 / self._uniform(n, 1.0 - s.zoom, 1.0 + s.zoom)
        tx = self._uniform(n, -s.shift_px, s.shift_px)
        ty = self._uniform(n, -s.shift_px, s.shift_px)
        cos, sin = ops.cos(angle) * inv_zoom, ops.sin(angle) * inv_zoom
        a0, a1 = cos, cos * shear - sin
        b0, b1 = sin, sin * shear + cos
        a2 = CENTRE - a0 * CENTRE - a1 * CENTRE - tx
        b2 = CENTRE - b0 * CENTRE - b1 * CENTRE - ty
        zeros = ops.zeros_like(a0)
        return ops.stack([a0, a1, a2, b0, b1, b2, zeros, zeros], axis=1)

    def _pick(self, n, p: float, changed, unchanged):
        mask = ops.reshape(self._uniform(n, 0.0, 1.0) < p, (-1, 1, 1, 1))
        return ops.where(mask, changed, unchanged)

    def call(self, images, training=None):
        if not training:
            return images
        s = self.settings
        n = ops.shape(images)[0]
        x = ops.image.affine_transform(images, self.affine_params(n), interpolation="bilinear",
                                       fill_mode="constant", fill_value=0, data_format="channels_last")
        thick = ops.max_pool(x, MORPH_SIZE, strides=1, padding="same")
        thin = -ops.max_pool(-x, MORPH_SIZE, strides=1, padding="same")
        u = ops.reshape(self._uniform(n, 0.0, 1.0), (-1, 1, 1, 1))
        x = ops.where(u < s.p_thicken, thick, ops.where(u < s.p_thicken + s.p_thin, thin, x))
        x = self._pick(n, s.p_blur, ops.depthwise_conv(x, self.blur_kernel, padding="same"), x)
        noise_scale = ops.reshape(self._uniform(n, 0.0, s.noise_std * MAX_PIXEL), (-1, 1, 1, 1))
        x = x + keras.random.normal(ops.shape(x), seed=self.seed_generator) * noise_scale
        return ops.clip(x, 0.0, MAX_PIXEL)

    def compute_output_shape(self, input_shape):
        return input_shape
