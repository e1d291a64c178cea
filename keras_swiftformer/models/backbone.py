"""SwiftFormer as a multi-scale backbone for detection and segmentation."""

import keras

from keras_swiftformer.layers.primitives import batch_norm
from keras_swiftformer.models.swiftformer import SwiftFormer, stage_output_layers
from keras_swiftformer.variants import get_variant

PYRAMID_LEVELS = ("P2", "P3", "P4", "P5")  # strides 4, 8, 16, 32


def check_input_sides(input_shape, owner="SwiftFormerBackbone"):
    for side in tuple(input_shape)[:2]:
        if side is not None and int(side) % 32:
            raise ValueError(
                f"{owner} needs input sides that are multiples of 32 (its pyramid has stride "
                f"32). Received: input_shape={tuple(input_shape)}. Resize or pad the images, "
                "e.g. to 224, 256 or 512."
            )


@keras.saving.register_keras_serializable(package="keras_swiftformer")
class SwiftFormerBackbone(keras.Model):
    """The four stage outputs of a SwiftFormer at strides 4, 8, 16 and 32.

    The model's outputs, and its `pyramid_outputs` attribute (the convention keras-hub's
    detectors and segmenters read), are `{"P2": ..., "P3": ..., "P4": ..., "P5": ...}` with the
    variant's widths as channels. With the same weights they equal the classifier's stage
    outputs. A class rather than a function so that `pyramid_outputs` survives `.keras`
    saving, also when it is nested in a keras-hub `RetinaNetBackbone`.

    Args:
        variant: "XS", "S", "L1" or "L3"; ignored when `depths` and `widths` are given.
        weights: anything the classifiers accept ("imagenet", "imagenet_v1", converted or
            official files); the classification head is dropped.
        input_shape: (height, width, 3); sides must be multiples of 32 (or None).
        feature_norm: add a BatchNorm on each output, as the official detection and
            segmentation code does (`fork_feat=True`; layers `norm0`, `norm2`, `norm4`,
            `norm6` as in its checkpoints).
        depths, widths: a custom architecture instead of a named variant.
        drop_path_rate: stochastic depth for fine-tuning.
        attention_pooling: as for the classifiers (None: what the weights record).

    Example:
    ```python
    backbone = SwiftFormerBackbone("L1", weights="imagenet", input_shape=(512, 512, 3))
    features = backbone(images)          # {"P2": (B,128,128,48), ..., "P5": (B,16,16,384)}
    ```
    """

    def __init__(
        self,
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
        **kwargs,
    ):
        if depths is None or widths is None:
            key, spec = get_variant(variant)
            depths, widths = spec["depths"], spec["widths"]
            name = name or f"swiftformer_{key.lower()}_backbone"
        else:
            variant = None
        name = name or "swiftformer_backbone"
        input_shape = tuple(input_shape)
        check_input_sides(input_shape)
        trunk = SwiftFormer(
            depths, widths, include_top=False, weights=weights, input_shape=input_shape,
            input_tensor=input_tensor, drop_path_rate=drop_path_rate,
            attention_pooling=attention_pooling, name=f"{name}_trunk",
        )
        stage_layers = stage_output_layers(trunk)
        stages = [layer.output for layer in stage_layers]
        if feature_norm:
            stages = [batch_norm(f"norm{2 * i}")(x) for i, x in enumerate(stages)]
        pyramid = dict(zip(PYRAMID_LEVELS, stages))
        inputs = trunk.inputs[0] if len(trunk.inputs) == 1 else trunk.inputs
        super().__init__(inputs=inputs, outputs=pyramid, name=name, **kwargs)

        self.variant = variant
        self.depths = tuple(depths)
        self.widths = tuple(widths)
        self.image_shape = input_shape
        self.feature_norm = feature_norm
        self.drop_path_rate = drop_path_rate
        self.attention_pooling = stage_layers[-1].attn.attention_pooling
        self.pyramid_outputs = pyramid

    def get_config(self):
        # Weights travel in the saved file, not in the config.
        return {
            "name": self.name,
            "trainable": self.trainable,
            "variant": self.variant,
            "depths": list(self.depths),
            "widths": list(self.widths),
            "input_shape": list(self.image_shape),
            "feature_norm": self.feature_norm,
            "drop_path_rate": self.drop_path_rate,
            "attention_pooling": self.attention_pooling,
        }

    @classmethod
    def from_config(cls, config):
        return cls(**config)
