"""The table that maps every Keras variable of a SwiftFormer to its official PyTorch tensor.

Layouts: PyTorch convolutions are OIHW, Keras' HWIO; depthwise kernels are (C, 1, kh, kw)
versus Keras' (kh, kw, C, 1); linear layers are (out, in) versus (in, out); layer scales are
(C, 1, 1) versus (C,).
"""

import re

import keras
import numpy as np

from keras_swiftformer.layers import (
    ConvEncoder,
    ConvMlp,
    DownsampleEmbedding,
    EfficientAdditiveAttention,
    LayerScale,
    Stem,
    SwiftFormerEncoder,
)
from keras_swiftformer.weights.checkpoint import CheckpointError


def _conv_kernel(w):
    return np.transpose(w, (2, 3, 1, 0))


def _depthwise_kernel(w):
    return np.transpose(w, (2, 3, 0, 1))


def _dense_kernel(w):
    return np.transpose(w)


def _layer_scale(w):
    if w.ndim == 3 and w.shape[1:] != (1, 1):
        raise CheckpointError(f"Layer scale of shape {w.shape}; expected (C, 1, 1) or (C,).")
    return w.reshape(-1)


def _same(w):
    return w


# Sub-layer attribute -> its module name in the official model, for every composite layer.
_CHILDREN = {
    Stem: {"conv1": "0", "norm1": "1", "conv2": "3", "norm2": "4"},
    DownsampleEmbedding: {"proj": "proj", "norm": "norm"},
    ConvEncoder: {n: n for n in ("dwconv", "norm", "pwconv1", "pwconv2", "layer_scale")},
    SwiftFormerEncoder: {
        n: n
        for n in ("local_representation", "attn", "linear", "layer_scale_1", "layer_scale_2")
    },
    EfficientAdditiveAttention: {
        "to_query": "to_query", "to_key": "to_key", "proj": "Proj", "final": "final",
    },
    ConvMlp: {"norm1": "norm1", "fc1": "fc1", "fc2": "fc2"},
}


def _leaf_pairs(layer, key):
    if isinstance(layer, keras.layers.DepthwiseConv2D):
        return [(layer.kernel, f"{key}.weight", _depthwise_kernel), (layer.bias, f"{key}.bias", _same)]
    if isinstance(layer, keras.layers.Conv2D):
        return [(layer.kernel, f"{key}.weight", _conv_kernel), (layer.bias, f"{key}.bias", _same)]
    if isinstance(layer, keras.layers.Dense):
        return [(layer.kernel, f"{key}.weight", _dense_kernel), (layer.bias, f"{key}.bias", _same)]
    if isinstance(layer, keras.layers.BatchNormalization):
        return [
            (layer.gamma, f"{key}.weight", _same),
            (layer.beta, f"{key}.bias", _same),
            (layer.moving_mean, f"{key}.running_mean", _same),
            (layer.moving_variance, f"{key}.running_var", _same),
        ]
    if isinstance(layer, LayerScale):
        return [(layer.scale, key, _layer_scale)]
    return None


def layer_pairs(layer, key):
    """(keras variable, official key, transform) for every variable of `layer`."""
    pairs = _leaf_pairs(layer, key)
    if pairs is not None:
        return pairs
    children = next((c for cls, c in _CHILDREN.items() if isinstance(layer, cls)), None)
    if children is None:
        raise TypeError(f"No conversion rule for layer {layer.name!r} ({type(layer).__name__}).")
    pairs = []
    for attribute, torch_name in children.items():
        pairs += layer_pairs(getattr(layer, attribute), f"{key}.{torch_name}")
    if isinstance(layer, EfficientAdditiveAttention):
        pairs.append((layer.w_g, f"{key}.w_g", _same))
    return pairs


_TOP_LEVEL = (
    (re.compile(r"^patch_embed$"), lambda m: "patch_embed"),
    (re.compile(r"^downsample(\d+)$"), lambda m: f"network.{2 * int(m.group(1)) - 1}"),
    (re.compile(r"^stage(\d+)_block(\d+)$"), lambda m: f"network.{2 * int(m.group(1))}.{m.group(2)}"),
    (re.compile(r"^(norm|head|dist_head)$"), lambda m: m.group(1)),
)


def model_pairs(model):
    """(keras variable, official key, transform) for every variable of a SwiftFormer model."""
    pairs = []
    for layer in model.layers:
        for pattern, to_key in _TOP_LEVEL:
            match = pattern.match(layer.name)
            if match:
                pairs += layer_pairs(layer, to_key(match))
                break
    return pairs


def _is_rng_state(variable):
    return "seed_generator" in variable.path


def port_state_dict(model, state):
    """Assigns the official-key numpy `state` to `model`, accounting for every tensor.

    Raises `CheckpointError` listing unused checkpoint keys, unfilled Keras variables and
    shape mismatches, before any variable is changed.
    """
    pairs = model_pairs(model)
    covered = {id(variable) for variable, _, _ in pairs}
    unfilled = sorted(
        v.path for v in model.weights if id(v) not in covered and not _is_rng_state(v)
    )
    missing = sorted(key for _, key, _ in pairs if key not in state)
    unused = sorted(set(state) - {key for _, key, _ in pairs})
    mismatched, values = [], []
    for variable, key, transform in pairs:
        if key not in state:
            continue
        value = transform(state[key])
        if tuple(value.shape) != tuple(variable.shape):
            mismatched.append(
                f"{key}: checkpoint {tuple(state[key].shape)} -> {tuple(value.shape)}, "
                f"Keras {variable.path} {tuple(variable.shape)}"
            )
        values.append((variable, value))
    problems = []
    if missing:
        problems.append(f"{len(missing)} tensors the model needs are missing from the checkpoint: {missing[:20]}")
    if unused:
        problems.append(f"{len(unused)} checkpoint tensors have no place in the model: {unused[:20]}")
    if mismatched:
        problems.append(f"{len(mismatched)} shapes do not match: {mismatched[:10]}")
    if unfilled:
        problems.append(f"{len(unfilled)} Keras variables have no checkpoint tensor: {unfilled[:20]}")
    if problems:
        raise CheckpointError(
            "The checkpoint does not match the model "
            f"'{model.name}'. " + "; ".join(problems)
        )
    for variable, value in values:
        variable.assign(value.astype(variable.dtype))
