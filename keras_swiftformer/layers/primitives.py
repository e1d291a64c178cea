"""Keras layers configured to behave like their PyTorch counterparts in SwiftFormer.

Parity pitfalls handled here, once:
* PyTorch pads a 3x3 stride-2 convolution by one pixel on every side; Keras' "same" pads
  asymmetrically for even inputs, so strided convolutions get an explicit ZeroPadding2D.
* PyTorch BatchNorm uses eps=1e-5 and momentum 0.1 (new = 0.9 old + 0.1 batch), which is
  Keras' momentum=0.9; the Keras defaults (1e-3, 0.99) would change outputs and fine-tuning.
* Everything is channels-last regardless of the global `image_data_format`.
"""

import keras
from keras import ops

BATCH_NORM_EPSILON = 1e-5
BATCH_NORM_MOMENTUM = 0.9
DATA_FORMAT = "channels_last"


def batch_norm(name, dtype=None):
    return keras.layers.BatchNormalization(
        axis=-1,
        epsilon=BATCH_NORM_EPSILON,
        momentum=BATCH_NORM_MOMENTUM,
        name=name,
        dtype=dtype,
    )


@keras.saving.register_keras_serializable(package="keras_swiftformer")
class Conv2D(keras.layers.Conv2D):
    """Keras' Conv2D (same weights, same result); a 1x1 stride-1 convolution is computed as
    one matrix product over the channels on the JAX and PyTorch backends, and on JAX some
    strided convolutions as a product of patches (see `_patches_times_kernel`).

    On channels-last tensors a pointwise convolution is exactly `x @ W`. XLA:CPU runs it about
    twice as fast as a dot than as a convolution (0.41 vs 0.68 ms for 56x56x48 -> 192 on 2
    cores, jax 0.10), and on PyTorch the matrix product needs none of the NHWC<->NCHW copies
    Keras makes around every torch convolution. TensorFlow keeps its convolution, so TFLite
    export still writes CONV_2D.
    """

    def call(self, inputs):
        backend = keras.backend.backend()
        if backend not in ("jax", "torch") or self.groups != 1 or self.data_format != "channels_last" \
                or self.padding != "valid" or self.dilation_rate != (1, 1):
            return super().call(inputs)
        channels = self.kernel.shape[2]
        if self.kernel_size == (1, 1) and self.strides == (1, 1):
            outputs = ops.matmul(inputs, ops.reshape(self.kernel, (channels, self.filters)))
        elif backend == "jax" and (channels <= 4 or channels >= 128):
            outputs = self._patches_times_kernel(inputs)
        else:
            return super().call(inputs)
        if self.use_bias:
            outputs = outputs + self.bias
        return self.activation(outputs) if self.activation is not None else outputs

    def _patches_times_kernel(self, inputs):
        """The convolution as (strided patches concatenated over channels) @ kernel.

        XLA:CPU's convolution is slow for few input channels (the RGB stem: 2.9 ms vs 1.2 ms
        at 224x224 -> 24 channels) and for the wide stride-2 downsampling (192 -> 384: 1.3 vs
        0.7 ms); for 24-96 input channels its own convolution is faster, so those stay.
        """
        (k_h, k_w), (s_h, s_w) = self.kernel_size, self.strides
        height, width = ops.shape(inputs)[1], ops.shape(inputs)[2]
        out_h, out_w = (height - k_h) // s_h + 1, (width - k_w) // s_w + 1
        patches = [
            inputs[:, i : i + s_h * (out_h - 1) + 1 : s_h, j : j + s_w * (out_w - 1) + 1 : s_w, :]
            for i in range(k_h) for j in range(k_w)
        ]
        kernel = ops.reshape(self.kernel, (k_h * k_w * self.kernel.shape[2], self.filters))
        return ops.matmul(ops.concatenate(patches, axis=-1), kernel)


def conv2d(filters, kernel_size, name, strides=1, padding="valid", dtype=None):
    return Conv2D(
        filters,
        kernel_size,
        strides=strides,
        padding=padding,
        data_format=DATA_FORMAT,
        kernel_initializer=keras.initializers.TruncatedNormal(stddev=0.02),
        name=name,
        dtype=dtype,
    )


@keras.saving.register_keras_serializable(package="keras_swiftformer")
class DepthwiseConv2D(keras.layers.DepthwiseConv2D):
    """Keras' depthwise convolution (same weights, same result), computed on the JAX backend
    as a sum of k*k shifted, per-channel-scaled copies of the input.

    XLA:CPU lowers a grouped convolution with one channel per group to a generic loop: on 2
    cores a 3x3 depthwise convolution over 56x56x48 takes 3.7 ms, against 0.23 ms for the
    shifted sum, which XLA fuses into one pass (measured with jax 0.10). On TensorFlow (and
    in TFLite export, which needs DEPTHWISE_CONV_2D) and PyTorch the native kernels are the
    fast ones, so they stay. Only stride 1, "same" padding and an odd kernel take this path.
    """

    def call(self, inputs):
        if keras.backend.backend() != "jax" or self.strides != (1, 1) or self.padding != "same" \
                or self.dilation_rate != (1, 1) or self.depth_multiplier != 1 \
                or self.data_format != "channels_last" or self.kernel_size[0] % 2 == 0 \
                or self.kernel_size[1] % 2 == 0:
            return super().call(inputs)
        k_h, k_w = self.kernel_size
        padded = ops.pad(inputs, ((0, 0), (k_h // 2, k_h // 2), (k_w // 2, k_w // 2), (0, 0)))
        height, width = ops.shape(inputs)[1], ops.shape(inputs)[2]
        kernel = self.kernel[..., 0]  # (k_h, k_w, channels)
        outputs = None
        for i in range(k_h):
            for j in range(k_w):
                term = padded[:, i : i + height, j : j + width, :] * kernel[i, j]
                outputs = term if outputs is None else outputs + term
        if self.use_bias:
            outputs = outputs + self.bias
        return self.activation(outputs) if self.activation is not None else outputs


def depthwise_conv2d(kernel_size, name, dtype=None):
    # Stride 1 with an odd kernel: "same" pads symmetrically, exactly like padding=k//2.
    return DepthwiseConv2D(
        kernel_size,
        padding="same",
        data_format=DATA_FORMAT,
        depthwise_initializer=keras.initializers.TruncatedNormal(stddev=0.02),
        name=name,
        dtype=dtype,
    )


def symmetric_padding(pad, name, dtype=None):
    return keras.layers.ZeroPadding2D(pad, data_format=DATA_FORMAT, name=name, dtype=dtype)


def dense(units, name, dtype=None):
    return keras.layers.Dense(
        units,
        kernel_initializer=keras.initializers.TruncatedNormal(stddev=0.02),
        name=name,
        dtype=dtype,
    )


def build_chain(layers, input_shape):
    """Builds `layers` one after another, feeding each the previous one's output shape."""
    shape = input_shape
    for layer in layers:
        layer.build(shape)
        shape = layer.compute_output_shape(shape)
    return shape
