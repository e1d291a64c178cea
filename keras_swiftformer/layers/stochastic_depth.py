import keras
from keras import ops


@keras.saving.register_keras_serializable(package="keras_swiftformer")
class StochasticDepth(keras.layers.Layer):
    """Drops a whole residual branch per sample while training ("drop path").

    Kept samples are rescaled by `1 / (1 - rate)` so the expected output is unchanged; at
    inference this layer is the identity, as in timm's `DropPath`.

    Args:
        rate: probability of dropping the branch for a sample, in [0, 1).
        seed: optional integer seed for reproducible masks.
    """

    def __init__(self, rate=0.0, seed=None, **kwargs):
        super().__init__(**kwargs)
        rate = float(rate)
        if not 0.0 <= rate < 1.0:
            raise ValueError(f"`rate` must be in [0, 1). Received: rate={rate}")
        self.rate = rate
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed) if rate > 0.0 else None

    def call(self, inputs, training=None):
        if not training or self.rate == 0.0:
            return inputs
        keep_prob = 1.0 - self.rate
        batch = ops.shape(inputs)[0]
        mask_shape = (batch,) + (1,) * (len(inputs.shape) - 1)
        random = keras.random.uniform(
            mask_shape, dtype=inputs.dtype, seed=self.seed_generator
        )
        mask = ops.floor(random + keep_prob)
        return inputs / keep_prob * mask

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "rate": self.rate, "seed": self.seed}
