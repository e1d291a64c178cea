"""keras-swiftformer: SwiftFormer (ICCV 2023) for Keras 3 on TensorFlow, JAX and PyTorch."""

from keras_swiftformer import layers
from keras_swiftformer.models import (
    VARIANTS,
    SwiftFormer,
    SwiftFormerBackbone,
    SwiftFormerL1,
    SwiftFormerL3,
    SwiftFormerS,
    SwiftFormerSegmenter,
    SwiftFormerXS,
    build_variant,
    inference_model,
    stage_feature_model,
)
from keras_swiftformer.preprocessing import decode_predictions, load_image, preprocess_input

__version__ = "0.1.0"  # the one place the version is written (pyproject.toml reads it)

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
    "build_variant",
    "inference_model",
    "layers",
    "stage_feature_model",
]
