import keras
from keras import ops

from keras_swiftformer.layers.initializers import RandomNormal
from keras_swiftformer.layers.numerics import l2_normalize
from keras_swiftformer.layers.primitives import apply, dense

# How the per-token attention weights are normalised over the tokens. The two official
# releases differ here and their checkpoints are not interchangeable.
ATTENTION_POOLING_MODES = {
    # Current official code and checkpoints (since 2023-07-26): L2 normalisation over tokens.
    "normalize": "L2-normalise q.w_g over the tokens (current official release)",
    # First release (March 2023), also the Hugging Face Hub checkpoints and transformers'
    # port: softmax over a singleton axis, i.e. every token weight is exactly 1.
    "softmax_v1": "softmax over a singleton axis, all weights 1 (first official release)",
}


def validate_attention_pooling(attention_pooling):
    if attention_pooling not in ATTENTION_POOLING_MODES:
        raise ValueError(
            "`attention_pooling` must be one of "
            f"{sorted(ATTENTION_POOLING_MODES)}: 'normalize' for checkpoints of the current "
            "official release, 'softmax_v1' for the first release and the Hugging Face Hub "
            f"checkpoints. Received: attention_pooling={attention_pooling!r}"
        )
    return attention_pooling


@keras.saving.register_keras_serializable(package="keras_swiftformer")
class EfficientAdditiveAttention(keras.layers.Layer):
    """Efficient Additive Attention (SwiftFormer, Shaker et al. 2023, Fig. 2d).

    With `q = norm(Wq x)` and `k = norm(Wk x)` (L2 over channels), token weights
    `a = pool_tokens(q . w_g / sqrt(d))`, a global query `g = sum_tokens(a * q)`, and
    `out = final(proj(g * k) + q)`. The cost is linear in the number of tokens.

    The input is channels-last with any number of token axes: `(B, H, W, C)` (as the model
    uses it, so no reshape or transpose is needed) or `(B, N, C)`.

    Args:
        dim: input, query/key and output channels (one head, as in every SwiftFormer).
        attention_pooling: "normalize" (current official release) or "softmax_v1" (first
            release; its token weights are all ones, so `w_g` has no effect and receives no
            gradient, exactly as in that release; it is kept so its checkpoints load).
        fused: part of an inference form: `final` also carries the encoder's layer scale (see
            `SwiftFormerEncoder.fold_into`) and the projections are applied through their
            `call` (see `primitives.apply`).
    """

    def __init__(self, dim, attention_pooling="normalize", fused=False, **kwargs):
        super().__init__(**kwargs)
        self.dim = int(dim)
        self.fused = bool(fused)
        self.attention_pooling = validate_attention_pooling(attention_pooling)
        self.scale_factor = self.dim**-0.5
        dtype = self.dtype_policy
        self.to_query = dense(self.dim, "to_query", dtype=dtype)
        self.to_key = dense(self.dim, "to_key", dtype=dtype)
        self.proj = dense(self.dim, "proj", dtype=dtype)
        self.final = dense(self.dim, "final", dtype=dtype)

    def build(self, input_shape):
        if input_shape[-1] != self.dim:
            raise ValueError(
                f"EfficientAdditiveAttention '{self.name}' was created for dim={self.dim} "
                f"but received {input_shape[-1]} channels. Received: input_shape={input_shape}"
            )
        if len(input_shape) < 3:
            raise ValueError(
                "EfficientAdditiveAttention expects (batch, tokens..., channels) with at least "
                f"one token axis. Received: input_shape={input_shape}"
            )
        for layer in (self.to_query, self.to_key, self.proj, self.final):
            layer.build(input_shape)
        self.w_g = self.add_weight(
            name="w_g", shape=(self.dim, 1), initializer=RandomNormal()
        )

    def token_weights(self, inputs):
        """The per-token weights `a` that pool the global query, shape `(B, tokens..., 1)`.

        "normalize": `q . w_g / sqrt(d)`, L2-normalised over the tokens (signed; `|a|` is the
        length of each token's contribution to the global query, since `q` has unit length).
        "softmax_v1": exactly 1 for every token (the first release's softmax over a singleton
        axis), so these weights say nothing about where the layer looks.
        """
        query = l2_normalize(self.to_query(inputs), axis=-1)
        weights = self._pooling_weights(query)
        return ops.ones_like(query[..., :1]) if weights is None else weights

    def _pooling_weights(self, query):
        # The one formula of the token weights, shared by `call` and `token_weights`; None
        # for the first release, whose weights are all ones and are not multiplied in.
        if self.attention_pooling != "normalize":
            return None
        token_axes = tuple(range(1, len(query.shape) - 1))
        w_g = ops.cast(self.w_g, query.dtype)
        token_weights = ops.matmul(query, w_g) * self.scale_factor
        return l2_normalize(token_weights, axis=token_axes)

    def call(self, inputs):
        token_axes = tuple(range(1, len(inputs.shape) - 1))
        query = l2_normalize(apply(self.to_query, inputs, self.fused), axis=-1)
        key = l2_normalize(apply(self.to_key, inputs, self.fused), axis=-1)
        token_weights = self._pooling_weights(query)
        if token_weights is not None:
            global_query = ops.sum(token_weights * query, axis=token_axes, keepdims=True)
        else:
            # softmax over a singleton axis is exactly 1 for every token.
            global_query = ops.sum(query, axis=token_axes, keepdims=True)
        # `global_query` broadcasts over the tokens: never materialised per token.
        projected = apply(self.proj, global_query * key, self.fused)
        return apply(self.final, projected + query, self.fused)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {
            **super().get_config(),
            "dim": self.dim,
            "attention_pooling": self.attention_pooling,
            "fused": self.fused,
        }
