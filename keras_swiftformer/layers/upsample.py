"""Upsampling by an integer factor that exports to TFLite's resize operators."""

import keras
from keras import ops

INTERPOLATIONS = ("nearest", "bilinear")


@keras.saving.register_keras_serializable(package="keras_swiftformer")
class Upsample(keras.layers.Layer):
    """Resizes channels-last feature maps by an integer factor, as torch's
    `F.interpolate(scale_factor=factor, mode=..., align_corners=False)`.

    `keras.layers.UpSampling2D(interpolation="nearest")` repeats rows and columns, which
    TFLite writes as TILE + RESHAPE, operators the Edge TPU does not map; a resize becomes
    one RESIZE_NEAREST_NEIGHBOR (or RESIZE_BILINEAR) that it does. For an integer factor,
    half-pixel nearest-neighbour sampling picks the same pixels as repetition.
    """

    def __init__(self, factor=2, interpolation="nearest", **kwargs):
        super().__init__(**kwargs)
        if interpolation not in INTERPOLATIONS:
            raise ValueError(f"`interpolation` must be one of {INTERPOLATIONS}. Received: {interpolation!r}")
        self.factor = int(factor)
        self.interpolation = interpolation

    def call(self, inputs):
        shape = ops.shape(inputs)
        size = (shape[1] * self.factor, shape[2] * self.factor)
        return ops.image.resize(inputs, size, interpolation=self.interpolation, antialias=False,
                                data_format="channels_last")

    def compute_output_shape(self, input_shape):
        batch, height, width, channels = input_shape
        scale = lambda side: None if side is None else side * self.factor  # noqa: E731
        return (batch, scale(height), scale(width), channels)

    def get_config(self):
        return {**super().get_config(), "factor": self.factor, "interpolation": self.interpolation}
