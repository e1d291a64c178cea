"""The README as a tested document: every bash and Python block runs here as a user runs it,
in a scratch folder, with the small settings a test can afford.

What is changed is written in PLAN, block by block, as (README text, what runs instead)
pairs; each README text must be found in its block, so a changed block fails this test until
its plan changes with it. The substitutions only make runs small (XS or small images, one
or two epochs) and point at local data; flags, defaults and file names stay as the README
has them. Pretrained weights come from a mirror folder of official-layout checkpoints made
here with random weights (`KERAS_SWIFTFORMER_MIRROR`, as the README documents for offline
machines); tensorflow-datasets names are served by `tfds.testing.mock_data`, since the
machine has no internet (the real preparation code is run up to the network in
test_finetune.test_tfds_download_without_network_is_a_clear_error).

Commands run the way the README shows them: `.venv/bin/swiftformer` as a real process (the
headline command a newcomer runs); `python -m ...` and `python examples/...` through the same
entry points (`main(argv)`, `runpy`) in this process, which saves a Python and TensorFlow
start per command; Python blocks run in one namespace, in README order, as in a notebook.
"""

import contextlib
import json
import os
import re
import runpy
import shlex
import shutil
import subprocess
import sys
import time

import keras
import pytest
from helpers import ROOT, digits_folder, optional, scene_parse_examples, subprocess_environment

from keras_swiftformer.cli import main as swiftformer_main
from keras_swiftformer.models import VARIANTS
from keras_swiftformer.preprocessing import imagenet_classes

torch = optional("torch")
optional("transformers")
tfds = optional("tensorflow_datasets")
from reference import build_reference, official_state_dict  # noqa: E402

from training.finetune import main as finetune_main  # noqa: E402
from training.segment import main as segment_main  # noqa: E402

# Subprocess and in-process commands, small eager models: the PyTorch session is the fastest.
pytestmark = pytest.mark.any_backend(runs_on="torch")

README = os.path.join(ROOT, "README.md")
MAINS = {
    "conversion": lambda argv: swiftformer_main(argv, prog="python -m conversion"),
    "training.finetune": finetune_main,
    "training.segment": segment_main,
}

# Every fenced bash/python block of the README, by its first line, in the group that runs it.
# A group is one test (groups run in parallel); blocks of a group run in the order given.
PLAN = {
    "setup and predict": [
        ("# 1. Set up (.venv with every backend) and classify the sample photo with pretrained L1", {
            "skip": {"bash scripts/setup.sh": "it installs the environment these tests run in (CI's first step)",
                     "bash scripts/test.sh": "it is the command that runs this test"},
        }),
        ("python -m conversion convert SwiftFormer_L1.pth -o swiftformer_l1.weights.h5", {
            "replace": [("path/to/MBZUAI-swiftformer-l1/", "MBZUAI-swiftformer-l1/")],
        }),
        ("import numpy as np", {
            # `weights=...` in the README stands for any weights: the file converted above.
            "replace": [("weights=..., include_top=False", 'weights="swiftformer_l1.weights.h5", include_top=False'),
                        ("weights=..., classes=5", 'weights="swiftformer_l1.weights.h5", classes=5')],
        }),
        ("images = image[None]                 # a batch of normalised images (the photo above)", {
            "replace": [("images = image[None]", "images = image[None, :64, :64]")],  # a quick size
        }),
        ("from keras_swiftformer.explain import attention_maps, class_activation_map, draw_explanation, explain", {}),
        ("swiftformer explain examples/chelsea.jpg --model L1 --class tabby -o explanation.png", {}),
        ("import keras_hub, keras_swiftformer", {}),
        ('model = keras_swiftformer.SwiftFormerSegmenter("L1", num_classes=150, backbone_weights="imagenet")', {}),
    ],
    "export": [
        ("# float32 TFLite (builtin ops only, runs on any LiteRT runtime)", {
            # XS at 64x64 instead of L1 at 224: the same code path, a quarter of a minute each.
            "replace": [("--model L1 --weights imagenet --format tflite -o l1_fp32.tflite",
                         "--model XS --weights imagenet --format tflite --image-size 64 -o l1_fp32.tflite"),
                        ("--model L1 --weights imagenet --format tflite --quantize int8",
                         "--model XS --weights imagenet --format tflite --quantize int8 --image-size 64"),
                        ("--model XS --weights imagenet --format tflite --quantize int8 \\\n    --calibration path/to/images --edgetpu",
                         "--model XS --weights imagenet --format tflite --quantize int8 --image-size 64 \\\n    --calibration path/to/images --edgetpu"),
                        ("--model L1 --weights imagenet --format onnx", "--model XS --weights imagenet --format onnx --image-size 64"),
                        ("path/to/images", "{images}")],
        }),
        # MediaPipe on the float32 file the block above wrote (XS at 64x64 here).
        ("import mediapipe as mp", {}),
    ],
    "finetune": [
        ("python -m training.finetune --model XS --weights imagenet --dataset tf_flowers \\", {
            "tfds": {"num_examples": 16},
            "replace": [("--epochs 10 --batch-size 64 --image-size 224", "--epochs 1 --batch-size 8 --image-size 32"),
                        ("--dataset path/to/images/ \\\n    --epochs 30 --freeze-epochs 2",
                         "--dataset {images} \\\n    --epochs 2 --freeze-epochs 1 --batch-size 8 --image-size 32"),
                        # `...` stands for the command above, interrupted after its first epoch.
                        ("python -m training.finetune ... --output runs/mine --resume",
                         "python -m training.finetune --model L1 --weights imagenet --dataset {images} "
                         "--epochs 2 --freeze-epochs 1 --batch-size 8 --image-size 32 --output runs/mine --resume")],
        }),
        ("from training.finetune import finetune   # from a clone: the recipe beside the library", {
            "tfds": {"num_examples": 16},
            # A second run into the bash block's finished runs/flowers is refused, rightly.
            "replace": [("epochs=10,\n                   batch_size=64, image_size=224, output=\"runs/flowers\"",
                         "epochs=1,\n                   batch_size=8, image_size=32, output=\"runs/flowers_python\"")],
        }),
    ],
    "segment": [
        ("python -m training.segment --model L1 --dataset scene_parse150 --epochs 40 --batch-size 16 \\", {
            # ADE20K's masks hold 0..150 (0: "other") at the image's size; mock_data's own
            # draw does not, so the examples are made as ADE20K has them.
            "tfds": {"num_examples": 8, "as_dataset_fn": lambda *args, **kwargs: scene_parse_examples(8)},
            "replace": [("--epochs 40 --batch-size 16 \\\n    --image-size 512", "--epochs 1 --batch-size 2 \\\n    --image-size 64"),
                        ("photo.jpg", "{photo}")],
        }),
    ],
    "not run": [
        ("python -m benchmarks                 # everything (13 min on 2 cores here, 19.4 from empty caches), into runs/benchmarks; --help for subsets", {
            "skip": {"python -m benchmarks": "20 minutes: test_benchmarks runs `python -m benchmarks --quick` end to end "
                     "and checks --publish is needed to write docs/benchmarks"},
        }),
    ],
}


def readme_blocks():
    """(first line, language, text) of every fenced bash or python block."""
    with open(README, encoding="utf-8") as file:
        text = file.read()
    return [(body.splitlines()[0], language, body)
            for language, body in re.findall(r"^```(bash|python)\n(.*?)^```", text, re.S | re.M)]


def test_every_readme_block_has_a_plan():
    planned = [first for group in PLAN.values() for first, _ in group]
    found = [first for first, _, _ in readme_blocks()]
    assert sorted(found) == sorted(planned), (
        f"README blocks without a plan: {sorted(set(found) - set(planned))}; "
        f"plans without a block: {sorted(set(planned) - set(found))}"
    )


def _apply(body, plan, places):
    for old, new in plan.get("replace", []):
        assert old in body, f"README changed: {old!r} is no longer in the block; update PLAN"
        body = body.replace(old, new)
    for name, value in places.items():
        body = body.replace("{" + name + "}", value)
    return body


def _commands(body):
    """Shell commands of a bash block: continuations joined, comments dropped, `&&` split."""
    body = re.sub(r"\\\n\s*", " ", body)
    commands = []
    for line in body.splitlines():
        line = re.sub(r"(^|\s)#.*$", "", line).strip()
        commands += [part.strip() for part in line.split("&&") if part.strip()]
    return commands


@contextlib.contextmanager
def _argv(argv):
    saved, sys.argv = sys.argv, argv
    try:
        yield
    finally:
        sys.argv = saved


@contextlib.contextmanager
def _interrupted_after_first_epoch():
    """A kill after the first epoch's backup is written: the run's state as `--resume` meets it."""
    original = keras.callbacks.BackupAndRestore.on_epoch_end

    def on_epoch_end(self, epoch, logs=None):
        original(self, epoch, logs)
        raise KeyboardInterrupt("killed after the first epoch")

    keras.callbacks.BackupAndRestore.on_epoch_end = on_epoch_end
    try:
        yield
    finally:
        keras.callbacks.BackupAndRestore.on_epoch_end = original


def _run_command(command, plan, log, expect=0):
    for prefix, reason in plan.get("skip", {}).items():
        if command.startswith(prefix):
            log.append(f"not run: {command} ({reason})")
            return
    tokens = shlex.split(command)
    if os.path.basename(tokens[0]) == "swiftformer":  # the console script, as a user runs it
        script = os.path.join(os.path.dirname(sys.executable), "swiftformer")
        result = subprocess.run([script, *tokens[1:]], capture_output=True, text=True, timeout=600,
                                env=subprocess_environment())
        assert result.returncode == 0, f"{command}\n{result.stdout[-2000:]}\n{result.stderr[-3000:]}"
        log.append(f"ran: {command}\n{result.stdout}")
        return
    assert tokens[0] == "python", command
    if tokens[1] == "-m":
        module, argv = tokens[2], tokens[3:]
        code = MAINS[module](argv)
    else:
        with _argv(tokens[1:]):
            runpy.run_path(os.path.join(ROOT, tokens[1]), run_name="__main__")
        code = 0
    assert code == expect, f"{command}: exit code {code}"
    log.append(f"ran: {command}")


def _run_group(group, places, namespace):
    blocks = {first: (language, body) for first, language, body in readme_blocks()}
    log = []
    for first, plan in PLAN[group]:
        started = time.time()
        language, body = blocks[first]
        body = _apply(body, plan, places)
        mock = tfds.testing.mock_data(**plan["tfds"]) if "tfds" in plan else contextlib.nullcontext()
        with mock:
            if language == "python":
                exec(compile(body, f"README block {first!r}", "exec"), namespace)  # noqa: S102
                log.append(f"ran the Python block {first!r}")
            commands = _commands(body) if language == "bash" else []
            for index, command in enumerate(commands):
                resumed_next = index + 1 < len(commands) and commands[index + 1].endswith("--resume")
                if resumed_next:  # Ctrl-C: exit code 130 and a pointer to --resume
                    with _interrupted_after_first_epoch():
                        _run_command(command, plan, log, expect=130)
                    log.append(f"interrupted after its first epoch: {command}")
                else:
                    _run_command(command, plan, log)
        log.append(f"({time.time() - started:.1f} s)")
    print("\n".join(log))
    return log


@pytest.fixture(scope="module")
def mirror(tmp_path_factory):
    """Official-layout checkpoints of L1 and XS (random weights) in a mirror folder, and L1 as
    a Hugging Face model folder."""
    folder = tmp_path_factory.mktemp("mirror")
    for variant, seed in (("L1", 3), ("XS", 4)):
        spec = VARIANTS[variant]
        reference = build_reference(spec["depths"], spec["widths"], seed=seed)
        torch.save({"model": official_state_dict(reference)}, folder / f"SwiftFormer_{variant}.pth")
        if variant == "L1":
            reference.save_pretrained(folder / "hub" / "MBZUAI-swiftformer-l1")
    return folder


@pytest.fixture
def user(mirror, tmp_path, monkeypatch):
    """A scratch folder as the user's working directory: the clone's examples/ beside it, the
    pretrained weights served by the mirror, an empty Keras cache."""
    os.symlink(os.path.join(ROOT, "examples"), tmp_path / "examples")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("KERAS_SWIFTFORMER_MIRROR", str(mirror))
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras_home"))
    return tmp_path


def test_setup_and_predict_blocks(user, mirror):
    shutil.copy(mirror / "SwiftFormer_L1.pth", user / "SwiftFormer_L1.pth")  # "downloaded yourself"
    shutil.copy(mirror / "SwiftFormer_L1.pth", user / "ckpt.pth")
    shutil.copytree(mirror / "hub" / "MBZUAI-swiftformer-l1", user / "MBZUAI-swiftformer-l1")
    namespace = {}
    log = _run_group("setup and predict", {}, namespace)
    printed = "\n".join(log)
    assert re.search(r"\d+\.\d\d%\s+\S", printed), printed[-2000:]  # predict: probabilities and names
    for name in ("swiftformer_l1.weights.h5", "l1_v1.weights.h5", "out.weights.h5"):
        assert (user / name).stat().st_size > 40e6
    assert namespace["finetune"].output.shape[-1] == 5
    assert sorted(namespace["features"]) == ["P2", "P3", "P4", "P5"]
    assert tuple(namespace["logits"].shape) == (1, 64, 64, 150)
    assert len(namespace["result"].top) == 5 and namespace["cams"].shape == (1, 64, 64)
    for picture in ("explanation.png",):  # the Python block's, then the command's (same name)
        assert (user / picture).stat().st_size > 10000


@pytest.mark.any_backend(runs_on="tensorflow")  # export runs on TensorFlow: in process there
def test_export_block(user):
    optional("mediapipe")
    images = digits_folder(str(user / "my_images"), per_class=2)
    namespace = {}
    _run_group("export", {"images": images}, namespace)
    for name in ("l1_fp32", "l1_int8", "xs_edgetpu"):
        contract = json.load(open(user / f"{name}.json"))
        assert contract["input"]["shape"] == [1, 64, 64, 3]
        assert (user / f"{name}.tflite").stat().st_size > 1e6
    assert (user / "l1.onnx").stat().st_size > 1e6
    top5 = namespace["top5"]  # MediaPipe's ImageClassifier on the float32 file
    names = [names.split(",")[0] for _, names in imagenet_classes()]
    assert len(top5) == 5 and all(c.category_name == names[c.index] for c in top5)


def test_android_readme_export(user):
    """examples/android/README.md's export command writes the files it tells the app to put
    in assets/, and the model holds the labels MediaPipe names categories with."""
    mp = optional("mediapipe")
    from mediapipe.tasks.python import BaseOptions, vision

    with open(os.path.join(ROOT, "examples", "android", "README.md"), encoding="utf-8") as file:
        text = file.read()
    (command,) = [c for c in _commands("\n".join(re.findall(r"^```bash\n(.*?)^```", text, re.S | re.M)))
                  if c.startswith("python -m conversion export")]
    images = digits_folder(str(user / "my_images"), per_class=1)
    # XS at 64x64 instead of 224: the same command, a fraction of the time.
    _run_command(command.replace("path/to/images", images) + " --image-size 64", {}, [])
    assets = re.findall(r"`(swiftformer_xs_int8[\w.]*)`", text.split("## assets/")[1].split("##")[0])
    assert "swiftformer_xs_int8.tflite" in assets
    for name in assets:
        assert (user / name).exists(), name
    options = vision.ImageClassifierOptions(base_options=BaseOptions(model_asset_path="swiftformer_xs_int8.tflite"),
                                            max_results=3)
    with vision.ImageClassifier.create_from_options(options) as classifier:
        image = mp.Image.create_from_file(os.path.join(ROOT, "examples", "chelsea.jpg"))
        categories = classifier.classify(image).classifications[0].categories
    assert len(categories) == 3 and all(c.category_name for c in categories)


def test_finetune_blocks(user):
    images = digits_folder(str(user / "my_images"), per_class=4)
    namespace = {}
    _run_group("finetune", {"images": images}, namespace)
    for run, classes in (("runs/flowers", 5), ("runs/mine", 10), ("runs/flowers_python", 5)):
        metrics = json.load(open(user / run / "metrics.json"))
        assert len(metrics["classes"]) == classes and 0 <= metrics["val_top1"] <= 1
        assert (user / run / "final.keras").exists()
        assert len(open(user / run / "labels.txt").read().split("\n")) == classes + 1
    assert not (user / "runs" / "mine" / "backup").exists()  # the resumed run finished
    # tf_flowers has 5 classes: a top-5 accuracy would be 1.0 whatever the model did.
    assert namespace["metrics"]["val_top5"] is None and 0 <= namespace["metrics"]["val_top1"] <= 1
    assert json.load(open(user / "runs" / "mine" / "metrics.json"))["val_top5"] is not None  # 10 classes


def test_segment_block(user):
    photo = str(user / "photo.jpg")
    shutil.copy(os.path.join(ROOT, "examples", "chelsea.jpg"), photo)
    _run_group("segment", {"photo": photo}, {})
    metrics = json.load(open(user / "runs" / "ade20k" / "metrics.json"))
    assert metrics["num_classes"] == 150 and len(metrics["per_class_iou"]) == 150
    assert 0 < metrics["val_pixels"] < 8 * 64 * 64  # reduce_zero_label: label 0 is not scored
    assert (user / "overlay.png").stat().st_size > 1000


def test_blocks_not_run_say_why():
    for first, plan in PLAN["not run"]:
        assert plan["skip"] and all(len(reason) > 20 for reason in plan["skip"].values()), first
