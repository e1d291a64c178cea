"""Checkpoint files -> Keras: both layouts, the CLI, and every bad input."""

import os
import pickle

import numpy as np
import pytest
from helpers import LOGIT_TOLERANCE, TINY, optional, to_numpy

from keras_swiftformer.cli import main as cli
from keras_swiftformer.convert import convert_checkpoint
from keras_swiftformer.weights import CheckpointError, infer_architecture, to_official_keys

torch = optional("torch")
optional("transformers")
safetensors_torch = optional("safetensors.torch")

from reference import build_reference, official_state_dict, run_reference  # noqa: E402

from keras_swiftformer import SwiftFormer, SwiftFormerXS  # noqa: E402
from keras_swiftformer.optional import MissingDependencyError  # noqa: E402
from keras_swiftformer.weights import read_metadata  # noqa: E402

IMAGES = np.random.RandomState(3).uniform(-2, 2, (2, 48, 80, 3)).astype("float32")


@pytest.fixture(scope="module")
def reference():
    model = build_reference(TINY["depths"], TINY["widths"], TINY["classes"], "normalize", seed=7)
    logits, _ = run_reference(model, IMAGES)
    return model, logits


@pytest.fixture(scope="module")
def reference_v1():
    model = build_reference(TINY["depths"], TINY["widths"], TINY["classes"], "softmax_v1", seed=7)
    logits, _ = run_reference(model, IMAGES)
    return model, logits


def _official_pth(model, path, wrap=True, drop=()):
    state = {k: v for k, v in official_state_dict(model).items() if not k.startswith(drop or "\0")}
    torch.save({"model": state} if wrap else state, path)
    return path


def _logits(model):
    return to_numpy(model(IMAGES, training=False))


@pytest.mark.parametrize("wrap", [True, False], ids=["model-wrapped", "bare"])
def test_official_pth_to_weights_file(tmp_path, reference, wrap):
    source = _official_pth(reference[0], tmp_path / "official.pth", wrap=wrap)
    output = tmp_path / "tiny.weights.h5"
    model = convert_checkpoint(str(source), output=str(output))
    assert np.abs(_logits(model) - reference[1]).max() <= LOGIT_TOLERANCE
    metadata = read_metadata(str(output))
    assert metadata["attention_pooling"] == "normalize"
    assert metadata["depths"] == list(TINY["depths"]) and metadata["classes"] == TINY["classes"]
    # Loading the file through the builder reproduces the reference exactly.
    loaded = SwiftFormer(TINY["depths"], TINY["widths"], weights=str(output))
    np.testing.assert_allclose(_logits(loaded), _logits(model), atol=1e-6)
    assert [p for p in os.listdir(tmp_path) if p.startswith(".partial")] == []


def test_transformers_safetensors_defaults_to_first_release(tmp_path, reference_v1):
    model, expected = reference_v1
    path = tmp_path / "model.safetensors"
    safetensors_torch.save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(path))
    output = tmp_path / "hub.weights.h5"
    keras_model = convert_checkpoint(str(tmp_path), output=str(output))  # the folder form
    assert np.abs(_logits(keras_model) - expected).max() <= LOGIT_TOLERANCE
    assert read_metadata(str(output))["attention_pooling"] == "softmax_v1"
    # A model built from the file picks the first-release attention by itself.
    rebuilt = SwiftFormer(TINY["depths"], TINY["widths"], weights=str(output))
    assert rebuilt.get_layer("stage3_block0").attn.attention_pooling == "softmax_v1"
    assert np.abs(_logits(rebuilt) - expected).max() <= LOGIT_TOLERANCE


def test_transformers_bin_and_override(tmp_path, reference):
    model, expected = reference
    path = tmp_path / "pytorch_model.bin"
    torch.save(model.state_dict(), path)
    # A transformers file would default to softmax_v1; this one was made with the current
    # release's attention, so the override is what reproduces it.
    keras_model = convert_checkpoint(str(path), attention_pooling="normalize")
    assert np.abs(_logits(keras_model) - expected).max() <= LOGIT_TOLERANCE
    default = convert_checkpoint(str(path))
    assert np.abs(_logits(default) - expected).max() > 100 * LOGIT_TOLERANCE


def test_builder_converts_checkpoints_on_the_fly(tmp_path, reference):
    source = _official_pth(reference[0], tmp_path / "official.pth")
    model = SwiftFormer(TINY["depths"], TINY["widths"], weights=str(source))
    assert np.abs(_logits(model) - reference[1]).max() <= LOGIT_TOLERANCE
    # Transfer learning: a new head, the same backbone.
    features = SwiftFormer(TINY["depths"], TINY["widths"], weights=str(source), include_top=False)
    fresh = SwiftFormer(TINY["depths"], TINY["widths"], weights=str(source), classes=3)
    assert fresh.output.shape[-1] == 3
    for name in ("patch_embed", "stage3_block0", "norm"):
        for a, b in zip(fresh.get_layer(name).weights, model.get_layer(name).weights):
            np.testing.assert_array_equal(to_numpy(a), to_numpy(b))
    np.testing.assert_allclose(
        to_numpy(features(IMAGES, training=False)),
        to_numpy(
            __import__("keras").Model(model.input, model.get_layer("norm").output)(IMAGES, training=False)
        ),
        atol=1e-6,
    )


def test_checkpoint_without_distillation_head(tmp_path, reference):
    source = _official_pth(reference[0], tmp_path / "nodist.pth", drop="dist_head")
    model = convert_checkpoint(str(source))
    names = [layer.name for layer in model.layers]
    assert "dist_head" not in names and "head" in names
    expected_state = official_state_dict(reference[0])
    pooled = __import__("keras").Model(model.input, model.get_layer("avg_pool").output)
    expected = to_numpy(pooled(IMAGES)) @ expected_state["head.weight"].numpy().T + expected_state["head.bias"].numpy()
    np.testing.assert_allclose(_logits(model), expected, atol=1e-4)


@pytest.mark.any_backend(runs_on="torch")
def test_variant_is_inferred_and_checked(tmp_path):
    from keras_swiftformer.models import VARIANTS

    spec = VARIANTS["XS"]
    reference = build_reference(spec["depths"], spec["widths"], attention_pooling="normalize")
    state = official_state_dict(reference)
    assert infer_architecture(to_official_keys(state)[0])["variant"] == "XS"
    output = tmp_path / "xs.weights.h5"
    with pytest.raises(CheckpointError, match=r"variant='L1' was requested but the checkpoint holds SwiftFormer-XS"):
        convert_checkpoint(state, output=str(output), variant="L1")
    assert not output.exists()
    convert_checkpoint(state, output=str(output), variant="xs")
    # The file knows it is XS: building L1 from it fails clearly.
    from keras_swiftformer import SwiftFormerL1

    with pytest.raises(ValueError, match="are for SwiftFormer-XS.*model being built is SwiftFormer-L1"):
        SwiftFormerL1(weights=str(output))
    xs = SwiftFormerXS(weights=str(output))
    assert sum(int(np.prod(v.shape)) for v in xs.trainable_weights) == reference.num_parameters()


@pytest.mark.any_backend(runs_on="torch")
def test_unknown_and_missing_keys_are_listed(tmp_path, reference):
    state = official_state_dict(reference[0])
    extra = dict(state, **{"network.0.0.mystery.weight": torch.zeros(3)})
    with pytest.raises(CheckpointError, match=r"no place in the model: \['network.0.0.mystery.weight'\]"):
        convert_checkpoint(extra, output=str(tmp_path / "x.weights.h5"))
    missing = {k: v for k, v in state.items() if k != "network.2.0.attn.w_g"}
    with pytest.raises(CheckpointError, match=r"missing from the checkpoint: \['network.2.0.attn.w_g'\]"):
        convert_checkpoint(missing, output=str(tmp_path / "x.weights.h5"))
    wrong_shape = dict(state, **{"norm.weight": torch.zeros(5)})
    with pytest.raises(CheckpointError, match="shapes do not match: .*norm.weight"):
        convert_checkpoint(wrong_shape)
    with pytest.raises(CheckpointError, match="does not look like a SwiftFormer"):
        convert_checkpoint({"fc.weight": torch.zeros(3, 3)})
    assert not (tmp_path / "x.weights.h5").exists()


@pytest.mark.any_backend(runs_on="torch")
def test_truncated_and_corrupt_files(tmp_path, reference):
    good = _official_pth(reference[0], tmp_path / "good.pth")
    data = good.read_bytes()
    truncated = tmp_path / "truncated.pth"
    truncated.write_bytes(data[: len(data) // 2])
    garbage = tmp_path / "garbage.safetensors"
    garbage.write_bytes(b"\x00\x01not a safetensors file" * 10)
    safe = tmp_path / "model.safetensors"
    safetensors_torch.save_file({k: v.contiguous() for k, v in reference[0].state_dict().items()}, str(safe))
    safe_truncated = tmp_path / "cut.safetensors"
    safe_truncated.write_bytes(safe.read_bytes()[:-1000])
    for bad in (truncated, garbage, safe_truncated):
        output = tmp_path / "out.weights.h5"
        with pytest.raises(CheckpointError, match="truncated, corrupt"):
            convert_checkpoint(str(bad), output=str(output))
        assert not output.exists()
    other = tmp_path / "weights.txt"
    other.write_text("x")
    with pytest.raises(CheckpointError, match="Unrecognised checkpoint file .*does not end in .pth, .pt"):
        convert_checkpoint(str(other))
    # As `weights=`, the message lists Keras' own files too.
    with pytest.raises(ValueError, match=r"Unrecognised weights file .*does not end in .weights.h5, .keras, .pth"):
        SwiftFormerXS(weights=str(other))
    with pytest.raises(FileNotFoundError):
        convert_checkpoint(str(tmp_path / "absent.pth"))
    # A corrupt Keras weights file is a clear error too.
    broken = tmp_path / "broken.weights.h5"
    broken.write_bytes(b"not hdf5")
    with pytest.raises(ValueError, match="truncated, corrupt"):
        SwiftFormer(TINY["depths"], TINY["widths"], weights=str(broken))


class _RunsCode:
    """Unpickling this calls a function: exactly what a malicious checkpoint does."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (open, (self.marker, "w"))


@pytest.mark.any_backend(runs_on="torch")
def test_pickle_that_runs_code_is_refused(tmp_path):
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pth"
    torch.save({"model": {"head.weight": torch.zeros(2, 2)}, "payload": _RunsCode(str(marker))}, path)
    with pytest.raises(CheckpointError, match="Refused to load"):
        convert_checkpoint(str(path), output=str(tmp_path / "out.weights.h5"))
    assert not marker.exists()
    assert not (tmp_path / "out.weights.h5").exists()
    # Sanity: plain unpickling does run it, so the assertion above can fail.
    pickle.loads(pickle.dumps(_RunsCode(str(marker))))
    assert marker.exists()


@pytest.mark.any_backend(runs_on="torch")
def test_missing_torch_names_the_extra(tmp_path, monkeypatch, reference):
    import sys

    source = _official_pth(reference[0], tmp_path / "official.pth")
    monkeypatch.setitem(sys.modules, "torch", None)  # makes `import torch` raise ImportError
    with pytest.raises(MissingDependencyError, match=r"keras-swiftformer\[torch\]"):
        convert_checkpoint(str(source), output=str(tmp_path / "out.weights.h5"))
    assert not (tmp_path / "out.weights.h5").exists()


@pytest.mark.any_backend(runs_on="torch")
def test_command_line(tmp_path, reference, capsys):
    source = _official_pth(reference[0], tmp_path / "official.pth")
    output = tmp_path / "cli.weights.h5"
    assert cli(["convert", str(source), "-o", str(output)]) == 0
    assert "Wrote" in capsys.readouterr().out and output.exists()
    assert cli(["convert", str(source), "-o", str(tmp_path / "xs.weights.h5"), "--model", "XS"]) == 1
    assert "variant='XS' was requested" in capsys.readouterr().err
    assert not (tmp_path / "xs.weights.h5").exists()
    assert cli(["convert", str(tmp_path / "absent.pth"), "-o", str(output)]) == 1
    assert "not found" in capsys.readouterr().err
    with pytest.raises(SystemExit) as usage:  # a usage error: exit code 2, naming the flag
        cli(["convert", str(source), "-o", str(tmp_path / "bad.h5")])
    assert usage.value.code == 2 and "end the name with .weights.h5" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        cli(["convert", str(source), "-o", str(output), "--attention-pooling", "mean"])
