"""The inference form of a SwiftFormer: every BatchNorm, layer scale and the two heads folded
into the neighbouring weights.

At inference a BatchNorm is a per-channel `x * s + t` and a layer scale a per-channel `x * g`,
so each can be folded into the convolution or dense layer next to it; the distillation head
averaged with the class head is one head with the averaged weights; the final BatchNorm
commutes with average pooling and folds into that head. The folded model computes the same
function (to float32 rounding: the parity tests hold it to the same 1e-4 as the model) with
fewer layers and weights and none of the per-call BatchNorm arithmetic, which is what a
jit compiler (JAX, XLA, torch.compile) cannot do on its own when the weights are arguments, and
what Keras' per-layer overhead on the PyTorch backend pays for.

`predict`, `model.predict`-style serving and the benchmarks use it; training and `explain`
(which reads the attention maps and BatchNorm'd features) use the model as built.
"""

import keras
import numpy as np

from keras_swiftformer.layers.primitives import assign_folded, batch_norm, batch_norm_affine, dense, kernel_and_bias
from keras_swiftformer.models.swiftformer import architecture, stage_output_layers, stages

_FOLDED = ("norm", "head", "dist_head")  # folded by `inference_model` itself
_WITHOUT_WEIGHTS = ("avg_pool", "max_pool", "head_average", "predictions")


def is_fused(model):
    """Whether `model` is already an inference form (its blocks are `fused=True`)."""
    return any(getattr(layer, "fused", False) for layer in model.layers)


def inference_model(model):
    """A copy of a SwiftFormer classifier or feature extractor for inference only.

    Same inputs and outputs as `model` (within float32 rounding), with BatchNorm, layer
    scales and the class and distillation heads folded into the convolution and dense weights.
    `model` is left as it is; later changes to its weights do not reach the copy. Not for
    training: the copy has no BatchNorm, layer scale or stochastic depth left to train.

    Args:
        model: a model built by `SwiftFormer`/`SwiftFormerXS`...`SwiftFormerL3` (any head,
            `include_top=False` with any pooling), e.g. after fine-tuning.

    Returns:
        A functional `keras.Model` with the same name, input shape and output.

    Example:
    ```python
    model = keras_swiftformer.SwiftFormerL1(weights="imagenet")
    fast = keras_swiftformer.inference_model(model)
    logits = fast.predict(images)   # the same logits as model.predict(images)
    ```
    """
    if not isinstance(model, keras.Model):
        raise TypeError(f"`inference_model` takes a Keras model. Received: {type(model).__name__}")
    if is_fused(model):
        return model
    try:
        spec = architecture(model)
    except (ValueError, KeyError) as error:
        raise ValueError(
            f"`inference_model` takes a SwiftFormer built by `keras_swiftformer.SwiftFormer` or a "
            f"variant builder; model '{model.name}' is not one ({error})."
        ) from None
    layers = {layer.name: layer for layer in model.layers}
    unknown = sorted(
        layer.name for layer in model.layers
        if layer.weights and not hasattr(layer, "fold_into") and layer.name not in _FOLDED
    )
    if unknown or "norm" not in layers or len(model.inputs) != 1 or len(model.outputs) != 1:
        raise ValueError(
            f"`inference_model` takes a SwiftFormer classifier or feature extractor as the builders "
            f"make it (one input, one output); model '{model.name}' has other layers with weights "
            f"({', '.join(unknown) or 'several inputs or outputs'}). Fold the SwiftFormer inside "
            "it and apply your own layers to its output."
        )
    last_blocks = stage_output_layers(model)
    images = keras.Input(shape=tuple(model.inputs[0].shape[1:]), name="images")
    x = stages(images, spec["depths"], spec["widths"], mlp_ratio=last_blocks[0].mlp_ratio,
               attention_pooling=spec["attention_pooling"], fused=True)
    if spec["classes"] is not None:
        x = keras.layers.GlobalAveragePooling2D(data_format="channels_last", name="avg_pool")(x)
        x = dense(spec["classes"], "head")(x)
        x = keras.layers.Activation(keras.activations.deserialize(spec["activation"]) if spec["activation"]
                                    else None, name="predictions")(x)
    else:
        x = batch_norm("norm")(x)
        if "avg_pool" in layers:
            x = keras.layers.GlobalAveragePooling2D(data_format="channels_last", name="avg_pool")(x)
        elif "max_pool" in layers:
            x = keras.layers.GlobalMaxPooling2D(data_format="channels_last", name="max_pool")(x)
    folded = keras.Model(images, x, name=model.name)
    for layer in model.layers:
        if hasattr(layer, "fold_into"):
            layer.fold_into(folded.get_layer(layer.name))
    if spec["classes"] is None:
        folded.get_layer("norm").set_weights(layers["norm"].get_weights())
    else:
        _fold_heads(layers, folded.get_layer("head"))
    return folded


def _fold_heads(layers, head):
    """`head` = the average of the class and distillation heads applied to the final
    BatchNorm's output: `(t + x s) W + b` with `W, b` the averaged heads."""
    kernel, bias = kernel_and_bias(layers["head"])
    if "dist_head" in layers:
        dist_kernel, dist_bias = kernel_and_bias(layers["dist_head"])
        kernel, bias = (kernel + dist_kernel) / 2, (bias + dist_bias) / 2
    scale, shift = batch_norm_affine(layers["norm"])
    assign_folded(head, kernel * scale[:, None], bias + np.asarray(shift) @ kernel)
