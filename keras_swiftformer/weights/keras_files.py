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
    if isinstance(raw, bytes):
        raw = raw.decode("utf-8")
    return json.loads(raw)
