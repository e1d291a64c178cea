"""Saving and loading: .keras files, weights files, and weights moved between backends."""

import json
import subprocess
import sys

import keras
import numpy as np
import pytest
from helpers import BACKEND, TINY, random_images, randomise_weights, subprocess_environment, tiny_model, to_numpy

from keras_swiftformer import SwiftFormer

IMAGES = random_images((2, 40, 56, 3), seed=11)


@pytest.mark.parametrize("release", ["normalize", "softmax_v1"])
def test_keras_file_round_trip(tmp_path, release):
    model = tiny_model(attention_pooling=release, drop_path_rate=0.1, classifier_activation="softmax")
    randomise_weights(model)
    path = str(tmp_path / "tiny.keras")
    model.save(path)
    loaded = keras.saving.load_model(path)
    np.testing.assert_allclose(
        to_numpy(loaded(IMAGES, training=False)), to_numpy(model(IMAGES, training=False)), atol=1e-6
    )
    encoder = loaded.get_layer("stage3_block0")
    assert encoder.attn.attention_pooling == release and encoder.drop_path_rate == 0.1
    # A .keras file is also accepted as `weights=`.
    rebuilt = tiny_model(attention_pooling=release, classifier_activation="softmax", weights=path)
    np.testing.assert_allclose(
        to_numpy(rebuilt(IMAGES, training=False)), to_numpy(model(IMAGES, training=False)), atol=1e-6
    )


def test_keras_file_of_another_architecture_is_a_clear_error(tmp_path):
    """A `.keras` file names its architecture (as a `.weights.h5` record does): building
    another one with it is one clear line, not Keras' shape error; a head of another size is
    new, not partly copied."""
    path = str(tmp_path / "tiny.keras")
    tiny_model().save(path)
    with pytest.raises(ValueError, match=r"are for a custom SwiftFormer \(depths \(2, 1, 2, 1\).*"
                       r"being built is a custom SwiftFormer \(depths \(1, 1, 2, 1\)"):
        SwiftFormer((1, 1, 2, 1), TINY["widths"], weights=path)
    with pytest.raises(ValueError, match="widths"):
        SwiftFormer(TINY["depths"], (8, 16, 24, 40), weights=path)
    assert tiny_model(weights=path, classes=3).output.shape[-1] == 3


def test_plain_weights_file_round_trip(tmp_path):
    model = tiny_model()
    randomise_weights(model, seed=1)
    path = str(tmp_path / "plain.weights.h5")
    model.save_weights(path)  # no metadata record: the head's size is read from the file
    loaded = SwiftFormer(TINY["depths"], TINY["widths"], weights=path)  # classes=None
    assert loaded.output.shape[-1] == TINY["classes"]
    np.testing.assert_allclose(to_numpy(loaded(IMAGES)), to_numpy(model(IMAGES)), atol=1e-6)
    # Another number of classes: the backbone is loaded and the head is new.
    three = tiny_model(weights=path, classes=3)
    assert three.output.shape[-1] == 3
    np.testing.assert_array_equal(to_numpy(three.get_layer("norm").moving_mean), to_numpy(model.get_layer("norm").moving_mean))
    with pytest.raises(ValueError, match="different architecture or head"):
        SwiftFormer((1, 1, 1, 1), TINY["widths"], weights=path)


_OTHER_BACKEND = {"tensorflow": "jax", "jax": "torch", "torch": "tensorflow"}

_LOAD_SCRIPT = """
import numpy as np
from helpers import tiny_model, to_numpy
model = tiny_model(weights={weights!r})
np.save({output!r}, to_numpy(model(np.load({images!r}), training=False)))
"""


def test_weights_move_between_backends(tmp_path):
    """Weights saved here load on another backend with identical outputs (the three tests of
    this kind, one per backend run, cover TF->JAX, JAX->torch and torch->TF)."""
    model = tiny_model()
    randomise_weights(model, seed=2)
    weights, images, output = (str(tmp_path / n) for n in ("w.weights.h5", "x.npy", "y.npy"))
    model.save_weights(weights)
    np.save(images, IMAGES)
    other = _OTHER_BACKEND[BACKEND]
    script = _LOAD_SCRIPT.format(weights=weights, images=images, output=output)
    environment = subprocess_environment(KERAS_BACKEND=other)
    result = subprocess.run(
        [sys.executable, "-c", script], env=environment, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr[-3000:]
    np.testing.assert_allclose(np.load(output), to_numpy(model(IMAGES, training=False)), atol=1e-5)
    assert json.dumps(TINY)  # the subprocess built the same TINY configuration
