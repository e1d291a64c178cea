"""Shared test helpers. Every test module runs on the backend in KERAS_BACKEND."""

import importlib
import os

import keras
import numpy as np
import pytest

BACKEND = keras.backend.backend()
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
GOLDEN_PATH = os.path.join(ROOT, "tests", "golden", "tiny_swiftformer.npz")

# A reduced SwiftFormer: every block type, four stages, a stage of two Conv. Encoders.
TINY = {"depths": (2, 1, 2, 1), "widths": (8, 16, 24, 32), "classes": 10}
RELEASES = ("normalize", "softmax_v1")
LOGIT_TOLERANCE = 1e-4


def subprocess_environment(**variables):
    """os.environ for a Python subprocess that imports what the tests import (the repository's
    tools, the test helpers and the examples), plus `variables`."""
    paths = [ROOT, os.path.join(ROOT, "tests"), os.path.join(ROOT, "examples")]
    if os.environ.get("PYTHONPATH"):
        paths.append(os.environ["PYTHONPATH"])
    return dict(os.environ, PYTHONPATH=os.pathsep.join(paths), **variables)


def optional(module_name):
    """Imports an optional test dependency, or skips; in CI (KSF_REQUIRE_ALL=1) a missing one
    fails instead, so the default run cannot silently drop a capability."""
    try:
        return importlib.import_module(module_name)
    except ImportError:
        if os.environ.get("KSF_REQUIRE_ALL") == "1":
            pytest.fail(f"{module_name} is required in this run (KSF_REQUIRE_ALL=1) but missing")
        pytest.skip(f"{module_name} is not installed")


def to_numpy(x):
    return keras.ops.convert_to_numpy(x)


def random_images(shape, seed=0):
    return np.random.RandomState(seed).uniform(-2.0, 2.0, shape).astype("float32")


def assert_stage_close(actual, expected, rtol=LOGIT_TOLERANCE):
    """Stage outputs can be large (first-release attention sums over all tokens), so the
    tolerance is relative to the reference's magnitude, never looser than 1e-4 absolute."""
    assert len(actual) == len(expected)
    for index, (a, e) in enumerate(zip(actual, expected)):
        a = to_numpy(a)
        assert a.shape == e.shape, f"stage {index}: {a.shape} != {e.shape}"
        scale = max(1.0, float(np.abs(e).max()))
        diff = float(np.abs(a - e).max())
        assert diff <= rtol * scale, f"stage {index}: max diff {diff} (scale {scale})"


def tiny_model(**kwargs):
    from keras_swiftformer import SwiftFormer

    arguments = {"classes": TINY["classes"], **kwargs}
    return SwiftFormer(TINY["depths"], TINY["widths"], **arguments)


def gradients(model, images, labels):
    """Gradient of the mean cross-entropy w.r.t. every trainable weight, by variable path."""
    variables = model.trainable_variables
    loss_fn = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    if BACKEND == "tensorflow":
        import tensorflow as tf

        with tf.GradientTape() as tape:
            loss = loss_fn(labels, model(images, training=True))
        grads = tape.gradient(loss, variables)
    elif BACKEND == "jax":
        import jax

        trainable = [v.value for v in variables]
        non_trainable = [v.value for v in model.non_trainable_variables]

        def compute_loss(trainable_values):
            logits, _ = model.stateless_call(trainable_values, non_trainable, images, training=True)
            return loss_fn(labels, logits)

        grads = jax.jit(jax.grad(compute_loss))(trainable)
    elif BACKEND == "torch":
        import torch

        model.zero_grad() if hasattr(model, "zero_grad") else None
        loss = loss_fn(torch.as_tensor(labels), model(images, training=True))
        loss.backward()
        grads = [v.value.grad for v in variables]
    else:
        raise NotImplementedError(BACKEND)
    return {v.path: (None if g is None else to_numpy(g)) for v, g in zip(variables, grads)}


def randomise_weights(model, seed=0):
    """Realistic random values for every weight (as the PyTorch reference does), so exported
    files are compared on meaningful logits rather than the near-zero ones of the default
    initialisation."""
    rng = np.random.RandomState(seed)
    for variable in model.weights:
        path, shape = variable.path, tuple(variable.shape)
        if "seed_generator" in path:
            continue
        name = path.split("/")[-1]
        if name == "kernel":
            # Depthwise kernels are (kh, kw, C, 1): each output sees kh * kw inputs.
            fan_in = int(np.prod(shape[:2])) if "dwconv" in path else int(np.prod(shape[:-1]))
            value = rng.normal(0, fan_in**-0.5, shape)
        elif name == "gamma" or name == "moving_variance":
            value = rng.uniform(0.5, 1.5, shape)
        elif name in ("beta", "bias"):
            value = rng.normal(0, 0.1, shape)
        elif name == "moving_mean":
            value = rng.normal(0, 0.2, shape)
        elif name == "scale":
            value = rng.uniform(0.1, 0.6, shape)
        elif name == "w_g":
            value = rng.normal(0, 1.0, shape)
        else:
            raise AssertionError(f"unexpected weight {path}")
        variable.assign(value.astype("float32"))
    return model


def digits_folder(root, per_class, corrupt=False):
    """scikit-learn's handwritten digits (real scans, 8x8) as 32x32 RGB PNGs, one folder per
    digit."""
    from PIL import Image

    datasets = optional("sklearn.datasets")
    digits = datasets.load_digits()
    counts = {}
    for index, (image, label) in enumerate(zip(digits.images, digits.target)):
        if counts.get(label, 0) >= per_class:
            continue
        counts[label] = counts.get(label, 0) + 1
        folder = os.path.join(root, f"digit_{label}")
        os.makedirs(folder, exist_ok=True)
        pixels = (image / 16.0 * 255.0).astype("uint8")
        Image.fromarray(pixels).convert("RGB").resize((32, 32), Image.NEAREST).save(f"{folder}/{index}.png")
    if corrupt:
        with open(os.path.join(root, "digit_3", "broken.png"), "wb") as file:
            file.write(b"\x89PNG\r\n\x1a\n truncated")
    return root


def scene_parse_examples(count=8):
    """tfds mock examples of scene_parse150 as ADE20K has them (mock_data's own draw sizes
    image and mask independently): masks of 0 ("other") and 1..150, the image's size."""
    import tensorflow as tf

    random = np.random.RandomState(0)
    images = random.randint(0, 256, (count, 72, 80, 3)).astype("uint8")
    annotations = random.randint(0, 151, (count, 72, 80, 3)).astype("uint8")
    return tf.data.Dataset.from_tensor_slices({"image": images, "annotation": annotations})
