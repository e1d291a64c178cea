"""The inference-only form of a SwiftFormer that export starts from.

Same weights, fixed input, one classifier head: the distillation head is folded into the
class head ((W_head + W_dist) / 2 gives the same logits as averaging the two heads), and the
ImageNet normalisation can be folded in front so the file takes raw RGB pixels. BatchNorm is
folded into the neighbouring convolutions by the TFLite converter itself, except the shift
after the five explicitly padded stride-2 convolutions, which stays as one ADD each.
"""

import keras
import numpy as np

from keras_swiftformer.models.swiftformer import (
    SwiftFormer,
    architecture,
    build_with_record,
    stage_output_layers,
)
from keras_swiftformer.preprocessing import IMAGENET_MEAN, IMAGENET_STD
from keras_swiftformer.weights.pretrained import PRETRAINED_WEIGHTS
from keras_swiftformer.weights.sources import copy_matching_layers


@keras.saving.register_keras_serializable(package="keras_swiftformer")
class ImageNetNormalization(keras.layers.Layer):
    """RGB pixels in [0, 255] -> ImageNet-normalised (one multiply and one add)."""

    def call(self, inputs):
        scale = 1.0 / (np.array(IMAGENET_STD, "float32") * 255.0)
        offset = -np.array(IMAGENET_MEAN, "float32") / np.array(IMAGENET_STD, "float32")
        return keras.ops.cast(inputs, "float32") * scale + offset


def is_classifier(model):
    """A SwiftFormer classifier (with its head), rather than a backbone or segmenter."""
    if not any(layer.name == "head" for layer in model.layers):
        return False
    try:
        return bool(stage_output_layers(model))
    except ValueError:
        return False


def architecture_classes(model):
    """The number of classes of a classifier; None for backbones and segmenters."""
    return architecture(model)["classes"] if is_classifier(model) else None


def segmenter_classes(model):
    """The number of classes of a `SwiftFormerSegmenter` (per-pixel logits); else None."""
    names = {layer.name for layer in model.layers}
    if is_classifier(model) or not {"logits_upsample", "logits"} <= names or len(model.outputs) != 1:
        return None
    return int(model.outputs[0].shape[-1])


def appends_softmax(model):
    """Whether `probabilities=True` adds a softmax: a classifier that returns logits."""
    if not is_classifier(model):
        return False
    activation = architecture(model)["activation"]
    return activation in (None, "linear") or (isinstance(activation, dict) and activation.get("config") == "linear")


DEFAULT_INPUT_SIZE = 224


def export_input_size(model, input_size=None):
    """The input size to export at: as given, else the model's own fixed input size (a model
    built with `input_shape=(64, 64, 3)`), else 224."""
    if input_size is not None:
        sides = (input_size, input_size) if np.isscalar(input_size) else tuple(input_size)
        if len(sides) != 2 or any(isinstance(s, bool) or int(s) != s or int(s) < 1 for s in sides):
            raise ValueError(
                "`input_size` must be a positive integer side or a (height, width) pair. "
                f"Received: input_size={input_size!r}"
            )
        return input_size if np.isscalar(input_size) else tuple(int(s) for s in sides)
    height, width = tuple(model.inputs[0].shape)[1:3]
    if height is not None and width is not None:
        return int(height) if height == width else (int(height), int(width))
    return DEFAULT_INPUT_SIZE


def as_model(model_or_weights, variant):
    """The model to export and what its weights record: `(model, class_names, image_size)`.
    A Keras model is taken as it is (None, None); weights build `variant` (default: the
    variant a weights file holds; "imagenet" needs it) with the class names and side that
    fine-tuned weights record."""
    if isinstance(model_or_weights, keras.Model):
        return model_or_weights, None, None
    named = isinstance(model_or_weights, str) and (model_or_weights in PRETRAINED_WEIGHTS or model_or_weights.lower() == "none")
    if variant is None and (model_or_weights is None or named):
        raise ValueError(
            "Pass `variant` (XS, S, L1, L3) when exporting ImageNet or random weights rather than a "
            f"model or a weights file. Received: model_or_weights={model_or_weights!r}, variant=None"
        )
    return build_with_record(variant, model_or_weights)


def _fixed_input(model, images, x):
    """Backbones and segmenters: the same model (same weights) called on a fixed input."""
    for side in images.shape[1:3]:
        if side % 32:
            raise ValueError(
                f"{model.name} needs input sides that are multiples of 32 (its feature pyramid "
                f"has stride 32). Received: input_size={tuple(images.shape[1:3])}"
            )
    return keras.Model(images, model(x, training=False), name=f"{model.name}_deploy")


def deploy_model(model, input_size=224, batch_size=1, include_preprocessing=False, probabilities=False):
    """A fixed-shape, single-head copy of `model` for export.

    Classifiers are rebuilt with the distillation head folded into the class head, and end in
    a softmax with `probabilities` (unless they already return probabilities); backbones
    (`SwiftFormerBackbone`) and segmenters (`SwiftFormerSegmenter`) are exported as they are,
    on a fixed input.
    """
    height, width = (input_size, input_size) if np.isscalar(input_size) else tuple(input_size)
    images = keras.Input((height, width, 3), batch_size=batch_size, name="images")
    x = ImageNetNormalization(name="imagenet_normalization")(images) if include_preprocessing else images
    if not is_classifier(model):
        return _fixed_input(model, images, x)
    spec = architecture(model)
    activation = spec["activation"]
    activation = keras.activations.deserialize(activation) if activation else None
    deployed = SwiftFormer(
        spec["depths"], spec["widths"], input_tensor=x, classes=spec["classes"],
        distillation=False, attention_pooling=spec["attention_pooling"],
        classifier_activation=activation, name=f"{model.name}_deploy",
    )
    outputs = deployed.output
    if probabilities and appends_softmax(model):
        outputs = keras.layers.Softmax(name="probabilities")(outputs)
    deployed = keras.Model(images, outputs, name=f"{model.name}_deploy")
    copy_matching_layers(model, deployed, skip=("head",))
    source = {layer.name: layer for layer in model.layers}
    head = deployed.get_layer("head")
    kernel = keras.ops.convert_to_numpy(source["head"].kernel)
    bias = keras.ops.convert_to_numpy(source["head"].bias)
    if spec["distillation"]:
        kernel = (kernel + keras.ops.convert_to_numpy(source["dist_head"].kernel)) / 2
        bias = (bias + keras.ops.convert_to_numpy(source["dist_head"].bias)) / 2
    head.kernel.assign(kernel)
    head.bias.assign(bias)
    return deployed
