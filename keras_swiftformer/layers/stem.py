import keras
from keras import ops

from keras_swiftformer.layers.primitives import (
    apply,
    batch_norm,
    build_chain,
    conv2d,
    fold_batch_norm,
    symmetric_padding,
)


@keras.saving.register_keras_serializable(package="keras_swiftformer")
class Stem(keras.layers.Layer):
    """Patch embedding: two 3x3 stride-2 convolutions, each followed by BatchNorm and ReLU.

    Maps `(B, H, W, C_in)` to `(B, ceil(H/4), ceil(W/4), filters)`; the first convolution has
    `filters // 2` channels, as in the official model.

    Args:
        filters: output channels (the width of the first stage).
        fused: the inference form, each BatchNorm folded into its convolution (`fold_into`).
    """

    def __init__(self, filters, fused=False, **kwargs):
        super().__init__(**kwargs)
        self.filters = int(filters)
        self.fused = bool(fused)
        dtype = self.dtype_policy
        self.pad1 = symmetric_padding(1, "pad1", dtype=dtype)
        self.conv1 = conv2d(self.filters // 2, 3, "conv1", strides=2, dtype=dtype)
        self.norm1 = None if self.fused else batch_norm("norm1", dtype=dtype)
        self.pad2 = symmetric_padding(1, "pad2", dtype=dtype)
        self.conv2 = conv2d(self.filters, 3, "conv2", strides=2, dtype=dtype)
        self.norm2 = None if self.fused else batch_norm("norm2", dtype=dtype)

    def build(self, input_shape):
        build_chain((self.pad1, self.conv1, self.norm1, self.pad2, self.conv2, self.norm2), input_shape)

    def call(self, inputs, training=None):
        if self.fused:
            x = ops.relu(apply(self.conv1, apply(self.pad1, inputs, fused=True), fused=True))
            return ops.relu(apply(self.conv2, apply(self.pad2, x, fused=True), fused=True))
        x = self.conv1(self.pad1(inputs))
        x = ops.relu(self.norm1(x, training=training))
        x = self.conv2(self.pad2(x))
        return ops.relu(self.norm2(x, training=training))

    def fold_into(self, target):
        """Writes these weights into `target`, a built `fused=True` copy: `conv(x) s + t` is
        one convolution with kernel `k s` and bias `b s + t`."""
        for conv, norm in ((self.conv1, self.norm1), (self.conv2, self.norm2)):
            fold_batch_norm(conv, norm, getattr(target, conv.name))

    def compute_output_shape(self, input_shape):
        shape = input_shape
        for layer in (self.pad1, self.conv1, self.pad2, self.conv2):
            shape = layer.compute_output_shape(shape)
        return shape

    def get_config(self):
        return {**super().get_config(), "filters": self.filters, "fused": self.fused}

