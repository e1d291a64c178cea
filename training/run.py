"""What the two training recipes share: the output folder and resuming into it, the
distribution scope, logs and plots, the final files, and the command lines' error handling."""

import argparse
import contextlib
import json
import os
import sys

import keras
import numpy as np

from keras_swiftformer.cli import (
    USER_ERRORS,
    HelpFormatter,
    add_verbose,
    configure_logging,
    native_logs_held,
    positive_int,
    variant_name,
)
from keras_swiftformer.io import atomic_path, write_json, write_text
from keras_swiftformer.optional import require
from keras_swiftformer.weights import save_weights, variant_held_by

BACKUP = "backup"


def run_parser(prog, description, model, weights_help, dataset_help, batch_size, image_size):
    """The arguments both recipes take, with the same names and meanings as the `swiftformer`
    command's (`--model`, `--weights ... | none`, `--image-size`, `-o/--output`)."""
    parser = argparse.ArgumentParser(
        prog=prog, description=description, formatter_class=HelpFormatter
    )
    parser.add_argument("--model", type=variant_name,
                        help=f"XS, S, L1 or L3 (default: the variant a --weights file holds, else {model})")
    parser.add_argument("--weights", default="imagenet", help=weights_help)
    parser.add_argument("--dataset", required=True, help=dataset_help)
    parser.add_argument("--data-dir", help="tensorflow-datasets data_dir")
    parser.add_argument("--epochs", type=positive_int, default=10, help="epochs to train")
    parser.add_argument("--batch-size", type=positive_int, default=batch_size, help="images per step")
    parser.add_argument("--image-size", type=positive_int, default=image_size,
                        help="side of the training crops and of the validation images")
    parser.add_argument("-o", "--output", required=True, help="the run's folder")
    parser.add_argument("--resume", action="store_true", help="continue the interrupted run in --output")
    parser.add_argument("--validation-split", type=float, default=0.1,
                        help="share of a folder dataset held out for validation")
    parser.add_argument("--drop-path-rate", type=float, default=0.0, help="stochastic depth at the last block")
    parser.add_argument("--seed", type=int, default=0, help="data order, crops and initialisation")
    add_verbose(parser)
    return parser


def model_to_build(model, weights, default):
    """--model, else the variant a --weights file holds (fine-tuning a fine-tuned model needs
    no --model), else the recipe's `default`."""
    return model or variant_held_by(weights) or default


def prepare_output(output, resume, markers=(BACKUP,)):
    """Checks the output folder before anything is loaded or created: an interrupted run (any
    of `markers`) is only continued with `resume`, a finished run is never overwritten, and
    `resume` needs a run to continue. The folder itself is created by `create_output`."""
    if os.path.exists(output) and not os.path.isdir(output):
        raise ValueError(f"--output {output} is a file: the run's output is a folder. Choose another path.")
    interrupted = any(os.path.exists(os.path.join(output, marker)) for marker in markers)
    finished = os.path.exists(os.path.join(output, "final.weights.h5"))
    if interrupted and not resume:
        raise ValueError(
            f"{output} holds an interrupted run. Pass resume=True (--resume) to continue it, or "
            "choose another output folder."
        )
    if finished and not interrupted:
        raise ValueError(f"{output} holds a finished run (final.weights.h5): choose another output folder.")
    if resume and not interrupted:
        raise ValueError(f"resume=True (--resume) but {output} holds no interrupted run to continue.")


RUN_CONFIG = "run.json"


def create_output(output, config, resume):
    """Creates the output folder, once the run's inputs have been checked and loaded, and
    records the run's configuration (`run.json`); a resumed run must have the configuration
    of the run it continues (another model, image size or class list would fail deep inside
    Keras, or silently train something else)."""
    os.makedirs(output, exist_ok=True)
    path = os.path.join(output, RUN_CONFIG)
    config = json.loads(json.dumps(config))  # as it reads back: tuples become lists
    if resume and os.path.exists(path):
        with open(path, encoding="utf-8") as file:
            started = json.load(file)
        changed = [f"{key}: {started.get(key)!r} then, {value!r} now" for key, value in config.items()
                   if started.get(key) != value]
        if changed:
            raise ValueError(
                f"--resume continues the run in {output} with the settings it was started with; "
                f"these differ ({'; '.join(changed)}). Pass the same settings, or start a new run "
                "in another output folder."
            )
        return
    write_json(path, config)


def backed_up_epoch(backup_dir, default):
    """The epoch BackupAndRestore will resume from, so the data pipeline starts there too."""
    path = os.path.join(backup_dir, "training_metadata.json")
    if os.path.exists(path):
        with open(path) as file:
            return int(json.load(file)["epoch"])
    return default


def distribution_scope(data_parallel):
    """A factory of contexts in which to build and compile the model.

    Data parallelism runs on the existing engines: Keras' DataParallel on JAX (set globally),
    one MirroredStrategy on TensorFlow (model and optimizer must be created in its scope).
    The PyTorch backend has no multi-device `fit` in Keras.
    """
    if not data_parallel:
        return contextlib.nullcontext
    backend = keras.backend.backend()
    if backend == "jax":
        keras.distribution.set_distribution(keras.distribution.DataParallel())
        return contextlib.nullcontext
    if backend == "tensorflow":
        tf = require("tensorflow", "data-parallel training on the TensorFlow backend")
        devices = [d.name for d in tf.config.list_logical_devices("GPU")] or [
            d.name for d in tf.config.list_logical_devices("CPU")
        ]
        return tf.distribute.MirroredStrategy(devices).scope
    raise ValueError(
        "data_parallel=True works on the JAX (keras.distribution.DataParallel) and TensorFlow "
        "(tf.distribute.MirroredStrategy) backends; Keras' PyTorch backend trains on one device."
    )


def csv_log(output, append):
    """The CSV logger of a run and its path; `append` (a resumed run, or a run's second phase)
    continues an existing log instead of starting it again."""
    path = os.path.join(output, "log.csv")
    return keras.callbacks.CSVLogger(path, append=append and os.path.exists(path)), path


class EpochCheckpoints(keras.callbacks.Callback):
    """`epoch_NNN.weights.h5` in `directory` after every epoch, each written atomically: a
    kill during the write leaves no truncated file that looks like a checkpoint."""

    def __init__(self, directory):
        super().__init__()
        self.directory = directory

    def on_epoch_end(self, epoch, logs=None):
        save_weights(self.model, os.path.join(self.directory, f"epoch_{epoch + 1:03d}.weights.h5"))


def learning_curves(csv_path, png_path):
    """Loss and accuracy per epoch from the CSV log, as a PNG."""
    matplotlib = require("matplotlib", "plotting learning curves")
    matplotlib.use("Agg")
    plt = require("matplotlib.pyplot", "plotting learning curves")

    rows = np.atleast_1d(np.genfromtxt(csv_path, delimiter=",", names=True))
    figure, (left, right) = plt.subplots(1, 2, figsize=(10, 4))
    epochs = rows["epoch"] + 1
    left.plot(epochs, rows["loss"], label="train")
    left.plot(epochs, rows["val_loss"], label="validation")
    left.set_xlabel("epoch"), left.set_ylabel("loss"), left.legend()
    right.plot(epochs, rows["top1"], label="train top-1")
    right.plot(epochs, rows["val_top1"], label="validation top-1")
    if "val_top5" in rows.dtype.names:  # logged for more than 5 classes
        right.plot(epochs, rows["val_top5"], label="validation top-5")
    right.set_xlabel("epoch"), right.set_ylabel("accuracy"), right.legend()
    figure.tight_layout()
    with atomic_path(png_path) as temporary:
        figure.savefig(temporary, dpi=100, format="png")
    plt.close(figure)


def save_final(model, output, metadata=None, class_names=None):
    """`final.weights.h5` (with `metadata`, the record a SwiftFormer builder reads back),
    `final.keras` (the whole model) and, where the classes have names, `labels.txt` (one
    name per line, class 0 first: what `examples/segment_photo.py` and phone apps read) in the
    output folder; returns the paths of the two model files."""
    if class_names:
        write_text(os.path.join(output, "labels.txt"), "".join(f"{name}\n" for name in class_names))
    weights = save_weights(model, os.path.join(output, "final.weights.h5"), metadata)
    whole = os.path.join(output, "final.keras")
    with atomic_path(whole, suffix=".keras") as temporary:
        model.save(temporary)
    return weights, whole


def write_metrics(output, metrics):
    return write_json(os.path.join(output, "metrics.json"), metrics)


def run_command(function, verbose=False):
    """Runs a command line's work: a user error is one line on stderr and exit code 1."""
    configure_logging(verbose)
    try:
        with native_logs_held(verbose):  # TensorFlow's C++ logs, shown if the run fails
            return function()
    except USER_ERRORS as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("\ninterrupted: the last finished epoch is kept; run the same command with --resume "
              "to continue", file=sys.stderr)
        return 130
