"""Input preprocessing and prediction decoding, as the official SwiftFormer evaluation does it.

The official evaluation (`util/datasets.py`, which the paper's accuracies were measured with):
resize the shorter side to `int(256 / 224 * size)` (256 for 224) with PIL's bicubic filter,
centre-crop `size` x `size`, scale to [0, 1] and normalise with the ImageNet mean and std.
(The `crop_pct=0.9` in the models' `default_cfg` is not used by it, and transformers' image
processor resizes straight to 224x224, which is different again.)
"""

import csv
import os

import keras
import numpy as np
from keras import ops

from keras_swiftformer.optional import require

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
DEFAULT_IMAGE_SIZE = 224
# Image files the library reads (with Pillow), wherever it looks in a folder: calibration,
# training and segmentation images.
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff")
_CLASSES_FILE = os.path.join(os.path.dirname(__file__), "data", "imagenet_classes.tsv")


def resize_size(image_size):
    """The shorter side the official evaluation resizes to before cropping (256 for 224)."""
    return int((256 / 224) * image_size)


def preprocess_input(x):
    """RGB pixels in [0, 255] (uint8 or float), channels last -> ImageNet-normalised float32.

    NumPy in, NumPy out; a backend tensor in, a backend tensor out.
    """
    mean = np.array(IMAGENET_MEAN, "float32") * 255.0
    inverse_std = 1.0 / (np.array(IMAGENET_STD, "float32") * 255.0)
    if isinstance(x, np.ndarray) or isinstance(x, (list, tuple)):
        x = np.asarray(x)
        if x.shape[-1] != 3:
            raise ValueError(f"Expected RGB images with 3 channels last. Received: shape={x.shape}")
        return (x.astype("float32") - mean) * inverse_std
    if x.shape[-1] != 3:
        raise ValueError(f"Expected RGB images with 3 channels last. Received: shape={x.shape}")
    return (ops.cast(x, "float32") - mean) * inverse_std


def center_crop_box(height, width, size):
    """(top, left) of torchvision's CenterCrop: int(round((dim - size) / 2))."""
    return int(round((height - size) / 2.0)), int(round((width - size) / 2.0))


def resized_shape(height, width, shorter):
    """torchvision's Resize(int) rule: shorter side -> `shorter`, longer side truncated."""
    if height <= width:
        return shorter, int(shorter * width / height)
    return int(shorter * height / width), shorter


def load_image(path_or_image, image_size=DEFAULT_IMAGE_SIZE, normalize=True):
    """The official evaluation transform on one image, exactly (it uses Pillow, as they do).

    Args:
        path_or_image: a file path, a PIL image, or a uint8 (H, W, 3) array.
        image_size: output side.
        normalize: apply `preprocess_input`; False returns float pixels in [0, 255].

    Returns:
        float32 array (image_size, image_size, 3).
    """
    Image = require("PIL.Image", "loading and resizing images")
    if isinstance(image_size, bool) or not isinstance(image_size, (int, np.integer)) or image_size < 1:
        raise ValueError(f"`image_size` must be a positive integer. Received: image_size={image_size!r}")
    if isinstance(path_or_image, np.ndarray):
        image = Image.fromarray(np.asarray(path_or_image, "uint8"))
    elif isinstance(path_or_image, (str, os.PathLike)):
        try:
            with Image.open(path_or_image) as opened:
                image = to_rgb(opened)
        except Image.DecompressionBombError as error:
            raise ValueError(
                f"Refused to read {path_or_image}: it decodes to more pixels than Pillow allows "
                f"({Image.MAX_IMAGE_PIXELS:,} is its limit), as a decompression bomb does. Resize "
                "a genuine giant image before using it."
            ) from error
        except (OSError, ValueError, SyntaxError) as error:
            raise ValueError(f"Could not read {path_or_image} as an image: {error}") from error
    else:
        image = path_or_image
    image = to_rgb(image)
    height, width = image.height, image.width
    new_height, new_width = resized_shape(height, width, resize_size(image_size))
    top, left = center_crop_box(new_height, new_width, image_size)
    if new_height * new_width <= 16 * image_size * image_size:  # every photograph: exactly official
        image = image.resize((new_width, new_height), Image.BICUBIC)
        image = image.crop((left, top, left + image_size, top + image_size))
    else:
        # An extreme aspect ratio (1 x 20000 would become 256 x 5,120,000 first): resize only
        # the source region the centre crop keeps (Pillow's `box`), the same filter on the same
        # sample positions, within one uint8 level of resizing everything.
        scale_y, scale_x = height / new_height, width / new_width
        box = (left * scale_x, top * scale_y, (left + image_size) * scale_x, (top + image_size) * scale_y)
        image = image.resize((image_size, image_size), Image.BICUBIC, box=box)
    pixels = np.asarray(image, dtype="float32")
    return preprocess_input(pixels) if normalize else pixels


def to_rgb(image):
    """A PIL image of any mode Pillow opens as 8-bit RGB: 16-bit and 32-bit integer images
    (I;16, I) scaled from their 0..65535 range, float images (F) from 0..1 (or 0..255 when
    their values go above 1), transparency dropped as `convert("RGB")` does."""
    Image = require("PIL.Image", "loading and resizing images")
    if image.mode.startswith("I") or image.mode == "F":
        values = np.asarray(image, dtype="float64")
        if image.mode == "F":
            peak = 1.0 if np.nanmax(values, initial=0.0) <= 1.0 else 255.0
        else:
            peak = 65535.0 if np.nanmax(values, initial=0.0) > 255 or image.mode.startswith("I;16") else 255.0
        values = np.clip(np.nan_to_num(values) * (255.0 / peak), 0, 255)
        return Image.fromarray(np.round(values).astype("uint8"), "L").convert("RGB")
    if image.mode == "P" and "transparency" in image.info:
        image = image.convert("RGBA")
    return image.convert("RGB")  # a loaded copy even for RGB: the file may be closed next


def resize_and_center_crop(images, image_size=DEFAULT_IMAGE_SIZE):
    """The evaluation resize and crop with `keras.ops`, for any backend and inside graphs.

    `images`: (H, W, 3) or (B, H, W, 3) pixels with a static size. Bicubic with antialiasing,
    like PIL, but not bit-identical to it: on photographs the difference after normalisation
    is bounded in `tests/test_preprocessing.py`. Use `load_image` for the exact transform.
    """
    single = len(images.shape) == 3
    if single:
        images = ops.expand_dims(images, 0)
    height, width = int(images.shape[1]), int(images.shape[2])
    new_height, new_width = resized_shape(height, width, resize_size(image_size))
    resized = ops.image.resize(
        ops.cast(images, "float32"),
        (new_height, new_width),
        interpolation="bicubic",
        antialias=True,
        data_format="channels_last",
    )
    top, left = center_crop_box(new_height, new_width, image_size)
    cropped = resized[:, top : top + image_size, left : left + image_size, :]
    # PIL clamps bicubic overshoot and rounds to uint8; doing the same halves the difference.
    cropped = ops.round(ops.clip(cropped, 0.0, 255.0))
    return cropped[0] if single else cropped


def imagenet_classes():
    """[(wordnet_id, names)] for the 1000 ImageNet-1k classes, in the models' output order."""
    with open(_CLASSES_FILE, encoding="utf-8") as file:
        rows = [row for row in csv.reader(file, delimiter="\t") if row and not row[0].startswith("#")]
    return [(wnid, names) for wnid, names in rows]


def decode_predictions(preds, top=5, class_names=None):
    """Top classes per image: a list (one per image) of (class_id, name, score) tuples.

    `preds`: (batch, classes) logits or probabilities. Scores are probabilities either way:
    rows that are not already a probability distribution (the models return logits unless
    built with `classifier_activation="softmax"`) go through a softmax first.

    `class_names=None`: ImageNet-1k's, with WordNet ids (1000 classes). For a fine-tuned model,
    pass its names (one per class; the class id is then the index): fine-tuned weights record
    them, `keras_swiftformer.weights.read_metadata(path)["class_names"]`, and a run folder
    has them in labels.txt.
    """
    preds = np.asarray(keras.ops.convert_to_numpy(preds))
    classes = 1000 if class_names is None else len(class_names)
    if preds.ndim != 2 or preds.shape[1] != classes:
        if class_names is not None:
            raise ValueError(
                f"`preds` must have shape (samples, {classes}): one column per name of "
                f"`class_names`. Received: shape={preds.shape}"
            )
        raise ValueError(
            "`decode_predictions` expects a batch of ImageNet-1k predictions, shape "
            f"(samples, 1000). Received: shape={preds.shape}. For a fine-tuned model, pass "
            "its class names: class_names=read_metadata(weights_path)['class_names'] "
            "(from keras_swiftformer.weights), or the lines of the run's labels.txt."
        )
    top = int(top)
    if not 1 <= top <= classes:
        raise ValueError(f"`top` must be between 1 and {classes}. Received: top={top}")
    preds = preds.astype("float64")
    distributions = (preds >= 0).all(axis=1) & (np.abs(preds.sum(axis=1) - 1.0) < 1e-3)
    logits = preds[~distributions]
    if len(logits):
        exponentials = np.exp(logits - logits.max(axis=1, keepdims=True))
        preds[~distributions] = exponentials / exponentials.sum(axis=1, keepdims=True)
    if class_names is None:
        labels = [(wnid, names.split(",")[0]) for wnid, names in imagenet_classes()]
    else:
        labels = [(index, str(name)) for index, name in enumerate(class_names)]
    results = []
    for row in preds:
        order = np.argsort(-row, kind="stable")[:top]
        results.append([(*labels[i], float(row[i])) for i in order])
    return results
