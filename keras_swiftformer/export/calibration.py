"""Calibration images for full-integer quantisation: a folder, a tfds name, or arrays."""

import os
import warnings

import keras
import numpy as np

from keras_swiftformer.optional import require
from keras_swiftformer.preprocessing import IMAGE_SUFFIXES, load_image

DEFAULT_CALIBRATION_IMAGES = 200
# Fewer images than this give int8 ranges that the next image's activations often overflow.
FEW_CALIBRATION_IMAGES = 50


def _warn_if_few(images, asked, source):
    if len(images) < min(asked, FEW_CALIBRATION_IMAGES):
        warnings.warn(
            f"Calibrating int8 on {len(images)} images only ({source}): the activation ranges of "
            f"so few images clip other images' values, which costs accuracy. Pass {FEW_CALIBRATION_IMAGES}-"
            f"{DEFAULT_CALIBRATION_IMAGES} of your images.", stacklevel=4,
        )


def _folder_images(folder, count, image_size, include_preprocessing, verbose):
    paths = sorted(
        os.path.join(root, name)
        for root, _, names in os.walk(folder)
        for name in names
        if name.lower().endswith(IMAGE_SUFFIXES)
    )
    if not paths:
        raise ValueError(
            f"The calibration folder {folder} holds no images ({', '.join(IMAGE_SUFFIXES)})."
        )
    images, unreadable = [], []
    progress = keras.utils.Progbar(min(count, len(paths)), unit_name="calibration image", verbose=int(verbose))
    for path in paths:
        if len(images) == count:
            break
        try:
            images.append(load_image(path, image_size, normalize=not include_preprocessing))
            progress.add(1)
        except ValueError:
            unreadable.append(path)
    if not images:
        raise ValueError(f"None of the images in {folder} could be read: {unreadable[:5]}")
    if unreadable:
        warnings.warn(f"Skipped {len(unreadable)} unreadable calibration images: {unreadable[:5]}", stacklevel=3)
    if verbose:
        _warn_if_few(images, count, folder)
    return np.stack(images)


def _tfds_images(name, count, image_size, include_preprocessing, verbose):
    tfds = require("tensorflow_datasets", f"calibrating on the tfds dataset {name!r}")
    if name.split(":")[0] not in tfds.list_builders():
        raise ValueError(
            f"The calibration data {name!r} is neither a folder of images nor a "
            "tensorflow-datasets name. Pass a folder of your images."
        )
    try:
        dataset = tfds.load(name.split(":")[0], split="train", shuffle_files=False)
    except Exception as error:  # noqa: BLE001 - tfds raises many kinds
        raise ValueError(f"Could not load the tfds dataset {name!r}: {error}") from error
    progress = keras.utils.Progbar(count, unit_name="calibration image", verbose=int(verbose))
    images = []
    for example in dataset.take(count):
        images.append(load_image(example["image"].numpy(), image_size, normalize=not include_preprocessing))
        progress.add(1)
    if not images:
        raise ValueError(f"The tfds dataset {name!r} yielded no images.")
    if verbose:
        _warn_if_few(images, count, name)
    return np.stack(images)


def calibration_array(data, count, image_size, include_preprocessing, verbose=True):
    """`representative_data` as one float32 array (N, H, W, 3) of model inputs.

    `data`: a folder of images or a tfds dataset name (both get the official evaluation
    transform; raw pixels if `include_preprocessing`), or a NumPy array / iterable of arrays
    holding model inputs exactly as `model.predict` takes them. `verbose=False` reads them
    without the progress bar and the warning about calibrating on few images (for images to
    verify an export on, read after it was calibrated).
    """
    if isinstance(data, (str, os.PathLike)):
        data = os.fspath(data)
        if os.path.isdir(data):
            return _folder_images(data, count, image_size, include_preprocessing, verbose)
        if os.path.exists(data):
            raise ValueError(f"`representative_data` must be a folder of images, not a file: {data}")
        if os.sep in data or data.startswith("."):
            raise ValueError(f"The calibration folder was not found: {data}")
        return _tfds_images(data, count, image_size, include_preprocessing, verbose)
    if isinstance(data, np.ndarray):
        array = data
    else:
        batches, total = [], 0
        for item in data:
            item = np.asarray(item[0] if isinstance(item, (tuple, list)) else item, "float32")
            item = item[None] if item.ndim == 3 else item
            batches.append(item)
            total += len(item)
            if total >= count:
                break
        if not batches:
            raise ValueError("`representative_data` yielded no samples.")
        array = np.concatenate(batches)
    array = np.asarray(array, "float32")[:count]
    if array.ndim != 4 or array.shape[-1] != 3 or len(array) == 0:
        raise ValueError(
            "`representative_data` must hold images shaped (N, H, W, 3). "
            f"Received: shape={array.shape}"
        )
    return array
