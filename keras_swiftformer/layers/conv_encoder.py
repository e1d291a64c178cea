import keras

from keras_swiftformer.layers.layer_scale import LayerScale
from keras_swiftformer.layers.numerics import exact_gelu
from keras_swiftformer.layers.primitives import (
    apply,
    assign_folded,
    batch_norm,
    batch_norm_affine,
    build_chain,
    conv2d,
    depthwise_conv2d,
    kernel_and_bias,
    pointwise_mlp,
)
from keras_swiftformer.layers.stochastic_depth import StochasticDepth


@keras.saving.register_keras_serializable(package="keras_swiftformer")
class ConvEncoder(keras.layers.Layer):
    """The paper's Conv. Encoder: a residual block for local (spatial) mixing.

    `x + layer_scale * pwconv2(GELU(pwconv1(BN(dwconv3x3(x)))))`, channels-last.

    Args:
        dim: channels of the input and output.
        hidden_dim: channels between the two pointwise convolutions (`mlp_ratio * dim`).
        kernel_size: depthwise kernel size (3 in every SwiftFormer).
        layer_scale_init_value: initial layer scale (the official model uses 1.0 here).
        drop_path_rate: stochastic-depth rate of the residual branch. The official model never
            sets it for this block (only the attention block gets drop path), so the model
            builders leave it at 0.
        fused: the inference form: the BatchNorm is folded into the depthwise convolution and
            the layer scale into `pwconv2` (see `fold_into`), so neither layer exists. Same
            outputs at inference; not for training (it has no BatchNorm left to train).
    """

    def __init__(
        self,
        dim,
        hidden_dim,
        kernel_size=3,
        layer_scale_init_value=1.0,
        drop_path_rate=0.0,
        fused=False,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.fused = bool(fused)
        self.dim = int(dim)
        self.hidden_dim = int(hidden_dim)
        self.kernel_size = int(kernel_size)
        self.layer_scale_init_value = float(layer_scale_init_value)
        self.drop_path_rate = float(drop_path_rate)
        dtype = self.dtype_policy
        self.dwconv = depthwise_conv2d(self.kernel_size, "dwconv", dtype=dtype)
        self.norm = None if self.fused else batch_norm("norm", dtype=dtype)
        self.pwconv1 = conv2d(self.hidden_dim, 1, "pwconv1", dtype=dtype)
        self.pwconv2 = conv2d(self.dim, 1, "pwconv2", dtype=dtype)
        self.layer_scale = None if self.fused else LayerScale(
            self.layer_scale_init_value, name="layer_scale", dtype=dtype
        )
        self.drop_path = StochasticDepth(self.drop_path_rate, name="drop_path", dtype=dtype)

    def build(self, input_shape):
        if input_shape[-1] != self.dim:
            raise ValueError(
                f"{type(self).__name__} '{self.name}' was created for dim={self.dim} channels "
                f"but received an input with {input_shape[-1]} channels. "
                f"Received: input_shape={input_shape}"
            )
        build_chain(
            (self.dwconv, self.norm, self.pwconv1, self.pwconv2, self.layer_scale), input_shape
        )

    def call(self, inputs, training=None):
        if self.fused:
            x = apply(self.dwconv, inputs, fused=True)
            return pointwise_mlp(self.pwconv1, self.pwconv2, x, residual=inputs)
        x = self.norm(self.dwconv(inputs), training=training)
        x = self.pwconv2(exact_gelu(self.pwconv1(x)))
        return inputs + self.drop_path(self.layer_scale(x), training=training)

    def fold_into(self, target):
        """Writes this block's weights into `target`, a built `fused=True` copy of it:
        `dw(x) * s + t` is one depthwise convolution with kernel `k * s` and bias `b * s + t`,
        and the layer scale multiplies `pwconv2`'s output channels."""
        scale, shift = batch_norm_affine(self.norm)
        kernel, bias = kernel_and_bias(self.dwconv)
        assign_folded(target.dwconv, kernel * scale[:, None], bias * scale + shift)
        target.pwconv1.set_weights(self.pwconv1.get_weights())
        layer_scale = keras.ops.convert_to_numpy(self.layer_scale.scale).astype("float64")
        kernel, bias = kernel_and_bias(self.pwconv2)
        assign_folded(target.pwconv2, kernel * layer_scale, bias * layer_scale)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {
            **super().get_config(),
            "dim": self.dim,
            "hidden_dim": self.hidden_dim,
            "kernel_size": self.kernel_size,
            "layer_scale_init_value": self.layer_scale_init_value,
            "drop_path_rate": self.drop_path_rate,
            "fused": self.fused,
        }


@keras.saving.register_keras_serializable(package="keras_swiftformer")
class LocalRepresentation(ConvEncoder):
    """The local-representation block that opens each SwiftFormer Encoder.

    The same computation as `ConvEncoder`, with `hidden_dim == dim` (no channel expansion).
    """

    def __init__(self, dim, kernel_size=3, layer_scale_init_value=1.0, drop_path_rate=0.0, fused=False, **kwargs):
        kwargs.pop("hidden_dim", None)  # present in configs written by `ConvEncoder.get_config`
        super().__init__(
            dim,
            hidden_dim=dim,
            kernel_size=kernel_size,
            layer_scale_init_value=layer_scale_init_value,
            drop_path_rate=drop_path_rate,
            fused=fused,
            **kwargs,
        )
