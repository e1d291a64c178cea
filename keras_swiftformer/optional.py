"""Imports of optional heavy dependencies, with a message naming the extra that brings each."""

import importlib
import importlib.util

# module -> (pip extra of keras-swiftformer, what needs it)
_EXTRAS = {
    "torch": ("torch", "reading PyTorch .pth/.bin checkpoints"),
    "safetensors": ("conversion", "reading .safetensors checkpoints"),
    "safetensors.numpy": ("conversion", "reading .safetensors checkpoints"),
    "tensorflow": ("tensorflow", "the TensorFlow backend and TFLite export"),
    "jax": ("jax", "the JAX backend"),
    "PIL.Image": ("images", "reading images"),
    "tf2onnx": ("export", "ONNX export"),
    "onnxruntime": ("export", "running ONNX files"),
    "ai_edge_litert.interpreter": ("export", "running TFLite files"),
    "ai_edge_litert.schema_py_generated": ("export", "reading .tflite files"),
    "flatbuffers": ("export", "writing TFLite metadata"),
    "tensorflow_datasets": ("tfds", "calibrating or training on tensorflow-datasets"),
    "matplotlib": ("training", "plotting learning curves"),
    "h5py": (None, "Keras weights files"),  # a dependency of keras itself
}


class MissingDependencyError(ImportError):
    """An optional dependency needed for the requested operation is not installed."""


def _missing(module_name, purpose, error=None, extra=None):
    default_extra, default_purpose = _EXTRAS.get(module_name, (None, None))
    extra = extra or default_extra
    purpose = purpose or default_purpose or "this operation"
    hint = f"pip install 'keras-swiftformer[{extra}]'" if extra else f"pip install {module_name}"
    if module_name == "torch":
        # Any other torch spec pulls several GB of CUDA wheels on machines without a GPU.
        hint += " (or: pip install torch==2.13.0 for the CPU build)"
    cause = f" (Original error: {error})" if error is not None else ""
    return MissingDependencyError(
        f"`{module_name}` is required for {purpose} but is not installed. "
        f"Install it with: {hint}.{cause}"
    )


def require(module_name, purpose=None, extra=None):
    """Imports `module_name` or raises `MissingDependencyError` saying what to install
    (`extra`: the keras-swiftformer extra to name, default the module's own)."""
    try:
        return importlib.import_module(module_name)
    except ImportError as error:
        raise _missing(module_name, purpose, error, extra) from error


def require_installed(module_name, purpose=None, extra=None):
    """Checks that `module_name` is installed without importing it (for work that a
    subprocess will do), or raises `MissingDependencyError` saying what to install."""
    if importlib.util.find_spec(module_name.split(".")[0]) is None:
        raise _missing(module_name, purpose, extra=extra)
