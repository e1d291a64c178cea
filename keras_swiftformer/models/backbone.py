"""SwiftFormer as a multi-scale backbone for detection and segmentation."""

import keras

from keras_swiftformer.layers.primitives import batch_norm
from keras_swiftformer.models.swiftformer import SwiftFormer, stage_output_layers
from keras_swiftformer.models.variants import get_variant

PYRAMID_LEVELS = ("P2", "P3", "P4", "P5")  # strides 4, 8, 16, 32


def _check_input_shape(input_shape):
    for side in input_shape[:2]:
        if side is not None and int(side) % 32:
            raise ValueError(
                "SwiftFormerBackbone needs input sides that are multiples of 32 (its pyramid "
                f"has stride 32). Received: input_shape={tuple(input_shape)}"
            )


def SwiftFormerBackbone(
    variant="L1",
    weights=None,
    input_shape=(None, None, 3),
    input_tensor=None,
    feature_norm=False,
    depths=None,
    widths=None,
    drop_path_rate=0.0,
    attention_pooling=None,
    name=None,
):
    """The four stage outputs of a SwiftFormer at strides 4, 8, 16 and 32.

    The model's outputs, and its `pyramid_outputs` attribute (the convention keras-hub's
    detectors and segmenters read), are `{"P2": ..., "P3": ..., "P4": ..., "P5": ...}` with the
    variant's widths as channels. With the same weights they equal the classifier's stage
    outputs.

    Args:
        variant: "XS", "S", "L1" or "L3"; ignored when `depths` and `widths` are given.
        weights: anything the classifiers accept ("imagenet", "imagenet_v1", converted or
            official files); the classification head is dropped.
        input_shape: (height, width, 3); sides must be multiples of 32 (or None).
        feature_norm: add a BatchNorm on each output, as the official detection and
            segmentation code does (`fork_feat=True`; layers `norm0`, `norm2`, `norm4`,
            `norm6` as in its checkpoints).
    """
    if depths is None or widths is None:
        key, spec = get_variant(variant)
        depths, widths = spec["depths"], spec["widths"]
        name = name or f"swiftformer_{key.lower()}_backbone"
    name = name or "swiftformer_backbone"
    _check_input_shape(tuple(input_shape))
    classifier = SwiftFormer(
        depths, widths, include_top=False, weights=weights, input_shape=input_shape,
        input_tensor=input_tensor, drop_path_rate=drop_path_rate,
        attention_pooling=attention_pooling, name=f"{name}_trunk",
    )
    stages = [layer.output for layer in stage_output_layers(classifier)]
    if feature_norm:
        stages = [batch_norm(f"norm{2 * i}")(x) for i, x in enumerate(stages)]
    pyramid = dict(zip(PYRAMID_LEVELS, stages))
    inputs = classifier.inputs[0] if len(classifier.inputs) == 1 else classifier.inputs
    model = keras.Model(inputs, pyramid, name=name)
    model.pyramid_outputs = pyramid
    return model
