"""What is inside a .tflite file: every operator, its version and count, whether it runs in
integers, and whether the Edge TPU compiler maps it. Parsed from the flatbuffer itself, so it
describes the file, not the code that produced it."""

import collections

from keras_swiftformer.optional import require

# Operators the Edge TPU compiler (v16) maps, by TFLite builtin name, from the compiler's
# published operator table (coral.ai/docs/edgetpu/models-intro). Each maps only when int8
# (or uint8) quantised with static shapes; several carry further restrictions listed there.
EDGETPU_OPS = frozenset(
    """ADD AVERAGE_POOL_2D CONCATENATION CONV_2D DEPTHWISE_CONV_2D DEQUANTIZE EXPAND_DIMS
    FULLY_CONNECTED HARD_SWISH L2_NORMALIZATION LOGISTIC LSTM MAXIMUM MAX_POOL_2D MEAN MINIMUM
    MUL PACK PAD PRELU QUANTIZE REDUCE_MAX REDUCE_MIN RELU RELU6 RELU_N1_TO_1 RESHAPE
    RESIZE_BILINEAR RESIZE_NEAREST_NEIGHBOR RSQRT SLICE SOFTMAX SPACE_TO_DEPTH SPLIT SQUEEZE
    SQUARED_DIFFERENCE STRIDED_SLICE SUB SUM TANH TRANSPOSE TRANSPOSE_CONV""".split()
)
# Newest operator versions edgetpu_compiler 16 accepts; newer ones (e.g. from recent
# TensorFlow converters) make it reject the op even if the operator is in the table.
EDGETPU_MAX_VERSIONS = {"CONV_2D": 5}  # the one limit documented to us; others unknown
INTEGER_TYPES = frozenset({"INT8", "UINT8", "INT16", "INT32", "INT64", "BOOL"})


def _schema():
    return require("ai_edge_litert.schema_py_generated", "reading .tflite files")


def read_operators(tflite_bytes):
    """[(name, version, input dtypes, output dtypes)] of every operator in the main graph."""
    schema = _schema()
    model = schema.Model.GetRootAs(tflite_bytes, 0)
    op_names = {v: k for k, v in vars(schema.BuiltinOperator).items() if not k.startswith("_")}
    type_names = {v: k for k, v in vars(schema.TensorType).items() if not k.startswith("_")}
    codes = []
    for i in range(model.OperatorCodesLength()):
        code = model.OperatorCodes(i)
        builtin = max(code.BuiltinCode(), code.DeprecatedBuiltinCode())
        name = op_names.get(builtin, f"BUILTIN_{builtin}")
        if name == "CUSTOM":
            name = f"CUSTOM:{code.CustomCode().decode()}"
        codes.append((name, code.Version()))
    graph = model.Subgraphs(0)

    def dtypes(indices):
        return [type_names[graph.Tensors(int(t)).Type()] for t in indices if t >= 0]

    operators = []
    for i in range(graph.OperatorsLength()):
        op = graph.Operators(i)
        name, version = codes[op.OpcodeIndex()]
        operators.append((name, version, dtypes(op.InputsAsNumpy()), dtypes(op.OutputsAsNumpy())))
    return operators


def io_details(tflite_bytes):
    """Shapes, dtypes and quantisation of the graph's inputs and outputs."""
    schema = _schema()
    model = schema.Model.GetRootAs(tflite_bytes, 0)
    graph = model.Subgraphs(0)
    type_names = {v: k for k, v in vars(schema.TensorType).items() if not k.startswith("_")}

    def describe(index):
        tensor = graph.Tensors(index)
        quantization = tensor.Quantization()
        scale = zero_point = None
        if quantization is not None and quantization.ScaleLength():
            scale = float(quantization.Scale(0))
            zero_point = int(quantization.ZeroPoint(0))
        return {
            "name": tensor.Name().decode(),
            "shape": [int(d) for d in tensor.ShapeAsNumpy()],
            "dtype": type_names[tensor.Type()].lower(),
            "scale": scale,
            "zero_point": zero_point,
        }

    return {
        "inputs": [describe(int(i)) for i in graph.InputsAsNumpy()],
        "outputs": [describe(int(i)) for i in graph.OutputsAsNumpy()],
    }


def op_report(tflite_bytes):
    """One row per (operator, version): count, integer-only, Edge TPU support."""
    rows = collections.OrderedDict()
    for name, version, inputs, outputs in read_operators(tflite_bytes):
        row = rows.setdefault(
            (name, version),
            {"op": name, "version": version, "count": 0, "integer": True, "edgetpu": True},
        )
        row["count"] += 1
        integer = all(t in INTEGER_TYPES for t in inputs + outputs)
        row["integer"] = row["integer"] and integer
        maximum = EDGETPU_MAX_VERSIONS.get(name)
        row["edgetpu"] = (
            row["edgetpu"] and integer and name in EDGETPU_OPS
            and (maximum is None or version <= maximum)
        )
    return list(rows.values())


def format_report(rows, integer=True):
    """The operator table; `integer=False` (a float file) leaves out the integer-only and
    Edge TPU columns, which only a full-int8 file can pass."""
    if not integer:
        return "\n".join([f"{'operator':<24} {'ver':>3} {'count':>5}"]
                         + [f"{row['op']:<24} {row['version']:>3} {row['count']:>5}" for row in rows])
    lines = [f"{'operator':<24} {'ver':>3} {'count':>5}  {'int8':<4}  edge TPU"]
    for row in rows:
        lines.append(
            f"{row['op']:<24} {row['version']:>3} {row['count']:>5}  "
            f"{'yes' if row['integer'] else 'NO':<4}  {'yes' if row['edgetpu'] else 'NO'}"
        )
    return "\n".join(lines)


def resize_operators(tflite_bytes):
    """Every RESIZE_BILINEAR / RESIZE_NEAREST_NEIGHBOR with its sampling options and sizes.

    The Edge TPU maps resizes of rank-4 (batch 1) tensors, but its table warns that it may
    leave one on the CPU "depending on input/output size, to avoid loss in precision", and
    older compilers rejected `align_corners`/`half_pixel_centers` combinations. This lists
    what a deployer needs to judge that without the compiler.
    """
    schema = _schema()
    model = schema.Model.GetRootAs(tflite_bytes, 0)
    graph = model.Subgraphs(0)
    options_classes = {
        "RESIZE_BILINEAR": schema.ResizeBilinearOptions,
        "RESIZE_NEAREST_NEIGHBOR": schema.ResizeNearestNeighborOptions,
    }
    op_names = {v: k for k, v in vars(schema.BuiltinOperator).items() if not k.startswith("_")}
    rows = []
    for i in range(graph.OperatorsLength()):
        op = graph.Operators(i)
        code = model.OperatorCodes(op.OpcodeIndex())
        name = op_names.get(max(code.BuiltinCode(), code.DeprecatedBuiltinCode()))
        if name not in options_classes:
            continue
        table = op.BuiltinOptions()
        options = options_classes[name]()
        options.Init(table.Bytes, table.Pos)
        shape = lambda index: [int(d) for d in graph.Tensors(int(index)).ShapeAsNumpy()]  # noqa: E731
        rows.append({
            "op": name,
            "input": shape(op.Inputs(0)),
            "output": shape(op.Outputs(0)),
            "align_corners": bool(options.AlignCorners()),
            "half_pixel_centers": bool(options.HalfPixelCenters()),
        })
    return rows
