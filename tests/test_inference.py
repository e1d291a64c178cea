"""The inference form (`inference_model`): BatchNorm, layer scales and the two heads folded into
the weights give the model's own outputs on every backend, serialise, and refuse models they
cannot fold. Parity with the PyTorch reference for every variant is in test_parity_torch."""

import keras
import numpy as np
import pytest
from helpers import BACKEND, RELEASES, random_images, randomise_weights, tiny_model, to_numpy

from keras_swiftformer import inference_model
from keras_swiftformer.layers import ConvEncoder, LayerScale, SwiftFormerEncoder

IMAGES = random_images((2, 64, 96, 3), seed=3)


def _close(model, folded, images=IMAGES):
    expected, actual = to_numpy(model(images, training=False)), to_numpy(folded(images))
    assert actual.shape == expected.shape
    scale = max(1.0, float(np.abs(expected).max()))
    assert float(np.abs(actual - expected).max()) <= 1e-5 * scale, float(np.abs(actual - expected).max())


@pytest.mark.parametrize("release", RELEASES)
@pytest.mark.parametrize("distillation", [True, False])
def test_folded_classifier_gives_the_same_logits(release, distillation):
    model = randomise_weights(tiny_model(attention_pooling=release, distillation=distillation), seed=1)
    folded = inference_model(model)
    _close(model, folded)
    # Nothing left to fold: no BatchNorm, no layer scale, one head.
    layers = list(folded._flatten_layers())
    assert not [layer for layer in layers if isinstance(layer, (keras.layers.BatchNormalization, LayerScale))]
    assert [layer.name for layer in folded.layers if layer.name.endswith("head")] == ["head"]
    assert len(folded.weights) < len(model.weights)
    assert folded.name == model.name
    # The copy is independent of the model it came from.
    model.get_layer("head").bias.assign(np.ones(10, "float32") * 100)
    assert float(np.abs(to_numpy(folded(IMAGES))).max()) < 50


@pytest.mark.parametrize("pooling", [None, "avg", "max"])
def test_folded_feature_extractor_gives_the_same_features(pooling):
    model = randomise_weights(tiny_model(include_top=False, pooling=pooling), seed=2)
    _close(model, inference_model(model))


def test_folded_softmax_classifier_at_a_fixed_size():
    model = randomise_weights(tiny_model(classifier_activation="softmax", input_shape=(64, 96, 3)), seed=4)
    folded = inference_model(model)
    assert tuple(folded.inputs[0].shape) == (None, 64, 96, 3)
    _close(model, folded)
    np.testing.assert_allclose(to_numpy(folded(IMAGES)).sum(axis=-1), 1.0, rtol=1e-5)


def test_every_block_folds_its_batch_norm_and_layer_scale():
    """Each block's own `fold_into`, with statistics far from the defaults."""
    x = random_images((2, 8, 8, 16), seed=5)
    for block in (ConvEncoder(16, 64, name="block"), SwiftFormerEncoder(16, name="block")):
        block(x)
        for variable in block.weights:
            variable.assign(np.random.RandomState(6).uniform(0.3, 1.7, tuple(variable.shape)).astype("float32"))
        fused = type(block).from_config({**block.get_config(), "fused": True})
        fused(x)
        block.fold_into(fused)
        expected, actual = to_numpy(block(x, training=False)), to_numpy(fused(x))
        assert float(np.abs(actual - expected).max()) <= 1e-5 * max(1.0, float(np.abs(expected).max()))


def test_the_model_still_works_after_its_folded_copy_predicts():
    """The copy shares no array with `model`: on JAX, Keras' predict donates the arrays of
    the model it runs, which would delete a shared one from `model` too."""
    model = randomise_weights(tiny_model(), seed=4)
    images = random_images((2, 64, 64, 3), seed=5)
    before = to_numpy(model.predict(images, verbose=0))
    folded = inference_model(model)
    np.testing.assert_allclose(to_numpy(folded.predict(images, verbose=0)), before, atol=1e-4)
    np.testing.assert_array_equal(to_numpy(model.predict(images, verbose=0)), before)
    assert all(np.isfinite(to_numpy(v)).all() for v in model.weights)  # every array still there


def test_folded_model_saves_and_loads(tmp_path):
    folded = inference_model(randomise_weights(tiny_model(), seed=7))
    path = str(tmp_path / "folded.keras")
    folded.save(path)
    loaded = keras.saving.load_model(path)
    np.testing.assert_allclose(to_numpy(loaded(IMAGES)), to_numpy(folded(IMAGES)), rtol=1e-6, atol=1e-6)
    assert inference_model(loaded) is loaded  # already folded


def test_refuses_what_it_cannot_fold():
    with pytest.raises(TypeError, match="Keras model"):
        inference_model("swiftformer.keras")
    inputs = keras.Input((32, 32, 3))
    with pytest.raises(ValueError, match="not one"):
        inference_model(keras.Model(inputs, keras.layers.Conv2D(4, 3)(inputs)))
    backbone = tiny_model(include_top=False, pooling="avg")
    wrapped = keras.Model(backbone.inputs, keras.layers.Dense(3, name="my_head")(backbone.output))
    with pytest.raises(ValueError, match="my_head"):
        inference_model(wrapped)


@pytest.mark.skipif(BACKEND != "tensorflow", reason="XLA inside TensorFlow: the TensorFlow backend")
def test_xla_paths_give_the_plain_graph_result():
    """Under `jit_compile` the convolutions take the XLA-friendly forms (`compiled_by_xla`)."""
    import tensorflow as tf

    model = randomise_weights(tiny_model(), seed=8)
    plain = tf.function(lambda t: model(t, training=False))(IMAGES)
    xla = tf.function(lambda t: model(t, training=False), jit_compile=True)(IMAGES)
    np.testing.assert_allclose(xla.numpy(), plain.numpy(), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("pooling", [None, "avg"])
def test_chained_call_gives_the_functional_result(pooling):
    """`FoldedSwiftFormer.call` runs its layers' own `call` one after another; the functional
    graph walk over the same layers gives the same numbers, and so does the fallback for a dtype
    the chain does not handle."""
    model = randomise_weights(tiny_model(include_top=pooling is None, pooling=pooling), seed=9)
    folded = inference_model(model)
    assert folded._chain is not None and len(folded._chain) == len(folded.layers) - 1
    functional = keras.Model(folded.inputs, folded.outputs)  # the same layers, walked as a graph
    np.testing.assert_allclose(to_numpy(folded(IMAGES)), to_numpy(functional(IMAGES)), rtol=1e-6, atol=1e-6)
    # Integer images are cast as the functional path casts them.
    integers = np.round(IMAGES * 10).astype("int32")
    np.testing.assert_allclose(to_numpy(folded(integers)), to_numpy(functional(integers)), rtol=1e-6, atol=1e-6)
    # Symbolic use (building a model on top) goes through the graph as usual.
    inputs = keras.Input((64, 96, 3))
    assert tuple(keras.Model(inputs, folded(inputs))(IMAGES).shape) == tuple(functional(IMAGES).shape)


def test_mixed_precision_takes_the_functional_path():
    model = randomise_weights(tiny_model(), seed=10)
    keras.config.set_dtype_policy("mixed_float16")
    try:
        half = inference_model(randomise_weights(tiny_model(), seed=10))
    finally:
        keras.config.set_dtype_policy("float32")
    assert half._chain is None
    expected = to_numpy(inference_model(model)(IMAGES))
    np.testing.assert_allclose(to_numpy(half(IMAGES)).astype("float32"), expected, rtol=0.05, atol=0.05)


@pytest.mark.skipif(BACKEND != "torch", reason="torch.compile: the PyTorch backend")
def test_torch_compile_compiles_once():
    """Keras' ZeroPadding2D made dynamo recompile at every call (a fresh `Pad` operation name
    each time) until it fell back to running uncompiled; ours pads with torch directly.
    Recompiling is dynamo's decision, before any backend sees the graph, so dynamo's own
    `eager` backend shows it without inductor's minute of code generation (the benchmark's
    quick run compiles the model with inductor). The values also check the compiled-only path
    (`pointwise_mlp` on the NCHW view) against the eager one."""
    import torch

    folded = inference_model(randomise_weights(tiny_model(), seed=11))
    compiled = torch.compile(folded, dynamic=False, backend="eager")
    images = torch.from_numpy(IMAGES)
    with torch.inference_mode():
        expected = to_numpy(folded(images))
        with torch._dynamo.config.patch(error_on_recompile=True):
            for _ in range(3):
                np.testing.assert_allclose(to_numpy(compiled(images)), expected, rtol=1e-5, atol=1e-5)


@pytest.mark.skipif(BACKEND != "torch", reason="torch.compile: the PyTorch backend")
def test_torch_compile_guards_no_sublayer_losses():
    """Keras' top-level `__call__` clears the losses of every sublayer, recursively; traced,
    that is a guard on each sublayer's loss lists, checked before every compiled call. An
    inference form's layers add no losses, so it clears only its own."""
    import torch

    folded = inference_model(randomise_weights(tiny_model(), seed=11))
    with torch.inference_mode():
        explained = torch._dynamo.explain(folded)(torch.from_numpy(IMAGES))
    assert explained.graph_count == 1 and explained.graph_break_count == 0
    sublayer_losses = [g.name for g in explained.out_guards if "._layers[" in g.name and "_loss" in g.name]
    assert not sublayer_losses, sublayer_losses[:3]
    # What that relies on: calling the form leaves no loss on any of its layers.
    folded(IMAGES)
    assert not any(layer.losses for layer in folded._flatten_layers())
