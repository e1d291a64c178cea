"""Exact, export-friendly spellings of the two non-trivial functions SwiftFormer uses.

Both are written with plain `keras.ops` primitives on purpose:

* `keras.activations.gelu(approximate=False)` lowers to `Erfc` on TensorFlow, which tf2onnx
  cannot convert, and `keras.ops.normalize` lowers to float SQUARE/SUM ops that silently stay
  float in an "int8" TFLite file. The forms below are mathematically identical to PyTorch's
  `nn.GELU()` and `F.normalize` and stay convertible.
"""

import contextlib
import math

import keras
from keras import ops

# PyTorch's F.normalize divides by max(norm, eps) with eps=1e-12; comparing squared norms
# against eps**2 gives the same result without a square root of zero in the gradient.
L2_EPSILON = 1e-12
_INV_SQRT_2 = 1.0 / math.sqrt(2.0)
_SQRT_2 = math.sqrt(2.0)


def _tensor(x):
    # Lets the functions take NumPy arrays too (the torch backend cannot mix them in `*`).
    return x if isinstance(x, keras.KerasTensor) else ops.convert_to_tensor(x)


_TANH_GELU_SCALE = 2.0 * math.sqrt(2.0 / math.pi)
_GELU_FORMULATION = ["exact"]


@contextlib.contextmanager
def edgetpu_gelu():
    """Within this context `exact_gelu` traces as `x * sigmoid(2 sqrt(2/pi) (x + 0.044715 x^3))`.

    That is the tanh approximation of GELU (0.5 (1 + tanh z) == sigmoid(2 z)), built from
    LOGISTIC, MUL and ADD, which the Edge TPU maps; it has no ERF or GELU op. It differs from
    the exact form by at most ~3e-4 (asserted in tests). Only the Edge TPU export uses it.
    """
    _GELU_FORMULATION.append("edgetpu")
    try:
        yield
    finally:
        _GELU_FORMULATION.pop()


@contextlib.contextmanager
def onnx_gelu():
    """Within this context `exact_gelu` traces as `((1 + erf(x / sqrt 2)) * x) * 0.5`.

    The same exact GELU, spelled the way `torch.onnx.export` writes it, which is the pattern
    ONNX Runtime's GeluFusion recognises: it then runs one Gelu kernel in its blocked NCHWc
    layout instead of five elementwise ops with a layout reorder before and after each
    (measured on SwiftFormer-L1: 10 ms of the 30 ms). Only the ONNX export uses it.
    """
    _GELU_FORMULATION.append("onnx")
    try:
        yield
    finally:
        _GELU_FORMULATION.pop()


def exact_gelu(x):
    """GELU in its exact erf form, identical to PyTorch's default `nn.GELU()`."""
    x = _tensor(x)
    if _GELU_FORMULATION[-1] == "edgetpu":
        inner = x + 0.044715 * (x * x * x)
        return x * ops.sigmoid(_TANH_GELU_SCALE * inner)
    if _GELU_FORMULATION[-1] == "onnx":
        return ((1.0 + ops.erf(x / _SQRT_2)) * x) * 0.5
    if keras.backend.backend() == "torch":
        # PyTorch's own exact GELU, one kernel instead of five elementwise passes (6 ms of
        # SwiftFormer-L1's 70 at batch 1); the TensorFlow lowering above stays for export.
        return ops.gelu(x, approximate=False)
    return 0.5 * x * (1.0 + ops.erf(x * _INV_SQRT_2))


def l2_normalize(x, axis=-1):
    """`x / max(||x||_2, 1e-12)` over `axis`, identical to `torch.nn.functional.normalize`.

    `axis` may be an int or a tuple of ints (the attention normalises over both spatial axes).
    """
    x = _tensor(x)
    # x * x rather than square(): the Edge TPU maps MUL but has no SQUARE.
    squared_norm = ops.sum(x * x, axis=axis, keepdims=True)
    return x * ops.rsqrt(ops.maximum(squared_norm, L2_EPSILON * L2_EPSILON))
