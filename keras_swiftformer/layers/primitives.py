"""Keras layers configured to behave like their PyTorch counterparts in SwiftFormer.

Parity pitfalls handled here, once:
* PyTorch pads a 3x3 stride-2 convolution by one pixel on every side; Keras' "same" pads
  asymmetrically for even inputs, so strided convolutions get an explicit ZeroPadding2D.
* PyTorch BatchNorm uses eps=1e-5 and momentum 0.1 (new = 0.9 old + 0.1 batch), which is
  Keras' momentum=0.9; the Keras defaults (1e-3, 0.99) would change outputs and fine-tuning.
* Everything is channels-last regardless of the global `image_data_format`.
"""

import keras
import numpy as np
from keras import ops

from keras_swiftformer.layers.initializers import TruncatedNormal
from keras_swiftformer.layers.numerics import exact_gelu

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


def compiled_by_xla():
    """Whether the code being traced is compiled by XLA: always on JAX; on TensorFlow inside
    a `tf.function(jit_compile=True)` (`model.compile(jit_compile=True)`, XLA on a GPU by
    default). Plain TensorFlow graphs, and so the TFLite and ONNX exports, are not."""
    backend = keras.backend.backend()
    if backend == "jax":
        return True
    if backend != "tensorflow":
        return False
    import tensorflow as tf  # the TensorFlow backend is running: TensorFlow is there

    # The test `tf.function` itself makes (it is not public): an XLA context on the graph
    # being traced or on one of its outer graphs.
    from tensorflow.python.ops import control_flow_util

    return bool(control_flow_util.GraphOrParentsInXlaContext(tf.compat.v1.get_default_graph()))


@keras.saving.register_keras_serializable(package="keras_swiftformer")
class Conv2D(keras.layers.Conv2D):
    """Keras' Conv2D (same weights, same result); where XLA compiles (JAX, TensorFlow with
    `jit_compile`) a 1x1 stride-1 convolution is one matrix product over the channels and some
    strided convolutions a product of patches (see `_patches_times_kernel`); on PyTorch every
    convolution runs without layout copies (`_torch_pointwise_conv`, `_torch_channels_last_conv`).

    On channels-last tensors a pointwise convolution is exactly `x @ W`. XLA:CPU runs it about
    twice as fast as a dot than as a convolution (0.41 vs 0.68 ms for 56x56x48 -> 192 on 2
    cores, jax 0.10). Plain TensorFlow graphs keep the native convolution, which is the fast
    one there, so TFLite export still writes CONV_2D.
    """

    def call(self, inputs):
        backend, xla = keras.backend.backend(), compiled_by_xla()
        if (backend != "torch" and not xla) or self.groups != 1 or self.data_format != "channels_last" \
                or self.padding != "valid" or self.dilation_rate != (1, 1):
            return super().call(inputs)
        channels = self.kernel.shape[2]
        pointwise = self.kernel_size == (1, 1) and self.strides == (1, 1)
        if backend == "torch":
            if pointwise:
                return _torch_pointwise_conv(self, inputs)
            return _torch_channels_last_conv(self, inputs, padding=0, groups=1)
        if pointwise:
            outputs = ops.matmul(inputs, ops.reshape(self.kernel, (channels, self.filters)))
        elif channels <= 4 or channels >= 128:
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


def _torch_pointwise_conv(layer, inputs):
    """A 1x1 convolution on the PyTorch backend as one `addmm` (bias included) over the
    channels-last tensor, with no layout copy."""
    import torch.nn.functional as functional  # the torch backend is running: torch is there

    kernel = ops.convert_to_tensor(layer.kernel)
    weight = kernel.reshape(kernel.shape[2], kernel.shape[3]).T
    bias = ops.convert_to_tensor(layer.bias) if layer.use_bias else None
    outputs = functional.linear(ops.convert_to_tensor(inputs), weight, bias)
    return layer.activation(outputs) if layer.activation is not None else outputs


def _torch_channels_last_conv(layer, inputs, padding, groups):
    """`layer`'s convolution on the PyTorch backend with no layout copy.

    Keras' torch convolution copies its NHWC input to NCHW and then back to channels-last
    memory before every call, and the output once more (about a fifth of SwiftFormer's time at
    batch 1). An NHWC tensor viewed as NCHW (a permute, no copy) is already in PyTorch's
    `channels_last` memory format, which its oneDNN convolutions take and return as they are;
    the output viewed back is again a plain NHWC tensor.
    """
    outputs = _torch_nchw_conv(layer, ops.convert_to_tensor(inputs).permute(0, 3, 1, 2), padding, groups)
    outputs = outputs.permute(0, 2, 3, 1)
    return layer.activation(outputs) if layer.activation is not None else outputs


def _torch_nchw_conv(layer, inputs, padding=0, groups=1):
    """`layer`'s convolution, without its activation, on a torch NCHW tensor."""
    import torch.nn.functional as functional  # the torch backend is running: torch is there

    # Keras kernels are (k_h, k_w, in / groups, out) for Conv2D and (k_h, k_w, in, 1) for a
    # depthwise one; PyTorch wants (out, in / groups, k_h, k_w).
    kernel = ops.convert_to_tensor(layer.kernel)
    weight = kernel.permute(3, 2, 0, 1) if groups == 1 else kernel.permute(2, 3, 0, 1)
    bias = ops.convert_to_tensor(layer.bias) if layer.use_bias else None
    return functional.conv2d(inputs, weight, bias, stride=layer.strides, padding=padding, groups=groups)


def pointwise_mlp(fc1, fc2, inputs, residual=None):
    """`residual + fc2(GELU(fc1(inputs)))` for an inference form's two 1x1 convolutions
    (built, float32: their `call` is used directly, as `apply(..., fused=True)` does).

    Under `torch.compile` the chain runs on the NCHW view of the channels-last tensors (a
    permute, no copy), so inductor sees convolution, GELU, convolution, add, and folds the GELU
    and the add into oneDNN's convolutions as post-ops, as it does for the official model. As
    two layers it sees a permute between each convolution and its GELU, which stops that
    fusion: SwiftFormer-XS at batch 8 then spent 23 ms in separate GELU and add kernels
    against the official model's 11 (`benchmarks.keras_profile --batch-size 8 --compile`).
    Eager, `addmm` is the faster pointwise layer.
    """
    if keras.backend.backend() == "torch" and _torch_compiling():
        x = _torch_nchw_conv(fc1, ops.convert_to_tensor(inputs).permute(0, 3, 1, 2))
        x = _torch_nchw_conv(fc2, exact_gelu(x))
        if residual is not None:
            x = x + ops.convert_to_tensor(residual).permute(0, 3, 1, 2)
        return x.permute(0, 2, 3, 1)
    outputs = fc2.call(exact_gelu(fc1.call(inputs)))
    return outputs if residual is None else residual + outputs


def _torch_compiling():
    import torch  # the torch backend is running: torch is there

    return torch.compiler.is_compiling()


def conv2d(filters, kernel_size, name, strides=1, padding="valid", dtype=None):
    return Conv2D(
        filters,
        kernel_size,
        strides=strides,
        padding=padding,
        data_format=DATA_FORMAT,
        kernel_initializer=TruncatedNormal(stddev=0.02),
        name=name,
        dtype=dtype,
    )


@keras.saving.register_keras_serializable(package="keras_swiftformer")
class DepthwiseConv2D(keras.layers.DepthwiseConv2D):
    """Keras' depthwise convolution (same weights, same result), computed where XLA compiles
    (see `compiled_by_xla`) as a sum of k*k shifted, per-channel-scaled copies of the input,
    and on PyTorch without layout copies (see `_torch_channels_last_conv`).

    XLA:CPU lowers a grouped convolution with one channel per group to a generic loop: on 2
    cores a 3x3 depthwise convolution over 56x56x48 takes 3.7 ms, against 0.23 ms for the
    shifted sum, which XLA fuses into one pass (measured with jax 0.10). In plain TensorFlow
    graphs (and in TFLite export, which needs DEPTHWISE_CONV_2D) the native kernel is the fast
    one, so it stays. Only stride 1, "same" padding and an odd kernel take this path.
    """

    def call(self, inputs):
        if (keras.backend.backend() != "torch" and not compiled_by_xla()) or self.strides != (1, 1) \
                or self.padding != "same" \
                or self.dilation_rate != (1, 1) or self.depth_multiplier != 1 \
                or self.data_format != "channels_last" or self.kernel_size[0] % 2 == 0 \
                or self.kernel_size[1] % 2 == 0:
            return super().call(inputs)
        if keras.backend.backend() == "torch":
            padding = (self.kernel_size[0] // 2, self.kernel_size[1] // 2)
            return _torch_channels_last_conv(self, inputs, padding=padding, groups=inputs.shape[-1])
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
        depthwise_initializer=TruncatedNormal(stddev=0.02),
        name=name,
        dtype=dtype,
    )


@keras.saving.register_keras_serializable(package="keras_swiftformer")
class ZeroPadding2D(keras.layers.ZeroPadding2D):
    """Keras' ZeroPadding2D; on PyTorch one `torch.nn.functional.pad`.

    Keras pads through `keras.ops.pad`, which creates a new uniquely named `Pad` operation at
    every call; under `torch.compile` that name is a guard that fails each time, so the model
    recompiles until dynamo gives up and runs it uncompiled.
    """

    def call(self, inputs):
        if keras.backend.backend() != "torch" or self.data_format != "channels_last":
            return super().call(inputs)
        import torch.nn.functional as functional  # the torch backend is running: torch is there

        (top, bottom), (left, right) = self.padding
        # torch pads from the last axis backwards: channels, then width, then height.
        return functional.pad(ops.convert_to_tensor(inputs), (0, 0, left, right, top, bottom))


def symmetric_padding(pad, name, dtype=None):
    return ZeroPadding2D(pad, data_format=DATA_FORMAT, name=name, dtype=dtype)


def dense(units, name, dtype=None):
    return keras.layers.Dense(
        units,
        kernel_initializer=TruncatedNormal(stddev=0.02),
        name=name,
        dtype=dtype,
    )


def batch_norm_affine(layer):
    """`(scale, shift)` with `layer(x) == x * scale + shift` at inference, in float64 (what
    folding a BatchNorm into its neighbour multiplies and adds)."""
    gamma = _numpy(layer.gamma) if layer.scale else 1.0
    beta = _numpy(layer.beta) if layer.center else 0.0
    scale = gamma / np.sqrt(_numpy(layer.moving_variance) + layer.epsilon)
    return scale, beta - _numpy(layer.moving_mean) * scale


def _numpy(variable):
    return np.asarray(ops.convert_to_numpy(variable), "float64")


def assign_folded(layer, kernel, bias):
    """Sets a folded convolution or dense layer's kernel and bias (computed in float64)."""
    layer.kernel.assign(np.asarray(kernel, layer.kernel.dtype))
    layer.bias.assign(np.asarray(bias, layer.bias.dtype))


def fold_batch_norm(conv, norm, target):
    """Sets `target` (a convolution like `conv`) to compute `norm(conv(x))` at inference: one
    convolution with kernel `k * s` and bias `b * s + t`."""
    scale, shift = batch_norm_affine(norm)
    kernel, bias = kernel_and_bias(conv)
    assign_folded(target, kernel * scale, bias * scale + shift)


def kernel_and_bias(layer):
    """A convolution or dense layer's kernel and bias as float64 arrays."""
    return _numpy(layer.kernel), _numpy(layer.bias)


def apply(layer, inputs, fused):
    """`layer(inputs)`, or in an inference form (`fused`) `layer.call(inputs)`.

    Keras' `__call__` bookkeeping (input conversion, autocast and name scopes, masks) costs
    about 0.2 ms a layer on the PyTorch backend, more than the arithmetic of most of
    SwiftFormer's layers at batch 1. An inference form's sublayers are built, float and
    maskless, so their `call` computes the same thing without it.
    """
    return layer.call(inputs) if fused else layer(inputs)


def build_chain(layers, input_shape):
    """Builds `layers` one after another, feeding each the previous one's output shape."""
    shape = input_shape
    for layer in layers:
        if layer is None:  # a sublayer folded away (`fused=True`)
            continue
        layer.build(shape)
        shape = layer.compute_output_shape(shape)
    return shape
