"""Parity against transformers' SwiftFormer (first release) and the official current-release
attention, for every variant, on random weights and buffers."""

import keras
import numpy as np
import pytest
from helpers import (
    LOGIT_TOLERANCE,
    RELEASES,
    assert_stage_close,
    optional,
    random_images,
    to_numpy,
)

optional("torch")
optional("transformers")

from golden_fixture import make_golden  # noqa: E402
from reference import build_reference, run_reference  # noqa: E402

from keras_swiftformer import inference_model, stage_feature_model  # noqa: E402
from keras_swiftformer.convert import convert_checkpoint  # noqa: E402
from keras_swiftformer.models import VARIANTS  # noqa: E402

# 224x224 as in the paper, and a non-square size whose sides are not multiples of 32.
INPUTS = {"224x224": (1, 224, 224, 3), "200x264": (2, 200, 264, 3)}


@pytest.mark.parametrize("release", RELEASES)
@pytest.mark.parametrize("variant", list(VARIANTS))
def test_variant_matches_reference(variant, release):
    spec = VARIANTS[variant]
    reference = build_reference(spec["depths"], spec["widths"], attention_pooling=release)
    state = {k: v.numpy() for k, v in reference.state_dict().items()}
    model = convert_checkpoint(state, attention_pooling=release)
    assert model.name == f"swiftformer_{variant.lower()}"
    # Logits and stage outputs from one forward pass.
    outputs = keras.Model(model.inputs, [model.output, *stage_feature_model(model).outputs])
    report = {}
    # Every variant at 224x224; the non-square size once (the golden tests take non-square
    # inputs on every backend too).
    for label, shape in INPUTS.items() if variant == "XS" else [("224x224", INPUTS["224x224"])]:
        images = random_images(shape, seed=len(label))
        expected_logits, expected_stages = run_reference(reference, images)
        logits, *stages = outputs(images, training=False)
        report[label] = float(np.abs(to_numpy(logits) - expected_logits).max())
        assert report[label] <= LOGIT_TOLERANCE, report
        assert_stage_close(stages, expected_stages)
        # The inference form (BatchNorm, layer scales and heads folded) is as exact.
        folded = float(np.abs(to_numpy(inference_model(model)(images)) - expected_logits).max())
        assert folded <= LOGIT_TOLERANCE, (label, folded)
    print(f"max |logit diff| {variant} {release}: {report}")


def test_golden_fixture_is_reproducible(golden):
    """The committed fixture is what the reference produces today."""
    fresh = make_golden()
    assert sorted(fresh) == sorted(golden)
    for key, value in fresh.items():
        # Weights and inputs come from seeded generators and must be identical; outputs may
        # differ in the last bits with torch's thread count (summation order).
        tolerance = 0.0 if key.startswith("state/") or key == "input" else 1e-5 * max(1.0, float(np.abs(value).max()))
        assert float(np.abs(golden[key] - value).max()) <= tolerance, key
