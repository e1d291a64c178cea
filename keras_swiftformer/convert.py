"""PyTorch SwiftFormer checkpoints -> Keras models and `.weights.h5` files, and the cached
Keras weights of the pretrained releases."""

import os

from keras_swiftformer.layers.efficient_additive_attention import validate_attention_pooling
from keras_swiftformer.models.swiftformer import SwiftFormer, build_variant
from keras_swiftformer.variants import get_variant
from keras_swiftformer.weights import pretrained
from keras_swiftformer.weights.checkpoint import CheckpointError, infer_architecture, read_checkpoint
from keras_swiftformer.weights.keras_files import KERAS_WEIGHTS_SUFFIX, save_weights
from keras_swiftformer.weights.port import port_state_dict
from keras_swiftformer.weights.sources import PretrainedCheckpoint, describe


def default_attention_pooling(layout):
    """The release a checkpoint layout implies.

    transformers' port and the Hugging Face Hub checkpoints implement the first release.
    An official `.pth` does not record which release trained it: it is taken to be the current
    one (the checkpoints the official README links since 2023-07-26); pass
    `attention_pooling="softmax_v1"` for a first-release `.pth`.
    """
    return "softmax_v1" if layout == "transformers" else "normalize"


def convert_checkpoint(source, output=None, variant=None, attention_pooling=None, metadata=None):
    """Converts an official or transformers SwiftFormer checkpoint to a Keras model.

    Args:
        source: path to an official `.pth` (`{'model': state_dict}` or a bare state dict, with
            or without `dist_head`), a transformers `model.safetensors` / `pytorch_model.bin`
            or model folder, or an in-memory state dict.
        output: optional path of a `.weights.h5` file to write (atomically).
        variant: "XS", "S", "L1" or "L3"; inferred from tensor shapes when None, and checked
            against them when given.
        attention_pooling: "normalize" or "softmax_v1"; None picks the one the checkpoint's
            layout implies (see `default_attention_pooling`).
        metadata: extra JSON-serialisable entries for the output file's metadata record.

    Returns:
        The Keras model with every checkpoint tensor loaded.
    """
    if output is not None and not os.fspath(output).endswith(KERAS_WEIGHTS_SUFFIX):
        raise ValueError(
            f"`output` must be a path ending in '{KERAS_WEIGHTS_SUFFIX}'. Received: output={output!r}"
        )
    if attention_pooling is not None:
        validate_attention_pooling(attention_pooling)
    if variant is not None:
        variant, spec = get_variant(variant)

    state, layout = read_checkpoint(source)
    architecture = infer_architecture(state)
    found = describe(architecture["depths"], architecture["widths"])
    if variant is not None and (
        tuple(spec["depths"]) != architecture["depths"]
        or tuple(spec["widths"]) != architecture["widths"]
    ):
        raise CheckpointError(
            f"variant={variant!r} was requested but the checkpoint holds {found}. Pass the "
            "matching variant, or leave `variant` unset to infer it."
        )
    attention_pooling = attention_pooling or default_attention_pooling(layout)
    name = f"swiftformer_{architecture['variant'].lower()}" if architecture["variant"] else "swiftformer"
    model = SwiftFormer(
        architecture["depths"],
        architecture["widths"],
        classes=architecture["classes"],
        distillation=architecture["distillation"],
        attention_pooling=attention_pooling,
        name=name,
    )
    port_state_dict(model, state)
    if output is not None:
        save_weights(
            model,
            output,
            metadata={
                "variant": architecture["variant"],
                "depths": list(architecture["depths"]),
                "widths": list(architecture["widths"]),
                "classes": architecture["classes"],
                "distillation": architecture["distillation"],
                "attention_pooling": attention_pooling,
                "source_layout": layout,
                **(metadata or {}),
            },
        )
    return model


def fetch_weights(variant, weights="imagenet", mirror=None, timeout=pretrained.DEFAULT_TIMEOUT,
                  force=False):
    """The path of the cached Keras weights of a pretrained variant, fetching and converting
    the official checkpoint first if needed (arguments as `weights.pretrained.fetch_checkpoint`;
    `force`: fetch and convert again even if a cached file exists)."""
    variant, _ = get_variant(variant)
    cached = None if force else pretrained.cached_weights(variant, weights)
    if cached:
        return cached
    build_variant(variant, weights=PretrainedCheckpoint(variant, weights, mirror, timeout))
    return pretrained.cached_path(variant, weights)
