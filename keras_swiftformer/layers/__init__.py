"""SwiftFormer's building blocks as serialisable, backend-agnostic Keras layers."""

from keras_swiftformer.layers.conv_encoder import ConvEncoder, LocalRepresentation
from keras_swiftformer.layers.downsample import DownsampleEmbedding
from keras_swiftformer.layers.efficient_additive_attention import (
    ATTENTION_POOLING_MODES,
    EfficientAdditiveAttention,
)
from keras_swiftformer.layers.group_normalization import GroupNormalization
from keras_swiftformer.layers.layer_scale import LayerScale
from keras_swiftformer.layers.numerics import exact_gelu, l2_normalize
from keras_swiftformer.layers.stem import Stem
from keras_swiftformer.layers.stochastic_depth import StochasticDepth
from keras_swiftformer.layers.swiftformer_encoder import ConvMlp, SwiftFormerEncoder
from keras_swiftformer.layers.upsample import Upsample

__all__ = [
    "ATTENTION_POOLING_MODES",
    "ConvEncoder",
    "ConvMlp",
    "DownsampleEmbedding",
    "EfficientAdditiveAttention",
    "GroupNormalization",
    "LayerScale",
    "LocalRepresentation",
    "Stem",
    "StochasticDepth",
    "SwiftFormerEncoder",
    "Upsample",
    "exact_gelu",
    "l2_normalize",
]
