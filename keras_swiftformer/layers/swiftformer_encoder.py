import keras

from keras_swiftformer.layers.conv_encoder import LocalRepresentation
from keras_swiftformer.layers.efficient_additive_attention import EfficientAdditiveAttention
from keras_swiftformer.layers.layer_scale import LayerScale
from keras_swiftformer.layers.numerics import exact_gelu
from keras_swiftformer.layers.primitives import (
    apply,
    assign_folded,
    batch_norm,
    batch_norm_affine,
    build_chain,
    conv2d,
    kernel_and_bias,
    pointwise_mlp,
)
from keras_swiftformer.layers.stochastic_depth import StochasticDepth


@keras.saving.register_keras_serializable(package="keras_swiftformer")
class ConvMlp(keras.layers.Layer):
    """The encoder's "linear" block: BatchNorm, 1x1 conv, GELU, 1x1 conv.

    Args:
        dim: input and output channels.
        hidden_dim: channels of the expansion (`mlp_ratio * dim`).
        fused: the inference form, with the BatchNorm folded into `fc1` (see `fold_into`).
    """

    def __init__(self, dim, hidden_dim, fused=False, **kwargs):
        super().__init__(**kwargs)
        self.dim = int(dim)
        self.hidden_dim = int(hidden_dim)
        self.fused = bool(fused)
        dtype = self.dtype_policy
        self.norm1 = None if self.fused else batch_norm("norm1", dtype=dtype)
        self.fc1 = conv2d(self.hidden_dim, 1, "fc1", dtype=dtype)
        self.fc2 = conv2d(self.dim, 1, "fc2", dtype=dtype)

    def build(self, input_shape):
        build_chain((self.norm1, self.fc1, self.fc2), input_shape)

    def call(self, inputs, training=None):
        if self.fused:
            return pointwise_mlp(self.fc1, self.fc2, inputs)
        return self.fc2(exact_gelu(self.fc1(self.norm1(inputs, training=training))))

    def fold_into(self, target, output_scale=1.0):
        """Writes these weights into `target`, a built `fused=True` copy: `(x s + t) W + b` is
        `x (s W) + (t W + b)`; `output_scale` (the encoder's layer scale) multiplies `fc2`."""
        scale, shift = batch_norm_affine(self.norm1)
        kernel, bias = kernel_and_bias(self.fc1)
        assign_folded(target.fc1, kernel * scale[:, None], bias + shift @ kernel[0, 0])
        kernel, bias = kernel_and_bias(self.fc2)
        assign_folded(target.fc2, kernel * output_scale, bias * output_scale)

    def compute_output_shape(self, input_shape):
        return (*input_shape[:-1], self.dim)

    def get_config(self):
        return {**super().get_config(), "dim": self.dim, "hidden_dim": self.hidden_dim, "fused": self.fused}


@keras.saving.register_keras_serializable(package="keras_swiftformer")
class SwiftFormerEncoder(keras.layers.Layer):
    """The paper's SwiftFormer Encoder, the last block of every stage.

    Local representation, then two residual branches with layer scale and drop path:
    `x = x + ls1 * EfficientAdditiveAttention(x)` and `x = x + ls2 * ConvMlp(x)`.

    Args:
        dim: channels of the input and output.
        mlp_ratio: expansion of the MLP block.
        layer_scale_init_value: initial layer scale of the two branches (official: 1e-5).
        drop_path_rate: stochastic-depth rate of the two branches.
        attention_pooling: see `EfficientAdditiveAttention`.
        fused: the inference form: BatchNorms and layer scales folded into the neighbouring
            weights (see `fold_into`). Same outputs at inference; not for training.
    """

    def __init__(
        self,
        dim,
        mlp_ratio=4.0,
        layer_scale_init_value=1e-5,
        drop_path_rate=0.0,
        attention_pooling="normalize",
        fused=False,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.fused = bool(fused)
        self.dim = int(dim)
        self.mlp_ratio = float(mlp_ratio)
        self.layer_scale_init_value = float(layer_scale_init_value)
        self.drop_path_rate = float(drop_path_rate)
        self.attention_pooling = attention_pooling
        dtype = self.dtype_policy
        self.local_representation = LocalRepresentation(
            self.dim, fused=self.fused, name="local_representation", dtype=dtype
        )
        self.attn = EfficientAdditiveAttention(
            self.dim, attention_pooling=attention_pooling, fused=self.fused, name="attn", dtype=dtype
        )
        self.linear = ConvMlp(
            self.dim, int(self.dim * self.mlp_ratio), fused=self.fused, name="linear", dtype=dtype
        )
        if self.fused:
            self.layer_scale_1 = self.layer_scale_2 = None
        else:
            self.layer_scale_1 = LayerScale(self.layer_scale_init_value, name="layer_scale_1", dtype=dtype)
            self.layer_scale_2 = LayerScale(self.layer_scale_init_value, name="layer_scale_2", dtype=dtype)
        self.drop_path = StochasticDepth(self.drop_path_rate, name="drop_path", dtype=dtype)

    def build(self, input_shape):
        for layer in (
            self.local_representation,
            self.attn,
            self.linear,
            self.layer_scale_1,
            self.layer_scale_2,
        ):
            if layer is not None:
                layer.build(input_shape)

    def call(self, inputs, training=None):
        if self.fused:
            x = apply(self.local_representation, inputs, fused=True)
            x = x + apply(self.attn, x, fused=True)
            return x + apply(self.linear, x, fused=True)
        x = self.local_representation(inputs, training=training)
        x = x + self.drop_path(self.layer_scale_1(self.attn(x)), training=training)
        return x + self.drop_path(
            self.layer_scale_2(self.linear(x, training=training)), training=training
        )

    def fold_into(self, target):
        """Writes this block's weights into `target`, a built `fused=True` copy of it: each
        layer scale multiplies the output channels of the last layer of its branch."""
        self.local_representation.fold_into(target.local_representation)
        for name in ("to_query", "to_key", "proj"):
            getattr(target.attn, name).set_weights(getattr(self.attn, name).get_weights())
        # A copy: on JAX, Keras' predict donates the copy's arrays, so a shared one would be
        # deleted from this model too.
        target.attn.w_g.assign(keras.ops.convert_to_numpy(self.attn.w_g))
        layer_scale_1 = keras.ops.convert_to_numpy(self.layer_scale_1.scale).astype("float64")
        kernel, bias = kernel_and_bias(self.attn.final)
        assign_folded(target.attn.final, kernel * layer_scale_1, bias * layer_scale_1)
        layer_scale_2 = keras.ops.convert_to_numpy(self.layer_scale_2.scale).astype("float64")
        self.linear.fold_into(target.linear, output_scale=layer_scale_2)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {
            **super().get_config(),
            "dim": self.dim,
            "mlp_ratio": self.mlp_ratio,
            "layer_scale_init_value": self.layer_scale_init_value,
            "drop_path_rate": self.drop_path_rate,
            "attention_pooling": self.attention_pooling,
            "fused": self.fused,
        }
