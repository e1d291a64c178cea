"""Reading SwiftFormer checkpoints (official `.pth`, transformers `.safetensors`/`.bin`).

Everything is returned as a flat `{official_key: float32 numpy array}` dict: the official
layout (`network.2.3.dwconv.weight`) is the one naming scheme the rest of the conversion knows.
"""

import argparse
import json
import os
import pickle
import re
import struct
import zipfile
from collections.abc import Mapping

import numpy as np

from keras_swiftformer.optional import require
from keras_swiftformer.variants import find_variant


class CheckpointError(ValueError):
    """A checkpoint cannot be read or does not hold a SwiftFormer."""


TORCH_SUFFIXES = (".pth", ".pt", ".bin", ".pth.tar", ".ckpt")
SAFETENSORS_SUFFIX = ".safetensors"
CHECKPOINT_SUFFIXES = TORCH_SUFFIXES + (SAFETENSORS_SUFFIX,)
# Files of a transformers model folder, in order of preference (safetensors needs no torch).
TRANSFORMERS_FILES = ("model.safetensors", "pytorch_model.bin")

# transformers' key names -> the official ones. Each rule leaves official keys unchanged, so
# `to_official_keys` is idempotent and accepts either layout (or a mixture).
_TRANSFORMERS_RENAMES = (
    (re.compile(r"^swiftformer\.patch_embed\.patch_embedding\."), "patch_embed."),
    (re.compile(r"^swiftformer\.encoder\.network\.(\d+)\.blocks\.(\d+)\."), r"network.\1.\2."),
    (re.compile(r"^swiftformer\.encoder\.network\.(\d+)\."), r"network.\1."),
    (re.compile(r"\.depth_wise_conv\."), ".dwconv."),
    (re.compile(r"\.point_wise_conv([12])\."), r".pwconv\1."),
    (re.compile(r"\.attn\.proj\."), ".attn.Proj."),
)
# Wrappers that training scripts put around the model's own keys.
_PREFIXES = ("module.", "model.", "_orig_mod.")

# What a SwiftFormer checkpoint can hold, checked before any tensor is materialised: the
# largest variant (L3) has 28.5M parameters (114 MB in float32); heads up to 22,000 classes
# (ImageNet-21k has 21,843). A file claiming more is not a SwiftFormer and is refused before
# it can exhaust memory.
MAX_CLASSES = 22_000
MAX_TENSOR_ELEMENTS = MAX_CLASSES * 512  # the widest tensor: a 22,000-class head on L3
MAX_TOTAL_ELEMENTS = 64 * 2**20  # 256 MB of float32: twice L3 with two such heads
MAX_FILE_BYTES = 8 * MAX_TOTAL_ELEMENTS + 2**20  # float64 files are allowed
MAX_PICKLE_BYTES = 16 * 2**20  # a real checkpoint's data.pkl is ~100 KB
FLOAT_DTYPES = ("float16", "bfloat16", "float32", "float64")
# safetensors' dtype names -> (numpy/torch name, bytes per value)
_SAFETENSORS_DTYPES = {"F16": ("float16", 2), "BF16": ("bfloat16", 2), "F32": ("float32", 4), "F64": ("float64", 8)}


def _check_tensor(key, dtype, shape, budget):
    """Refuses a tensor that no SwiftFormer holds: not floating point, or too large (alone, or
    with what came before it, counted in `budget`), from its declared dtype and shape only."""
    if dtype not in FLOAT_DTYPES:
        raise CheckpointError(
            f"Checkpoint tensor {key!r} has dtype {dtype}; SwiftFormer weights are floating "
            f"point ({', '.join(FLOAT_DTYPES)}). The file is not a SwiftFormer checkpoint."
        )
    elements = int(np.prod([int(d) for d in shape], dtype=np.float64))
    budget[0] += elements
    if len(shape) > 4 or elements > MAX_TENSOR_ELEMENTS or budget[0] > MAX_TOTAL_ELEMENTS:
        raise CheckpointError(
            f"Checkpoint tensor {key!r} claims shape {tuple(int(d) for d in shape)}: more than "
            f"any SwiftFormer holds (at most {MAX_CLASSES} classes, {MAX_TOTAL_ELEMENTS:,} "
            "values in all). The file is damaged or not a SwiftFormer checkpoint; it was not loaded."
        )


def _dtype_name(value):
    return str(value.dtype).replace("torch.", "")


def _to_numpy(value, key, budget):
    if isinstance(value, np.ndarray) or hasattr(value, "detach"):  # numpy or torch tensor
        _check_tensor(key, _dtype_name(value), tuple(value.shape), budget)
    else:
        raise CheckpointError(
            f"Checkpoint entry {key!r} is not a tensor (got {type(value).__name__}). "
            "Expected a state dict of tensors."
        )
    if hasattr(value, "detach"):  # a torch tensor; torch is already imported if we got one
        value = value.detach().cpu().float().numpy()
    array = np.array(value, dtype=np.float32)  # a copy: zero-stride views become real arrays
    if not np.isfinite(array).all():
        raise CheckpointError(
            f"Checkpoint tensor {key!r} holds NaN or infinite values: the weights are damaged "
            "(or the training run diverged). Use another checkpoint."
        )
    return array


def to_official_keys(state_dict):
    """Renames a transformers or official state dict to official keys, as float32 numpy.

    Drops BatchNorm's `num_batches_tracked` counters, which inference never reads.
    """
    layout = "official"
    result, budget = {}, [0]
    for key, value in state_dict.items():
        if not isinstance(key, str):
            raise CheckpointError(
                f"Checkpoint key {key!r} is a {type(key).__name__}, not a string: this is not a "
                "state dict of named tensors."
            )
        if key.endswith("num_batches_tracked"):
            continue
        new_key = key
        for prefix in _PREFIXES:
            if new_key.startswith(prefix):
                new_key = new_key[len(prefix):]
        if new_key.startswith("swiftformer."):
            layout = "transformers"
        for pattern, replacement in _TRANSFORMERS_RENAMES:
            new_key = pattern.sub(replacement, new_key)
        if new_key in result:
            raise CheckpointError(
                f"Checkpoint keys {key!r} and another key both map to {new_key!r}."
            )
        result[new_key] = _to_numpy(value, key, budget)
    return result, layout


def _unwrap(obj, source):
    if not isinstance(obj, Mapping):
        raise CheckpointError(
            f"{source} does not hold a state dict (got {type(obj).__name__}). Expected "
            "{'model': state_dict} as the official scripts save, or a bare state dict."
        )
    for wrapper in ("model", "state_dict", "model_ema"):
        if wrapper in obj and isinstance(obj[wrapper], Mapping):
            return obj[wrapper]
    return obj


def _check_size(path):
    size = os.path.getsize(path)
    if size > MAX_FILE_BYTES:
        raise CheckpointError(
            f"{path} is {size / 2**20:.0f} MB: larger than any SwiftFormer checkpoint "
            f"(at most {MAX_FILE_BYTES / 2**20:.0f} MB). It was not loaded."
        )


def _check_torch_zip(path):
    """The zip format of torch.save: torch's reader allocates each entry's declared size, so
    the declared sizes are bounded first (a compressed `data.pkl` could expand to gigabytes)."""
    try:
        with zipfile.ZipFile(path) as archive:
            entries = archive.infolist()
    except (zipfile.BadZipFile, OSError) as error:
        raise CheckpointError(
            f"Could not read {path} as a PyTorch checkpoint: the file is truncated, corrupt or "
            f"not a checkpoint. Download it again. ({error})"
        ) from error
    total = sum(entry.file_size for entry in entries)
    pickles = [entry for entry in entries if entry.filename.endswith(".pkl")]
    if total > MAX_FILE_BYTES or any(entry.file_size > MAX_PICKLE_BYTES for entry in pickles):
        raise CheckpointError(
            f"{path} expands to {total / 2**20:.0f} MB (largest entry "
            f"{max(e.file_size for e in entries) / 2**20:.0f} MB): more than any SwiftFormer "
            "checkpoint holds. It was not loaded."
        )


def _check_torch_file(path):
    """A clear diagnosis before torch sees the bytes: its own errors for a non-checkpoint
    (an HTML error page, say) talk about unsafe pickles, which would mislead."""
    _check_size(path)
    with open(path, "rb") as file:
        head = file.read(64)
    if head.startswith(b"PK\x03\x04"):
        _check_torch_zip(path)
        return
    if head.startswith(b"\x80"):
        return  # the legacy pickle format: bounded by the file's size
    kind = "an HTML page (an error or confirmation page saved instead of the file)" if head.lstrip()[:1] == b"<" else "not a PyTorch checkpoint"
    raise CheckpointError(
        f"Could not read {path} as a PyTorch checkpoint: the file is truncated, corrupt or "
        f"{kind}. It starts with {head[:16]!r}. Download it again."
    )


def _read_torch(path):
    torch = require("torch", f"reading the PyTorch checkpoint {path}")
    _check_torch_file(path)
    try:
        # weights_only=True: unpickling is restricted to tensors and plain containers, so a
        # checkpoint can never run code on this machine. Full training checkpoints of the
        # official main.py also hold `args`, an argparse.Namespace: a plain attribute bag,
        # allowed explicitly.
        # mmap: storages are mapped, not read, so every tensor's shape and dtype are checked
        # (to_official_keys) before its data is touched.
        zipped = zipfile.is_zipfile(path)
        with torch.serialization.safe_globals([argparse.Namespace]):
            obj = torch.load(path, map_location="cpu", weights_only=True, mmap=zipped)
    except pickle.UnpicklingError as error:
        raise CheckpointError(
            f"Refused to load {path}: it contains Python objects other than tensors, and "
            "loading it would run code from the file. Only load checkpoints you trust; "
            f"re-save a trusted one as a plain state dict. (torch said: {str(error)[:300]})"
        ) from error
    except (RuntimeError, EOFError, zipfile.BadZipFile, OSError, ValueError) as error:
        raise CheckpointError(
            f"Could not read {path} as a PyTorch checkpoint: the file is truncated, corrupt or "
            f"not a checkpoint. Download it again. (torch said: {str(error)[:300]})"
        ) from error
    return _unwrap(obj, path)


def _check_safetensors_header(path):
    """The header names every tensor's dtype, shape and byte range: all are checked (and a
    tensor named twice refused) before the data is read."""
    _check_size(path)
    size = os.path.getsize(path)
    with open(path, "rb") as file:
        raw = file.read(8)
        length = struct.unpack("<Q", raw)[0] if len(raw) == 8 else -1
        if length < 2 or length > min(size - 8, MAX_PICKLE_BYTES):
            raise CheckpointError(
                f"Could not read {path} as safetensors: the file is truncated, corrupt or not a "
                f"safetensors file (its header length, {length}, does not fit it). Download it again."
            )
        text = file.read(length)

    def unique(pairs):
        keys = [key for key, _ in pairs]
        repeated = sorted({key for key in keys if keys.count(key) > 1})
        if repeated:
            raise CheckpointError(f"{path} names the tensor(s) {repeated} more than once; refused.")
        return dict(pairs)

    try:
        header = json.loads(text, object_pairs_hook=unique)
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise CheckpointError(f"Could not read {path} as safetensors: its header is not JSON ({error}).") from error
    if not isinstance(header, dict):
        raise CheckpointError(f"Could not read {path} as safetensors: its header is not a JSON object.")
    budget = [0]
    for key, entry in header.items():
        if key == "__metadata__" or key.endswith("num_batches_tracked"):  # dropped unread
            continue
        if not isinstance(entry, dict) or not {"dtype", "shape", "data_offsets"} <= set(entry):
            raise CheckpointError(f"Could not read {path} as safetensors: entry {key!r} is malformed.")
        dtype, itemsize = _SAFETENSORS_DTYPES.get(entry["dtype"], (entry["dtype"], None))
        _check_tensor(key, dtype, entry["shape"], budget)  # refuses the non-float ones
        begin, end = entry["data_offsets"]
        expected = int(np.prod(entry["shape"])) * itemsize
        if end - begin != expected or begin < 0 or end > size - 8 - length:
            raise CheckpointError(
                f"Could not read {path} as safetensors: the file is truncated, corrupt or not a "
                f"safetensors file (tensor {key!r} claims bytes {begin}-{end}, which do not match "
                f"its shape {entry['shape']} or lie outside the file). Download it again."
            )


def _read_safetensors(path):
    safetensors_numpy = require("safetensors.numpy", f"reading {path}")
    _check_safetensors_header(path)
    try:
        return safetensors_numpy.load_file(path)
    except Exception as error:  # safetensors raises its own SafetensorError and others
        raise CheckpointError(
            f"Could not read {path} as safetensors: the file is truncated, corrupt or not a "
            f"safetensors file. Download it again. (safetensors said: {str(error)[:300]})"
        ) from error


def read_checkpoint(source):
    """Reads `source` into `(official-key numpy state dict, layout)`.

    `source` is a path to a `.pth`/`.pt`/`.bin`/`.safetensors` file, a transformers model
    folder (holding `model.safetensors` or `pytorch_model.bin`), or an in-memory state dict of
    numpy arrays or torch tensors. `layout` is "official" or "transformers".
    """
    if isinstance(source, Mapping):
        state = _unwrap(source, "The given mapping")
    else:
        path = os.fspath(source)
        if os.path.isdir(path):
            for name in TRANSFORMERS_FILES:
                if os.path.isfile(os.path.join(path, name)):
                    return read_checkpoint(os.path.join(path, name))
            raise CheckpointError(
                f"Folder {path} holds none of {list(TRANSFORMERS_FILES)}. Point to a checkpoint "
                "file or to a transformers model folder."
            )
        if not os.path.isfile(path):
            raise FileNotFoundError(f"Checkpoint not found: {path}")
        lower = path.lower()
        if lower.endswith(SAFETENSORS_SUFFIX):
            state = _read_safetensors(path)
        elif lower.endswith(TORCH_SUFFIXES):
            state = _read_torch(path)
        else:
            raise CheckpointError(
                f"Unrecognised checkpoint file {path}: its name does not end in "
                f"{', '.join(CHECKPOINT_SUFFIXES)}. Pass an official or "
                "transformers checkpoint, or a transformers model folder."
            )
    if not state:
        raise CheckpointError(f"The checkpoint {source!r} holds no tensors.")
    return to_official_keys(state)


def _require_key(state, key, what):
    if key not in state:
        raise CheckpointError(
            f"The checkpoint has no {key!r} ({what}); it does not look like a SwiftFormer "
            f"classifier. First keys found: {sorted(state)[:8]}"
        )
    return state[key]


def infer_architecture(state):
    """Depths, widths, classes, distillation and variant id read from tensor shapes."""
    stage_blocks = {}
    for key in state:
        match = re.match(r"^network\.(\d+)\.(\d+)\.", key)
        if match:
            index, block = int(match.group(1)), int(match.group(2))
            stage_blocks.setdefault(index, set()).add(block)
    if not stage_blocks:
        raise CheckpointError(
            "The checkpoint has no 'network.<i>.<j>.' blocks; it does not look like a "
            f"SwiftFormer. First keys found: {sorted(state)[:8]}"
        )
    indices = sorted(stage_blocks)
    if indices != list(range(0, 2 * len(indices), 2)):
        raise CheckpointError(
            f"The checkpoint's stages sit at network indices {indices}; SwiftFormer stages "
            "alternate with downsampling layers at 0, 2, 4, ..."
        )
    depths, widths = [], []
    for index in indices:
        blocks = sorted(stage_blocks[index])
        if blocks != list(range(len(blocks))):
            raise CheckpointError(f"Stage network.{index} has non-consecutive blocks {blocks}.")
        depths.append(len(blocks))
        last = len(blocks) - 1
        local_kernel = _require_key(
            state, f"network.{index}.{last}.local_representation.dwconv.weight",
            f"the SwiftFormer Encoder ending stage {index // 2}",
        )
        widths.append(int(local_kernel.shape[0]))
    head = _require_key(state, "head.weight", "the classifier head")
    return {
        "depths": tuple(depths),
        "widths": tuple(widths),
        "classes": int(head.shape[0]),
        "distillation": "dist_head.weight" in state,
        "variant": find_variant(depths, widths),
    }
