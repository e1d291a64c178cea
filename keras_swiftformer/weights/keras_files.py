"""Keras `.weights.h5` files with a metadata record of the SwiftFormer they belong to.

Files written here carry a small JSON record (architecture, classes, which official release's
attention they need) as an HDF5 attribute, so a model built from them picks the right
attention and a wrong variant fails with a clear message.
"""

import json
import os

from keras_swiftformer.io import atomic_path
from keras_swiftformer.optional import require

METADATA_ATTRIBUTE = "keras_swiftformer"
METADATA_FORMAT = 1
KERAS_WEIGHTS_SUFFIX = ".weights.h5"
# What every record holds (save_weights' callers write these; see sources.KerasWeightsFile).
METADATA_KEYS = {"depths", "widths", "classes", "distillation", "attention_pooling"}


def save_weights(model, path, metadata=None):
    """`model.save_weights(path)` written atomically, plus the metadata record."""
    h5py = require("h5py", "writing Keras weights files")
    path = os.fspath(path)
    if not path.endswith(KERAS_WEIGHTS_SUFFIX):
        raise ValueError(
            f"Keras weights files must end in '{KERAS_WEIGHTS_SUFFIX}'. Received: path={path!r}"
        )
    with atomic_path(path, suffix=KERAS_WEIGHTS_SUFFIX) as temporary:
        model.save_weights(temporary, overwrite=True)
        if metadata is not None:
            with h5py.File(temporary, "a") as file:
                file.attrs[METADATA_ATTRIBUTE] = json.dumps(
                    {"format": METADATA_FORMAT, **metadata}, sort_keys=True
                )
    return path


def stored_shapes(path):
    """The sorted shapes of every variable a `.weights.h5` holds (its layers' `vars`); a
    variable that is not floating point (a damaged or foreign file) is an error."""
    h5py = require("h5py", "reading Keras weights files")
    shapes, foreign = [], []

    def visit(name, item):
        if isinstance(item, h5py.Dataset) and "/vars/" in f"/{name}":
            shapes.append(tuple(item.shape))
            if item.dtype.kind != "f":
                foreign.append(f"{name} ({item.dtype})")

    with h5py.File(path, "r") as file:
        layers = file.get("layers")
        if layers is not None:
            layers.visititems(visit)
    if foreign:
        raise ValueError(
            f"{path} holds variables that are not floating point: {', '.join(foreign[:3])}. "
            "SwiftFormer weights are floats: the file is damaged or not a SwiftFormer's."
        )
    return sorted(shapes)


def read_head(path):
    """(classes, distillation) of a classifier's `.weights.h5` saved without a metadata record
    (plain `model.save_weights`), read from its head's bias; None when it has no head.

    Keras 3 stores a functional model's layers by class-derived names in creation order: the
    class head is `dense` and the distillation head `dense_1` (see `models.swiftformer`).
    """
    h5py = require("h5py", "reading Keras weights files")
    with h5py.File(path, "r") as file:
        bias = file.get("layers/dense/vars/1")
        if bias is None or len(bias.shape) != 1:
            return None
        return int(bias.shape[0]), "layers/dense_1" in file


def read_metadata(path):
    """The metadata record of a `.weights.h5` file, or None if it has none."""
    h5py = require("h5py", "reading Keras weights files")
    try:
        with h5py.File(path, "r") as file:
            raw = file.attrs.get(METADATA_ATTRIBUTE)
    except OSError as error:
        raise ValueError(
            f"Could not read {path} as a Keras weights file (HDF5): the file is truncated, "
            f"corrupt or of another format. ({error})"
        ) from error
    if raw is None:
        return None
    try:
        record = json.loads(raw.decode("utf-8") if isinstance(raw, bytes) else raw)
    except (UnicodeDecodeError, TypeError, json.JSONDecodeError) as error:
        record = error
    missing = METADATA_KEYS - set(record) if isinstance(record, dict) else None
    if missing is None or missing:
        raise ValueError(
            f"The metadata record of {path} is damaged ({'missing ' + ', '.join(sorted(missing)) if missing else 'not a JSON object'}): "
            "the file was changed after it was written. Write it again (convert or fine-tune anew)."
        )
    return record
