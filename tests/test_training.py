"""Training-time behaviour: gradients reach every weight, BatchNorm updates like PyTorch's,
and `model.fit` runs."""

import keras
import numpy as np
from helpers import gradients, random_images, tiny_model, to_numpy

from keras_swiftformer.layers.primitives import batch_norm

LABELS = np.array([0, 3, 7, 9], "int32")


def test_every_weight_receives_a_gradient():
    model = tiny_model(attention_pooling="normalize")
    grads = gradients(model, random_images((4, 32, 48, 3)), LABELS)
    assert len(grads) == len(model.trainable_weights)
    dead = [path for path, g in grads.items() if g is None or not np.any(g != 0)]
    assert dead == [], dead


def test_first_release_leaves_only_w_g_without_gradient():
    """In the first release the token weights are softmax over a singleton axis (all ones),
    so `w_g` cannot learn, exactly as in the original; everything else must."""
    model = tiny_model(attention_pooling="softmax_v1")
    grads = gradients(model, random_images((4, 32, 48, 3)), LABELS)
    dead = sorted(path for path, g in grads.items() if g is None or not np.any(g != 0))
    assert dead == sorted(v.path for v in model.trainable_weights if v.path.endswith("w_g"))
    assert len(dead) == 4


def test_batch_norm_matches_pytorch_defaults():
    layer = batch_norm("bn")
    x = np.random.RandomState(0).normal(3.0, 2.0, (8, 4, 4, 5)).astype("float32")
    layer(x, training=True)
    # PyTorch momentum 0.1: running = 0.9 * running + 0.1 * batch statistic.
    np.testing.assert_allclose(to_numpy(layer.moving_mean), 0.1 * x.mean(axis=(0, 1, 2)), rtol=1e-4)
    assert layer.epsilon == 1e-5
    model = tiny_model()
    norms = [layer for layer in model._flatten_layers() if isinstance(layer, keras.layers.BatchNormalization)]
    # stem 2, Conv. Encoders 1 each (2), SwiftFormer Encoders 2 each (8), downsamples 3, final 1
    assert len(norms) == 16
    assert all(n.epsilon == 1e-5 and n.momentum == 0.9 for n in norms)


def test_fit_learns_a_small_problem():
    rng = np.random.RandomState(0)
    images = rng.uniform(0, 1, (32, 32, 32, 3)).astype("float32")
    labels = (images[:, :16].mean(axis=(1, 2, 3)) > images[:, 16:].mean(axis=(1, 2, 3))).astype("int32")
    images[labels == 1, :16] += 0.5
    model = tiny_model(classes=2, drop_path_rate=0.1)
    model.compile(
        optimizer=keras.optimizers.AdamW(3e-3),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
    )
    before = [to_numpy(v).copy() for v in model.trainable_weights]
    history = model.fit(images, labels, batch_size=8, epochs=8, verbose=0)
    assert history.history["loss"][-1] < history.history["loss"][0]
    changed = sum(np.any(to_numpy(v) != b) for v, b in zip(model.trainable_weights, before))
    assert changed == len(before)
