"""SwiftFormer image classifiers with the keras.applications signature."""

import keras

from keras_swiftformer.layers.conv_encoder import ConvEncoder
from keras_swiftformer.layers.downsample import DownsampleEmbedding
from keras_swiftformer.layers.efficient_additive_attention import validate_attention_pooling
from keras_swiftformer.layers.primitives import batch_norm, dense
from keras_swiftformer.layers.stem import Stem
from keras_swiftformer.layers.swiftformer_encoder import SwiftFormerEncoder
from keras_swiftformer.variants import architecture, find_variant, get_variant, stage_output_layers  # noqa: F401 - re-exported
from keras_swiftformer.weights.sources import HEAD_LAYERS, PRETRAINED, copy_matching_layers, inspect_weights

_POOLINGS = (None, "avg", "max")


def _validate_architecture(depths, widths):
    depths = tuple(int(d) for d in depths)
    widths = tuple(int(w) for w in widths)
    if len(depths) != len(widths) or not depths:
        raise ValueError(
            "`depths` and `widths` must list one entry per stage, the same number of stages. "
            f"Received: depths={depths}, widths={widths}"
        )
    if any(d < 1 for d in depths):
        raise ValueError(
            "Every stage needs at least one block (its SwiftFormer Encoder). "
            f"Received: depths={depths}"
        )
    if any(w < 2 for w in widths) or widths[0] % 2:
        raise ValueError(
            "Widths must be positive and the first one even (the stem's first convolution "
            f"has widths[0] // 2 channels). Received: widths={widths}"
        )
    return depths, widths


def _model_input(input_tensor, input_shape):
    if input_shape is None:
        input_shape = (None, None, 3)
    input_shape = tuple(input_shape)
    if len(input_shape) != 3 or any(s is not None and int(s) < 1 for s in input_shape):
        raise ValueError(
            "`input_shape` must be (height, width, channels), channels last, each a positive "
            "integer or None (SwiftFormer runs at any resolution). "
            f"Received: input_shape={input_shape}"
        )
    if input_shape[-1] is None:
        raise ValueError(
            f"The number of input channels must be known. Received: input_shape={input_shape}"
        )
    if input_tensor is None:
        return keras.Input(shape=input_shape, name="images")
    if not keras.utils.is_keras_tensor(input_tensor):
        return keras.Input(tensor=input_tensor, shape=input_shape, name="images")
    return input_tensor


def drop_path_rates(depths, drop_path_rate):
    """Per-block stochastic-depth rates, rising linearly with the block's global index.

    As in the official model, only the SwiftFormer Encoder (last block of each stage) uses its
    rate; the Conv. Encoders get none.
    """
    total = sum(depths)
    denominator = max(total - 1, 1)
    rates, start = [], 0
    for depth in depths:
        rates.append([drop_path_rate * (start + j) / denominator for j in range(depth)])
        start += depth
    return rates


def stages(inputs, depths, widths, mlp_ratio=4.0, attention_pooling="normalize", drop_path_rate=0.0,
           layer_scale_init_value=1e-5, fused=False):
    """The stem and the four stages applied to `inputs` (up to the final BatchNorm); with
    `fused`, their inference form (see `keras_swiftformer.models.inference`)."""
    x = Stem(widths[0], fused=fused, name="patch_embed")(inputs)
    rates = drop_path_rates(depths, drop_path_rate)
    for stage, (depth, width) in enumerate(zip(depths, widths)):
        if stage > 0:
            x = DownsampleEmbedding(width, fused=fused, name=f"downsample{stage}")(x)
        for block in range(depth - 1):
            x = ConvEncoder(
                width, int(width * mlp_ratio), layer_scale_init_value=1.0, fused=fused,
                name=f"stage{stage}_block{block}",
            )(x)
        x = SwiftFormerEncoder(
            width,
            mlp_ratio=mlp_ratio,
            layer_scale_init_value=layer_scale_init_value,
            drop_path_rate=rates[stage][depth - 1],
            attention_pooling=attention_pooling,
            fused=fused,
            name=f"stage{stage}_block{depth - 1}",
        )(x)
    return x


def SwiftFormer(
    depths,
    widths,
    include_top=True,
    weights=None,
    input_tensor=None,
    input_shape=None,
    pooling=None,
    classes=None,
    classifier_activation=None,
    mlp_ratio=4.0,
    drop_path_rate=0.0,
    layer_scale_init_value=1e-5,
    distillation=None,
    attention_pooling=None,
    name="swiftformer",
):
    """Builds a SwiftFormer (Shaker et al., ICCV 2023) from its depths and widths.

    Args:
        depths: blocks per stage; the last block of every stage is a SwiftFormer Encoder,
            the others are Conv. Encoders.
        widths: channels per stage.
        include_top: whether to add the classifier (final BatchNorm always belongs to the
            backbone, so pooled features are what the classifier sees).
        weights: None (random initialisation), "imagenet" (current official release),
            "imagenet_v1" (first release, Hugging Face Hub checkpoints), or a path to a
            `.weights.h5`, `.keras`, official `.pth`, or transformers `.safetensors`/`.bin`
            file (see `keras_swiftformer.weights`).
        input_tensor: optional Keras tensor to use as the image input.
        input_shape: (height, width, channels), channels last. Defaults to (None, None, 3):
            any resolution, square or not.
        pooling: with `include_top=False`: None (the 4D feature map), "avg" or "max".
        classes: number of classes of the classifier. None: as many as the weights have,
            else 1000. A different number with pretrained weights keeps the backbone and
            builds a freshly initialised head (the transfer-learning path).
        classifier_activation: activation applied to the logits (None returns logits).
        mlp_ratio: channel expansion inside the blocks.
        drop_path_rate: stochastic depth, rising linearly to this rate at the last block.
        layer_scale_init_value: initial layer scale of the attention block's branches.
        distillation: add the distillation head; logits are the average of both heads, as the
            official model returns at inference. None: as the weights have it, else True.
        attention_pooling: "normalize" (current official release) or "softmax_v1" (first
            release, Hugging Face Hub checkpoints). None: what the weights file records, else
            "normalize".
        name: model name.

    Returns:
        A functional `keras.Model`.
    """
    depths, widths = _validate_architecture(depths, widths)
    if pooling not in _POOLINGS:
        raise ValueError(f"`pooling` must be one of {_POOLINGS}. Received: pooling={pooling!r}")

    source = None
    if weights is not None:
        source = inspect_weights(weights, depths, widths)
        source.check_architecture(depths, widths)
        attention_pooling = source.choose_attention_pooling(attention_pooling)
        if distillation is None:
            distillation = source.distillation
        if classes is None:
            classes = source.classes
    if distillation is None:
        distillation = True
    if classes is None:
        classes = 1000
    if include_top and (isinstance(classes, bool) or int(classes) != classes or int(classes) < 1):
        raise ValueError(f"`classes` must be a positive integer. Received: classes={classes}")
    if attention_pooling is None:
        attention_pooling = "normalize"
    validate_attention_pooling(attention_pooling)

    inputs = _model_input(input_tensor, input_shape)
    x = stages(inputs, depths, widths, mlp_ratio, attention_pooling, drop_path_rate, layer_scale_init_value)
    x = batch_norm("norm")(x)

    if include_top:
        x = keras.layers.GlobalAveragePooling2D(data_format="channels_last", name="avg_pool")(x)
        logits = dense(int(classes), "head")(x)
        if distillation:
            # The official model averages its class and distillation heads at inference.
            logits = keras.layers.Average(name="head_average")([logits, dense(int(classes), "dist_head")(x)])
        x = keras.layers.Activation(classifier_activation, name="predictions")(logits)
    elif pooling == "avg":
        x = keras.layers.GlobalAveragePooling2D(data_format="channels_last", name="avg_pool")(x)
    elif pooling == "max":
        x = keras.layers.GlobalMaxPooling2D(data_format="channels_last", name="max_pool")(x)

    model_inputs = keras.utils.get_source_inputs(input_tensor) if input_tensor is not None else inputs
    model = keras.Model(model_inputs, x, name=name)
    if source is not None:
        _load_weights(source, model, depths, widths, include_top, classes, distillation, attention_pooling)
    return model


def _load_weights(source, model, depths, widths, include_top, classes, distillation, attention_pooling):
    """Fills `model` from `source`; a model with another head (or none) is filled through a
    donor built with the source's own head, whose backbone layers are then copied."""
    if source.has_head(include_top, classes, distillation):
        source.fill(model)
        return
    donor = SwiftFormer(
        depths,
        widths,
        input_shape=(None, None, model.inputs[0].shape[-1]),
        classes=source.classes,
        distillation=source.distillation,
        attention_pooling=attention_pooling,
        name="donor",
    )
    source.fill(donor)
    copy_matching_layers(donor, model, skip=() if int(classes) == source.classes else HEAD_LAYERS)


def build_variant(variant, **kwargs):
    """`SwiftFormer<variant>(**kwargs)` for a variant id ("XS", "S", "L1", "L3"): the one
    lookup of a model builder by name (command lines, recipes, benchmarks)."""
    key, _ = get_variant(variant)
    return _BUILDERS[key](**kwargs)


def build_with_record(variant, weights="imagenet", attention_pooling=None):
    """The classifier of a variant with `weights` ("none" or None: random initialisation),
    and what the weights record: `(model, class_names, image_size)`, the last two None except
    for fine-tuned weights (class names that match the head, the side they were trained at).
    The weights are read once. What the command lines and `explain` build from.

    `variant=None`: the architecture a weights file holds (a variant, or any depths and
    widths), else L1. `attention_pooling=None`: the one the weights record, else the
    current release's."""
    if isinstance(weights, str) and weights.lower() == "none":
        weights = None
    source = None
    if variant is None and weights is not None and weights not in PRETRAINED:
        source = inspect_weights(weights)  # a file: it names its architecture
        if source.depths:
            variant = find_variant(source.depths, source.widths)
            if variant is None:  # custom depths and widths
                model = SwiftFormer(source.depths, source.widths, weights=source, attention_pooling=attention_pooling)
                return model, _recorded_names(source, model), source.image_size
    variant = variant or "L1"
    if weights is not None and source is None:
        _, spec = get_variant(variant)
        source = inspect_weights(weights, spec["depths"], spec["widths"])
    model = build_variant(variant, weights=source, attention_pooling=attention_pooling)
    return model, _recorded_names(source, model), getattr(source, "image_size", None)


def _recorded_names(source, model):
    """The class names the weights record, if they name each of the model's classes."""
    names = getattr(source, "class_names", None)
    return list(names) if names and len(names) == model.output.shape[-1] else None


def _variant_builder(variant):
    key, spec = get_variant(variant)

    def builder(
        include_top=True,
        weights=None,
        input_tensor=None,
        input_shape=None,
        pooling=None,
        classes=None,
        classifier_activation=None,
        drop_path_rate=0.0,
        distillation=None,
        attention_pooling=None,
        name=f"swiftformer_{key.lower()}",
    ):
        return SwiftFormer(
            spec["depths"],
            spec["widths"],
            include_top=include_top,
            weights=weights,
            input_tensor=input_tensor,
            input_shape=input_shape,
            pooling=pooling,
            classes=classes,
            classifier_activation=classifier_activation,
            drop_path_rate=drop_path_rate,
            distillation=distillation,
            attention_pooling=attention_pooling,
            name=name,
        )

    paper = spec["paper"]
    builder.__name__ = f"SwiftFormer{key}"
    builder.__qualname__ = builder.__name__
    builder.__doc__ = (
        f"SwiftFormer-{key}: depths {spec['depths']}, widths {spec['widths']} "
        f"({paper['params_m']}M parameters, {paper['gmacs']} GMACs, {paper['top1']}% ImageNet "
        "top-1 in the paper).\n\nSame arguments as `keras_swiftformer.SwiftFormer`, without "
        "`depths` and `widths`."
    )
    return builder


SwiftFormerXS = _variant_builder("XS")
SwiftFormerS = _variant_builder("S")
SwiftFormerL1 = _variant_builder("L1")
SwiftFormerL3 = _variant_builder("L3")
_BUILDERS = {"XS": SwiftFormerXS, "S": SwiftFormerS, "L1": SwiftFormerL1, "L3": SwiftFormerL3}


def stage_feature_model(model):
    """A model sharing `model`'s weights whose outputs are the four stage outputs."""
    inputs = model.inputs[0] if len(model.inputs) == 1 else model.inputs
    return keras.Model(
        inputs,
        [layer.output for layer in stage_output_layers(model)],
        name=f"{model.name}_stages",
    )
