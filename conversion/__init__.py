"""Conversion of SwiftFormer weights: PyTorch checkpoints -> Keras.

`python -m conversion --help` for the command line.
"""

from conversion.checkpoint import (
    CheckpointError,
    infer_architecture,
    read_checkpoint,
    to_official_keys,
)
from conversion.convert import convert_checkpoint, default_attention_pooling
from conversion.port import model_pairs, port_state_dict

__all__ = [
    "CheckpointError",
    "convert_checkpoint",
    "default_attention_pooling",
    "infer_architecture",
    "model_pairs",
    "port_state_dict",
    "read_checkpoint",
    "to_official_keys",
]
