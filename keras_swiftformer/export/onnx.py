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
    _reduce_l2_normalizations(proto)
    _drop_unused_initializers(proto)
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


def _reduce_l2_normalizations(proto):
    """Rewrites each L2 normalisation of an ONNX graph as `Div(x, Max(ReduceL2(x), eps))`.

    tf2onnx writes `l2_normalize`'s `x * rsqrt(max(sum(x * x), eps^2))` as six nodes (Mul,
    ReduceSum, Max, Sqrt, Reciprocal, Mul); ONNX Runtime runs each as its own kernel, and
    the small ones cost more than their arithmetic (45 Mul nodes took 0.77 ms of XS's 11 ms
    against the torch export's 12 Mul nodes' 0.20, by `benchmarks.onnx_profile`). Three nodes
    compute the same `x / max(||x||, eps)`, as `torch.nn.functional.normalize` is exported.
    The opset-17 form (axes as an attribute of ReduceL2). Returns the normalisations rewritten.
    """
    helper = require("onnx.helper", "ONNX export", extra="export")
    numpy_helper = require("onnx.numpy_helper", "ONNX export", extra="export")

    initializers = {tensor.name: tensor for tensor in proto.graph.initializer}
    consumers = {}
    for node in proto.graph.node:
        for name in node.input:
            consumers.setdefault(name, []).append(node)
    graph_outputs = {output.name for output in proto.graph.output}

    def value(name):
        return numpy_helper.to_array(initializers[name]) if name in initializers else None

    def only_consumer(node, op_type):
        following = consumers.get(node.output[0], [])
        if len(following) != 1 or following[0].op_type != op_type or node.output[0] in graph_outputs:
            return None
        return following[0]

    epsilon_name = "l2_normalize_epsilon"
    removed, rewritten = set(), 0
    for square in [node for node in proto.graph.node if node.op_type == "Mul"]:
        if len(square.input) != 2 or square.input[0] != square.input[1]:
            continue
        x = square.input[0]
        total = only_consumer(square, "ReduceSum")
        maximum = total and only_consumer(total, "Max")
        root = maximum and only_consumer(maximum, "Sqrt")
        reciprocal = root and only_consumer(root, "Reciprocal")
        scale = reciprocal and only_consumer(reciprocal, "Mul")
        if scale is None or len(total.input) != 2 or sorted(scale.input) != sorted([x, reciprocal.output[0]]):
            continue
        axes = value(total.input[1])
        floor = [value(name) for name in maximum.input if name != total.output[0]]
        keepdims = {a.name: helper.get_attribute_value(a) for a in total.attribute}.get("keepdims", 1)
        if axes is None or len(floor) != 1 or floor[0] is None or floor[0].size != 1 or keepdims != 1:
            continue
        if epsilon_name not in initializers:
            epsilon = np.sqrt(np.asarray(floor[0], np.float32).reshape(()))
            initializers[epsilon_name] = numpy_helper.from_array(epsilon, epsilon_name)
            proto.graph.initializer.append(initializers[epsilon_name])
        total.op_type = "ReduceL2"
        del total.input[:], total.attribute[:]
        total.input.append(x)
        total.attribute.extend([helper.make_attribute("axes", [int(a) for a in np.ravel(axes)]),
                                helper.make_attribute("keepdims", 1)])
        del maximum.input[:]
        maximum.input.extend([total.output[0], epsilon_name])
        scale.op_type = "Div"
        del scale.input[:]
        scale.input.extend([x, maximum.output[0]])
        removed.update(id(node) for node in (square, root, reciprocal))
        rewritten += 1
    kept = []
    for node in proto.graph.node:
        if id(node) not in removed:
            kept.append(type(node)())
            kept[-1].CopyFrom(node)
    del proto.graph.node[:]
    proto.graph.node.extend(kept)
    return rewritten


def _drop_unused_initializers(proto):
    """Removes the constants no node reads any more (those the rewrites above replaced), which
    ONNX Runtime would otherwise warn about, one line each, whenever it loads the file."""
    used = {name for node in proto.graph.node for name in node.input} | {output.name for output in proto.graph.output}
    kept = []
    for tensor in proto.graph.initializer:
        if tensor.name in used:
            kept.append(type(tensor)())
            kept[-1].CopyFrom(tensor)
    dropped = len(proto.graph.initializer) - len(kept)
    del proto.graph.initializer[:]
    proto.graph.initializer.extend(kept)
    return dropped
