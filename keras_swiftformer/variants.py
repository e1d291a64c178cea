"""The SwiftFormer variants as data (architecture plus what the paper reports for them), and
the architecture of a built model, read from its layers."""

import re

import keras

VARIANTS = {
    "XS": {
        "depths": (3, 3, 6, 4),
        "widths": (48, 56, 112, 220),
        "paper": {"params_m": 3.5, "gmacs": 0.6, "top1": 75.7},
    },
    "S": {
        "depths": (3, 3, 9, 6),
        "widths": (48, 64, 168, 224),
        "paper": {"params_m": 6.1, "gmacs": 1.0, "top1": 78.5},
    },
    "L1": {
        "depths": (4, 3, 10, 5),
        "widths": (48, 96, 192, 384),
        "paper": {"params_m": 12.1, "gmacs": 1.6, "top1": 80.9},
    },
    "L3": {
        "depths": (4, 4, 12, 6),
        "widths": (64, 128, 320, 512),
        "paper": {"params_m": 28.5, "gmacs": 4.0, "top1": 83.0},
    },
}


def get_variant(variant):
    """Looks a variant up by its id ("XS", "S", "L1", "L3"; case-insensitive)."""
    key = str(variant).upper()
    if key not in VARIANTS:
        raise ValueError(
            f"Unknown SwiftFormer variant. Expected one of {list(VARIANTS)}. "
            f"Received: variant={variant!r}"
        )
    return key, VARIANTS[key]


def find_variant(depths, widths):
    """The id of the variant with these depths and widths, or None."""
    for key, spec in VARIANTS.items():
        if tuple(spec["depths"]) == tuple(depths) and tuple(spec["widths"]) == tuple(widths):
            return key
    return None


_STAGE_BLOCK = re.compile(r"^stage(\d+)_block(\d+)$")


def stage_output_layers(model):
    """The layers whose outputs are the stage outputs (strides 4, 8, 16, 32), in order."""
    last = {}
    for layer in model.layers:
        match = _STAGE_BLOCK.match(layer.name)
        if match:
            stage, block = int(match.group(1)), int(match.group(2))
            if block >= last.get(stage, (-1, None))[0]:
                last[stage] = (block, layer)
    if not last:
        raise ValueError(
            f"Model '{model.name}' has no SwiftFormer stages (layers named stage<i>_block<j>)."
        )
    return [last[stage][1] for stage in sorted(last)]


def architecture(model):
    """depths, widths, attention pooling, classes, distillation and classifier activation of a
    built SwiftFormer (what `SwiftFormer(...)` needs to build it again)."""
    stages = stage_output_layers(model)
    depths = [sum(1 for layer in model.layers if layer.name.startswith(f"stage{i}_")) for i in range(len(stages))]
    names = {layer.name: layer for layer in model.layers}
    return {
        "depths": tuple(depths),
        "widths": tuple(layer.dim for layer in stages),
        "attention_pooling": stages[-1].attn.attention_pooling,
        "classes": names["head"].units if "head" in names else None,
        "distillation": "dist_head" in names,
        "activation": keras.activations.serialize(names["predictions"].activation)
        if "predictions" in names else None,
    }
