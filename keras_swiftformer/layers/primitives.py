"""Keras layers configured to behave like their PyTorch counterparts in SwiftFormer.

Parity pitfalls handled here, once:
* PyTorch pads a 3x3 stride-2 convolution by one pixel on every side; Keras' "same" pads
  asymmetrically for even inputs, so strided convolutions get an explicit ZeroPadding2D.
* PyTorch BatchNorm uses eps=1e-5 and momentum 0.1 (new = 0.9 old + 0.1 batch), which is
  Keras' momentum=0.9; the Keras defaults (1e-3, 0.99) would change outputs and fine-tuning.
* Everything is channels-last regardless of the global `image_data_format`.
"""

import keras

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


def conv2d(filters, kernel_size, name, strides=1, padding="valid", dtype=None):
    return keras.layers.Conv2D(
        filters,
        kernel_size,
        strides=strides,
        padding=padding,
        data_format=DATA_FORMAT,
        kernel_initializer=keras.initializers.TruncatedNormal(stddev=0.02),
        name=name,
        dtype=dtype,
    )


def depthwise_conv2d(kernel_size, name, dtype=None):
    # Stride 1 with an odd kernel: "same" pads symmetrically, exactly like padding=k//2.
    return keras.layers.DepthwiseConv2D(
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
