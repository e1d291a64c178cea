"""Group normalisation written with rank-4 tensors only, for the Semantic FPN head."""

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="keras_swiftformer")
class GroupNormalization(keras.layers.Layer):
    """Group normalisation over channels-last images (Wu & He, 2018), as in torch.nn.GroupNorm.

    Numerically the same as `keras.layers.GroupNormalization`, but that layer reshapes to a
    rank-5 tensor (batch, height, width, groups, channels/group), which TFLite's integer
    kernels and the Edge TPU do not take. Here the statistics are taken over a rank-4 view
    (batch, height*width, groups, channels/group) instead.

    Args:
        groups: number of channel groups; must divide the channels.
        epsilon: added to the variance (PyTorch's default 1e-5).
    """

    def __init__(self, groups=32, epsilon=1e-5, **kwargs):
        super().__init__(**kwargs)
        self.groups = int(groups)
        self.epsilon = float(epsilon)

    def build(self, input_shape):
        channels = input_shape[-1]
        if channels is None or channels % self.groups:
            raise ValueError(
                f"GroupNormalization needs channels divisible by groups={self.groups}. "
                f"Received input_shape={input_shape}"
            )
        self.gamma = self.add_weight(shape=(channels,), initializer="ones", name="gamma")
        self.beta = self.add_weight(shape=(channels,), initializer="zeros", name="beta")

    def call(self, inputs):
        shape = ops.shape(inputs)
        channels = inputs.shape[-1]
        grouped = ops.reshape(inputs, (shape[0], shape[1] * shape[2], self.groups, channels // self.groups))
        mean = ops.mean(grouped, axis=(1, 3), keepdims=True)
        centred = grouped - mean
        variance = ops.mean(centred * centred, axis=(1, 3), keepdims=True)
        normalised = centred * ops.rsqrt(variance + self.epsilon)
        return ops.reshape(normalised, shape) * self.gamma + self.beta

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "groups": self.groups, "epsilon": self.epsilon}
