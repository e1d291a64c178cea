"""SwiftFormer + Semantic FPN (Kirillov et al., 2019), the paper's ADE20K segmentation setup.

Neck: an FPN with `fpn_channels` (256) over P2..P5 (1x1 lateral convolutions, top-down
nearest-neighbour upsampling and addition, 3x3 output convolutions), as mmsegmentation's `FPN`
that the paper's Semantic FPN config uses. Head: each level goes to stride 4 through
log2(stride/4) stages of conv3x3-GroupNorm-ReLU + bilinear x2 (one stage for P2), the four
maps are summed, dropout and a 1x1 classifier give logits at stride 4, and a bilinear x4
upsampling gives logits at the input resolution.
"""


import keras

from keras_swiftformer.layers.group_normalization import GroupNormalization
from keras_swiftformer.layers.primitives import DATA_FORMAT, batch_norm
from keras_swiftformer.layers.upsample import Upsample
from keras_swiftformer.models.backbone import PYRAMID_LEVELS, SwiftFormerBackbone, check_input_sides
from keras_swiftformer.variants import get_variant

HEAD_NORMS = ("group", "batch")


def _conv(filters, kernel_size, name, use_bias=True):
    return keras.layers.Conv2D(
        filters, kernel_size, padding="same", use_bias=use_bias, data_format=DATA_FORMAT,
        kernel_initializer=keras.initializers.HeNormal(), name=name,
    )


def _upsample(factor, interpolation, name):
    return Upsample(factor, interpolation, name=name)


def feature_pyramid(features, channels):
    """mmsegmentation's FPN neck: same-width maps at strides 4..32."""
    laterals = [_conv(channels, 1, f"fpn_lateral{i}")(x) for i, x in enumerate(features)]
    for i in range(len(laterals) - 1, 0, -1):
        upsampled = _upsample(2, "nearest", f"fpn_topdown{i}")(laterals[i])
        laterals[i - 1] = keras.layers.Add(name=f"fpn_merge{i - 1}")([laterals[i - 1], upsampled])
    return [_conv(channels, 3, f"fpn_output{i}")(x) for i, x in enumerate(laterals)]


def semantic_fpn_head(pyramid, channels, num_classes, norm, groups, dropout):
    """Kirillov et al.'s semantic head: every level to stride 4, summed, classified."""
    merged = []
    for level, x in enumerate(pyramid):
        for stage in range(max(1, level)):
            prefix = f"head_level{level}_stage{stage}"
            x = _conv(channels, 3, f"{prefix}_conv", use_bias=False)(x)
            if norm == "group":
                x = GroupNormalization(groups, name=f"{prefix}_norm")(x)
            else:
                x = batch_norm(f"{prefix}_norm")(x)
            x = keras.layers.ReLU(name=f"{prefix}_relu")(x)
            if level > 0:
                x = _upsample(2, "bilinear", f"{prefix}_upsample")(x)
        merged.append(x)
    x = keras.layers.Add(name="head_sum")(merged)
    if dropout:
        x = keras.layers.Dropout(dropout, name="head_dropout")(x)
    return _conv(num_classes, 1, "classifier")(x)


def SwiftFormerSegmenter(
    variant="L1",
    num_classes=150,
    backbone_weights="imagenet",
    input_shape=(None, None, 3),
    fpn_channels=256,
    head_channels=128,
    head_norm="group",
    norm_groups=32,
    dropout=0.1,
    drop_path_rate=0.1,
    depths=None,
    widths=None,
    attention_pooling=None,
    name=None,
):
    """A Semantic FPN segmenter on a SwiftFormer backbone, returning per-pixel logits.

    Args:
        variant: "XS", "S", "L1" or "L3" (or `depths` and `widths`).
        num_classes: number of classes (ADE20K: 150).
        backbone_weights: weights for the backbone: anything the classifiers take
            ("imagenet", "imagenet_v1", files) or None for random initialisation.
        input_shape: (height, width, 3); sides must be multiples of 32 (or None).
        fpn_channels, head_channels: widths of the FPN (256) and of the head (128).
        head_norm: "group" (GroupNorm, as Kirillov et al.) or "batch" (BatchNorm, which the
            TFLite converter folds into the convolutions: the lighter choice for phones).
        norm_groups: GroupNorm groups (32); must divide `head_channels`.
        dropout: before the classifier (0.1 as mmsegmentation).
        drop_path_rate: stochastic depth in the backbone (0.1 in the paper's ADE20K setup).

    Returns:
        A functional `keras.Model` from images (ImageNet-normalised, as `preprocess_input`
        gives) to logits of shape (batch, height, width, num_classes). The backbone is the
        nested model `model.get_layer("backbone")`, with `feature_norm=True` as in the
        official segmentation code.
    """
    if head_norm not in HEAD_NORMS:
        raise ValueError(f"`head_norm` must be one of {HEAD_NORMS}. Received: {head_norm!r}")
    if int(num_classes) < 2:
        raise ValueError(f"`num_classes` must be at least 2. Received: {num_classes}")
    if head_norm == "group" and head_channels % norm_groups:
        raise ValueError(
            f"`head_channels` ({head_channels}) must be divisible by `norm_groups` ({norm_groups})."
        )
    input_shape = tuple(input_shape)
    check_input_sides(input_shape, "SwiftFormerSegmenter")
    if depths is None or widths is None:
        key, _ = get_variant(variant)
        name = name or f"swiftformer_{key.lower()}_semantic_fpn"
    name = name or "swiftformer_semantic_fpn"
    backbone = SwiftFormerBackbone(
        variant, weights=backbone_weights, input_shape=input_shape, feature_norm=True,
        depths=depths, widths=widths, drop_path_rate=drop_path_rate,
        attention_pooling=attention_pooling, name="backbone",
    )
    images = keras.Input(input_shape, name="images")
    features = backbone(images)
    pyramid = feature_pyramid([features[level] for level in PYRAMID_LEVELS], fpn_channels)
    logits = semantic_fpn_head(pyramid, head_channels, num_classes, head_norm, norm_groups, dropout)
    logits = _upsample(4, "bilinear", "logits_upsample")(logits)
    logits = keras.layers.Activation("linear", dtype="float32", name="logits")(logits)
    model = keras.Model(images, logits, name=name)
    return model


