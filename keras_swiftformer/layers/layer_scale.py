import math

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="keras_swiftformer")
class LayerScale(keras.layers.Layer):
    """Learnable per-channel scale of a residual branch (CaiT-style layer scale).

    Args:
        init_value: initial value of every channel's scale. SwiftFormer uses 1.0 in its
            convolutional blocks and 1e-5 in the two residual branches of its attention block.
    """

    def __init__(self, init_value=1.0, **kwargs):
        super().__init__(**kwargs)
        self.init_value = float(init_value)
        if not math.isfinite(self.init_value):
            raise ValueError(f"`init_value` must be a finite number. Received: init_value={init_value}")

    def build(self, input_shape):
        channels = input_shape[-1]
        if channels is None:
            raise ValueError(
                "LayerScale needs a known number of channels (last axis). "
                f"Received: input_shape={input_shape}"
            )
        self.scale = self.add_weight(
            name="scale",
            shape=(channels,),
            initializer=keras.initializers.Constant(self.init_value),
        )

    def call(self, inputs):
        return inputs * ops.cast(self.scale, inputs.dtype)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "init_value": self.init_value}
