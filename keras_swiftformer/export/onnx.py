"""Keras SwiftFormer -> ONNX with tf2onnx, its GELUs in the form ONNX Runtime fuses."""

import os

import keras
import numpy as np

from keras_swiftformer.export.deploy import as_model, deploy_model, export_input_size
from keras_swiftformer.export.errors import ExportError
from keras_swiftformer.export.tensorflow_process import run_in_tensorflow
from keras_swiftformer.io import write_bytes
from keras_swiftformer.layers.numerics import onnx_gelu
from keras_swiftformer.optional import require, require_installed


def export_onnx(model_or_weights, path, input_size=None, batch_size=1, dynamic_axes=False,
                opset=17, variant=None):
    """Writes an ONNX file of a SwiftFormer classifier with tf2onnx, checked by onnxruntime.

    `dynamic_axes=True` leaves batch, height and width free (SwiftFormer runs at any size);
    otherwise the input is fixed at (batch_size, input_size, input_size, 3), `input_size`
    defaulting to the model's own fixed size, else 224. Opset 17 is read by onnxruntime >= 1.12.
    """
    if not os.fspath(path).endswith(".onnx"):
        raise ValueError(f"`path` must end in '.onnx'. Received: path={path!r}")
    require_installed("tensorflow", "ONNX export (tf2onnx converts TensorFlow graphs)", extra="export")
    require_installed("tf2onnx", "ONNX export")
    model, _, trained_size = as_model(model_or_weights, variant)
    options = dict(input_size=export_input_size(model, trained_size if input_size is None else input_size), batch_size=batch_size, dynamic_axes=dynamic_axes, opset=opset)
    if keras.backend.backend() != "tensorflow":
        return run_in_tensorflow({"format": "onnx", "path": os.fspath(path), **options}, model, None)
    return export_onnx_here(model, path, **options)


def export_onnx_here(model, path, input_size, batch_size, dynamic_axes, opset):
    """`export_onnx` on the TensorFlow backend, in this process."""
    tf = require("tensorflow", "ONNX export", extra="export")
    tf2onnx = require("tf2onnx", "ONNX export")
    deployed = deploy_model(model, input_size, batch_size)
    shape = [None, None, None, 3] if dynamic_axes else list(deployed.inputs[0].shape)
    function = tf.function(lambda images: deployed(images, training=False))
    spec = (tf.TensorSpec(shape, tf.float32, name="images"),)
    try:
        with onnx_gelu():  # the spelling ONNX Runtime fuses into one Gelu kernel
            proto, _ = tf2onnx.convert.from_function(function, input_signature=spec, opset=opset)
    except Exception as error:  # noqa: BLE001
        raise ExportError(f"tf2onnx could not convert the model: {str(error)[:2000]}") from error
    _fusable_gelu(proto)
    content = proto.SerializeToString()
    write_bytes(path, content)
    return {"path": os.fspath(path), "bytes": len(content), "opset": opset,
            "ops": sorted({node.op_type for node in proto.graph.node})}


def _fusable_gelu(proto):
    """Rewrites each exact GELU of an ONNX graph into the form ONNX Runtime fuses.

    ONNX Runtime's GeluFusion matches `Div(x, sqrt 2) -> Erf -> Add(1) -> Mul -> Mul(0.5)` with
    scalar constants. TensorFlow's graph optimiser hands tf2onnx `Mul(x, 1/sqrt 2)` instead,
    and tf2onnx writes the 1 and the 0.5 as (1, 1, 1, 1) tensors, so nothing fuses and each
    GELU runs as five elementwise kernels with NCHWc layout reorders around them (10 ms of
    SwiftFormer-L1's 30 ms on 2 cores). Same values, same result. Returns the GELUs rewritten.
    """
    numpy_helper = require("onnx.numpy_helper", "ONNX export", extra="export")

    initializers = {tensor.name: tensor for tensor in proto.graph.initializer}
    producers = {output: node for node in proto.graph.node for output in node.output}
    consumers = {}
    for node in proto.graph.node:
        for name in node.input:
            consumers.setdefault(name, []).append(node)

    def scalar(name):
        if name not in initializers:
            return None
        value = numpy_helper.to_array(initializers[name])
        return float(value.ravel()[0]) if value.size == 1 else None

    def constant(value):
        name = f"gelu_constant_{value:g}"
        if name not in initializers:
            initializers[name] = numpy_helper.from_array(np.asarray(value, np.float32), name)
            proto.graph.initializer.append(initializers[name])
        return name

    def replace_scalar(node, expected):
        for index, name in enumerate(node.input):
            if scalar(name) is not None and abs(scalar(name) - expected) < 1e-6:
                node.input[index] = constant(expected)
                return True
        return False

    rewritten = 0
    for erf in [node for node in proto.graph.node if node.op_type == "Erf"]:
        scale = producers.get(erf.input[0])
        following = consumers.get(erf.output[0], [])
        if scale is None or scale.op_type not in ("Mul", "Div") or len(following) != 1 or following[0].op_type != "Add":
            continue
        factors = [scalar(name) for name in scale.input]
        operand = [name for name, factor in zip(scale.input, factors) if factor is None]
        if len(operand) != 1:
            continue
        factor = next(f for f in factors if f is not None)
        if scale.op_type == "Mul" and abs(factor - 0.5**0.5) < 1e-6 or scale.op_type == "Div" and abs(factor - 2**0.5) < 1e-6:
            scale.op_type = "Div"
            del scale.input[:]
            scale.input.extend([operand[0], constant(2**0.5)])
        else:
            continue
        add = following[0]
        if not replace_scalar(add, 1.0):
            continue
        product = consumers.get(add.output[0], [])
        if len(product) == 1 and product[0].op_type == "Mul":
            half = [producers.get(name) for name in product[0].input] + consumers.get(product[0].output[0], [])
            for node in half:
                if node is not None and node.op_type == "Mul" and replace_scalar(node, 0.5):
                    break
        rewritten += 1
    return rewritten
