"""Writing files so that a reader never sees half of one: the library's one atomic writer.

Everything the project writes (converted weights, the weights cache, exported models, their
sidecars, checkpoints, metrics, benchmark results) goes through `atomic_path`: the content is
written to a temporary file in the destination folder and renamed over the destination only
once complete. An interrupted write leaves the previous file, or none, never a truncated one
that a later run would trust. The result gets the permissions of a normally created file
(0666 less the umask), not the 0600 of a temporary file.
"""

import contextlib
import json
import os
import tempfile

PARTIAL_PREFIX = ".partial-"


def _umask():
    # The only portable way to read the umask is to set it; set it straight back.
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


@contextlib.contextmanager
def atomic_path(path, suffix=None):
    """Yields a temporary path beside `path`; on success it becomes `path`.

    `suffix` (default: the destination's own extension) ends the temporary name, for writers
    that check it (Keras wants `.weights.h5` and `.keras`). On any exception the temporary file
    is removed and the destination is left as it was.
    """
    path = os.fspath(path)
    if os.path.isdir(path):
        raise IsADirectoryError(f"Cannot write {path}: it is a folder. Pass a file path.")
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    if suffix is None:
        suffix = "".join(part for part in _suffixes(os.path.basename(path)))
    handle, temporary = tempfile.mkstemp(prefix=PARTIAL_PREFIX, suffix=suffix, dir=directory)
    os.close(handle)
    try:
        yield temporary
        os.chmod(temporary, 0o666 & ~_umask())
        os.replace(temporary, path)
    finally:
        if os.path.exists(temporary):
            os.remove(temporary)


def _suffixes(name):
    # "model.weights.h5" -> ".weights.h5"; "a.tflite" -> ".tflite"; no dot -> "".
    stem, dot, _ = name.partition(".")
    return [dot + name[len(stem) + 1:]] if dot and stem else []


def write_bytes(path, content):
    """Writes `content` to `path` atomically; returns the path."""
    with atomic_path(path) as temporary:
        with open(temporary, "wb") as file:
            file.write(content)
    return os.fspath(path)


def write_text(path, text):
    return write_bytes(path, text.encode("utf-8"))


def write_json(path, data):
    return write_text(path, json.dumps(data, indent=2) + "\n")
