"""The scripts in examples/ run as documented (with local stand-ins for the network)."""

import json
import os
import runpy
import subprocess
import sys
import warnings

import numpy as np
import pytest
from helpers import ROOT, digits_folder, optional, subprocess_environment, tiny_model

from keras_swiftformer.models import VARIANTS
from keras_swiftformer.preprocessing import imagenet_classes

EXAMPLES = os.path.join(ROOT, "examples")
# The scripts are backend-agnostic Keras; the layers and models they use are tested on every
# backend by the other modules.
pytestmark = pytest.mark.any_backend(runs_on="torch")  # the fastest backend for small eager models


def test_quickstart_runs(tmp_path):
    result = subprocess.run(
        [sys.executable, os.path.join(EXAMPLES, "quickstart.py"), "--model", "XS"],
        capture_output=True, text=True, timeout=600, cwd=ROOT,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "3.48M trainable parameters" in result.stdout
    assert "stage at stride 32: (1, 7, 7, 220)" in result.stdout
    # With a checkpoint, the variant is the checkpoint's (not the L1 default), and the top-5
    # are ImageNet names for the sample photograph.
    optional("torch")
    import torch
    from reference import build_reference, official_state_dict

    spec = VARIANTS["XS"]
    reference = build_reference(spec["depths"], spec["widths"], attention_pooling="normalize")
    torch.save({"model": official_state_dict(reference)}, tmp_path / "SwiftFormer_XS.pth")
    result = subprocess.run(
        [sys.executable, os.path.join(EXAMPLES, "quickstart.py"), "--weights", str(tmp_path / "SwiftFormer_XS.pth")],
        capture_output=True, text=True, timeout=600, cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "Built swiftformer_xs" in result.stdout and "chelsea.jpg, top 5:" in result.stdout
    names = result.stdout.split("top 5:")[1].strip().splitlines()[:5]
    imagenet = {name.split(",")[0] for _, name in imagenet_classes()}
    assert len(names) == 5 and all(line.split("%", 1)[1].strip() in imagenet for line in names), names
    # Another --model than the checkpoint's: one line that says what to do, no traceback.
    result = subprocess.run(
        [sys.executable, os.path.join(EXAMPLES, "quickstart.py"), "--model", "S", "--weights",
         str(tmp_path / "SwiftFormer_XS.pth")], capture_output=True, text=True, timeout=600, cwd=tmp_path,
    )
    assert result.returncode == 1 and "Traceback" not in result.stderr, result.stderr[-3000:]
    assert "are for SwiftFormer-XS" in result.stderr and "leave --model out" in result.stderr


def test_transfer_learning_example(tmp_path, monkeypatch):
    tfds = optional("tensorflow_datasets")
    optional("torch")
    # The pretrained XS weights from a local mirror (random weights, converted as a .pth).
    import torch
    from reference import build_reference, official_state_dict

    from keras_swiftformer.models import VARIANTS
    from keras_swiftformer.weights import PRETRAINED_WEIGHTS  # noqa: F401

    spec = VARIANTS["XS"]
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    reference = build_reference(spec["depths"], spec["widths"], attention_pooling="normalize")
    torch.save({"model": official_state_dict(reference)}, mirror / "SwiftFormer_XS.pth")
    monkeypatch.setenv("KERAS_SWIFTFORMER_MIRROR", str(mirror))
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras_home"))
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "argv", ["transfer_learning.py", "--epochs", "1"])
    with tfds.testing.mock_data(num_examples=8), warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        runpy.run_path(os.path.join(EXAMPLES, "transfer_learning.py"), run_name="__main__")
    assert (tmp_path / "swiftformer_xs_flowers.weights.h5").exists()
    # The example's own call gives Keras nothing to warn about (a shuffle it would ignore, say).
    assert not [str(w.message) for w in caught if "shuffle" in str(w.message)]
    # --help shows the options and starts nothing (no download).
    help_text = subprocess.run([sys.executable, os.path.join(EXAMPLES, "transfer_learning.py"), "--help"],
                               capture_output=True, text=True, timeout=120)
    assert help_text.returncode == 0 and "--epochs" in help_text.stdout


def test_coral_example_runs_on_cpu(tmp_path):
    optional("ai_edge_litert")
    from keras_swiftformer.export import export_tflite

    model = tiny_model(input_shape=(32, 32, 3), classes=1000)
    pixels = np.random.RandomState(0).uniform(0, 255, (8, 32, 32, 3)).astype("float32")
    path = tmp_path / "tiny_edgetpu.tflite"
    export_tflite(model, path, quantization="int8", representative_data=pixels, input_size=32, edgetpu=True)
    result = subprocess.run(
        [sys.executable, os.path.join(EXAMPLES, "coral_edgetpu.py"), str(path), os.path.join(EXAMPLES, "chelsea.jpg")],
        capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    lines = result.stdout.strip().splitlines()
    assert len(lines) == 5 and "running on the CPU" in result.stderr


def test_segment_photo_writes_an_overlay(tmp_path):
    optional("PIL")
    from PIL import Image

    from keras_swiftformer import SwiftFormerSegmenter

    model = SwiftFormerSegmenter(num_classes=4, backbone_weights=None, depths=(2, 1, 2, 1),
                                 widths=(8, 16, 24, 32), fpn_channels=16, head_channels=16, norm_groups=4)
    model.save(tmp_path / "segmenter.keras")
    (tmp_path / "labels.txt").write_text("background\ndisk\nsquare\ntriangle\n")  # as training.segment writes it
    output = tmp_path / "overlay.png"
    result = subprocess.run(
        [sys.executable, os.path.join(EXAMPLES, "segment_photo.py"), os.path.join(EXAMPLES, "chelsea.jpg"),
         "--weights", str(tmp_path / "segmenter.keras"), "--image-size", "96", "--output", str(output)],
        capture_output=True, text=True, timeout=600, cwd=ROOT,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    photo = Image.open(os.path.join(EXAMPLES, "chelsea.jpg"))
    with Image.open(output) as overlay:
        assert overlay.size == (2 * photo.width, photo.height)  # photograph | overlay
    shares = json.loads(result.stdout.strip().splitlines()[-1])["pixel_share_per_class"]
    assert abs(sum(shares.values()) - 1.0) < 1e-3
    assert set(shares) <= {"background", "disk", "square", "triangle"}  # names, not class ids
    missing = subprocess.run(
        [sys.executable, os.path.join(EXAMPLES, "segment_photo.py"), "x.jpg", "--weights", str(tmp_path / "none.keras")],
        capture_output=True, text=True, timeout=600, cwd=ROOT,
    )
    assert missing.returncode != 0 and "training.segment" in missing.stderr
    tiny_model().save_weights(tmp_path / "classifier.weights.h5")  # weights only: no architecture
    weights_only = subprocess.run(
        [sys.executable, os.path.join(EXAMPLES, "segment_photo.py"), "x.jpg", "--weights", str(tmp_path / "classifier.weights.h5")],
        capture_output=True, text=True, timeout=600, cwd=ROOT,
    )
    assert weights_only.returncode == 2 and "final.keras" in weights_only.stderr.strip().splitlines()[-1]


def test_retinanet_example_trains_and_draws(tmp_path):
    optional("keras_hub")
    optional("skimage")
    result = subprocess.run(
        [sys.executable, os.path.join(EXAMPLES, "retinanet_shapes.py"), "--weights", "none", "--train", "16",
         "--val", "4", "--image-size", "64", "--epochs", "1", "--batch-size", "8", "--depths", "2", "1", "2", "1",
         "--widths", "8", "16", "24", "32", "--output", str(tmp_path)],
        capture_output=True, text=True, timeout=900, cwd=EXAMPLES,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert 0.0 <= report["val_recall_at_iou_0.5"] <= 1.0
    assert (tmp_path / "detections.png").exists() and (tmp_path / "retinanet.keras").exists()


@pytest.mark.any_backend(runs_on="tensorflow")  # a subprocess: any session; this one has room
def test_export_models_with_a_calibration_folder(tmp_path):
    """`examples/export_models.py --calibration DIR -o DIR` as documented, small: XS at 64x64."""
    images = digits_folder(str(tmp_path / "images"), per_class=2)
    result = subprocess.run(
        [sys.executable, os.path.join(EXAMPLES, "export_models.py"), "--models", "XS", "--image-size", "64",
         "--flavours", "float32,int8", "--calibration", images, "-o", str(tmp_path / "out")],
        capture_output=True, text=True, timeout=600, cwd=ROOT, env=subprocess_environment(),
    )
    assert result.returncode == 0, result.stderr[-3000:]
    written = set(os.listdir(tmp_path / "out"))
    assert {f"swiftformer_xs_{flavour}.{suffix}" for flavour in ("float32", "int8") for suffix in ("tflite", "json")} <= written
    rows = [line for line in result.stdout.splitlines() if line.startswith("| XS |")]
    assert len(rows) == 2 and "fidelity on 16 photographs" in result.stdout
