"""Keras' random initializers, drawn with NumPy on the JAX backend.

On JAX, Keras' initializers draw with `jax.random` outside any compiled function, which
compiles one XLA program per weight shape: building a SwiftFormer compiled about a hundred of
them, 9.5 s of a 10 s build on 2 cores (measured with jax 0.10, SwiftFormer-XS and L3), for
values that pretrained or converted weights then overwrite. On JAX these subclasses draw the
same distribution with NumPy, from the initializer's own integer seed (which Keras draws from
Python's generator when none is given, so `keras.utils.set_random_seed` still fixes them):
0.9 s for the same build. On TensorFlow and PyTorch, where Keras' draws are fast, they are
Keras' own, so seeded runs there build exactly the weights they built before.
"""

import keras
import numpy as np


def _on_host(initializer):
    return keras.backend.backend() == "jax" and isinstance(initializer.seed, int)


def _cast(values, dtype):
    return values.astype(keras.backend.standardize_dtype(dtype or keras.config.floatx()))


@keras.saving.register_keras_serializable(package="keras_swiftformer")
class TruncatedNormal(keras.initializers.TruncatedNormal):
    """`keras.initializers.TruncatedNormal`: a normal distribution whose values beyond two
    standard deviations from the mean are drawn again (drawn with NumPy on JAX)."""

    def __call__(self, shape, dtype=None):
        if not _on_host(self):
            return super().__call__(shape, dtype=dtype)
        generator = np.random.default_rng(self.seed)
        values = generator.standard_normal(tuple(int(d) for d in shape))
        outside = np.abs(values) > 2.0
        while outside.any():
            values[outside] = generator.standard_normal(int(outside.sum()))
            outside = np.abs(values) > 2.0
        return _cast(self.mean + self.stddev * values, dtype)


@keras.saving.register_keras_serializable(package="keras_swiftformer")
class RandomNormal(keras.initializers.RandomNormal):
    """`keras.initializers.RandomNormal` (drawn with NumPy on JAX)."""

    def __call__(self, shape, dtype=None):
        if not _on_host(self):
            return super().__call__(shape, dtype=dtype)
        values = np.random.default_rng(self.seed).standard_normal(tuple(int(d) for d in shape))
        return _cast(self.mean + self.stddev * values, dtype)
