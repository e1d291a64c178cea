"""Weights: reading checkpoints, porting them into Keras models, pretrained sources, cache.

* `checkpoint`: official `.pth` and transformers `.safetensors`/`.bin` files -> one official-key
  numpy state dict, with the architecture read from its shapes;
* `port`: the table from every Keras variable to its official tensor;
* `keras_files`: `.weights.h5` files with a record of the model they belong to;
* `pretrained`: where the ImageNet checkpoints come from, their download and cache;
* `sources`: what `weights=` accepts.
"""

from keras_swiftformer.weights.checkpoint import (
    CheckpointError,
    infer_architecture,
    read_checkpoint,
    to_official_keys,
)
from keras_swiftformer.weights.keras_files import read_metadata, save_weights
from keras_swiftformer.weights.port import model_pairs, port_state_dict
from keras_swiftformer.weights.pretrained import (
    PRETRAINED_WEIGHTS,
    WeightsDownloadError,
    cache_dir,
    cached_path,
)
from keras_swiftformer.weights.sources import copy_matching_layers, inspect_weights, variant_held_by

__all__ = [
    "CheckpointError",
    "PRETRAINED_WEIGHTS",
    "WeightsDownloadError",
    "cache_dir",
    "cached_path",
    "copy_matching_layers",
    "infer_architecture",
    "inspect_weights",
    "model_pairs",
    "port_state_dict",
    "read_checkpoint",
    "read_metadata",
    "save_weights",
    "to_official_keys",
    "variant_held_by",
]
