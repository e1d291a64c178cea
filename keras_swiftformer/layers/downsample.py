import keras

from keras_swiftformer.layers.primitives import (
    apply,
    batch_norm,
    build_chain,
    conv2d,
    fold_batch_norm,
    symmetric_padding,
)


@keras.saving.register_keras_serializable(package="keras_swiftformer")
class DownsampleEmbedding(keras.layers.Layer):
    """Downsampling between two stages: a 3x3 stride-2 convolution and BatchNorm.

    Halves the resolution and changes the width from one stage's to the next's (the
    official code calls it `Embedding`).

    Args:
        filters: output channels (the width of the next stage).
        kernel_size, strides, padding: the official defaults are 3, 2 and 1.
        fused: the inference form, the BatchNorm folded into the convolution (`fold_into`).
    """

    def __init__(self, filters, kernel_size=3, strides=2, padding=1, fused=False, **kwargs):
        super().__init__(**kwargs)
        self.fused = bool(fused)
        self.filters = int(filters)
        self.kernel_size = int(kernel_size)
        self.strides = int(strides)
        self.padding = int(padding)
        dtype = self.dtype_policy
        self.pad = symmetric_padding(self.padding, "pad", dtype=dtype)
        self.proj = conv2d(self.filters, self.kernel_size, "proj", strides=self.strides, dtype=dtype)
        self.norm = None if self.fused else batch_norm("norm", dtype=dtype)

    def build(self, input_shape):
        build_chain((self.pad, self.proj, self.norm), input_shape)

    def call(self, inputs, training=None):
        if self.fused:
            return apply(self.proj, apply(self.pad, inputs, fused=True), fused=True)
        return self.norm(self.proj(self.pad(inputs)), training=training)

    def fold_into(self, target):
        """Writes these weights into `target`, a built `fused=True` copy."""
        fold_batch_norm(self.proj, self.norm, target.proj)

    def compute_output_shape(self, input_shape):
        return self.proj.compute_output_shape(self.pad.compute_output_shape(input_shape))

    def get_config(self):
        return {
            **super().get_config(),
            "filters": self.filters,
            "kernel_size": self.kernel_size,
            "strides": self.strides,
            "padding": self.padding,
            "fused": self.fused,
        }
