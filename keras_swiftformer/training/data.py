"""Input pipelines for fine-tuning: a folder of class subfolders or a tensorflow-datasets name,
with the official SwiftFormer training and evaluation transforms.

Pipelines are `tf.data` (Keras' `fit` consumes them on every backend). RandAugment, random
erasing and MixUp/CutMix run on whole batches with timm's semantics (`augment`): Keras' own
RandAugment layer costs about 40 ms of CPU an image at 224x224, several times what the whole
pipeline now takes (about 6 ms: JPEG crop decode, bicubic resize, batch augmentation).
"""

import dataclasses
import os
import shutil
import socket
import time
import urllib.parse
import warnings

import numpy as np

from keras_swiftformer.optional import require
from keras_swiftformer.preprocessing import IMAGE_SUFFIXES, IMAGENET_MEAN, IMAGENET_STD, resize_size
from keras_swiftformer.training import augment
from keras_swiftformer.training.augment import scale_and_shift_channels

# What tf.io.decode_image, the pipeline's decoder, reads (by Pillow's name for the format, and
# the library's image suffixes less TIFF's).
DECODABLE_FORMATS = ("JPEG", "PNG", "GIF", "BMP", "WEBP")
PIPELINE_SUFFIXES = tuple(suffix for suffix in IMAGE_SUFFIXES if suffix not in (".tif", ".tiff"))


class DatasetError(ValueError):
    """A dataset cannot be used for training."""


@dataclasses.dataclass
class ImageDataset:
    """Images of one split, not yet decoded: either file paths or a tfds split."""

    class_names: list
    size: int
    files: list = None
    labels: list = None
    tfds_split: object = None  # a tf.data.Dataset of (image, label)


def require_tensorflow():
    return require("tensorflow", "the training input pipeline (tf.data)")


def readable_by_pipeline(path):
    """Whether the pipeline's own decoder (`tf.io.decode_image`) reads the whole file: a
    truncated JPEG or a TIFF named `.png` passes a header check and would stop training in the
    middle of an epoch."""
    tf = require_tensorflow()
    try:
        path.encode("utf-8")
    except UnicodeEncodeError:
        return False  # a file name that is not UTF-8: TensorFlow cannot open it
    try:
        tf.io.decode_image(tf.io.read_file(path), channels=3, expand_animations=False)
        return True
    except (tf.errors.OpError, ValueError):
        return False


def is_folder_dataset(dataset):
    """True for a folder, False for a tensorflow-datasets name; a path that does not exist is
    an error rather than a dataset name to look up."""
    dataset = os.fspath(dataset)
    if os.path.isdir(dataset):
        return True
    if os.path.sep in dataset or os.path.exists(dataset):
        raise DatasetError(f"Dataset folder not found: {dataset}")
    return False


def load_datasets(dataset, validation_split=0.1, seed=0, data_dir=None):
    """Train and validation splits of a folder of class subfolders or a tfds dataset name."""
    if is_folder_dataset(dataset):
        return folder_datasets(os.fspath(dataset), validation_split, seed)
    return tfds_datasets(dataset, data_dir=data_dir, validation_split=validation_split)


def folder_datasets(directory, validation_split=0.1, seed=0):
    """Train and validation splits of a folder holding one subfolder of images per class.

    Unreadable image files are skipped with a warning that lists them; a split that would be
    empty, a single class, or an empty folder is an error.
    """
    if not os.path.isdir(directory):
        raise DatasetError(f"Dataset folder not found: {directory}")
    root_real = os.path.realpath(directory)
    class_names, linked = [], []
    for name in sorted(os.listdir(directory)):
        folder = os.path.join(directory, name)
        if not os.path.isdir(folder):
            continue
        real = os.path.realpath(folder)
        # A class folder that links back to the dataset (or above it) would file every image
        # again under its name.
        if real == root_real or root_real.startswith(real + os.sep):
            linked.append(name)
            continue
        class_names.append(name)
    if linked:
        warnings.warn(f"Skipped class folders that link back to the dataset folder: {linked}", stacklevel=2)
    files, labels, skipped, seen = [], [], [], set()
    for label, name in enumerate(class_names):
        for root, _, names in os.walk(os.path.join(directory, name)):  # symlinked subfolders are not followed
            for file_name in sorted(names):
                if not file_name.lower().endswith(PIPELINE_SUFFIXES):
                    continue
                path = os.path.join(root, file_name)
                real = os.path.realpath(path)
                if real in seen:  # the same image reached twice through links
                    skipped.append(path)
                    continue
                seen.add(real)
                if readable_by_pipeline(path):
                    files.append(path)
                    labels.append(label)
                else:
                    skipped.append(path)
    empty = [name for label, name in enumerate(class_names) if label not in set(labels)]
    if empty and len(empty) < len(class_names):
        warnings.warn(f"Skipped class folders without a readable image: {empty}", stacklevel=2)
        kept = [name for name in class_names if name not in empty]
        labels = [kept.index(class_names[label]) for label in labels]
        class_names = kept
    if skipped:
        warnings.warn(
            f"Skipped {len(skipped)} image file{'s' if len(skipped) > 1 else ''} (unreadable, truncated, of a format the "
            f"pipeline cannot decode ({', '.join(DECODABLE_FORMATS)} only), named in another "
            f"encoding than UTF-8, or reached twice through links): {', '.join(ascii(p)[1:-1] for p in skipped[:10])}",
            stacklevel=2,
        )
    present = sorted(set(labels))
    if not files:
        raise DatasetError(
            f"{directory} holds no readable images in class subfolders "
            f"(expected {directory}/<class name>/<image>{PIPELINE_SUFFIXES[0]})."
        )
    if len(present) < 2:
        raise DatasetError(
            f"{directory} has images of {len(present)} class; classification needs at least 2 "
            f"class subfolders. Found: {class_names}"
        )
    order = np.random.RandomState(seed).permutation(len(files))
    n_val = int(round(len(files) * validation_split))
    if not 0 < n_val < len(files):
        raise DatasetError(
            f"validation_split={validation_split} of {len(files)} images leaves an empty split."
        )
    val, train = order[:n_val], order[n_val:]

    def subset(indices):
        return ImageDataset(class_names, len(indices), [files[i] for i in indices], [labels[i] for i in indices])

    return subset(train), subset(val)


def _remove_partial_downloads(folder, since):
    """Removes tfds' partial downloads (names with `.tmp.`) made under `folder` since the time
    `since`: tfds leaves them behind when a download fails. They sit at most two levels down
    (`downloads/<dataset>/<file>.tmp.<id>`), so extracted archives are not walked."""
    for parent in [folder, *(os.path.join(folder, name) for name in _listing(folder) if name != "extracted")]:
        for name in _listing(parent):
            path = os.path.join(parent, name)
            if ".tmp." in name and os.path.getmtime(path) >= since:
                if os.path.isdir(path):
                    shutil.rmtree(path, ignore_errors=True)
                else:
                    os.remove(path)


def _listing(folder):
    return os.listdir(folder) if os.path.isdir(folder) else []


_PROXY_VARIABLES = ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy")


def _unresolved_download_host(tfds, builder):
    """The first host a tfds builder would download from whose name does not resolve, or None.

    tfds retries a failed connection ten times with exponential backoff, about 3.5 minutes,
    before it gives up: an offline machine is told at once instead. None when the data is
    already prepared, when its URLs are unknown, behind a proxy (which resolves names
    itself), and under `tfds.testing.mock_data` (which replaces the download)."""
    real_download = tfds.core.DatasetBuilder.download_and_prepare.__module__.startswith("tensorflow_datasets.core")
    if not real_download or any(os.environ.get(name) for name in _PROXY_VARIABLES) or builder.is_prepared():
        return None
    hosts = sorted({urllib.parse.urlsplit(url).hostname for url in (builder.url_infos or {})} - {None})
    for host in hosts:
        try:
            socket.getaddrinfo(host, 443)
        except OSError:
            return host
    return None


def prepared_tfds_builder(name, data_dir=None, alternative="a folder of class subfolders", check=None):
    """A tfds builder with its data prepared, or a DatasetError that says what to do.

    `check(builder)` may raise DatasetError before anything is downloaded (e.g. missing
    features); `alternative` names the offline option in the message.
    """
    tfds = require("tensorflow_datasets", f"training on the tfds dataset {name!r}")
    try:
        builder = tfds.builder(name, data_dir=data_dir)
    except Exception as error:  # noqa: BLE001 - DatasetNotFoundError and friends
        raise DatasetError(f"Unknown tensorflow-datasets name {name!r}: {str(error)[:500]}") from error
    if check is not None:
        check(builder)
    offline = ("Without internet, prepare it on another machine and pass the folder it was prepared in "
               f"(--data-dir on the command line, data_dir= in Python), or use {alternative}.")
    host = _unresolved_download_host(tfds, builder)
    if host is not None:
        raise DatasetError(
            f"Could not download the tfds dataset {name!r}: its download host {host} cannot be "
            f"found (no network, or no DNS). {offline}"
        )
    started = time.time() - 1  # file times may be rounded to the second
    try:
        builder.download_and_prepare()
    except Exception as error:  # noqa: BLE001
        root = getattr(builder, "_data_dir_root", None)  # tfds' data folder, where it downloads
        if root:
            _remove_partial_downloads(os.path.join(root, "downloads"), started)
        raise DatasetError(
            f"Could not download or prepare the tfds dataset {name!r} ({type(error).__name__}: "
            f"{str(error)[:300]}). {offline}"
        ) from error
    return builder


def tfds_datasets(name, data_dir=None, validation_split=0.1):
    """Train and validation splits of a tensorflow-datasets dataset (validation: its
    'validation' or 'test' split, else the last `validation_split` of 'train')."""
    builder = prepared_tfds_builder(name, data_dir)
    info = builder.info
    splits = info.splits
    if "validation" in splits:
        train_split, val_split = "train", "validation"
    elif "test" in splits:
        train_split, val_split = "train", "test"
    else:
        percent = int(round(100 * (1 - validation_split)))
        train_split, val_split = f"train[:{percent}%]", f"train[{percent}%:]"
    label_feature = info.features["label"]
    class_names = list(label_feature.names)

    def load(split):
        dataset = builder.as_dataset(split=split, as_supervised=True, shuffle_files=False)
        try:
            size = int(info.splits[split].num_examples)
        except (KeyError, ValueError):  # split metadata missing (e.g. tfds' mock data): count
            size = int(dataset.reduce(0, lambda count, _: count + 1))
        if size == 0:
            raise DatasetError(f"The split {split!r} of the tfds dataset {name!r} is empty.")
        return ImageDataset(class_names, size, tfds_split=dataset)

    return load(train_split), load(val_split)


# ------------------------------------------------------------------ transforms (TensorFlow)


def _decode_contents(contents):
    tf = require_tensorflow()
    image = tf.io.decode_image(contents, channels=3, expand_animations=False)
    return tf.cast(image, tf.float32)


def _decode(path):
    return _decode_contents(require_tensorflow().io.read_file(path))


def evaluation_transform(image, image_size):
    """Shorter side to int(256/224 * size), bicubic, centre crop (the official evaluation)."""
    tf = require_tensorflow()
    shape = tf.cast(tf.shape(image)[:2], tf.float32)
    short = float(resize_size(image_size))
    scale = short / tf.reduce_min(shape)
    new_size = tf.cast(tf.floor(shape * scale), tf.int32)
    new_size = tf.maximum(new_size, resize_size(image_size))
    image = tf.image.resize(image, new_size, method="bicubic", antialias=True)
    top = (new_size[0] - image_size) // 2
    left = (new_size[1] - image_size) // 2
    image = image[top : top + image_size, left : left + image_size]
    return tf.clip_by_value(image, 0.0, 255.0)


def _crop_window(image_shape, seed, scale=(0.08, 1.0), ratio=(3 / 4, 4 / 3)):
    """The random resized crop's window (begin, size) for an image of `image_shape`."""
    tf = require_tensorflow()
    begin, size, _ = tf.image.stateless_sample_distorted_bounding_box(
        image_shape, bounding_boxes=tf.zeros([1, 0, 4]), seed=seed,
        min_object_covered=0.0, aspect_ratio_range=ratio, area_range=scale,
        max_attempts=10, use_image_if_no_bounding_boxes=True,
    )
    return begin, size


def _resize_crop(crop, image_size):
    tf = require_tensorflow()
    # The crop's size is a tensor, so its channel count is unknown to the graph; the batch
    # augmentation needs it.
    crop.set_shape([None, None, 3])
    crop = tf.image.resize(crop, (image_size, image_size), method="bicubic", antialias=True)
    return tf.clip_by_value(crop, 0.0, 255.0)


def random_resized_crop(image, image_size, seed, scale=(0.08, 1.0), ratio=(3 / 4, 4 / 3)):
    """timm's RandomResizedCropAndInterpolation (bicubic), with a stateless seed."""
    tf = require_tensorflow()
    begin, size = _crop_window(tf.shape(image), seed, scale, ratio)
    return _resize_crop(tf.slice(image, begin, size), image_size)


def decode_random_resized_crop(contents, image_size, seed):
    """`random_resized_crop(_decode(contents), ...)`, decoding only the crop of a JPEG: the
    window is drawn from the header's image size, and libjpeg skips the rest (the JPEG decode
    of a whole 500x375 photograph costs more than its crop's)."""
    tf = require_tensorflow()

    def jpeg():
        shape = tf.io.extract_jpeg_shape(contents)
        begin, size = _crop_window(tf.concat([shape[:2], [3]], 0), seed)
        window = tf.stack([begin[0], begin[1], size[0], size[1]])
        return tf.cast(tf.io.decode_and_crop_jpeg(contents, window, channels=3), tf.float32)

    def other():
        image = _decode_contents(contents)
        begin, size = _crop_window(tf.shape(image), seed)
        return tf.slice(image, begin, size)

    return _resize_crop(tf.cond(tf.io.is_jpeg(contents), jpeg, other), image_size)


def normalize(image):
    """(image - mean) / std, per channel, of one image or a batch in [0, 255]."""
    tf = require_tensorflow()

    mean = np.array(IMAGENET_MEAN, "float32") * 255.0
    std = np.array(IMAGENET_STD, "float32") * 255.0
    return scale_and_shift_channels(image, tf.constant(1.0 / std), tf.constant(-mean / std))


@dataclasses.dataclass
class Augmentation:
    """The official training augmentation; each part can be switched off."""

    random_resized_crop: bool = True
    horizontal_flip: bool = True
    randaugment: bool = True  # rand-m9-mstd0.5-inc1
    random_erasing: float = 0.25
    mixup: float = 0.8
    cutmix: float = 1.0
    label_smoothing: float = 0.1

    @classmethod
    def official(cls, variant):
        """The official per-variant recipe: no RandAugment, MixUp or CutMix for XS; no MixUp
        or CutMix for S (README of the official repository)."""
        variant = (variant or "").upper()
        if variant == "XS":
            return cls(randaugment=False, mixup=0.0, cutmix=0.0)
        if variant == "S":
            return cls(mixup=0.0, cutmix=0.0)
        return cls()

    @classmethod
    def none(cls):
        return cls(False, False, False, 0.0, 0.0, 0.0, 0.0)


def _ordered_epoch(split, seed, epoch, decode=True):
    """This epoch's examples in an order fixed by (seed, epoch); for folders, decoded images,
    or with `decode=False` the files' contents."""
    tf = require_tensorflow()
    if split.files is not None:
        order = tf.random.experimental.stateless_shuffle(
            tf.range(split.size), seed=tf.constant([seed, epoch], tf.int64)
        )
        files = tf.gather(tf.constant(split.files), order)
        labels = tf.gather(tf.constant(split.labels, tf.int32), order)
        read = _decode if decode else tf.io.read_file
        return tf.data.Dataset.from_tensor_slices((files, labels)).map(
            lambda path, label: (read(path), label), num_parallel_calls=tf.data.AUTOTUNE
        )
    return split.tfds_split.shuffle(
        min(split.size, 10000), seed=seed * 100003 + epoch, reshuffle_each_iteration=False
    ).map(lambda image, label: (tf.cast(image, tf.float32), tf.cast(label, tf.int32)))


def _augment_one(image, label, item_seed, image_size, num_classes, augmentation):
    """The per-image part of the training transform: crop (or resize) and flip. `image` is a
    decoded image or, as a string, an encoded file's contents."""
    tf = require_tensorflow()
    encoded = image.dtype == tf.string
    if augmentation.random_resized_crop:
        if encoded:
            image = decode_random_resized_crop(image, image_size, item_seed)
        else:
            image = random_resized_crop(image, image_size, item_seed)
    else:
        image = evaluation_transform(_decode_contents(image) if encoded else image, image_size)
    if augmentation.horizontal_flip:
        image = tf.image.stateless_random_flip_left_right(image, item_seed + 1)
    return image, tf.one_hot(label, num_classes)


def _batch_augmenter(augmentation):
    """`apply(images, labels, batch_seed)`: RandAugment, normalisation, random erasing and
    MixUp/CutMix on a batch, in timm's order (erasing acts on normalised images, mixing comes
    last), every draw from the stateless `batch_seed`."""
    tf = require_tensorflow()

    mixing = augmentation.mixup > 0 or augmentation.cutmix > 0

    def apply(images, labels, batch_seed):
        rand_augment_seed, erasing_seed, mixing_seed = tf.unstack(
            tf.random.experimental.stateless_split(batch_seed, 3)
        )
        if augmentation.randaugment:
            images = augment.rand_augment(images, rand_augment_seed)  # rand-m9-mstd0.5-inc1
        images = normalize(images)
        if augmentation.random_erasing:
            images = augment.random_erasing(images, erasing_seed, augmentation.random_erasing)
        if mixing:
            images, labels = augment.mix_batch(
                images, labels, mixing_seed, augmentation.mixup, augmentation.cutmix
            )
        return images, labels

    return apply


def make_pipeline(split, num_classes, image_size, batch_size, training, augmentation=None,
                  seed=0, start_epoch=0, epochs=1):
    """A batched `tf.data.Dataset` of (normalised images, one-hot labels).

    Training data run from `start_epoch` to `epochs`, each epoch in an order (and with crops
    and flips) that depend only on (seed, epoch): a run resumed at epoch k sees exactly the
    batches the uninterrupted run saw. The last incomplete batch of an epoch is dropped.
    Validation data are the official evaluation transform, in file order.
    """
    tf = require_tensorflow()
    augmentation = augmentation or Augmentation.none()
    if not training:
        epoch = _ordered_epoch(split, seed, 0) if split.files is None else (
            tf.data.Dataset.from_tensor_slices((split.files, split.labels)).map(
                lambda path, label: (_decode(path), tf.cast(label, tf.int32)),
                num_parallel_calls=tf.data.AUTOTUNE,
            )
        )

        def prepare(image, label):
            return normalize(evaluation_transform(image, image_size)), tf.one_hot(label, num_classes)

        dataset = epoch.map(prepare, num_parallel_calls=tf.data.AUTOTUNE).batch(batch_size)
        return dataset.cache().prefetch(tf.data.AUTOTUNE)
    if batch_size > split.size:
        raise DatasetError(
            f"batch_size={batch_size} is larger than the training split ({split.size} images): "
            "no full batch can be made. Use a smaller batch size."
        )

    augment_batch = _batch_augmenter(augmentation)

    def one_epoch(epoch):
        # Folders' files are decoded inside the per-image map, where a JPEG's crop can be
        # decoded alone.
        examples = _ordered_epoch(split, seed, epoch, decode=False).enumerate()
        epoch_key = tf.constant((seed * 7919 + epoch) % (2**31 - 1), tf.int64)

        def augment(index, example):
            item_seed = tf.cast(tf.stack([epoch_key, index]) % (2**31 - 1), tf.int32)
            return _augment_one(example[0], example[1], item_seed, image_size, num_classes, augmentation)

        def augment_batched(index, batch):
            # Negative second halves: no batch seed equals an image's seed.
            batch_seed = tf.cast(tf.stack([epoch_key, -1 - index]), tf.int32)
            return augment_batch(batch[0], batch[1], batch_seed)

        batches = examples.map(augment, num_parallel_calls=tf.data.AUTOTUNE).batch(batch_size, drop_remainder=True)
        return batches.enumerate().map(augment_batched, num_parallel_calls=tf.data.AUTOTUNE)

    # Python-level epochs: each gets a plain integer seed (tf.data's shuffle takes no tensor).
    dataset = one_epoch(start_epoch)
    for epoch in range(start_epoch + 1, epochs):
        dataset = dataset.concatenate(one_epoch(epoch))
    return dataset.prefetch(tf.data.AUTOTUNE)
