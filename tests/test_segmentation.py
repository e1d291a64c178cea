"""Semantic FPN segmenter: building blocks against PyTorch, learning on real pixels, the
scene_parse150 and folder pipelines, int8/Edge TPU export, bad inputs."""

import csv
import json
import os

import keras
import numpy as np
import pytest
from helpers import BACKEND, TINY, optional, random_images, to_numpy
from make_shapes_dataset import CLASS_NAMES, make_shapes_dataset

from keras_swiftformer import SwiftFormer, SwiftFormerSegmenter
from keras_swiftformer.layers import GroupNormalization, Upsample
from keras_swiftformer.training import DatasetError
from keras_swiftformer.weights import save_weights

SIZE = 64  # the shapes set's side; the tiny segmenter's crop
MIOU_THRESHOLD = 0.42


def tiny_segmenter(num_classes=len(CLASS_NAMES), input_shape=(SIZE, SIZE, 3), **kwargs):
    arguments = dict(num_classes=num_classes, backbone_weights=None, input_shape=input_shape,
                     depths=TINY["depths"], widths=TINY["widths"], fpn_channels=32,
                     head_channels=32, norm_groups=8, drop_path_rate=0.0)
    return SwiftFormerSegmenter(**{**arguments, **kwargs})


def test_group_norm_and_upsample_match_torch():
    torch = optional("torch")
    x = np.random.RandomState(1).normal(2.0, 3.0, (2, 6, 10, 32)).astype("float32")
    layer = GroupNormalization(8)
    out = to_numpy(layer(x))
    reference = torch.nn.GroupNorm(8, 32, eps=1e-5)
    gamma, beta = np.linspace(0.5, 2, 32, dtype="float32"), np.linspace(-1, 1, 32, dtype="float32")
    layer.gamma.assign(gamma), layer.beta.assign(beta)
    with torch.no_grad():
        reference.weight.copy_(torch.tensor(gamma)), reference.bias.copy_(torch.tensor(beta))
        expected = reference(torch.tensor(x).permute(0, 3, 1, 2)).permute(0, 2, 3, 1).numpy()
    np.testing.assert_allclose(to_numpy(layer(x)), expected, atol=1e-5)
    assert abs(float(out.mean())) < 1e-4  # before the affine, each group is centred
    tensor = torch.tensor(x).permute(0, 3, 1, 2)
    for mode, factor in (("nearest", 2), ("bilinear", 2), ("bilinear", 4)):
        options = {} if mode == "nearest" else {"align_corners": False}
        expected = torch.nn.functional.interpolate(tensor, scale_factor=factor, mode=mode, **options)
        np.testing.assert_allclose(to_numpy(Upsample(factor, mode)(x)),
                                   expected.permute(0, 2, 3, 1).numpy(), atol=1e-5)


def test_segmenter_architecture_and_round_trip(tmp_path):
    model = tiny_segmenter(input_shape=(None, None, 3))
    images = random_images((2, 64, 96, 3))
    logits = to_numpy(model(images, training=False))
    assert logits.shape == (2, 64, 96, len(CLASS_NAMES))
    names = {layer.name for layer in model.layers}
    assert {"backbone", "fpn_lateral0", "fpn_output3", "head_level3_stage2_conv", "classifier"} <= names
    # One conv-norm-ReLU stage per doubling from the level's stride down to 4 (P2 gets one).
    stages = {level: sum(1 for n in names if n.startswith(f"head_level{level}_") and n.endswith("_conv"))
              for level in range(4)}
    assert stages == {0: 1, 1: 1, 2: 2, 3: 3}
    backbone = model.get_layer("backbone")
    assert {"norm0", "norm2", "norm4", "norm6"} <= {layer.name for layer in backbone.layers}
    path = tmp_path / "segmenter.keras"
    model.save(path)
    again = keras.saving.load_model(path)
    np.testing.assert_allclose(to_numpy(again(images, training=False)), logits, atol=1e-5)
    assert sorted(again.get_layer("backbone").pyramid_outputs) == ["P2", "P3", "P4", "P5"]


@pytest.mark.any_backend(runs_on="torch")
def test_segmenter_variants_and_arguments():
    model = SwiftFormerSegmenter("XS", num_classes=150, backbone_weights=None, input_shape=(128, 96, 3))
    assert tuple(model.output.shape) == (None, 128, 96, 150)
    with pytest.raises(ValueError, match="multiples of 32"):
        SwiftFormerSegmenter("XS", backbone_weights=None, input_shape=(100, 128, 3))
    with pytest.raises(ValueError, match="head_norm"):
        tiny_segmenter(head_norm="layer")
    with pytest.raises(ValueError, match="divisible"):
        tiny_segmenter(head_channels=30)
    with pytest.raises(ValueError, match="variant|Unknown"):
        SwiftFormerSegmenter("XL", backbone_weights=None)
    assert any(layer.name == "head_level0_stage0_norm" for layer in tiny_segmenter(head_norm="batch").layers)


def test_segmenter_takes_backbone_weights(tmp_path):
    classifier = SwiftFormer(TINY["depths"], TINY["widths"], classes=TINY["classes"])
    path = str(tmp_path / "tiny.weights.h5")
    save_weights(classifier, path)
    model = tiny_segmenter(backbone_weights=path)
    theirs = {layer.name: layer for layer in classifier.layers if layer.weights}
    shared = [layer for layer in model.get_layer("backbone").layers if layer.name in theirs]
    assert len(shared) == sum(TINY["depths"]) + 4  # every block, the stem, 3 downsamplings
    for layer in shared:
        for ours, source in zip(layer.weights, theirs[layer.name].weights):
            np.testing.assert_array_equal(to_numpy(ours), to_numpy(source))


@pytest.fixture(scope="module")
def shapes_folder(tmp_path_factory):
    optional("skimage")
    optional("PIL")
    return make_shapes_dataset(str(tmp_path_factory.mktemp("shapes")), train=192, val=32, size=SIZE, seed=0)


@pytest.fixture(scope="module")
def trained(shapes_folder, tmp_path_factory):
    """A tiny segmenter trained with the command line on the shapes set, on this backend."""
    optional("tensorflow")
    from training.segment import main

    output = str(tmp_path_factory.mktemp("segment_run"))
    keras.utils.set_random_seed(0)
    code = main(["--model", "XS", "--weights", "none", "--dataset", shapes_folder, "--epochs", "10",
                 "--batch-size", "16", "--image-size", str(SIZE), "--output", output, "--lr", "3e-3",
                 "--no-augment", "--drop-path-rate", "0",
                 "--depths", *map(str, TINY["depths"]), "--widths", *map(str, TINY["widths"]),
                 "--fpn-channels", "32", "--head-channels", "32", "--norm-groups", "8"])
    assert code == 0
    with open(os.path.join(output, "metrics.json")) as file:
        return output, json.load(file)


@pytest.mark.any_backend  # the slow end-to-end run; test_segmenter_fit_step runs everywhere
def test_segmenter_learns_shapes_on_photographs(trained):
    """Disks and striped squares of random colours on real photographs. Predicting the
    majority class everywhere (background, about 80% of pixels) gives mIoU = IoU_bg / 3,
    about 0.27, and chance guessing is lower; reaching 0.42 needs both shape classes found
    with IoU well above zero on images never trained on."""
    output, metrics = trained
    majority = metrics["per_class_pixels"]["background"] / metrics["val_pixels"] / len(CLASS_NAMES)
    assert metrics["val_miou"] >= MIOU_THRESHOLD, metrics
    assert metrics["val_miou"] > majority + 0.1
    assert set(metrics["per_class_iou"]) == set(CLASS_NAMES)
    assert all(metrics["per_class_iou"][name] > 0.15 for name in ("disk", "square")), metrics
    for name in ("final.keras", "final.weights.h5", "log.csv"):
        assert os.path.exists(os.path.join(output, name))


def test_segmenter_fit_step(shapes_folder, tmp_path):
    """One epoch of the segmentation recipe on this backend: the loss is finite, the weights
    move, the metrics are well formed (the long learning run above runs once)."""
    optional("tensorflow")
    from training.segment import train_segmenter

    model = tiny_segmenter(dropout=0.0)
    before = [to_numpy(v).copy() for v in model.trainable_weights]
    metrics = train_segmenter(model, dataset=shapes_folder, epochs=1, batch_size=32, crop_size=SIZE,
                              output=str(tmp_path), verbose=0)
    rows = list(csv.DictReader(open(tmp_path / "log.csv")))
    assert len(rows) == 1 and np.isfinite(float(rows[0]["loss"])) and np.isfinite(float(rows[0]["val_loss"]))
    moved = [not np.array_equal(a, to_numpy(b)) for a, b in zip(before, model.trainable_weights)]
    assert sum(moved) > 0.9 * len(moved)
    assert 0.0 <= metrics["val_miou"] <= 1.0 and set(metrics["per_class_iou"]) == set(CLASS_NAMES)


@pytest.mark.any_backend
def test_int8_and_edgetpu_segmenter_agree_with_float(trained, shapes_folder, tmp_path):
    """Export runs on TensorFlow (a subprocess on other backends); once is enough."""
    if BACKEND != "tensorflow":
        pytest.skip("export is exercised from the TensorFlow session (other backends: test_export)")
    optional("ai_edge_litert")
    from keras_swiftformer.export import export_tflite, verify
    from keras_swiftformer.preprocessing import IMAGENET_MEAN, IMAGENET_STD
    from keras_swiftformer.training import load_segmentation_datasets, make_segmentation_pipeline

    output, _ = trained
    model = keras.saving.load_model(os.path.join(output, "final.keras"))
    train, val = load_segmentation_datasets(shapes_folder)
    normalised = np.concatenate([x.numpy() for x, _ in make_segmentation_pipeline(val, 3, SIZE, 32, False)])
    calibration = np.concatenate([x.numpy() for x, _ in make_segmentation_pipeline(train, 3, SIZE, 64, False).take(1)])
    to_pixels = lambda x: x * np.array(IMAGENET_STD) * 255 + np.array(IMAGENET_MEAN) * 255  # noqa: E731
    for edgetpu in (False, True):
        path = str(tmp_path / f"segmenter_{'edgetpu' if edgetpu else 'int8'}.tflite")
        # Default (normalisation folded in, pixels in) and Edge TPU files alike take pixels.
        result = export_tflite(model, path, "int8", to_pixels(calibration), input_size=SIZE, edgetpu=edgetpu,
                               class_names=CLASS_NAMES)
        assert all(row["integer"] for row in result["ops"]), result["ops"]
        ops = {row["op"] for row in result["ops"]}
        assert {"RESIZE_BILINEAR", "RESIZE_NEAREST_NEIGHBOR"} <= ops and "TILE" not in ops
        if edgetpu:
            assert all(row["edgetpu"] for row in result["ops"])
            assert all(not r["align_corners"] for r in result["resizes"])
        check = verify(path, model, to_pixels(normalised), repeats=2)
        assert check["top1_agreement"] >= 0.95, check  # pixel agreement with the float model
    with open(str(tmp_path / "segmenter_edgetpu.json")) as file:
        assert json.load(file)["task"].startswith("dense")
    with pytest.raises(ValueError, match="multiples of 32"):
        export_tflite(model, str(tmp_path / "bad.tflite"), input_size=100)
    assert not os.path.exists(tmp_path / "bad.tflite")


def _pair(folder, name, image_size, mask_size, label):
    from PIL import Image

    for sub in ("images", "masks"):
        os.makedirs(os.path.join(folder, sub), exist_ok=True)
    Image.fromarray(np.full(image_size + (3,), 120, np.uint8)).save(os.path.join(folder, "images", name + ".png"))
    Image.fromarray(np.full(mask_size, label, np.uint8)).save(os.path.join(folder, "masks", name + ".png"))


@pytest.mark.any_backend(runs_on="torch")
def test_bad_segmentation_inputs(tmp_path):
    optional("PIL")
    from training.segment import main, train_segmenter

    mismatched = str(tmp_path / "mismatched")
    for i in range(4):
        _pair(mismatched, f"{i}", (64, 64), (64, 64) if i else (64, 48), 1)
    with pytest.raises(DatasetError, match="must match their images"):
        train_segmenter(tiny_segmenter(num_classes=3), dataset=mismatched, num_classes=3, epochs=1,
                        batch_size=2, crop_size=SIZE, output=str(tmp_path / "a"), verbose=0)

    out_of_range = str(tmp_path / "labels")
    for i in range(6):
        _pair(out_of_range, f"{i}", (64, 64), (64, 64), 7 if i == 2 else 255 if i == 3 else 1)
    with pytest.raises(DatasetError, match="outside"):
        train_segmenter(tiny_segmenter(num_classes=3), dataset=out_of_range, num_classes=3, epochs=1,
                        batch_size=2, crop_size=SIZE, output=str(tmp_path / "b"), verbose=0,
                        validation_split=0.2)

    unpaired = str(tmp_path / "unpaired")
    _pair(unpaired, "a", (64, 64), (64, 64), 1)
    os.remove(os.path.join(unpaired, "masks", "a.png"))
    with pytest.raises(DatasetError, match="no mask"):
        train_segmenter(tiny_segmenter(), dataset=unpaired, num_classes=3, epochs=1, output=str(tmp_path / "c"))
    with pytest.raises(ValueError, match="multiple of 32"):
        train_segmenter(tiny_segmenter(), dataset=out_of_range, num_classes=3, crop_size=50, output=str(tmp_path / "d"))
    with pytest.raises(ValueError, match="num_classes"):
        train_segmenter(tiny_segmenter(), dataset=out_of_range, epochs=1, output=str(tmp_path / "e"),
                        validation_split=0.2)
    assert main(["--dataset", str(tmp_path / "missing"), "--output", str(tmp_path / "f"), "--weights", "none"]) == 1


@pytest.mark.any_backend
def test_bare_backbone_exports_its_pyramid(tmp_path):
    if BACKEND != "tensorflow":
        pytest.skip("export is exercised from the TensorFlow session (other backends: test_export)")
    optional("ai_edge_litert")
    from ai_edge_litert.interpreter import Interpreter

    from keras_swiftformer import SwiftFormerBackbone
    from keras_swiftformer.export import export_tflite

    backbone = SwiftFormerBackbone(depths=TINY["depths"], widths=TINY["widths"], feature_norm=True)
    images = random_images((1, 64, 96, 3), seed=4)
    expected = {level: to_numpy(value) for level, value in backbone(images, training=False).items()}
    result = export_tflite(backbone, str(tmp_path / "backbone.tflite"), input_size=(64, 96),
                           include_preprocessing=False)  # the raw pyramid on normalised images
    assert len(result["io"]["outputs"]) == 4
    interpreter = Interpreter(model_path=result["path"])
    interpreter.allocate_tensors()
    interpreter.set_tensor(interpreter.get_input_details()[0]["index"], images)
    interpreter.invoke()
    outputs = [interpreter.get_tensor(detail["index"]) for detail in interpreter.get_output_details()]
    for level, stride, channels in zip(("P2", "P3", "P4", "P5"), (4, 8, 16, 32), TINY["widths"]):
        match = [o for o in outputs if o.shape == (1, 64 // stride, 96 // stride, channels)]
        assert len(match) == 1, (level, [o.shape for o in outputs])
        np.testing.assert_allclose(match[0], expected[level], atol=1e-4)


class _Crash(keras.callbacks.Callback):
    def on_epoch_end(self, epoch, logs=None):
        if epoch == 1:
            raise KeyboardInterrupt("simulated kill after epoch 2")


@pytest.mark.any_backend(runs_on="torch")  # finetune's resume test runs on every backend
def test_segmentation_kill_and_resume(tmp_path):
    """`resume=True` continues the epoch counter, the schedule and the weights."""
    optional("skimage")
    from training.segment import train_segmenter

    if BACKEND == "tensorflow":
        import tensorflow as tf

        tf.config.experimental.enable_op_determinism()
    data = make_shapes_dataset(str(tmp_path / "data"), train=32, val=8, size=SIZE, seed=3)

    def run(output, **kwargs):
        keras.utils.set_random_seed(0)
        model = tiny_segmenter(dropout=0.0)
        train_segmenter(model, dataset=data, epochs=3, batch_size=16, crop_size=SIZE, output=str(output),
                        learning_rate=1e-3, verbose=0, **kwargs)
        return model

    reference = run(tmp_path / "reference")
    with pytest.raises(KeyboardInterrupt):
        run(tmp_path / "run", callbacks=[_Crash()])
    with pytest.raises(ValueError, match="interrupted run"):
        run(tmp_path / "run")
    resumed = run(tmp_path / "run", resume=True)
    epochs = [row["epoch"] for row in csv.DictReader(open(tmp_path / "run" / "log.csv"))]
    assert epochs == ["0", "1", "2"]
    assert int(to_numpy(resumed.optimizer.iterations)) == int(to_numpy(reference.optimizer.iterations)) == 6
    diffs = [np.abs(to_numpy(a) - to_numpy(b)).max() for a, b in zip(resumed.weights, reference.weights)]
    assert max(diffs) < 1e-4, max(diffs)
