import keras

from keras_swiftformer.layers.conv_encoder import LocalRepresentation
from keras_swiftformer.layers.efficient_additive_attention import EfficientAdditiveAttention
from keras_swiftformer.layers.layer_scale import LayerScale
from keras_swiftformer.layers.numerics import exact_gelu
from keras_swiftformer.layers.primitives import batch_norm, build_chain, conv2d
from keras_swiftformer.layers.stochastic_depth import StochasticDepth


@keras.saving.register_keras_serializable(package="keras_swiftformer")
class ConvMlp(keras.layers.Layer):
    """The encoder's "linear" block: BatchNorm, 1x1 conv, GELU, 1x1 conv.

    Args:
        dim: input and output channels.
        hidden_dim: channels of the expansion (`mlp_ratio * dim`).
    """

    def __init__(self, dim, hidden_dim, **kwargs):
        super().__init__(**kwargs)
        self.dim = int(dim)
        self.hidden_dim = int(hidden_dim)
        dtype = self.dtype_policy
        self.norm1 = batch_norm("norm1", dtype=dtype)
        self.fc1 = conv2d(self.hidden_dim, 1, "fc1", dtype=dtype)
        self.fc2 = conv2d(self.dim, 1, "fc2", dtype=dtype)

    def build(self, input_shape):
        build_chain((self.norm1, self.fc1, self.fc2), input_shape)

    def call(self, inputs, training=None):
        x = self.fc1(self.norm1(inputs, training=training))
        return self.fc2(exact_gelu(x))

    def compute_output_shape(self, input_shape):
        return (*input_shape[:-1], self.dim)

    def get_config(self):
        return {**super().get_config(), "dim": self.dim, "hidden_dim": self.hidden_dim}


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
    """

    def __init__(
        self,
        dim,
        mlp_ratio=4.0,
        layer_scale_init_value=1e-5,
        drop_path_rate=0.0,
        attention_pooling="normalize",
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.dim = int(dim)
        self.mlp_ratio = float(mlp_ratio)
        self.layer_scale_init_value = float(layer_scale_init_value)
        self.drop_path_rate = float(drop_path_rate)
        self.attention_pooling = attention_pooling
        dtype = self.dtype_policy
        self.local_representation = LocalRepresentation(
            self.dim, name="local_representation", dtype=dtype
        )
        self.attn = EfficientAdditiveAttention(
            self.dim, attention_pooling=attention_pooling, name="attn", dtype=dtype
        )
        self.linear = ConvMlp(self.dim, int(self.dim * self.mlp_ratio), name="linear", dtype=dtype)
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
            layer.build(input_shape)

    def call(self, inputs, training=None):
        x = self.local_representation(inputs, training=training)
        x = x + self.drop_path(self.layer_scale_1(self.attn(x)), training=training)
        return x + self.drop_path(
            self.layer_scale_2(self.linear(x, training=training)), training=training
        )

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
        }
