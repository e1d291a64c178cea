"""Export to TFLite (float32, float16, dynamic, int8, Edge TPU) and ONNX, verified by running
the files. On JAX and PyTorch the export itself runs in a TensorFlow subprocess."""

import os

import keras
import numpy as np
import pytest
from helpers import optional, random_images, randomise_weights, tiny_model, to_numpy

optional("tensorflow")
optional("tf2onnx")
optional("onnxruntime")
optional("ai_edge_litert")

from keras_swiftformer import SwiftFormer, SwiftFormerS, SwiftFormerXS  # noqa: E402
from keras_swiftformer.cli import main as cli  # noqa: E402
from keras_swiftformer.export import export_onnx, export_tflite, run_file, verify  # noqa: E402
from keras_swiftformer.export.metadata import associated_files, read_metadata  # noqa: E402
from keras_swiftformer.export.report import io_details, op_report, read_operators  # noqa: E402
from keras_swiftformer.layers import exact_gelu  # noqa: E402
from keras_swiftformer.layers.numerics import edgetpu_gelu  # noqa: E402
from keras_swiftformer.optional import MissingDependencyError  # noqa: E402
from keras_swiftformer.preprocessing import preprocess_input  # noqa: E402

FLOAT_TOLERANCE = 1e-4


def model_depths(model):
    from keras_swiftformer.models.swiftformer import architecture

    return architecture(model)["depths"]


def _logits(model, images):
    return to_numpy(model(images, training=False))


@pytest.fixture(scope="module")
def xs_model():
    return randomise_weights(SwiftFormerXS(), seed=1)


@pytest.fixture(scope="module")
def s_model():
    return randomise_weights(SwiftFormerS(), seed=5)


@pytest.fixture(scope="module")
def tiny():
    return randomise_weights(tiny_model(), seed=2)


# The default float32 and int8 files of XS (normalisation folded in, softmax, uint8 I/O, the
# TFLite metadata) are exported and run through MediaPipe and `verify` in test_mediapipe.py;
# here the raw files that users ask for: ImageNet-normalised inputs, logits.
RAW = {"include_preprocessing": False, "probabilities": False}


@pytest.mark.any_backend  # export always runs on TensorFlow (a subprocess elsewhere: tested below)
@pytest.mark.parametrize("which", ["XS", "S"])
def test_float_exports_match_keras(tmp_path, which, xs_model, s_model):
    # S at a smaller size: what it adds is another architecture, not another resolution.
    model, size = (xs_model, 224) if which == "XS" else (s_model, 128)
    images = random_images((3, size, size, 3), seed=4)
    expected = _logits(model, images)
    assert np.abs(expected).max() > 0.5  # meaningful logits, not the near-zero default init
    if which == "S":
        fp32 = export_tflite(model, tmp_path / "m.tflite", input_size=size, **RAW)
        assert np.abs(run_file(fp32["path"], images) - expected).max() <= FLOAT_TOLERANCE
        counts = {row["op"]: row["count"] for row in fp32["ops"]}
        assert set(counts).isdisjoint({"FLEX", "CUSTOM", "SQUARE", "L2_NORMALIZATION", "SUB", "SOFTMAX"})
        # ADDs: one residual per Conv. Encoder, three residuals and the attention's
        # `proj(g * k) + q` per SwiftFormer Encoder, and the BatchNorm shift after each of the
        # five explicitly padded stride-2 convolutions (stem 2, downsampling 3), which the
        # converter does not fold into their bias. Every other BatchNorm leaves no op of its own.
        depths = model_depths(model)
        assert counts["ADD"] == sum(d - 1 for d in depths) + 4 * len(depths) + 5
        return  # the quantisations and ONNX below do not depend on the architecture
    fp16 = export_tflite(model, tmp_path / "m16.tflite", quantization="float16", input_size=size, **RAW)
    # float16 weights: relative error around 1e-3, bounded at 1e-2 of the logits' range.
    assert np.abs(run_file(fp16["path"], images) - expected).max() <= 1e-2 * np.abs(expected).max()
    dynamic = export_tflite(model, tmp_path / "md.tflite", quantization="dynamic", input_size=size, **RAW)
    report = verify(dynamic["path"], model, images, repeats=1)
    assert report["cosine"] > 0.99 and not report["probabilities"]
    # Weights dominate the file: about half and a quarter of float32's 4 bytes per parameter.
    float32_bytes = 4 * model.count_params()
    assert fp16["bytes"] < 0.55 * float32_bytes and dynamic["bytes"] < 0.35 * float32_bytes
    onnx = export_onnx(model, tmp_path / "m.onnx", input_size=size)
    assert np.abs(run_file(onnx["path"], images) - expected).max() <= FLOAT_TOLERANCE
    assert_onnxruntime_fuses_every_gelu(onnx["path"], model_depths(model), tmp_path)
    assert_l2_normalisations_are_reduce_l2(onnx["path"], model_depths(model))
    dynamic_onnx = export_onnx(model, tmp_path / "dyn.onnx", dynamic_axes=True)
    other = random_images((2, 96, 128, 3), seed=5)
    assert np.abs(run_file(dynamic_onnx["path"], other) - _logits(model, other)).max() <= FLOAT_TOLERANCE


def assert_onnxruntime_fuses_every_gelu(path, depths, tmp_path):
    """Each block's GELU (one per Conv. Encoder, two per SwiftFormer Encoder) becomes one
    Gelu kernel in ONNX Runtime's optimised graph: no Erf is left (the export's rewrite)."""
    import collections

    import onnx
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.optimized_model_filepath = str(tmp_path / "optimised.onnx")
    ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    ops = collections.Counter(node.op_type for node in onnx.load(options.optimized_model_filepath).graph.node)
    assert ops["Erf"] == 0 and ops["Gelu"] == sum(depths) + len(depths), ops


def assert_l2_normalisations_are_reduce_l2(path, depths):
    """Each of the attention's L2 normalisations (query, key and the token weights, in each
    stage's SwiftFormer Encoder) is `Div(x, Max(ReduceL2(x), eps))` in the file, none is
    left as Mul, ReduceSum, Max, Sqrt, Reciprocal, Mul, and no constant is left unread (ONNX
    Runtime warns about each one when it loads the file)."""
    import collections

    import onnx

    graph = onnx.load(path).graph
    ops = collections.Counter(node.op_type for node in graph.node)
    assert ops["ReduceL2"] == 3 * len(depths) and ops["Max"] == 3 * len(depths), ops
    assert ops["Sqrt"] == ops["Reciprocal"] == 0, ops
    read = {name for node in graph.node for name in node.input}
    assert [tensor.name for tensor in graph.initializer if tensor.name not in read] == []


def test_export_from_any_backend(tmp_path, tiny):
    """From this backend's session (a TensorFlow subprocess on JAX and PyTorch), with the
    phone defaults: [0, 255] pixels in, probabilities out, the user's class names packed in."""
    pixels = np.random.RandomState(6).uniform(0, 255, (2, 64, 64, 3)).astype("float32")
    images = preprocess_input(pixels)
    expected = _logits(tiny, images)
    names = [f"class {i}" for i in range(10)]
    result = export_tflite(tiny, tmp_path / "tiny.tflite", input_size=64, class_names=names)
    probabilities = np.exp(expected) / np.exp(expected).sum(-1, keepdims=True)
    assert np.abs(run_file(result["path"], pixels) - probabilities).max() <= FLOAT_TOLERANCE
    content = open(result["path"], "rb").read()
    assert io_details(content)["inputs"][0]["shape"] == [1, 64, 64, 3]
    assert read_metadata(content) is not None
    assert associated_files(content)["labels.txt"].decode().splitlines() == names
    onnx = export_onnx(tiny, tmp_path / "tiny.onnx", input_size=64)  # ONNX: normalised in, logits out
    assert np.abs(run_file(onnx["path"], images) - expected).max() <= FLOAT_TOLERANCE
    # The sidecar carries the input contract.
    import json

    contract = json.load(open(tmp_path / "tiny.json"))
    assert contract["quantization"] == "float32" and contract["input"]["dtype"] == "float32"
    assert contract["include_preprocessing"] and contract["probabilities"] and contract["softmax_added"]
    assert contract["labels"] == "tiny.labels.txt"


def test_edgetpu_gelu_is_close():
    x = np.linspace(-8, 8, 4001).astype("float32")
    exact = to_numpy(exact_gelu(x))
    with edgetpu_gelu():
        approx = to_numpy(exact_gelu(x))
    assert np.abs(approx - exact).max() < 5e-4
    assert np.abs(approx - exact).max() > 1e-5  # it really is the other formula


# ----------------------------------------------------------------- int8 on a learned model


@pytest.fixture(scope="module")
def digits_model():
    """A small SwiftFormer trained on scikit-learn's handwritten digits (8x8, upscaled to
    32x32 RGB): int8 fidelity means something only on a model that has learned."""
    datasets = optional("sklearn.datasets")
    digits = datasets.load_digits()
    pixels = (digits.images / 16.0 * 255.0).astype("float32")
    pixels = np.repeat(np.repeat(pixels, 4, axis=1), 4, axis=2)[..., None].repeat(3, axis=-1)
    order = np.random.RandomState(0).permutation(len(pixels))
    train, test = order[:1400], order[1400:]
    keras.utils.set_random_seed(0)
    model = SwiftFormer((2, 1, 2, 1), (16, 24, 32, 48), classes=10, input_shape=(32, 32, 3))
    model.compile(
        optimizer=keras.optimizers.AdamW(2e-3, weight_decay=0.025),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    )
    model.fit(preprocess_input(pixels[train]), digits.target[train], batch_size=32, epochs=6, verbose=0)
    float_predictions = _logits(model, preprocess_input(pixels[test])).argmax(-1)
    accuracy = float(np.mean(float_predictions == digits.target[test]))
    # 10 classes: chance is 10%; 397 test digits make 90% impossible to reach by luck.
    assert accuracy >= 0.9, accuracy
    return model, pixels[train], pixels[test], digits.target[test], float_predictions, accuracy


@pytest.mark.any_backend
@pytest.mark.parametrize("edgetpu", [False, True], ids=["int8", "edgetpu"])
def test_int8_fidelity(tmp_path, digits_model, edgetpu):
    model, train, test, labels, float_predictions, float_accuracy = digits_model
    path = tmp_path / "digits.tflite"
    result = export_tflite(
        model, path, quantization="int8", representative_data=train[:200], input_size=32,
        include_preprocessing=True, edgetpu=edgetpu,
    )
    predictions = run_file(path, test).argmax(-1)
    accuracy = float(np.mean(predictions == labels))
    agreement = float(np.mean(predictions == float_predictions))
    print(f"int8 (edgetpu={edgetpu}): accuracy {accuracy:.4f} vs float {float_accuracy:.4f}, agreement {agreement:.4f}")
    assert accuracy >= float_accuracy - 0.015
    assert agreement >= 0.97
    content = open(path, "rb").read()
    operators = read_operators(content)
    floats = [op for op in operators if any(t.startswith("FLOAT") for t in op[2] + op[3])]
    assert floats == []  # full integer, no float fallback anywhere
    # uint8 in and out by default (scale 1 and zero point 0 for the pixels), Edge TPU or not
    assert (result["io"]["inputs"][0]["scale"], result["io"]["inputs"][0]["zero_point"]) == (1.0, 0)
    assert result["io"]["outputs"][0]["dtype"] == "uint8" and "SOFTMAX" in {row["op"] for row in result["ops"]}
    assert result["io"]["inputs"][0]["dtype"] == "uint8" and result["io"]["inputs"][0]["shape"] == [1, 32, 32, 3]
    names = {row["op"] for row in op_report(content)}
    if edgetpu:
        assert all(row["edgetpu"] for row in result["ops"])
        assert "edgetpu_compiler" in result
        assert names.isdisjoint({"GELU", "SQUARE", "TRANSPOSE", "TILE"})
    else:
        assert "GELU" in names  # exact int8 GELU builtin for CPU/XNNPACK


# ----------------------------------------------------------------- errors and the CLI


@pytest.mark.any_backend
def test_bad_inputs_leave_no_file(tmp_path, tiny, monkeypatch):
    target = tmp_path / "out.tflite"
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ValueError, match="holds no images"):
        export_tflite(tiny, target, quantization="int8", representative_data=str(empty), input_size=64)
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "a.jpg").write_bytes(b"not an image")
    with pytest.raises(ValueError, match="could be read"):
        export_tflite(tiny, target, quantization="int8", representative_data=str(broken), input_size=64)
    with pytest.raises(ValueError, match="neither a folder of images nor a tensorflow-datasets name"):
        export_tflite(tiny, target, quantization="int8", representative_data="calibration_typo", input_size=64)
    with pytest.raises(ValueError, match="calibration folder was not found"):
        export_tflite(tiny, target, quantization="int8", representative_data=str(tmp_path / "no" / "dir"), input_size=64)
    with pytest.raises(ValueError, match=r"Calibration images are \(32, 32\) but the model input is \(64, 64\)"):
        export_tflite(tiny, target, quantization="int8", representative_data=random_images((4, 32, 32, 3)), input_size=64)
    with pytest.raises(ValueError, match="`quantization` must be one of"):
        export_tflite(tiny, target, quantization="int4")
    with pytest.raises(ValueError, match="needs `representative_data`"):
        export_tflite(tiny, target, quantization="int8")
    with pytest.raises(ValueError, match="needs quantization='int8'"):
        export_tflite(tiny, target, edgetpu=True)
    with pytest.raises(ValueError, match="must end in '.tflite'"):
        export_tflite(tiny, tmp_path / "out.bin")
    import importlib.util

    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name in ("tensorflow", "tf2onnx") else real_find_spec(name, *a))
    with pytest.raises(MissingDependencyError, match=r"keras-swiftformer\[export\]"):
        export_tflite(tiny, target)
    with pytest.raises(MissingDependencyError, match=r"keras-swiftformer\[export\]"):
        export_onnx(tiny, tmp_path / "out.onnx")
    assert sorted(os.listdir(tmp_path)) == ["broken", "empty"]


@pytest.mark.any_backend
def test_command_line(tmp_path, capsys):
    from PIL import Image

    weights = tmp_path / "xs.weights.h5"
    randomise_weights(SwiftFormerXS(), seed=3).save_weights(str(weights))
    calibration = tmp_path / "calibration"
    calibration.mkdir()
    for i, image in enumerate(np.random.RandomState(0).randint(0, 255, (4, 80, 96, 3)).astype("uint8")):
        Image.fromarray(image).save(calibration / f"{i}.png")
    output = tmp_path / "xs_edgetpu.tflite"
    with pytest.warns(UserWarning, match="Calibrating int8 on 4 images only") as caught:  # said, not refused
        code = cli([
            "export", "--model", "XS", "--weights", str(weights), "--quantize", "int8", "--edgetpu",
            "--calibration", str(calibration), "--image-size", "64", "-o", str(output),
        ])
    out = capsys.readouterr()
    assert code == 0, out.err[-2000:]
    # Said once, by the calibration; the verification after it reads the same folder quietly.
    assert sum("Calibrating int8" in str(w.message) for w in caught) == 1
    assert out.out.count("4/4") == 1  # one progress bar reached its end
    assert "edge TPU" in out.out and "Verification against Keras" in out.out
    assert output.exists() and (tmp_path / "xs_edgetpu.json").exists()
    assert (tmp_path / "xs_edgetpu.labels.txt").read_text().splitlines()[281] == "tabby"
    # Usage errors: exit code 2, naming the flags, before anything is built or written.
    for arguments, message in (
        (["--quantize", "int8", "-o", str(tmp_path / "x.tflite")], "--quantize int8 needs --calibration"),
        (["--format", "onnx", "--quantize", "int8", "-o", str(tmp_path / "x.onnx")], "ONNX files are written in float32"),
        (["--dynamic-axes", "-o", str(tmp_path / "x.tflite")], "--dynamic-axes applies to --format onnx"),
        (["--format", "onnx", "--logits", "-o", str(tmp_path / "x.onnx")], "--logits apply to --format tflite"),
    ):
        with pytest.raises(SystemExit) as exit_info:
            cli(["export", "--model", "XS", "--weights", str(weights), *arguments])
        error = capsys.readouterr().err
        assert exit_info.value.code == 2 and message in error
        assert "swiftformer export: error:" in error and "usage: swiftformer export" in error  # the command's usage
    assert not (tmp_path / "x.tflite").exists() and not (tmp_path / "x.onnx").exists()


@pytest.mark.any_backend
def test_export_from_a_weights_file(tmp_path, tiny):
    """A fine-tuned weights file is all `export_tflite` needs: its architecture, class names
    and trained side come from the file."""
    from keras_swiftformer.models.swiftformer import architecture
    from keras_swiftformer.weights import save_weights

    names = [f"class {i}" for i in range(10)]
    weights = str(tmp_path / "mine.weights.h5")
    save_weights(tiny, weights, {**architecture(tiny), "class_names": names, "image_size": 64})
    result = export_tflite(weights, tmp_path / "mine.tflite")
    assert result["io"]["inputs"][0]["shape"] == [1, 64, 64, 3]
    assert associated_files(open(result["path"], "rb").read())["labels.txt"].decode().splitlines() == names
    pixels = np.random.RandomState(3).uniform(0, 255, (2, 64, 64, 3)).astype("float32")
    expected = _logits(tiny, preprocess_input(pixels))
    probabilities = np.exp(expected) / np.exp(expected).sum(-1, keepdims=True)
    assert np.abs(run_file(result["path"], pixels) - probabilities).max() <= FLOAT_TOLERANCE
    with pytest.raises(ValueError, match="Pass `variant`"):
        export_tflite("imagenet", tmp_path / "imagenet.tflite")
    assert sorted(os.listdir(tmp_path)) == ["mine.json", "mine.labels.txt", "mine.tflite", "mine.weights.h5"]


@pytest.mark.any_backend  # export runs on TensorFlow; test_export_from_any_backend covers the subprocess
def test_a_fixed_input_model_exports_at_its_own_size(tmp_path):
    model = randomise_weights(tiny_model(input_shape=(64, 64, 3)), seed=4)
    images = np.random.RandomState(6).uniform(0, 255, (8, 64, 64, 3)).astype("float32")  # pixels
    result = export_tflite(model, tmp_path / "fixed.tflite", quantization="int8", representative_data=images)
    assert result["io"]["inputs"][0]["shape"] == [1, 64, 64, 3]
    assert verify(result["path"], model, images, repeats=1)["top1_agreement"] >= 0.75
    onnx = export_onnx(model, tmp_path / "fixed.onnx")
    normalised = preprocess_input(images)
    assert np.abs(run_file(onnx["path"], normalised) - _logits(model, normalised)).max() <= FLOAT_TOLERANCE
    with pytest.raises(ValueError, match="`input_size` must be a positive integer"):
        export_tflite(model, tmp_path / "bad.tflite", input_size=0)
    assert sorted(os.listdir(tmp_path)) == ["fixed.json", "fixed.onnx", "fixed.tflite"]


@pytest.mark.any_backend
def test_edgetpu_compiler_is_run_when_present(tmp_path, monkeypatch):
    """The real compiler is not installable here: a stand-in on PATH prints its summary
    lines, which the export must run and report."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    fake = bin_dir / "edgetpu_compiler"
    fake.write_text(
        "#!/bin/sh\n"
        "echo 'Edge TPU Compiler version 16.0.384591198'\n"
        "echo 'Number of operations that will run on Edge TPU: 321'\n"
        "echo 'Number of operations that will run on CPU: 0'\n"
        "echo \"$@\" > \"$(dirname \"$0\")/args.txt\"\n"
    )
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    pixels = np.random.RandomState(0).uniform(0, 255, (8, 32, 32, 3)).astype("float32")
    model = tiny_model(input_shape=(32, 32, 3))
    result = export_tflite(model, tmp_path / "t.tflite", quantization="int8", representative_data=pixels,
                           input_size=32, edgetpu=True)
    assert result["edgetpu_compiler"]["ops_on_edgetpu"] == 321
    assert result["edgetpu_compiler"]["ops_on_cpu"] == 0
    assert str(tmp_path / "t.tflite") in (bin_dir / "args.txt").read_text()


@pytest.mark.any_backend
def test_calibration_from_a_tfds_name(tmp_path):
    tfds = optional("tensorflow_datasets")
    model = tiny_model(input_shape=(32, 32, 3))
    with tfds.testing.mock_data(num_examples=6):
        result = export_tflite(model, tmp_path / "t.tflite", quantization="int8",
                               representative_data="tf_flowers", input_size=32, num_calibration=6)
    assert result["io"]["inputs"][0]["dtype"] == "uint8"
