"""Writes tests/golden/tiny_swiftformer.npz from the PyTorch reference.

Holds a reduced-width SwiftFormer's weights (official key names), an input, and the
reference's logits and stage outputs for both official releases, so every backend checks
parity even where torch is absent. `tests/test_parity_torch.py` regenerates it in memory and
checks it matches the committed file.

    PYTHONPATH=tests .venv/bin/python -m golden_fixture
"""

import os

import numpy as np
from helpers import GOLDEN_PATH, RELEASES, TINY
from reference import build_reference, official_state_dict, run_reference

SEED = 1234


def make_golden():
    images = np.random.RandomState(SEED).uniform(-2.0, 2.0, (2, 48, 80, 3)).astype("float32")
    arrays = {"input": images}
    for release in RELEASES:
        reference = build_reference(
            TINY["depths"], TINY["widths"], TINY["classes"], attention_pooling=release, seed=SEED
        )
        logits, stages = run_reference(reference, images)
        arrays[f"logits_{release}"] = logits
        for index, stage in enumerate(stages):
            arrays[f"stage{index}_{release}"] = stage
    # Both releases share the same weights (same seed); store them once.
    for key, value in official_state_dict(reference).items():
        if not key.endswith("num_batches_tracked"):
            arrays[f"state/{key}"] = value.numpy()
    return arrays


if __name__ == "__main__":
    arrays = make_golden()
    np.savez_compressed(GOLDEN_PATH, **arrays)
    print(f"wrote {GOLDEN_PATH} ({os.path.getsize(GOLDEN_PATH)} bytes, {len(arrays)} arrays)")
