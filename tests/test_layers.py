"""Each building block on its own: numerics, behaviour, and config round trips."""

import math

import keras
import numpy as np
import pytest
from helpers import BACKEND, to_numpy

from keras_swiftformer import layers as ksl
from keras_swiftformer.layers.initializers import RandomNormal, TruncatedNormal


def test_exact_gelu_is_the_erf_form():
    x = np.linspace(-6, 6, 97).astype("float32")
    expected = np.array([0.5 * v * (1 + math.erf(v / math.sqrt(2))) for v in x.astype("float64")])
    np.testing.assert_allclose(to_numpy(ksl.exact_gelu(x)), expected, atol=1e-6)
    # The tanh approximation differs by up to ~5e-4: this would catch using it by mistake.
    approx = to_numpy(keras.activations.gelu(x, approximate=True))
    assert np.abs(approx - expected).max() > 1e-4


def test_l2_normalize_matches_torch_semantics():
    x = np.random.RandomState(0).normal(size=(2, 3, 4, 5)).astype("float32")
    out = to_numpy(ksl.l2_normalize(x, axis=-1))
    np.testing.assert_allclose(out, x / np.linalg.norm(x, axis=-1, keepdims=True), rtol=1e-5)
    over_tokens = to_numpy(ksl.l2_normalize(x, axis=(1, 2)))
    norms = np.sqrt((x**2).sum(axis=(1, 2), keepdims=True))
    np.testing.assert_allclose(over_tokens, x / norms, rtol=1e-5)
    # F.normalize divides by max(norm, 1e-12): zeros stay zeros, tiny vectors are not blown up.
    zeros = np.zeros((1, 4), "float32")
    assert np.all(to_numpy(ksl.l2_normalize(zeros)) == 0)
    tiny = np.full((1, 4), 1e-14, "float32")
    np.testing.assert_allclose(to_numpy(ksl.l2_normalize(tiny)), tiny / 1e-12, rtol=1e-5)


def _attention(mode, dim=8):
    layer = ksl.EfficientAdditiveAttention(dim, attention_pooling=mode)
    layer.build((None, None, None, dim))
    return layer


@pytest.mark.parametrize("mode", ["normalize", "softmax_v1"])
def test_attention_token_layout_does_not_matter(mode):
    """(B, H, W, C) and the flattened (B, H*W, C) give the same result: the 4D form the model
    uses is the official attention on tokens, with no reshape."""
    layer = _attention(mode)
    x = np.random.RandomState(1).normal(size=(2, 3, 5, 8)).astype("float32")
    four_d = to_numpy(layer(x))
    three_d = to_numpy(layer(x.reshape(2, 15, 8)))
    np.testing.assert_allclose(four_d.reshape(2, 15, 8), three_d, atol=1e-5)


def test_attention_matches_a_numpy_transcription():
    layer = _attention("normalize")
    x = np.random.RandomState(2).normal(size=(2, 7, 8)).astype("float32")
    w = {v.path.split("/")[-2] + "/" + v.name: to_numpy(v) for v in layer.weights}

    def linear(t, name):
        return t @ w[f"{name}/kernel"] + w[f"{name}/bias"]

    def norm(t, axis):
        return t / np.maximum(np.linalg.norm(t, axis=axis, keepdims=True), 1e-12)

    q = norm(linear(x, "to_query"), -1)
    k = norm(linear(x, "to_key"), -1)
    a = norm(q @ to_numpy(layer.w_g) * 8**-0.5, 1)
    g = (a * q).sum(axis=1, keepdims=True)
    expected = linear(linear(g * k, "proj") + q, "final")
    np.testing.assert_allclose(to_numpy(layer(x)), expected, atol=1e-5)


def test_first_release_ignores_w_g_and_current_release_uses_it():
    x = np.random.RandomState(3).normal(size=(1, 4, 4, 8)).astype("float32")
    for mode, changes in (("softmax_v1", False), ("normalize", True)):
        layer = _attention(mode)
        before = to_numpy(layer(x))
        layer.w_g.assign(np.random.RandomState(4).normal(size=(8, 1)).astype("float32"))
        assert (np.abs(to_numpy(layer(x)) - before).max() > 1e-4) == changes, mode


def test_attention_rejects_bad_arguments():
    with pytest.raises(ValueError, match="attention_pooling.*Received: attention_pooling='softmax'"):
        ksl.EfficientAdditiveAttention(8, attention_pooling="softmax")
    with pytest.raises(ValueError, match="created for dim=8 but received 6 channels"):
        ksl.EfficientAdditiveAttention(8)(np.zeros((1, 2, 2, 6), "float32"))


def test_stochastic_depth():
    layer = ksl.StochasticDepth(0.5, seed=1)
    x = np.ones((64, 2, 2, 3), "float32")
    np.testing.assert_array_equal(to_numpy(layer(x, training=False)), x)
    out = to_numpy(layer(x, training=True))
    per_sample = out.reshape(64, -1)
    # Whole samples are dropped or kept (rescaled by 1/keep), never single elements.
    assert set(np.unique(per_sample)) <= {0.0, 2.0}
    assert np.all(per_sample.min(axis=1) == per_sample.max(axis=1))
    assert 10 < (per_sample[:, 0] == 0).sum() < 54
    with pytest.raises(ValueError, match=r"`rate` must be in \[0, 1\)"):
        ksl.StochasticDepth(1.0)


def test_layer_scale_starts_at_its_init_value():
    layer = ksl.LayerScale(1e-5)
    out = to_numpy(layer(np.ones((1, 2, 2, 4), "float32")))
    np.testing.assert_allclose(out, 1e-5)


def test_blocks_check_their_width():
    with pytest.raises(ValueError, match="created for dim=16 channels but received an input with 8"):
        ksl.ConvEncoder(16, 64)(np.zeros((1, 4, 4, 8), "float32"))


def test_strided_layers_pad_symmetrically():
    """PyTorch's padding=1 with stride 2: output size floor((n - 1) / 2) + 1 on every side,
    and the top-left output sees the padded border exactly like the bottom-right."""
    stem = ksl.Stem(8)
    down = ksl.DownsampleEmbedding(12)
    assert stem.compute_output_shape((1, 15, 16, 3)) == (1, 4, 4, 8)
    assert tuple(down(np.zeros((1, 7, 6, 8), "float32")).shape) == (1, 4, 3, 12)
    # A delta in the image centre, symmetric kernel: the response is symmetric.
    conv = down.proj
    conv.kernel.assign(np.ones(conv.kernel.shape, "float32"))
    conv.bias.assign(np.zeros(conv.bias.shape, "float32"))
    x = np.ones((1, 7, 7, 8), "float32")
    out = to_numpy(down.proj(down.pad(x)))[0, :, :, 0]
    np.testing.assert_array_equal(out, out[::-1, ::-1])


LAYER_CASES = [
    (ksl.Stem, {"filters": 8}, (2, 17, 22, 3)),
    (ksl.DownsampleEmbedding, {"filters": 12}, (2, 9, 8, 8)),
    (ksl.ConvEncoder, {"dim": 8, "hidden_dim": 32, "drop_path_rate": 0.1}, (2, 5, 6, 8)),
    (ksl.LocalRepresentation, {"dim": 8}, (2, 5, 6, 8)),
    (ksl.ConvMlp, {"dim": 8, "hidden_dim": 16}, (2, 5, 6, 8)),
    (ksl.EfficientAdditiveAttention, {"dim": 8, "attention_pooling": "softmax_v1"}, (2, 5, 6, 8)),
    (ksl.EfficientAdditiveAttention, {"dim": 8}, (2, 30, 8)),
    (
        ksl.SwiftFormerEncoder,
        {"dim": 8, "mlp_ratio": 2, "drop_path_rate": 0.2, "attention_pooling": "softmax_v1"},
        (2, 5, 6, 8),
    ),
    (ksl.LayerScale, {"init_value": 0.5}, (2, 3, 8)),
    (ksl.StochasticDepth, {"rate": 0.3, "seed": 3}, (2, 3, 8)),
    (ksl.GroupNormalization, {"groups": 4, "epsilon": 1e-5}, (2, 5, 6, 8)),
    (ksl.Upsample, {"factor": 2, "interpolation": "bilinear"}, (2, 5, 6, 8)),
]


@pytest.mark.parametrize(
    "cls,kwargs,shape", LAYER_CASES, ids=[f"{c.__name__}-{i}" for i, (c, _, _) in enumerate(LAYER_CASES)]
)
def test_layer_config_round_trip(cls, kwargs, shape):
    layer = cls(**kwargs, name="under_test")
    x = np.random.RandomState(5).normal(size=shape).astype("float32")
    out = to_numpy(layer(x, training=False) if "training" in layer.call.__code__.co_varnames else layer(x))
    assert out.shape == tuple(layer.compute_output_shape(shape))
    config = layer.get_config()
    for key, value in kwargs.items():
        assert config[key] == value, key
    # Through the registered serialisation, as a saved model does it.
    clone = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(layer))
    assert type(clone) is cls and clone.get_config() == config
    assert clone.built  # the build config travels with the serialised layer
    assert len(clone.weights) == len(layer.weights)
    for target, source in zip(clone.weights, layer.weights):
        target.assign(source)
    again = to_numpy(clone(x, training=False) if "training" in clone.call.__code__.co_varnames else clone(x))
    np.testing.assert_allclose(again, out, atol=1e-6)


@pytest.mark.parametrize("kernel_size,strides,channels", [(1, 1, 8), (3, 2, 3), (3, 2, 136), (3, 2, 16)])
def test_conv_fast_paths_equal_keras_convolution(kernel_size, strides, channels):
    """The JAX/PyTorch matmul and patch paths compute exactly Keras' convolution."""
    from keras_swiftformer.layers.primitives import Conv2D, DepthwiseConv2D

    x = np.random.RandomState(0).normal(size=(2, 9, 11, channels)).astype("float32")
    ours = Conv2D(5, kernel_size, strides=strides)
    native = keras.layers.Conv2D(5, kernel_size, strides=strides)
    ours.build(x.shape), native.build(x.shape)
    for target, source in zip(native.weights, ours.weights):
        target.assign(np.random.RandomState(1).normal(size=source.shape).astype("float32"))
        source.assign(target)
    np.testing.assert_allclose(to_numpy(ours(x)), to_numpy(native(x)), atol=2e-5 * max(1, channels / 8))
    depthwise, plain = DepthwiseConv2D(3, padding="same"), keras.layers.DepthwiseConv2D(3, padding="same")
    depthwise.build(x.shape), plain.build(x.shape)
    for target, source in zip(plain.weights, depthwise.weights):
        target.assign(np.random.RandomState(2).normal(size=source.shape).astype("float32"))
        source.assign(target)
    np.testing.assert_allclose(to_numpy(depthwise(x)), to_numpy(plain(x)), atol=1e-5)



@pytest.mark.parametrize("cls, truncated", [(TruncatedNormal, True), (RandomNormal, False)])
def test_initializers_draw_keras_distributions_and_follow_the_seed(cls, truncated):
    keras.utils.set_random_seed(1)
    values = to_numpy(keras.Variable(cls(stddev=0.02)((256, 512)), dtype="float32"))
    assert values.shape == (256, 512)
    # The truncated normal's standard deviation is 0.88 of the untruncated one (cut at 2 sigma).
    expected_std = 0.02 * (0.8796 if truncated else 1.0)
    assert abs(values.std() - expected_std) < 0.02 * 0.01 and abs(values.mean()) < 0.02 * 0.01
    # Beyond two sigma: 4.6% of a normal's values, almost none of a truncated one's (Keras' PyTorch
    # backend keeps the fourth try's value when four draws in a row fall outside: 4e-6 of them).
    beyond = float((np.abs(values) > 0.04).mean())
    assert beyond < 1e-4 if truncated else abs(beyond - 0.0455) < 0.003, beyond
    # keras.utils.set_random_seed fixes the weights of a model built after it.
    draws = []
    for _ in range(2):
        keras.utils.set_random_seed(3)
        draws.append(to_numpy(cls()((4, 5))))
    assert np.array_equal(*draws) and not np.array_equal(draws[0], to_numpy(cls()((4, 5))))
    assert np.array_equal(to_numpy(cls(seed=7)((3,))), to_numpy(cls(seed=7)((3,))))
    if BACKEND != "jax":  # Keras' own draws there, so seeded runs keep their weights
        keras_class = getattr(keras.initializers, cls.__name__)
        assert np.array_equal(to_numpy(cls(seed=5)((6, 7))), to_numpy(keras_class(seed=5)((6, 7))))
    restored = keras.initializers.deserialize(keras.initializers.serialize(cls(mean=0.1, stddev=0.3, seed=2)))
    assert type(restored) is cls and restored.get_config() == {"mean": 0.1, "stddev": 0.3, "seed": 2}


@pytest.mark.skipif(BACKEND != "jax", reason="the JAX backend's initial weights are drawn with NumPy")
def test_building_a_model_on_jax_compiles_no_random_draws(monkeypatch):
    """Each `jax.random` draw outside jit compiles a program per weight shape (9.6 s of
    SwiftFormer-XS's build with Keras' initializers); the build makes none."""
    import jax

    import keras_swiftformer

    def refuse(*args, **kwargs):
        raise AssertionError("jax.random was called while building the model")

    for name in ("normal", "truncated_normal"):
        monkeypatch.setattr(jax.random, name, refuse)
    model = keras_swiftformer.SwiftFormerXS(weights=None)
    assert model.count_params() > 1e6
    with pytest.raises(AssertionError, match="jax.random was called"):
        keras.initializers.TruncatedNormal()((2, 2))  # the check would see Keras' own draws
