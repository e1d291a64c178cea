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

The form is a `FoldedSwiftFormer`: a functional model whose layers make one chain, and whose
`call` runs them one after another through their own `call`. Keras' functional graph and
`__call__` bookkeeping cost about 0.5 ms a top-level layer on the PyTorch backend (13-18 ms of
a 40-90 ms batch-1 call), and `keras.ops.pad` inside `ZeroPadding2D` makes `torch.compile`
recompile at every call; jit compilers trace either path to the same program.
"""

import keras
import numpy as np
from keras import ops

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
        A functional `keras.Model` (a `FoldedSwiftFormer`) with the same name, input shape
        and output.

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
    folded = FoldedSwiftFormer(images, x, name=model.name)
    for layer in model.layers:
        if hasattr(layer, "fold_into"):
            layer.fold_into(folded.get_layer(layer.name))
    if spec["classes"] is None:
        folded.get_layer("norm").set_weights(layers["norm"].get_weights())
    else:
        _fold_heads(layers, folded.get_layer("head"))
    return folded


@keras.saving.register_keras_serializable(package="keras_swiftformer")
class FoldedSwiftFormer(keras.Model):
    """The functional model `inference_model` returns; `call` runs the chain of its layers
    through their own `call`, skipping the graph walk and each layer's `__call__`.

    That is exact only for what `inference_model` builds: one input, layers that each take the
    previous one's output, float32 throughout (no autocasting to do), no masks and no
    training-time behaviour. Anything else (another dtype policy, a dict of inputs) takes the
    functional path, which gives the same result.
    """

    def __init__(self, inputs, outputs, name=None, **kwargs):
        super().__init__(inputs, outputs, name=name, **kwargs)
        self._chain = _layer_chain(self)

    def call(self, inputs, training=None, mask=None):
        if self._chain is None or mask is not None or not hasattr(inputs, "shape") \
                or len(inputs.shape) != len(self.inputs[0].shape):
            return super().call(inputs, training=training, mask=mask)
        x = inputs if keras.backend.standardize_dtype(inputs.dtype) == "float32" else ops.cast(inputs, "float32")
        for layer in self._chain:
            x = layer.call(x)
        return x

    def _clear_losses(self):
        """Clears this model's own losses only. Keras' `__call__` walks every sublayer to clear
        theirs; under `torch.compile` that walk is traced, and dynamo then checks each
        sublayer's loss lists before every compiled call (hundreds of guards, about a third of
        the guard checks at batch 1). No layer of an inference form adds a loss."""
        self._losses.clear()
        self._loss_ids.clear()


def _layer_chain(model):
    """`model`'s layers in order if each one's only input is the previous one's output and all
    compute and store float32; else None."""
    chain, previous = [], model.inputs[0]
    for layer in model.layers:
        if isinstance(layer, keras.layers.InputLayer):
            continue
        nodes = layer._inbound_nodes
        if len(nodes) != 1 or len(nodes[0].input_tensors) != 1 or nodes[0].input_tensors[0] is not previous \
                or len(nodes[0].output_tensors) != 1 or layer.dtype_policy.name != "float32":
            return None
        chain.append(layer)
        previous = nodes[0].output_tensors[0]
    return tuple(chain) if previous is model.outputs[0] else None


def _fold_heads(layers, head):
    """`head` = the average of the class and distillation heads applied to the final
    BatchNorm's output: `(t + x s) W + b` with `W, b` the averaged heads."""
    kernel, bias = kernel_and_bias(layers["head"])
    if "dist_head" in layers:
        dist_kernel, dist_bias = kernel_and_bias(layers["dist_head"])
        kernel, bias = (kernel + dist_kernel) / 2, (bias + dist_bias) / 2
    scale, shift = batch_norm_affine(layers["norm"])
    assign_folded(head, kernel * scale[:, None], bias + np.asarray(shift) @ kernel)
