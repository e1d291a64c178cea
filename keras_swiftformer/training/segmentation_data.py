"""Input pipelines for semantic segmentation: a folder of image/mask pairs or a
tensorflow-datasets name (`scene_parse150` is ADE20K's scene-parsing benchmark).

Masks hold one class index per pixel; `IGNORE_LABEL` (255) marks pixels that count neither in
the loss nor in the IoU. The training transform is mmsegmentation's ADE20K recipe that the
paper's Semantic FPN setup uses: random rescale 0.5-2.0 of a (4 x crop, crop) base scale with
the aspect ratio kept, random crop, horizontal flip, photometric distortion, normalise, pad.
"""

import dataclasses
import os

import numpy as np

from keras_swiftformer.optional import require
from keras_swiftformer.training.data import (
    PIPELINE_SUFFIXES,
    DatasetError,
    is_folder_dataset,
    normalize,
    prepared_tfds_builder,
    readable_by_pipeline,
    require_tensorflow,
)

IGNORE_LABEL = 255
MASK_SUFFIXES = (".png", ".bmp", ".tif", ".tiff")
LABEL_ERROR = "segmentation mask holds a label outside [0, num_classes)"


@dataclasses.dataclass
class SegmentationDataset:
    """Image/mask pairs of one split, not yet decoded: file paths or a tfds split."""

    size: int
    class_names: list = None
    images: list = None
    masks: list = None
    tfds_split: object = None  # tf.data.Dataset of {"image", "annotation"}
    reduce_zero_label: bool = False  # ADE20K: 0 is "other" (ignored), classes are 1..150


def _pairs(folder):
    image_dir, mask_dir = os.path.join(folder, "images"), os.path.join(folder, "masks")
    if not (os.path.isdir(image_dir) and os.path.isdir(mask_dir)):
        raise DatasetError(
            f"{folder} needs an 'images' and a 'masks' subfolder (masks: PNG files with the "
            "images' names holding one class index per pixel, 255 = ignore)."
        )
    masks = {os.path.splitext(name)[0]: os.path.join(mask_dir, name)
             for name in os.listdir(mask_dir) if name.lower().endswith(MASK_SUFFIXES)}
    images, pairs, missing = {}, [], []
    for name in sorted(os.listdir(image_dir)):
        if name.lower().endswith(PIPELINE_SUFFIXES):
            images[os.path.splitext(name)[0]] = os.path.join(image_dir, name)
    for stem, image in sorted(images.items()):
        if stem in masks:
            pairs.append((image, masks[stem]))
        else:
            missing.append(os.path.basename(image))
    if missing:
        raise DatasetError(f"{len(missing)} images in {image_dir} have no mask in {mask_dir}: {missing[:5]}")
    if not pairs:
        raise DatasetError(f"No image/mask pairs found in {folder}.")
    return pairs


def check_pair_sizes(pairs):
    """Every image and mask must be readable by the pipeline's decoder (a truncated file would
    stop an epoch), and every mask must have its image's size."""
    Image = require("PIL.Image", "reading segmentation masks")
    for image_path, mask_path in pairs:
        for path in (image_path, mask_path):
            if not readable_by_pipeline(path):
                raise DatasetError(
                    f"{ascii(path)} cannot be decoded (truncated, corrupt, of a format tf.data cannot "
                    "read, or named in another encoding than UTF-8): fix or remove the pair."
                )
        with Image.open(image_path) as image, Image.open(mask_path) as mask:
            if image.size != mask.size:
                raise DatasetError(
                    f"The mask {mask_path} is {mask.size[0]}x{mask.size[1]} but its image "
                    f"{image_path} is {image.size[0]}x{image.size[1]}: masks must match their "
                    "images pixel for pixel."
                )


def folder_segmentation_datasets(directory, validation_split=0.1, seed=0, reduce_zero_label=False):
    """Train and validation splits of a folder of image/mask pairs.

    Layouts: `DIR/train/{images,masks}` and `DIR/val/{images,masks}`, or `DIR/{images,masks}`
    split by `validation_split`. An optional `DIR/classes.txt` names the classes, one per line.
    """
    if not os.path.isdir(directory):
        raise DatasetError(f"Dataset folder not found: {directory}")
    class_names = None
    names_file = os.path.join(directory, "classes.txt")
    if os.path.exists(names_file):
        with open(names_file) as file:
            class_names = [line.strip() for line in file if line.strip()]
    if os.path.isdir(os.path.join(directory, "train")):
        train, val = _pairs(os.path.join(directory, "train")), _pairs(os.path.join(directory, "val"))
    else:
        pairs = _pairs(directory)
        order = np.random.RandomState(seed).permutation(len(pairs))
        count = max(1, int(round(len(pairs) * validation_split)))
        if count >= len(pairs):
            raise DatasetError(f"{directory} has {len(pairs)} pairs: too few to split off validation.")
        val = [pairs[i] for i in sorted(order[:count])]
        train = [pairs[i] for i in sorted(order[count:])]
    check_pair_sizes(train + val)

    def split(pairs):
        return SegmentationDataset(len(pairs), class_names, [p[0] for p in pairs], [p[1] for p in pairs],
                                   reduce_zero_label=reduce_zero_label)

    return split(train), split(val)


def tfds_segmentation_datasets(name="scene_parse150", data_dir=None):
    """Train and validation splits of a tfds segmentation set with `image` and `annotation`
    features (scene_parse150: ADE20K; its 'test' split is ADE20K's validation set)."""
    def has_masks(builder):
        features = builder.info.features
        if "image" not in features or "annotation" not in features:
            raise DatasetError(f"The tfds dataset {name!r} has no 'image' and 'annotation' features.")

    builder = prepared_tfds_builder(name, data_dir, "a folder of image/mask pairs", check=has_masks)
    splits = builder.info.splits
    val_split = "validation" if "validation" in splits else "test"

    def load(split):
        dataset = builder.as_dataset(split=split, shuffle_files=False)
        try:
            size = int(splits[split].num_examples)
        except (KeyError, ValueError):
            size = 0
        if size == 0:  # split metadata missing (e.g. tfds' mock data): count
            size = int(dataset.reduce(0, lambda count, _: count + 1))
        if size == 0:
            raise DatasetError(f"The split {split!r} of the tfds dataset {name!r} is empty.")
        return SegmentationDataset(size, None, tfds_split=dataset, reduce_zero_label=name == "scene_parse150")

    return load("train"), load(val_split)


# ------------------------------------------------------------------ transforms (TensorFlow)


def _decode_pair(image_path, mask_path):
    tf = require_tensorflow()
    image = tf.io.decode_image(tf.io.read_file(image_path), channels=3, expand_animations=False)
    mask = tf.io.decode_image(tf.io.read_file(mask_path), expand_animations=False)
    return image, mask


def _labels(image, mask, num_classes, reduce_zero_label):
    """uint8 image, raw mask -> float image, int32 (H, W, 1) labels, checked."""
    tf = require_tensorflow()
    mask = tf.cast(mask[..., :1], tf.int32)
    if reduce_zero_label:
        mask = tf.where(mask == 0, IGNORE_LABEL, mask - 1)
        mask = tf.where(mask == IGNORE_LABEL - 1, IGNORE_LABEL, mask)
    valid = tf.logical_or(mask < num_classes, mask == IGNORE_LABEL)
    check = tf.debugging.Assert(
        tf.reduce_all(valid),
        [f"A {LABEL_ERROR} (num_classes={num_classes}, ignore label {IGNORE_LABEL}); largest:",
         tf.reduce_max(tf.where(mask == IGNORE_LABEL, -1, mask))],
    )
    same_size = tf.debugging.Assert(
        tf.reduce_all(tf.shape(image)[:2] == tf.shape(mask)[:2]),
        ["A segmentation mask's size differs from its image's: image", tf.shape(image), "mask", tf.shape(mask)],
    )
    with tf.control_dependencies([check, same_size]):
        return tf.cast(image, tf.float32), tf.identity(mask)


def _resize_pair(image, mask, new_size):
    tf = require_tensorflow()
    image = tf.image.resize(image, new_size, method="bilinear")
    mask = tf.image.resize(mask, new_size, method="nearest")
    return image, mask


def _fit_scale(shape, long_side, short_side):
    """mmcv's keep-ratio rescale: the largest scale with long <= long_side, short <= short_side."""
    tf = require_tensorflow()
    shape = tf.cast(shape, tf.float32)
    scale = tf.minimum(long_side / tf.reduce_max(shape), short_side / tf.reduce_min(shape))
    return tf.cast(tf.round(shape * scale), tf.int32)


def _pad_to(image, mask, size):
    tf = require_tensorflow()
    height, width = tf.shape(image)[0], tf.shape(image)[1]
    paddings = [[0, tf.maximum(size - height, 0)], [0, tf.maximum(size - width, 0)], [0, 0]]
    image = tf.pad(image, paddings)
    mask = tf.pad(mask, paddings, constant_values=IGNORE_LABEL)
    return image[:size, :size], mask[:size, :size]


def load_segmentation_datasets(dataset, validation_split=0.1, seed=0, data_dir=None):
    """Train and validation splits of a folder of image/mask pairs or a tfds dataset name."""
    if is_folder_dataset(dataset):
        return folder_segmentation_datasets(os.fspath(dataset), validation_split, seed)
    return tfds_segmentation_datasets(dataset, data_dir=data_dir)


def photometric_distortion(image, seed):
    """mmsegmentation's PhotoMetricDistortion: brightness +-32, contrast and saturation
    0.5-1.5, hue +-18 degrees, each with probability 0.5 (on [0, 255] RGB)."""
    tf = require_tensorflow()

    def maybe(index, apply, value):
        coin = tf.random.stateless_uniform([], seed + index * 7) < 0.5
        return tf.cond(coin, lambda: apply(value), lambda: value)

    uniform = lambda index, low, high: tf.random.stateless_uniform([], seed + index * 11, low, high)  # noqa: E731
    image = maybe(1, lambda x: x + uniform(1, -32.0, 32.0), image)
    image = maybe(2, lambda x: x * uniform(2, 0.5, 1.5), image)
    image = tf.clip_by_value(image, 0.0, 255.0) / 255.0
    image = maybe(3, lambda x: tf.image.adjust_saturation(x, uniform(3, 0.5, 1.5)), image)
    image = maybe(4, lambda x: tf.image.adjust_hue(x, uniform(4, -18.0 / 180.0, 18.0 / 180.0)), image)
    return tf.clip_by_value(image, 0.0, 1.0) * 255.0


def train_transform(image, mask, crop_size, seed, augment=True):
    tf = require_tensorflow()
    if augment:
        ratio = tf.random.stateless_uniform([], seed, 0.5, 2.0)
        new_size = _fit_scale(tf.shape(image)[:2], 4.0 * crop_size * ratio, crop_size * ratio)
        image, mask = _resize_pair(image, mask, tf.maximum(new_size, 1))
        height, width = tf.shape(image)[0], tf.shape(image)[1]
        crop_h, crop_w = tf.minimum(height, crop_size), tf.minimum(width, crop_size)
        offsets = tf.random.stateless_uniform([2], seed + 1, 0, 2**30, dtype=tf.int32)
        top, left = offsets[0] % (height - crop_h + 1), offsets[1] % (width - crop_w + 1)
        image = image[top : top + crop_h, left : left + crop_w]
        mask = mask[top : top + crop_h, left : left + crop_w]
        flip = tf.random.stateless_uniform([], seed + 2) < 0.5
        image = tf.cond(flip, lambda: image[:, ::-1], lambda: image)
        mask = tf.cond(flip, lambda: mask[:, ::-1], lambda: mask)
        image = photometric_distortion(image, seed + 3)
    else:
        new_size = _fit_scale(tf.shape(image)[:2], crop_size, crop_size)
        image, mask = _resize_pair(image, mask, tf.maximum(new_size, 1))
    image, mask = _pad_to(normalize(image), mask, crop_size)
    return tf.ensure_shape(image, (crop_size, crop_size, 3)), tf.ensure_shape(mask[..., 0], (crop_size, crop_size))


def _examples(split):
    tf = require_tensorflow()
    if split.images is not None:
        return tf.data.Dataset.from_tensor_slices((split.images, split.masks)).map(
            _decode_pair, num_parallel_calls=tf.data.AUTOTUNE
        )
    return split.tfds_split.map(lambda example: (example["image"], example["annotation"]))


def make_segmentation_pipeline(split, num_classes, crop_size, batch_size, training, augment=True,
                               seed=0, start_epoch=0, epochs=1):
    """A batched `tf.data.Dataset` of (normalised images, int32 label maps), both crop_size².

    Training: the ADE20K recipe (or, with augment=False, the validation transform), each
    epoch in an order and with crops that depend only on (seed, epoch), so a resumed run sees
    the batches the uninterrupted run saw. Validation: each image resized with its aspect ratio
    kept to fit in crop_size x crop_size and padded with the ignore label, so every batch has
    one shape (JAX and XLA compile once) and every pixel is scored.
    """
    tf = require_tensorflow()
    if crop_size % 32:
        raise ValueError(f"crop_size must be a multiple of 32 (the backbone's stride). Received: {crop_size}")

    def checked(image, mask):
        return _labels(image, mask, num_classes, split.reduce_zero_label)

    if not training:
        dataset = _examples(split).map(checked).map(
            lambda image, mask: train_transform(image, mask, crop_size, None, augment=False),
            num_parallel_calls=tf.data.AUTOTUNE,
        )
        return dataset.batch(batch_size).prefetch(tf.data.AUTOTUNE)
    if batch_size > split.size:
        raise DatasetError(
            f"batch_size={batch_size} is larger than the training split ({split.size} pairs)."
        )

    def one_epoch(epoch):
        if split.images is not None:
            order = np.random.RandomState([seed, epoch]).permutation(split.size)
            pairs = tf.data.Dataset.from_tensor_slices(
                ([split.images[i] for i in order], [split.masks[i] for i in order])
            ).map(_decode_pair, num_parallel_calls=tf.data.AUTOTUNE)
        else:
            pairs = _examples(split).shuffle(min(split.size, 10000), seed=seed * 100003 + epoch,
                                             reshuffle_each_iteration=False)

        def transform(index, pair):
            item_seed = tf.cast(tf.stack([tf.constant((seed * 7919 + epoch) % (2**31 - 1), tf.int64), index])
                                % (2**31 - 1), tf.int32)
            image, mask = checked(*pair)
            return train_transform(image, mask, crop_size, item_seed, augment)

        return pairs.enumerate().map(transform, num_parallel_calls=tf.data.AUTOTUNE).batch(
            batch_size, drop_remainder=True)

    dataset = one_epoch(start_epoch)
    for epoch in range(start_epoch + 1, epochs):
        dataset = dataset.concatenate(one_epoch(epoch))
    return dataset.prefetch(tf.data.AUTOTUNE)
