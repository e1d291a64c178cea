"""SwiftFormerBackbone: the P2..P5 pyramid, equal to the reference's stage outputs."""

import numpy as np
import pytest

from helpers import TINY, assert_stage_close, optional, random_images, to_numpy
from keras_swiftformer import SwiftFormerBackbone, VARIANTS


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


def test_pyramid_equals_the_reference_stage_outputs(tmp_path):
    optional("torch")
    optional("transformers")
    from conversion import convert_checkpoint
    from reference import build_reference, official_state_dict, run_reference

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
