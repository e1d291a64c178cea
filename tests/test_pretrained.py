"""weights="imagenet"/"imagenet_v1" end to end against local stand-ins for Google Drive and
the Hugging Face Hub (this machine has no internet): download, convert, cache, reuse, and
every way a download can fail."""

import io
import os
import sys

import numpy as np
import pytest
from helpers import BACKEND, LOGIT_TOLERANCE, ROOT, optional, to_numpy

torch = optional("torch")
optional("transformers")
safetensors_torch = optional("safetensors.torch")

from fake_hosts import FakeHosts  # noqa: E402
from reference import build_reference, official_state_dict, run_reference  # noqa: E402

import keras_swiftformer  # noqa: E402
from keras_swiftformer.cli import main as cli  # noqa: E402
from keras_swiftformer.convert import fetch_weights  # noqa: E402
from keras_swiftformer.models import VARIANTS  # noqa: E402
from keras_swiftformer.weights import pretrained, sources  # noqa: E402
from keras_swiftformer.weights.pretrained import (  # noqa: E402
    PRETRAINED_WEIGHTS,
    WeightsDownloadError,
    cache_dir,
    cached_path,
)

# Downloads, caching and their failures do not depend on the backend; porting into the model
# does, and test_conversion and test_golden check it on every backend.
pytestmark = pytest.mark.any_backend(runs_on="torch")

XS_ID = PRETRAINED_WEIGHTS["imagenet"]["variants"]["XS"]["id"]
HUB = "MBZUAI/swiftformer-xs/resolve/main/"
IMAGES = np.random.RandomState(9).uniform(-2, 2, (1, 64, 64, 3)).astype("float32")


@pytest.fixture(scope="module")
def checkpoints():
    """An XS "release" made here: the same random weights as an official .pth, a Hub
    safetensors and a Hub .bin, with the reference logits of both attentions."""
    spec = VARIANTS["XS"]
    current = build_reference(spec["depths"], spec["widths"], attention_pooling="normalize", seed=21)
    first = build_reference(spec["depths"], spec["widths"], attention_pooling="softmax_v1", seed=21)
    pth, binary = io.BytesIO(), io.BytesIO()
    torch.save({"model": official_state_dict(current)}, pth)
    torch.save(first.state_dict(), binary)
    safetensors = safetensors_torch.save({k: v.contiguous() for k, v in first.state_dict().items()})
    return {
        "pth": pth.getvalue(),
        "bin": binary.getvalue(),
        "safetensors": safetensors,
        "logits_normalize": run_reference(current, IMAGES)[0],
        "logits_softmax_v1": run_reference(first, IMAGES)[0],
    }


@pytest.fixture
def hosts(checkpoints, tmp_path, monkeypatch):
    with FakeHosts() as fake:
        fake.drive[XS_ID] = ("SwiftFormer_XS.pth", checkpoints["pth"])
        fake.hub[HUB + "model.safetensors"] = checkpoints["safetensors"]
        monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras_home"))
        monkeypatch.setenv("HF_ENDPOINT", fake.url)
        monkeypatch.setenv("KERAS_SWIFTFORMER_GDRIVE_URL", fake.drive_template)
        monkeypatch.delenv("KERAS_SWIFTFORMER_MIRROR", raising=False)
        yield fake


def _logits(model):
    return to_numpy(model(IMAGES, training=False))


def _cache_contents():
    return sorted(os.listdir(cache_dir())) if os.path.isdir(cache_dir()) else []


def test_imagenet_from_drive_then_from_cache(hosts, checkpoints, monkeypatch):
    model = keras_swiftformer.SwiftFormerXS(weights="imagenet")
    assert np.abs(_logits(model) - checkpoints["logits_normalize"]).max() <= LOGIT_TOLERANCE
    assert [p.split("?")[0] for p in hosts.requests] == ["/uc", "/download"]  # confirmation step
    assert _cache_contents() == ["swiftformer_xs_imagenet.weights.h5"]
    # Second call: no network, no checkpoint reading (so no torch), identical outputs.
    def must_not_run(*args):
        raise AssertionError("the cached weights should have been used")

    monkeypatch.setattr(pretrained, "read_checkpoint", must_not_run)
    monkeypatch.setattr(sources, "read_checkpoint", must_not_run)
    if BACKEND != "torch":  # the torch backend itself needs torch
        monkeypatch.setitem(sys.modules, "torch", None)
    again = keras_swiftformer.SwiftFormerXS(weights="imagenet")
    assert len(hosts.requests) == 2
    np.testing.assert_array_equal(_logits(again), _logits(model))


def test_imagenet_v1_from_the_hub(hosts, checkpoints):
    model = keras_swiftformer.SwiftFormerXS(weights="imagenet_v1")
    assert model.get_layer("stage3_block3").attn.attention_pooling == "softmax_v1"
    assert np.abs(_logits(model) - checkpoints["logits_softmax_v1"]).max() <= LOGIT_TOLERANCE
    assert hosts.requests == ["/" + HUB + "model.safetensors"]


def test_hub_repo_without_safetensors_falls_back_to_bin(hosts, checkpoints):
    del hosts.hub[HUB + "model.safetensors"]
    hosts.hub[HUB + "pytorch_model.bin"] = checkpoints["bin"]
    model = keras_swiftformer.SwiftFormerXS(weights="imagenet_v1")
    assert np.abs(_logits(model) - checkpoints["logits_softmax_v1"]).max() <= LOGIT_TOLERANCE
    assert hosts.requests == ["/" + HUB + "model.safetensors", "/" + HUB + "pytorch_model.bin"]


def test_transfer_learning_heads_with_pretrained_weights(hosts):
    full = keras_swiftformer.SwiftFormerXS(weights="imagenet")
    features = keras_swiftformer.SwiftFormerXS(weights="imagenet", include_top=False, pooling="avg")
    five = keras_swiftformer.SwiftFormerXS(weights="imagenet", classes=5, classifier_activation="softmax")
    assert tuple(five.output.shape) == (None, 5) and tuple(features.output.shape) == (None, 220)
    import keras

    pooled = keras.Model(full.input, full.get_layer("avg_pool").output)
    np.testing.assert_allclose(to_numpy(features(IMAGES)), to_numpy(pooled(IMAGES)), atol=1e-6)
    assert len(hosts.requests) == 2  # one download served all three models


@pytest.mark.parametrize(
    "weights,path,fault",
    [
        ("imagenet", "/download", "truncate"),
        ("imagenet", "/uc", 500),
        ("imagenet_v1", "/" + HUB + "model.safetensors", "truncate"),
        ("imagenet_v1", "/" + HUB + "model.safetensors", 503),
        ("imagenet_v1", "/" + HUB + "model.safetensors", "stall"),
    ],
)
def test_failed_downloads_are_clear_and_leave_nothing(hosts, weights, path, fault):
    hosts.faults[path] = fault
    hosts.stall_seconds = 6.0
    with pytest.raises(WeightsDownloadError) as info:
        fetch_weights("XS", weights, timeout=2.0)
    message = str(info.value)
    assert "KERAS_SWIFTFORMER_MIRROR" in message and "weights=" in message
    assert hosts.url in message  # says which URL failed
    assert _cache_contents() == []


def test_wrong_content_is_rejected(hosts, checkpoints):
    hosts.drive[XS_ID] = ("SwiftFormer_XS.pth", b"<html>quota exceeded</html>" * 100)
    with pytest.raises(WeightsDownloadError, match="not a valid SwiftFormer-XS checkpoint"):
        keras_swiftformer.SwiftFormerXS(weights="imagenet")
    # A checkpoint of another variant is caught too.
    spec = VARIANTS["XS"]
    hosts.drive[PRETRAINED_WEIGHTS["imagenet"]["variants"]["S"]["id"]] = ("SwiftFormer_S.pth", checkpoints["pth"])
    with pytest.raises(WeightsDownloadError, match="holds SwiftFormer-XS"):
        fetch_weights("S", "imagenet")
    assert _cache_contents() == [] and spec


def test_mirror_folder_and_corrupt_cache(hosts, checkpoints, tmp_path, monkeypatch):
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    (mirror / "SwiftFormer_XS.pth").write_bytes(checkpoints["pth"])
    monkeypatch.setenv("KERAS_SWIFTFORMER_MIRROR", str(mirror))
    path = fetch_weights("XS", "imagenet")
    assert hosts.requests == [] and path == cached_path("XS", "imagenet")
    with open(path, "wb") as file:  # damaged by something outside this library
        file.write(b"garbage")
    model = keras_swiftformer.SwiftFormerXS(weights="imagenet")
    assert np.abs(_logits(model) - checkpoints["logits_normalize"]).max() <= LOGIT_TOLERANCE
    monkeypatch.setenv("KERAS_SWIFTFORMER_MIRROR", str(tmp_path / "empty"))
    with pytest.raises(WeightsDownloadError, match="no such file"):
        fetch_weights("XS", "imagenet_v1")


def test_no_network(tmp_path, monkeypatch):
    monkeypatch.setenv("KERAS_HOME", str(tmp_path))
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")  # the discard port: refused
    monkeypatch.delenv("KERAS_SWIFTFORMER_MIRROR", raising=False)
    with pytest.raises(WeightsDownloadError) as info:
        fetch_weights("L1", "imagenet_v1", timeout=5)
    message = str(info.value)
    assert "http://127.0.0.1:9/MBZUAI/swiftformer-l1/resolve/main/model.safetensors" in message
    assert "pass its path as --weights PATH (weights=PATH in Python)" in message
    with pytest.raises(ValueError, match="exist only for the SwiftFormer variants"):
        keras_swiftformer.SwiftFormer((1, 1, 1, 1), (8, 16, 24, 32), weights="imagenet")


def test_predict_command(hosts, capsys, tmp_path):
    image = os.path.join(ROOT, "examples", "chelsea.jpg")
    assert cli(["predict", image, image, "--model", "XS", "--top", "3"]) == 0
    out = capsys.readouterr().out.splitlines()
    first = next(i for i, line in enumerate(out) if line.endswith("chelsea.jpg:"))
    report = out[first:]  # before it: the download's progress
    assert len(report) == 8 and report[4].endswith("chelsea.jpg:")
    assert all("%" in line and "(n0" in line for line in report[1:4] + report[5:8])
    assert cli(["predict", image, "--model", "XS", "--weights", "none", "--top", "1"]) == 0
    assert "random weights: its classes are noise" in capsys.readouterr().err
    assert cli(["predict", "missing.jpg", "--model", "XS"]) == 1
    assert "Image(s) not found: missing.jpg" in capsys.readouterr().err
    assert cli(["predict", str(tmp_path), "--model", "XS"]) == 1  # a folder is not "not found"
    assert f"{tmp_path}: a folder; pass image files (for example {tmp_path}/*.jpg)" in capsys.readouterr().err
    # One corrupt file among good ones: the good ones are classified, the bad one reported, exit 1.
    corrupt = tmp_path / "corrupt.jpg"
    corrupt.write_bytes(b"\xff\xd8 not a JPEG")
    assert cli(["predict", image, str(corrupt), "--model", "XS", "--top", "1"]) == 1
    captured = capsys.readouterr()
    assert captured.out.splitlines()[-2].endswith("chelsea.jpg:") and "corrupt.jpg" not in captured.out
    assert f"error: Could not read {corrupt} as an image" in captured.err
    assert "Classified 1 of 2 images; 1 could not be read" in captured.err
    assert cli(["predict", str(corrupt), "--model", "XS"]) == 1
    assert "error: No image could be read:\n  Could not read" in capsys.readouterr().err
    with pytest.raises(SystemExit) as usage:  # a usage error: exit code 2, naming the flag
        cli(["predict", image, "--model", "L2"])
    assert usage.value.code == 2 and "argument --model: unknown variant 'L2'" in capsys.readouterr().err
