"""The model builders: variants, the keras.applications arguments, and their errors."""

import keras
import numpy as np
import pytest
from helpers import TINY, random_images, tiny_model, to_numpy

import keras_swiftformer
from keras_swiftformer import VARIANTS, SwiftFormer, stage_feature_model
from keras_swiftformer.models.swiftformer import drop_path_rates


@pytest.mark.any_backend(runs_on="torch")
@pytest.mark.parametrize("variant", list(VARIANTS))
def test_parameter_counts_match_the_paper(variant):
    model = keras_swiftformer.build_variant(variant)
    trainable = sum(int(np.prod(v.shape)) for v in model.trainable_weights)
    assert round(trainable / 1e6, 1) == VARIANTS[variant]["paper"]["params_m"]
    assert model.name == f"swiftformer_{variant.lower()}"
    # Widths and depths as the table says.
    stages = [layer.output.shape[-1] for layer in keras_swiftformer.models.stage_output_layers(model)]
    assert tuple(stages) == VARIANTS[variant]["widths"]
    blocks = [sum(1 for layer in model.layers if layer.name.startswith(f"stage{i}_")) for i in range(4)]
    assert tuple(blocks) == VARIANTS[variant]["depths"]


@pytest.mark.parametrize("size", [(48, 80), (37, 53), (32, 32)])
def test_any_resolution(size):
    model = tiny_model()
    features = stage_feature_model(model)
    images = random_images((2, *size, 3))
    shapes = [tuple(f.shape) for f in features(images, training=False)]
    expected, (h, w) = [], size
    for stride_index, width in enumerate(TINY["widths"]):
        for _ in range(2 if stride_index == 0 else 1):
            h, w = (h - 1) // 2 + 1, (w - 1) // 2 + 1  # PyTorch's size rule for k3 s2 p1
        expected.append((2, h, w, width))
    assert shapes == expected
    assert tuple(model(images, training=False).shape) == (2, TINY["classes"])


def test_fixed_input_shape_and_input_tensor():
    model = tiny_model(input_shape=(64, 96, 3))
    assert tuple(model.input.shape) == (None, 64, 96, 3)
    tensor = keras.Input((32, 32, 3), name="my_images")
    wrapped = tiny_model(input_tensor=tensor)
    assert wrapped.inputs[0] is tensor


def test_include_top_false_and_pooling():
    full = tiny_model()
    images = random_images((2, 48, 80, 3))
    feature_map = tiny_model(include_top=False)
    avg = tiny_model(include_top=False, pooling="avg")
    maxed = tiny_model(include_top=False, pooling="max")
    for model in (feature_map, avg, maxed):
        for target, source in zip(model.weights, full.weights):
            target.assign(source)
        assert not any(layer.name in ("head", "dist_head") for layer in model.layers)
    fmap = to_numpy(feature_map(images, training=False))
    assert fmap.shape == (2, 2, 3, TINY["widths"][-1])
    np.testing.assert_allclose(to_numpy(avg(images, training=False)), fmap.mean(axis=(1, 2)), atol=1e-5)
    np.testing.assert_allclose(to_numpy(maxed(images, training=False)), fmap.max(axis=(1, 2)), atol=1e-6)
    # The pooled features are exactly what the classifier sees (final BatchNorm included).
    pooled = to_numpy(avg(images, training=False))
    head, dist = full.get_layer("head"), full.get_layer("dist_head")
    logits = ((pooled @ to_numpy(head.kernel) + to_numpy(head.bias)) + (pooled @ to_numpy(dist.kernel) + to_numpy(dist.bias))) / 2
    np.testing.assert_allclose(to_numpy(full(images, training=False)), logits, atol=1e-5)


def test_classifier_activation_and_distillation_switch():
    images = random_images((3, 32, 32, 3))
    probabilities = to_numpy(tiny_model(classifier_activation="softmax")(images, training=False))
    np.testing.assert_allclose(probabilities.sum(axis=-1), 1.0, rtol=1e-5)
    single = tiny_model(distillation=False)
    assert "dist_head" not in [layer.name for layer in single.layers]
    assert tuple(single(images, training=False).shape) == (3, TINY["classes"])


def test_drop_path_schedule_follows_the_official_rule():
    rates = drop_path_rates((2, 1, 2, 1), 0.5)
    flat = [r for stage in rates for r in stage]
    np.testing.assert_allclose(flat, np.linspace(0, 0.5, 6))
    model = tiny_model(drop_path_rate=0.5)
    encoder_rates = [model.get_layer(f"stage{i}_block{d - 1}").drop_path_rate for i, d in enumerate(TINY["depths"])]
    np.testing.assert_allclose(encoder_rates, [0.1, 0.2, 0.4, 0.5])
    assert model.get_layer("stage0_block0").drop_path_rate == 0.0  # Conv. Encoders: none
    images = random_images((4, 32, 32, 3))
    # Inference is deterministic whatever the rate; training is not.
    np.testing.assert_array_equal(to_numpy(model(images, training=False)), to_numpy(model(images, training=False)))
    assert np.abs(to_numpy(model(images, training=True)) - to_numpy(model(images, training=True))).max() > 0


@pytest.mark.parametrize(
    "kwargs,message",
    [
        ({"pooling": "sum", "include_top": False}, r"`pooling` must be one of"),
        ({"input_shape": (224, 224)}, r"`input_shape` must be \(height, width, channels\)"),
        ({"input_shape": (0, 224, 3)}, r"`input_shape` must be"),
        ({"input_shape": (224, 224, None)}, "number of input channels must be known"),
        ({"classes": 0}, r"`classes` must be a positive integer"),
        ({"attention_pooling": "mean"}, r"`attention_pooling` must be one of"),
        ({"weights": "imagenet"}, "exist only for the SwiftFormer variants XS, S, L1 and L3"),
        ({"weights": 3}, "`weights` must be None, .imagenet., .imagenet_v1., or a path"),
    ],
)
def test_bad_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        tiny_model(**kwargs)


def test_bad_architecture_and_missing_weights(tmp_path):
    with pytest.raises(ValueError, match="one entry per stage"):
        SwiftFormer((1, 1), (8, 16, 24))
    with pytest.raises(ValueError, match="at least one block"):
        SwiftFormer((1, 0, 1, 1), (8, 16, 24, 32))
    with pytest.raises(ValueError, match="first one even"):
        SwiftFormer((1, 1, 1, 1), (9, 16, 24, 32))
    with pytest.raises(ValueError, match="Unknown SwiftFormer variant"):
        keras_swiftformer.models.get_variant("L2")
    with pytest.raises(FileNotFoundError, match="Weights file not found"):
        tiny_model(weights=str(tmp_path / "nothing.weights.h5"))
