"""keras-swiftformer: SwiftFormer (ICCV 2023) for Keras 3 on TensorFlow, JAX and PyTorch."""

from keras_swiftformer import layers
from keras_swiftformer.preprocessing import decode_predictions, load_image, preprocess_input
from keras_swiftformer.models import (
    VARIANTS,
    SwiftFormer,
    SwiftFormerBackbone,
    SwiftFormerSegmenter,
    SwiftFormerL1,
    SwiftFormerL3,
    SwiftFormerS,
    SwiftFormerXS,
    stage_feature_model,
)

__version__ = "0.1.0"

__all__ = [
    "VARIANTS",
    "decode_predictions",
    "load_image",
    "preprocess_input",
    "SwiftFormer",
    "SwiftFormerBackbone",
    "SwiftFormerSegmenter",
    "SwiftFormerL1",
    "SwiftFormerL3",
    "SwiftFormerS",
    "SwiftFormerXS",
    "layers",
    "stage_feature_model",
]
