from keras_swiftformer.models.backbone import PYRAMID_LEVELS, SwiftFormerBackbone
from keras_swiftformer.models.inference import inference_model
from keras_swiftformer.models.segmenter import SwiftFormerSegmenter
from keras_swiftformer.models.swiftformer import (
    SwiftFormer,
    SwiftFormerL1,
    SwiftFormerL3,
    SwiftFormerS,
    SwiftFormerXS,
    build_variant,
    stage_feature_model,
    stage_output_layers,
)
from keras_swiftformer.variants import VARIANTS, find_variant, get_variant

__all__ = [
    "PYRAMID_LEVELS",
    "SwiftFormerBackbone",
    "SwiftFormerSegmenter",
    "SwiftFormer",
    "SwiftFormerL1",
    "SwiftFormerL3",
    "SwiftFormerS",
    "SwiftFormerXS",
    "VARIANTS",
    "build_variant",
    "find_variant",
    "get_variant",
    "inference_model",
    "stage_feature_model",
    "stage_output_layers",
]
