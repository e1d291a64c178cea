"""SwiftFormerBackbone: the P2..P5 pyramid, equal to the reference's stage outputs."""

import numpy as np
import pytest
from helpers import TINY, assert_stage_close, optional, random_images, to_numpy

from keras_swiftformer import VARIANTS, SwiftFormerBackbone


@pytest.mark.any_backend(runs_on="torch")
@pytest.mark.parametrize("variant", list(VARIANTS))
def test_pyramid_shapes(variant):
    backbone = SwiftFormerBackbone(variant)
    widths = VARIANTS[variant]["widths"]
    for height, width in ((224, 224), (192, 320)):
        outputs = backbone(random_images((1, height, width, 3)), training=False)
        assert sorted(outputs) == ["P2", "P3", "P4", "P5"]
        for level, stride, channels in zip(("P2", "P3", "P4", "P5"), (4, 8, 16, 32), widths):
            assert tuple(outputs[level].shape) == (1, height // stride, width // stride, channels)
    assert sorted(backbone.pyramid_outputs) == ["P2", "P3", "P4", "P5"]


@pytest.mark.any_backend(runs_on="torch")  # the classifier's parity tests run on every backend
def test_pyramid_equals_the_reference_stage_outputs(tmp_path):
    optional("torch")
    optional("transformers")
    from reference import build_reference, official_state_dict, run_reference

    from keras_swiftformer.convert import convert_checkpoint

    reference = build_reference(TINY["depths"], TINY["widths"], TINY["classes"], "normalize", seed=3)
    images = random_images((2, 64, 96, 3), seed=8)
    _, expected = run_reference(reference, images)
    weights = tmp_path / "tiny.weights.h5"
    convert_checkpoint(official_state_dict(reference), output=str(weights))
    backbone = SwiftFormerBackbone(depths=TINY["depths"], widths=TINY["widths"], weights=str(weights))
    outputs = backbone(images, training=False)
    assert_stage_close([outputs[level] for level in ("P2", "P3", "P4", "P5")], expected)


def test_feature_norm_and_input_checks():
    backbone = SwiftFormerBackbone(depths=TINY["depths"], widths=TINY["widths"], feature_norm=True,
                                   input_shape=(64, 96, 3))
    names = {layer.name for layer in backbone.layers}
    assert {"norm0", "norm2", "norm4", "norm6"} <= names
    outputs = backbone(random_images((1, 64, 96, 3)), training=False)
    assert tuple(outputs["P5"].shape) == (1, 2, 3, TINY["widths"][-1])
    with pytest.raises(ValueError, match="multiples of 32"):
        SwiftFormerBackbone("XS", input_shape=(100, 224, 3))
    assert np.isfinite(to_numpy(outputs["P2"])).all()


def _tiny_encoder():
    return SwiftFormerBackbone(depths=TINY["depths"], widths=TINY["widths"])


@pytest.mark.any_backend(runs_on="torch")  # keras-hub's contract; the backbone itself is tested on every backend
def test_keras_hub_retinanet_with_swiftformer_encoder(tmp_path):
    keras_hub = optional("keras_hub")
    import keras

    retina = keras_hub.models.RetinaNetBackbone(
        image_encoder=_tiny_encoder(), min_level=3, max_level=5, use_p5=False, image_shape=(None, None, 3)
    )
    detector = keras_hub.models.RetinaNetObjectDetector(
        backbone=retina, num_classes=3, bounding_box_format="yxyx", preprocessor=None
    )
    images = np.random.RandomState(0).uniform(0, 1, (2, 64, 64, 3)).astype("float32")
    targets = {
        "boxes": np.array([[[5, 5, 25, 30], [30, 30, 60, 50]], [[0, 0, 32, 32], [-1, -1, -1, -1]]], "float32"),
        "labels": np.array([[0, 1], [2, -1]], "int32"),
    }
    detector.compile(optimizer=keras.optimizers.Adam(1e-4))
    history = detector.fit(images, targets, epochs=1, batch_size=2, verbose=0)
    assert np.isfinite(history.history["loss"][0])
    predictions = detector.predict(images, verbose=0)
    assert predictions["boxes"].shape == (2, 100, 4) and predictions["labels"].shape == (2, 100)
    path = tmp_path / "retinanet.keras"
    detector.save(path)
    again = keras.saving.load_model(path, compile=False)
    assert type(again.backbone.image_encoder) is SwiftFormerBackbone
    np.testing.assert_allclose(to_numpy(again.backbone(images)["P3"]), to_numpy(detector.backbone(images)["P3"]), atol=1e-5)


@pytest.mark.any_backend(runs_on="torch")  # keras-hub's contract; the backbone itself is tested on every backend
def test_keras_hub_deeplab_v3_with_swiftformer_encoder():
    keras_hub = optional("keras_hub")
    import keras

    deeplab = keras_hub.models.DeepLabV3Backbone(
        image_encoder=_tiny_encoder(), spatial_pyramid_pooling_key="P5", upsampling_size=8,
        dilation_rates=[6, 12, 18], low_level_feature_key="P2",
    )
    segmenter = keras_hub.models.DeepLabV3ImageSegmenter(backbone=deeplab, num_classes=3)
    segmenter.compile(optimizer=keras.optimizers.Adam(1e-4),
                      loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    images = np.random.RandomState(0).uniform(0, 1, (2, 64, 64, 3)).astype("float32")
    masks = np.random.RandomState(1).randint(0, 3, (2, 64, 64, 1))
    history = segmenter.fit(images, masks, epochs=1, verbose=0)
    assert np.isfinite(history.history["loss"][0])
    assert segmenter.predict(images, verbose=0).shape == (2, 64, 64, 3)


def test_backbone_round_trips_with_its_pyramid(tmp_path):
    import keras

    backbone = SwiftFormerBackbone(depths=TINY["depths"], widths=TINY["widths"], feature_norm=True)
    path = tmp_path / "backbone.keras"
    backbone.save(path)
    again = keras.saving.load_model(path)
    assert type(again) is SwiftFormerBackbone and again.feature_norm
    assert sorted(again.pyramid_outputs) == ["P2", "P3", "P4", "P5"]
    images = random_images((1, 64, 64, 3))
    for level in ("P2", "P5"):
        np.testing.assert_allclose(to_numpy(again(images)[level]), to_numpy(backbone(images)[level]), atol=1e-6)
