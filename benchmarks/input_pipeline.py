"""Throughput of the training input pipeline: images per second, end to end (JPEG files read
and decoded, random resized crop, flip, batch augmentation), on the benchmark's cores.

    python -m benchmarks.input_pipeline            # prints the rows (2 threads, 10 s each)
    python -m benchmarks.input_pipeline --stages   # the default pipeline, one stage added at a time

Rows, all from the same folder of generated ImageNet-like JPEGs (about 500x375, made from
scikit-image's photographs, nothing downloaded):

* the default (L1) recipe, as `training/finetune.py` builds it: RandAugment
  rand-m9-mstd0.5-inc1, random erasing, MixUp/CutMix (the library's batched implementation);
* the XS recipe: crop, flip and random erasing only;
* the previous implementation of the L1 recipe, with Keras' RandAugment, RandomErasing, MixUp
  and CutMix layers, kept here only, so that the speed-up is measured in the same run.
"""

import argparse
import dataclasses
import os
import tempfile
import time

import keras
import numpy as np
import skimage.data
import tensorflow as tf
from PIL import Image

from benchmarks.measure import pin_threads
from keras_swiftformer.cli import HelpFormatter
from keras_swiftformer.training.data import (
    Augmentation,
    _augment_one,
    _ordered_epoch,
    folder_datasets,
    make_pipeline,
    normalize,
)

IMAGES = 256
PHOTO_SIZE = (500, 375)  # width, height: ImageNet's typical photograph
DATASET_VERSION = "v1"  # bump when the generated images change
WARMUP_BATCHES = 2  # the first traces the functions, the second lets tf.data autotune


def _photographs():
    # One class per photograph.
    return {name: getattr(skimage.data, name)() for name in ("astronaut", "chelsea", "coffee", "rocket")}


def write_dataset(cache):
    """A folder of IMAGES JPEGs in one subfolder per photograph (random zoomed crops and
    flips of it), written once and kept in `cache`."""
    folder = os.path.join(cache, f"input-pipeline-jpegs-{DATASET_VERSION}")
    if os.path.isdir(folder):
        return folder
    partial = f"{folder}.partial-{os.getpid()}"
    rng = np.random.default_rng(0)
    photographs = _photographs()
    width, height = PHOTO_SIZE
    for index in range(IMAGES):
        name = list(photographs)[index % len(photographs)]
        photo = Image.fromarray(photographs[name])
        # Zoomed so that a 500x375 window fits, by a random further factor for variety.
        zoom = max(width / photo.width, height / photo.height) * rng.uniform(1.0, 1.6)
        photo = photo.resize((int(np.ceil(photo.width * zoom)), int(np.ceil(photo.height * zoom))), Image.BICUBIC)
        left = rng.integers(0, photo.width - width + 1)
        top = rng.integers(0, photo.height - height + 1)
        photo = photo.crop((left, top, left + width, top + height))
        if rng.random() < 0.5:
            photo = photo.transpose(Image.FLIP_LEFT_RIGHT)
        os.makedirs(os.path.join(partial, name), exist_ok=True)
        photo.save(os.path.join(partial, name, f"{index:04d}.jpg"), quality=90)
    try:
        os.rename(partial, folder)  # complete or absent, even if two runs write at once
    except OSError:
        if not os.path.isdir(folder):
            raise
    return folder


def _keras_layers_pipeline(split, num_classes, image_size, batch_size, seed=0):
    """The previous training pipeline of the L1 recipe: whole images decoded, then Keras'
    RandAugment / RandomErasing / MixUp / CutMix layers on each batch."""
    augmentation = Augmentation.official("L1")
    randaugment = keras.layers.RandAugment(value_range=(0, 255), num_ops=2, factor=0.9, seed=seed)
    erasing = keras.layers.RandomErasing(factor=augmentation.random_erasing, value_range=(0, 255), seed=seed)
    mixup = keras.layers.MixUp(alpha=augmentation.mixup, seed=seed)
    cutmix = keras.layers.CutMix(factor=augmentation.cutmix, seed=seed)

    def augment(index, example):
        item_seed = tf.cast(tf.stack([tf.constant(seed, tf.int64), index]), tf.int32)
        return _augment_one(example[0], example[1], item_seed, image_size, num_classes, augmentation)

    def augment_batch(images, labels):
        images = erasing(randaugment(images, training=True), training=True)
        batch = {"images": images, "labels": labels}
        mixed, other = mixup(batch, training=True), cutmix(batch, training=True)
        use_cutmix = tf.random.uniform([]) < 0.5
        mixed = {key: tf.where(use_cutmix, other[key], mixed[key]) for key in mixed}
        return normalize(mixed["images"]), mixed["labels"]

    examples = _ordered_epoch(split, seed, 0).enumerate()
    dataset = examples.map(augment, num_parallel_calls=tf.data.AUTOTUNE).batch(batch_size, drop_remainder=True)
    return dataset.map(augment_batch, num_parallel_calls=tf.data.AUTOTUNE).prefetch(tf.data.AUTOTUNE)


def _library_pipeline(split, num_classes, image_size, batch_size, variant):
    return make_pipeline(split, num_classes, image_size, batch_size, training=True,
                         augmentation=Augmentation.official(variant), seed=0)


def _images_per_second(dataset, threads, budget_s):
    """Images/s of batches drawn after WARMUP_BATCHES (tracing, tf.data's autotuning), for
    `budget_s`; with the images, seconds and this process's CPU-seconds."""
    options = tf.data.Options()
    options.threading.private_threadpool_size = threads
    # One epoch of a small folder is a few batches: repeated, the timing sees no epoch ends.
    iterator = iter(dataset.repeat().with_options(options))
    for _ in range(WARMUP_BATCHES):
        next(iterator)
    images, start, cpu_start = 0, time.perf_counter(), time.process_time()
    while time.perf_counter() - start < budget_s:
        images += int(next(iterator)[0].shape[0])
    elapsed = time.perf_counter() - start
    return images / elapsed, images, elapsed, time.process_time() - cpu_start


def run_input_pipeline(job):
    """Rows of images/s for the default (L1), XS and previous (Keras layers) pipelines.

    `job`: threads, image_size, batch_size, budget_s (timed seconds per pipeline), cache (a
    folder for the generated JPEGs)."""
    tf.config.threading.set_intra_op_parallelism_threads(job["threads"])
    tf.config.threading.set_inter_op_parallelism_threads(job["threads"])
    folder = write_dataset(job["cache"])
    train, _ = folder_datasets(folder, validation_split=0.1, seed=0)
    num_classes = len(train.class_names)
    size, batch = job["image_size"], job["batch_size"]
    pipelines = {
        "default (L1 recipe)": lambda: _library_pipeline(train, num_classes, size, batch, "L1"),
        "XS recipe (no RandAugment, MixUp, CutMix)": lambda: _library_pipeline(train, num_classes, size, batch, "XS"),
        "previous: Keras layers (L1 recipe)": lambda: _keras_layers_pipeline(train, num_classes, size, batch),
    }
    rows = []
    for name, build in pipelines.items():
        rate, images, elapsed, cpu_s = _images_per_second(build(), job["threads"], job["budget_s"])
        # Cores busy below `threads` mean another process shared them (or the pipeline could
        # not use them): images per CPU-second stay comparable.
        rows.append({"runtime": "input-pipeline", "pipeline": name, "images_per_s": round(rate, 1),
                     "batch": batch, "size": size, "threads": job["threads"],
                     "images": images, "timed_s": round(elapsed, 2), "cores_busy": round(cpu_s / elapsed, 2),
                     "images_per_cpu_s": round(images / cpu_s, 1)})
    return rows


def _stages(train, num_classes, size, batch):
    """The default (L1) pipeline built up one stage at a time, each row's pipeline holding
    the stages of the rows above it (the second row, whole-file decoding, is for comparison)."""
    def library(**switched_off):
        augmentation = dataclasses.replace(Augmentation.official("L1"), **switched_off)
        return make_pipeline(train, num_classes, size, batch, training=True, augmentation=augmentation, seed=0)

    def read():
        return _ordered_epoch(train, 0, 0, decode=False).batch(batch, drop_remainder=True)

    def decode_whole():  # the generated photographs all have one size, so they batch
        as_float = lambda image, label: (tf.cast(image, tf.float32), label)  # noqa: E731
        return _ordered_epoch(train, 0, 0).map(as_float).batch(batch, drop_remainder=True)

    return {
        "read the files": read,
        "(whole-JPEG decode instead)": decode_whole,
        "crop-decode, bicubic resize, flip": lambda: library(random_erasing=0.0, randaugment=False, mixup=0.0, cutmix=0.0),
        "+ random erasing (XS recipe)": lambda: library(randaugment=False, mixup=0.0, cutmix=0.0),
        "+ RandAugment (S recipe)": lambda: library(mixup=0.0, cutmix=0.0),
        "+ MixUp/CutMix (L1 recipe, default)": library,
    }


def run_stages(job):
    """Rows of CPU-milliseconds per image of the default pipeline, stage by stage (`job` as
    for `run_input_pipeline`, plus rounds)."""
    tf.config.threading.set_intra_op_parallelism_threads(job["threads"])
    tf.config.threading.set_inter_op_parallelism_threads(job["threads"])
    train, _ = folder_datasets(write_dataset(job["cache"]), validation_split=0.1, seed=0)
    rows = []
    for round_index in range(job.get("rounds", 2)):
        for name, build in _stages(train, len(train.class_names), job["image_size"], job["batch_size"]).items():
            rate, images, elapsed, cpu_s = _images_per_second(build(), job["threads"], job["budget_s"])
            rows.append({"stage": name, "round": round_index, "images_per_s": round(rate, 1),
                         "cpu_ms_per_image": round(1000 * cpu_s / images, 2)})
    return rows


def main():
    parser = argparse.ArgumentParser(prog="python -m benchmarks.input_pipeline", description=__doc__.splitlines()[0],
                                     formatter_class=HelpFormatter)
    parser.add_argument("--threads", type=int, default=2, help="threads (and pinned cores)")
    parser.add_argument("--image-size", type=int, default=224, help="training side")
    parser.add_argument("--batch-size", type=int, default=32, help="batch")
    parser.add_argument("--budget", type=float, default=10.0, help="timed seconds per pipeline")
    parser.add_argument("--cache", default=os.path.join(tempfile.gettempdir(), "keras-swiftformer-benchmarks"),
                        help="where the generated JPEGs are kept")
    parser.add_argument("--stages", action="store_true",
                        help="the default pipeline one stage at a time, two rounds: CPU-ms per image")
    args = parser.parse_args()
    pin_threads(args.threads)
    job = {"threads": args.threads, "image_size": args.image_size, "batch_size": args.batch_size,
           "budget_s": args.budget, "cache": args.cache}
    for row in (run_stages if args.stages else run_input_pipeline)(job):
        print(row)


if __name__ == "__main__":
    main()
