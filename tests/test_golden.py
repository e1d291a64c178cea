"""Parity with the PyTorch reference through committed fixtures: runs on every backend,
with or without torch installed."""

import numpy as np
import pytest
from helpers import LOGIT_TOLERANCE, RELEASES, TINY, assert_stage_close, tiny_model, to_numpy

from keras_swiftformer import stage_feature_model
from keras_swiftformer.convert import convert_checkpoint
from keras_swiftformer.weights import port_state_dict


def _state(golden):
    return {k[len("state/"):]: v for k, v in golden.items() if k.startswith("state/")}


@pytest.mark.parametrize("release", RELEASES)
def test_logits_and_stages_match_reference(golden, release):
    model = convert_checkpoint(_state(golden), attention_pooling=release)
    images = golden["input"]
    logits = to_numpy(model(images, training=False))
    diff = np.abs(logits - golden[f"logits_{release}"]).max()
    assert diff <= LOGIT_TOLERANCE, diff
    stages = stage_feature_model(model)(images, training=False)
    assert_stage_close(stages, [golden[f"stage{i}_{release}"] for i in range(4)])


def test_releases_really_differ(golden):
    """Guards the test above: with one release's weights loaded into the other's attention,
    outputs must differ, or the parity test could not tell the releases apart."""
    model = tiny_model(attention_pooling="softmax_v1")
    port_state_dict(model, _state(golden))
    logits = to_numpy(model(golden["input"], training=False))
    assert np.abs(logits - golden["logits_normalize"]).max() > 100 * LOGIT_TOLERANCE


@pytest.mark.any_backend(runs_on="torch")
def test_every_block_matters(golden):
    """Perturbing any single tensor changes the logits, so parity pins down every tensor's
    mapping (a converter that skipped or swapped a tensor could not pass)."""
    state = _state(golden)
    model = tiny_model(attention_pooling="normalize")
    port_state_dict(model, state)
    base = to_numpy(model(golden["input"], training=False))
    rng = np.random.RandomState(0)
    insensitive = []
    for key in sorted(state):
        perturbed = dict(state)
        perturbed[key] = state[key] + rng.normal(0, 0.5, state[key].shape).astype("float32")
        port_state_dict(model, perturbed)
        if np.abs(to_numpy(model(golden["input"], training=False)) - base).max() < 1e-6:
            insensitive.append(key)
    assert not insensitive, insensitive
    assert TINY["classes"] == base.shape[-1]
