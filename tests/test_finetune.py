"""Fine-tuning with `model.fit`: learning on real images, resume after a crash, frozen
backbone, distillation, tensorflow-datasets offline, data parallelism, bad inputs."""

import contextlib
import csv
import json
import os
import subprocess
import sys
import warnings

import keras
import numpy as np
import pytest
from helpers import BACKEND, digits_folder, optional, subprocess_environment, tiny_model, to_numpy

optional("tensorflow")
optional("PIL")
optional("matplotlib")

from keras_swiftformer import SwiftFormerXS  # noqa: E402
from keras_swiftformer.cli import main as swiftformer  # noqa: E402
from keras_swiftformer.export import run_file  # noqa: E402
from keras_swiftformer.preprocessing import load_image, preprocess_input  # noqa: E402
from keras_swiftformer.training import (  # noqa: E402
    Augmentation,
    DatasetError,
    Recipe,
    learning_rate_schedule,
)
from training.finetune import finetune  # noqa: E402
from training.finetune import main as cli  # noqa: E402
from training.run import model_to_build  # noqa: E402

PLAIN = Augmentation(random_resized_crop=False, horizontal_flip=True, randaugment=False,
                     random_erasing=0.0, mixup=0.0, cutmix=0.0, label_smoothing=0.1)
# Tuned for these short runs: one warm-up epoch as set, not scaled to the run's length.
RECIPE = Recipe(learning_rate=3e-3, warmup_epochs=1, weight_decay=0.025, reference_epochs=None)


@pytest.fixture(scope="module")
def digits(tmp_path_factory):
    return digits_folder(str(tmp_path_factory.mktemp("digits")), per_class=40, corrupt=True)


@pytest.fixture(scope="module")
def small_digits(tmp_path_factory):
    return digits_folder(str(tmp_path_factory.mktemp("small_digits")), per_class=16)


def _run(folder, output, epochs, model=None, **kwargs):
    keras.utils.set_random_seed(0)
    model = model or tiny_model(input_shape=(32, 32, 3))
    arguments = dict(weights=None, dataset=folder, epochs=epochs, batch_size=16, image_size=32,
                     output=str(output), augmentation=PLAIN, recipe=RECIPE, verbose=0)
    arguments.update(kwargs)
    return model, finetune(model, **arguments)


# Learning on every backend: test_training.test_fit_learns_a_small_problem, and the exact
# resume below, which trains on the same digits.
@pytest.mark.any_backend(runs_on="torch")
def test_learns_real_digits(digits, tmp_path):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        _, metrics = _run(digits, tmp_path, epochs=4)
    assert any("Skipped 1 image file (unreadable" in str(w.message) for w in caught)
    # 10 classes, 40 validation digits: chance is 10%, and 50% by luck has probability
    # below 1e-9 (binomial tail), so passing means the model learned.
    print(f"digits: val_top1 {metrics['val_top1']:.3f} val_top5 {metrics['val_top5']:.3f}")
    assert metrics["val_top1"] >= 0.5 and metrics["val_top5"] >= metrics["val_top1"]
    saved = json.load(open(tmp_path / "metrics.json"))
    assert saved["val_top1"] == metrics["val_top1"] and len(saved["per_class_accuracy"]) == 10
    for name in ("final.weights.h5", "learning_curves.png", "log.csv", "tensorboard"):
        assert (tmp_path / name).exists(), name
    assert sorted(os.listdir(tmp_path / "checkpoints")) == [f"epoch_00{i}.weights.h5" for i in (1, 2, 3, 4)]
    assert not (tmp_path / "backup").exists()  # removed once training completed


class _Crash(keras.callbacks.Callback):
    def on_epoch_end(self, epoch, logs=None):
        if epoch == 1:
            raise KeyboardInterrupt("simulated kill after epoch 2")


def test_kill_and_resume_continues_exactly(small_digits, tmp_path):
    if BACKEND == "tensorflow":
        import tensorflow as tf

        tf.config.experimental.enable_op_determinism()
    reference, _ = _run(small_digits, tmp_path / "reference", epochs=3)
    with pytest.raises(KeyboardInterrupt):
        _run(small_digits, tmp_path / "run", epochs=3, callbacks=[_Crash()])
    with pytest.raises(ValueError, match="holds an interrupted run"):
        _run(small_digits, tmp_path / "run", epochs=3)
    resumed, _ = _run(small_digits, tmp_path / "run", epochs=3, resume=True)
    # The epoch counter continued: epochs 0, 1 from the first run, 2 from the resumed one.
    epochs = [row["epoch"] for row in csv.DictReader(open(tmp_path / "run" / "log.csv"))]
    assert epochs == ["0", "1", "2"]
    # Same optimiser step (so the same schedule position) and the same weights.
    assert int(to_numpy(resumed.optimizer.iterations)) == int(to_numpy(reference.optimizer.iterations))
    diffs = [np.abs(to_numpy(a) - to_numpy(b)).max() for a, b in zip(resumed.weights, reference.weights)]
    assert max(diffs) < 1e-4, max(diffs)


@pytest.mark.any_backend(runs_on="torch")  # Keras' trainable flags: fit on each backend is covered above
def test_frozen_backbone_then_unfrozen(small_digits, tmp_path, capsys):
    model = tiny_model(input_shape=(32, 32, 3))
    before = {v.path: to_numpy(v).copy() for v in model.weights}
    snapshots = {}

    class Snapshot(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            snapshots[epoch] = {v.path: to_numpy(v).copy() for v in model.weights}

    _run(small_digits, tmp_path, epochs=2, model=model, freeze_epochs=1, callbacks=[Snapshot()])
    printed = capsys.readouterr().out  # each phase is announced
    assert "Epoch 1 of 2: the new head only (backbone frozen)" in printed
    assert "Epoch 2 of 2: the whole model" in printed
    # Both phases are in the log (the second appends to the first) and in the curves.
    assert [row["epoch"] for row in csv.DictReader(open(tmp_path / "log.csv"))] == ["0", "1"]
    assert sorted(os.listdir(tmp_path / "checkpoints")) == ["epoch_001.weights.h5", "epoch_002.weights.h5"]
    frozen = snapshots[0]
    backbone = [p for p in before if not p.startswith(("head/", "dist_head/"))]
    # Frozen epoch: backbone weights AND BatchNorm statistics untouched; heads trained.
    assert all(np.array_equal(frozen[p], before[p]) for p in backbone)
    assert not np.array_equal(frozen["head/kernel"], before["head/kernel"])
    # Unfrozen epoch: the backbone learns.
    changed = [p for p in backbone if not np.array_equal(snapshots[1][p], frozen[p])]
    assert len(changed) > 0.9 * len(backbone)


@pytest.mark.any_backend(runs_on="torch")  # a Keras model with compute_loss: fit on each backend is covered above
def test_distillation_into_the_distillation_head(small_digits, tmp_path):
    keras.utils.set_random_seed(1)
    teacher = tiny_model(input_shape=(32, 32, 3), distillation=False)
    student = tiny_model(input_shape=(32, 32, 3))
    dist_before = to_numpy(student.get_layer("dist_head").kernel).copy()
    _, metrics = _run(small_digits, tmp_path, epochs=1, model=student, teacher=teacher)
    assert np.isfinite(metrics["val_top1"])
    assert not np.array_equal(to_numpy(student.get_layer("dist_head").kernel), dist_before)
    with pytest.raises(ValueError, match="distillation head"):
        _run(small_digits, tmp_path / "nodist", epochs=1, model=tiny_model(input_shape=(32, 32, 3), distillation=False), teacher=teacher)


@pytest.mark.any_backend(runs_on="torch")
def test_tfds_offline_with_mock_data(tmp_path):
    tfds = optional("tensorflow_datasets")
    with tfds.testing.mock_data(num_examples=48):
        model = tiny_model(input_shape=(32, 32, 3), classes=5)
        _, metrics = _run("tf_flowers", tmp_path, epochs=1, model=model)
    assert metrics["classes"] == ["dandelion", "daisy", "tulips", "sunflowers", "roses"]
    # (mock_data serves num_examples for any split, so both splits hold 48 here.)
    assert 0.0 <= metrics["val_top1"] <= 1.0 and metrics["train_examples"] == 48


@pytest.mark.any_backend(runs_on="torch")
def test_bad_inputs(tmp_path, small_digits):
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(DatasetError, match="holds no readable images"):
        _run(str(empty), tmp_path / "a", epochs=1)
    single = tmp_path / "single"
    digits_folder(str(single), per_class=3)
    for name in os.listdir(single):
        if name != "digit_0":
            import shutil

            shutil.rmtree(single / name)
    with pytest.raises(DatasetError, match="at least 2"):
        _run(str(single), tmp_path / "b", epochs=1)
    with pytest.raises(DatasetError, match="batch_size=512 is larger than the training split"):
        _run(small_digits, tmp_path / "c", epochs=1, batch_size=512)
    with pytest.raises(DatasetError, match="Unknown tensorflow-datasets name 'no_such_dataset'"):
        _run("no_such_dataset", tmp_path / "d", epochs=1)
    with pytest.raises(DatasetError, match="Dataset folder not found"):
        _run(str(tmp_path / "missing" / "folder"), tmp_path / "e", epochs=1)
    # A run that fails on its inputs leaves no output folder behind.
    assert not any((tmp_path / name).exists() for name in "abcde")


@pytest.mark.skipif(BACKEND != "torch", reason="data parallelism works on the other backends (tested below)")
def test_data_parallel_is_refused_on_torch(small_digits, tmp_path):
    with pytest.raises(ValueError, match="Keras' PyTorch backend trains on one device"):
        _run(small_digits, tmp_path, epochs=1, data_parallel=True)


@pytest.mark.any_backend(runs_on="torch")
def test_tfds_download_without_dns_fails_at_once(tmp_path, monkeypatch):
    """No network and no proxy: no name resolves, and the error comes before tfds' ten
    retries with backoff (about 3.5 minutes), naming the host it could not find."""
    optional("tensorflow_datasets")
    import socket

    for variable in ("HTTPS_PROXY", "HTTP_PROXY", "https_proxy", "http_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.delenv(variable, raising=False)

    def no_dns(host, *args, **kwargs):
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    monkeypatch.setattr(socket, "getaddrinfo", no_dns)
    with pytest.raises(DatasetError, match="'tf_flowers'.*download host download.tensorflow.org cannot be found.*--data-dir on the command line, data_dir= in Python"):
        _run("tf_flowers", tmp_path / "out", epochs=1, data_dir=str(tmp_path / "tfds"))
    assert not (tmp_path / "out").exists()


@pytest.mark.any_backend(runs_on="torch")
def test_tfds_download_without_network_is_a_clear_error(tmp_path, monkeypatch):
    optional("tensorflow_datasets")
    import urllib3

    # The network is down, and fails at once: every connection goes to a closed local port and
    # tfds' retries do not wait (an unreachable host otherwise costs minutes of backoff). The
    # download must fail with a message that says what to do.
    for variable in ("HTTPS_PROXY", "HTTP_PROXY", "https_proxy", "http_proxy"):
        monkeypatch.setenv(variable, "http://127.0.0.1:9")
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    monkeypatch.setattr(urllib3.util.retry.Retry, "get_backoff_time", lambda self: 0)
    with pytest.raises(DatasetError, match="Could not download or prepare the tfds dataset 'beans'.*data_dir") as info:
        _run("beans", tmp_path / "out", epochs=1, data_dir=str(tmp_path / "tfds"))
    # The real preparation code ran as far as the network: no module of tfds was missing
    # (tensorflow-datasets 4.9.10 imports importlib_resources, which the tfds extra brings).
    assert "No module named" not in str(info.value) and "ModuleNotFoundError" not in str(info.value)
    # Neither tfds' partial downloads nor the run's folder are left behind.
    leftovers = [os.path.join(root, name) for root, folders, files in os.walk(tmp_path / "tfds")
                 for name in folders + files if ".tmp." in name]
    assert not leftovers and not (tmp_path / "out").exists()


@pytest.mark.any_backend(runs_on="torch")
def test_command_line(small_digits, tmp_path, capsys):
    code = cli([
        "--model", "XS", "--weights", "none", "--dataset", small_digits, "--epochs", "1",
        "--batch-size", "16", "--image-size", "32", "--output", str(tmp_path / "cli"),
    ])
    captured = capsys.readouterr()
    assert code == 0, captured.err[-2000:]
    assert "val_top1" in captured.out and (tmp_path / "cli" / "metrics.json").exists()
    # The official recipe's 5-epoch warm-up, sized for 300 epochs, is scaled to the run.
    assert "warm-up scaled from 5 to 0.0167 epochs for a 1-epoch run" in captured.out
    assert json.load(open(tmp_path / "cli" / "metrics.json"))["recipe"]["warmup_epochs"] == pytest.approx(5 / 300)
    assert cli(["--model", "XS", "--dataset", str(tmp_path / "nothing"), "--output", str(tmp_path / "x")]) == 1
    assert "Dataset folder not found" in capsys.readouterr().err

    # The fine-tuned files are used again with no extra argument: the builder reads the
    # number of classes from the weights, and `swiftformer predict` names the user's classes.
    final = str(tmp_path / "cli" / "final.weights.h5")
    model = SwiftFormerXS(weights=final)
    assert model.output.shape[-1] == 10
    assert keras.saving.load_model(str(tmp_path / "cli" / "final.keras")).output.shape[-1] == 10
    image = os.path.join(small_digits, "digit_7", sorted(os.listdir(os.path.join(small_digits, "digit_7")))[0])
    assert swiftformer(["predict", image, "--model", "XS", "--weights", final, "--top", "3"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[0].endswith(".png:") and len(lines) == 4
    assert all(line.split()[1].startswith("digit_") and line.split()[0].endswith("%") for line in lines[1:])
    # The whole model file names the classes too (labels.txt beside it), at its trained side,
    # and its variant: no --model needed. Another --model is one clear line.
    assert swiftformer(["predict", image, "--weights", str(tmp_path / "cli" / "final.keras")]) == 0
    assert capsys.readouterr().out.splitlines()[1].split()[1].startswith("digit_")
    assert swiftformer(["predict", image, "--weights", final, "--image-size", "16"]) == 0
    assert "--image-size 16 is smaller than the 32x32 these weights were trained at" in capsys.readouterr().err
    assert swiftformer(["predict", image, "--model", "S", "--weights", str(tmp_path / "cli" / "final.keras")]) == 1
    error = capsys.readouterr().err.strip().splitlines()
    assert len(error) == 1 and "are for SwiftFormer-XS" in error[0] and "SwiftFormer-S " in error[0], error
    plain = str(tmp_path / "plain.weights.h5")
    model.save_weights(plain)  # no record of class names: a clear error, not a wrong label
    assert swiftformer(["predict", image, "--model", "XS", "--weights", plain]) == 1
    assert "record no class names" in capsys.readouterr().err
    exported = tmp_path / "digits.tflite"
    # Exported at the side it was trained at (recorded in the weights), with the user's labels,
    # and the file evaluates as the Keras model does on the user's images.
    assert swiftformer(["export", "--model", "XS", "--weights", final, "-o", str(exported)]) == 0
    table = capsys.readouterr().out  # a float file: no int8 or Edge TPU columns to fail
    assert "CONV_2D" in table and "edge TPU" not in table and " NO" not in table
    assert json.load(open(tmp_path / "digits.json"))["input"]["shape"] == [1, 32, 32, 3]
    assert (tmp_path / "digits.labels.txt").read_text().split() == [f"digit_{i}" for i in range(10)]
    assert (tmp_path / "cli" / "labels.txt").read_text().split() == [f"digit_{i}" for i in range(10)]
    pixels = np.stack([load_image(os.path.join(small_digits, f"digit_{d}", name), 32, normalize=False)
                       for d in range(10) for name in sorted(os.listdir(os.path.join(small_digits, f"digit_{d}")))[:2]])
    from_file = np.concatenate([run_file(exported, image[None]) for image in pixels])  # the file takes pixels
    predicted = to_numpy(model.predict(preprocess_input(pixels), verbose=0)).argmax(-1)
    np.testing.assert_array_equal(from_file.argmax(-1), predicted)
    # A finished run is never overwritten, and --resume needs a run to continue.
    again = ["--model", "XS", "--weights", "none", "--dataset", small_digits, "--epochs", "1", "--output"]
    capsys.readouterr()
    assert cli(again + [str(tmp_path / "cli")]) == 1 and "holds a finished run" in capsys.readouterr().err
    assert cli(again + [str(tmp_path / "new"), "--resume"]) == 1 and "no interrupted run" in capsys.readouterr().err
    # Fine-tuning the fine-tuned weights again needs no --model: the file names its variant
    # (the recipe's default, XS, or the segmenter's, L1, only when nothing names one).
    assert model_to_build(None, final, "L1") == "XS" and model_to_build("S", final, "L1") == "S"
    assert model_to_build(None, "imagenet", "L1") == "L1" and model_to_build(None, None, "XS") == "XS"


def test_freezing_a_random_backbone_is_warned_about(tmp_path):
    with pytest.warns(UserWarning, match="frozen, randomly initialised backbone"):
        with pytest.raises(DatasetError, match="not found"):
            finetune("XS", weights=None, dataset=str(tmp_path / "nothing"), epochs=2, freeze_epochs=1,
                     output=str(tmp_path / "run"))


# The README's L1 command (default recipe, folder, interrupted and resumed) and its tf_flowers
# command run in test_readme. What differs between the variants' default recipes is the
# augmentation, which runs in tf.data whatever the Keras backend; the training step is the same
# code for every variant, and trains on each backend in the kill-and-resume test above.
# (On JAX the four would take about five minutes of compilation on 2 cores.)
@pytest.mark.any_backend(runs_on="torch")
@pytest.mark.parametrize("variant, dataset", [("XS", "folder"), ("S", "folder"), ("L1", "folder"),
                                              ("L3", "folder"), ("L1", "tf_flowers")])
def test_the_default_recipe_of_every_variant_trains(variant, dataset, tmp_path):
    """The recipe as a user gets it for each variant (XS: no RandAugment or MixUp/CutMix; S:
    RandAugment and random erasing; L1, L3: everything), from scratch, on a folder and on a
    tfds dataset: one training step and the final files."""
    tfds = optional("tensorflow_datasets")
    if dataset == "folder":
        dataset, mock = digits_folder(str(tmp_path / "digits"), per_class=1), contextlib.nullcontext()
    else:
        mock = tfds.testing.mock_data(num_examples=8)
    keras.utils.set_random_seed(0)
    with mock:
        metrics = finetune(variant, weights=None, dataset=dataset, epochs=1, batch_size=8, image_size=32,
                           validation_split=0.2, output=str(tmp_path / "run"), verbose=0)
    assert metrics["train_examples"] == 8 and 0.0 <= metrics["val_top1"] <= 1.0
    assert (tmp_path / "run" / "final.keras").exists()


def test_short_runs_scale_the_warm_up():
    recipe, note = Recipe.official().scaled_to(3)
    assert recipe.warmup_epochs == pytest.approx(0.05) and "from 5 to 0.05 epochs for a 3-epoch run" in note
    assert "(a 5-epoch warm-up is sized for a 300-epoch run)" in note
    schedule = learning_rate_schedule(recipe, steps_per_epoch=20, epochs=3)
    assert float(to_numpy(schedule(2))) > 0.9 * recipe.learning_rate  # warm-up over by step 2
    assert Recipe.official().scaled_to(300) == (Recipe.official(), None)
    assert Recipe.fine_tuning().scaled_to(3)[0].warmup_epochs == pytest.approx(0.3)
    kept = Recipe(warmup_epochs=2, reference_epochs=None)
    assert kept.scaled_to(3) == (kept, None)


_DATA_PARALLEL = r"""
import os, json
backend = os.environ["KERAS_BACKEND"]
if backend == "tensorflow":
    import tensorflow as tf
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
    devices = len(tf.config.list_logical_devices("CPU"))
else:
    import jax
    devices = len(jax.devices())
from test_finetune import _run
_, metrics = _run({folder!r}, {output!r}, epochs=1, data_parallel=True)
print(json.dumps({{"devices": devices, "val_top1": metrics["val_top1"]}}))
"""


@pytest.mark.skipif(BACKEND == "torch", reason="Keras' PyTorch backend has no data-parallel fit (error tested above)")
def test_data_parallel_on_two_virtual_devices(small_digits, tmp_path):
    script = _DATA_PARALLEL.format(folder=small_digits, output=str(tmp_path / "dp"))
    environment = subprocess_environment(XLA_FLAGS="--xla_force_host_platform_device_count=2")
    result = subprocess.run([sys.executable, "-c", script], env=environment, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["devices"] == 2 and 0.0 <= report["val_top1"] <= 1.0
