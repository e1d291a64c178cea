"""Keras SwiftFormer -> TFLite (float32, float16, dynamic-range, full int8, Edge TPU) and ONNX.

TFLite and tf2onnx need TensorFlow graphs. On the JAX or PyTorch backend the model is saved
to a temporary `.keras` file and rebuilt in a subprocess with `KERAS_BACKEND=tensorflow` (same
configuration, same weights), which writes the file; nothing changes for the caller.
"""

import json
import os
import subprocess
import sys
import tempfile
import time

import keras
import numpy as np

from keras_swiftformer.optional import require

QUANTIZATIONS = ("float32", "float16", "dynamic", "int8")
DEFAULT_CALIBRATION_IMAGES = 200
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff")


class ExportError(RuntimeError):
    """The model could not be exported as asked."""


# ---------------------------------------------------------------- calibration data


def _folder_images(folder, count, image_size, include_preprocessing):
    from keras_swiftformer.preprocessing import load_image

    paths = sorted(
        os.path.join(root, name)
        for root, _, names in os.walk(folder)
        for name in names
        if name.lower().endswith(IMAGE_SUFFIXES)
    )
    if not paths:
        raise ValueError(
            f"The calibration folder {folder} holds no images ({', '.join(IMAGE_SUFFIXES)})."
        )
    images, unreadable = [], []
    progress = keras.utils.Progbar(min(count, len(paths)), unit_name="calibration image")
    for path in paths:
        if len(images) == count:
            break
        try:
            images.append(load_image(path, image_size, normalize=not include_preprocessing))
            progress.add(1)
        except ValueError:
            unreadable.append(path)
    if not images:
        raise ValueError(f"None of the images in {folder} could be read: {unreadable[:5]}")
    if unreadable:
        import warnings

        warnings.warn(f"Skipped {len(unreadable)} unreadable calibration images: {unreadable[:5]}")
    return np.stack(images)


def _tfds_images(name, count, image_size, include_preprocessing):
    tfds = require("tensorflow_datasets", f"calibrating on the tfds dataset {name!r}")
    from keras_swiftformer.preprocessing import load_image

    try:
        dataset = tfds.load(name.split(":")[0], split="train", shuffle_files=False)
    except Exception as error:  # noqa: BLE001 - tfds raises many kinds
        raise ValueError(f"Could not load the tfds dataset {name!r}: {error}") from error
    progress = keras.utils.Progbar(count, unit_name="calibration image")
    images = []
    for example in dataset.take(count):
        images.append(load_image(example["image"].numpy(), image_size, normalize=not include_preprocessing))
        progress.add(1)
    if not images:
        raise ValueError(f"The tfds dataset {name!r} yielded no images.")
    return np.stack(images)


def calibration_array(data, count, image_size, include_preprocessing):
    """`representative_data` as one float32 array (N, H, W, 3) of model inputs.

    `data`: a folder of images or a tfds dataset name (both get the official evaluation
    transform; raw pixels if `include_preprocessing`), or a NumPy array / iterable of arrays
    holding model inputs exactly as `model.predict` takes them.
    """
    if isinstance(data, (str, os.PathLike)):
        data = os.fspath(data)
        if os.path.isdir(data):
            return _folder_images(data, count, image_size, include_preprocessing)
        if os.path.exists(data):
            raise ValueError(f"`representative_data` must be a folder of images, not a file: {data}")
        return _tfds_images(data, count, image_size, include_preprocessing)
    if isinstance(data, np.ndarray):
        array = data
    else:
        batches, total = [], 0
        for item in data:
            item = np.asarray(item[0] if isinstance(item, (tuple, list)) else item, "float32")
            item = item[None] if item.ndim == 3 else item
            batches.append(item)
            total += len(item)
            if total >= count:
                break
        if not batches:
            raise ValueError("`representative_data` yielded no samples.")
        array = np.concatenate(batches)
    array = np.asarray(array, "float32")[:count]
    if array.ndim != 4 or array.shape[-1] != 3 or len(array) == 0:
        raise ValueError(
            "`representative_data` must hold images shaped (N, H, W, 3). "
            f"Received: shape={array.shape}"
        )
    return array


# ---------------------------------------------------------------- TensorFlow side


def _check_options(quantization, edgetpu, io_dtype, include_preprocessing, batch_size):
    if quantization not in QUANTIZATIONS:
        raise ValueError(
            f"`quantization` must be one of {QUANTIZATIONS}. Received: quantization={quantization!r}"
        )
    if edgetpu:
        if quantization != "int8":
            raise ValueError("`edgetpu=True` needs quantization='int8' (the Edge TPU runs only integers).")
        if batch_size != 1:
            raise ValueError(f"The Edge TPU needs batch size 1. Received: batch_size={batch_size}")
    if io_dtype is None:
        io_dtype = "uint8" if edgetpu else ("int8" if quantization == "int8" else "float32")
    if include_preprocessing is None:
        include_preprocessing = bool(edgetpu)
    if quantization == "int8" and io_dtype not in ("int8", "uint8", "float32"):
        raise ValueError(f"`io_dtype` for int8 must be int8, uint8 or float32. Received: {io_dtype!r}")
    if quantization != "int8" and io_dtype != "float32":
        raise ValueError(f"`io_dtype={io_dtype!r}` needs quantization='int8'.")
    return io_dtype, include_preprocessing


def _frozen_function(model, input_shape, edgetpu):
    import tensorflow as tf
    from tensorflow.python.framework.convert_to_constants import convert_variables_to_constants_v2

    from keras_swiftformer.layers.numerics import edgetpu_gelu

    function = tf.function(lambda images: model(images, training=False))
    spec = tf.TensorSpec(input_shape, tf.float32, name="images")
    if edgetpu:
        with edgetpu_gelu():
            concrete = function.get_concrete_function(spec)
    else:
        concrete = function.get_concrete_function(spec)
    # Variables become constants: int8 calibration fails on READ_VARIABLE ops otherwise.
    return convert_variables_to_constants_v2(concrete)


def _tflite_bytes(model, quantization, calibration, input_shape, io_dtype, edgetpu):
    import tensorflow as tf

    frozen = _frozen_function(model, input_shape, edgetpu)
    converter = tf.lite.TFLiteConverter.from_concrete_functions([frozen])
    # Builtin ops only: a file needing the Flex delegate would not run on a stock phone.
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
    if quantization == "float16":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.target_spec.supported_types = [tf.float16]
    elif quantization == "dynamic":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
    elif quantization == "int8":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        batch = input_shape[0]

        def representative():
            for start in range(0, len(calibration) - batch + 1, batch):
                yield [calibration[start : start + batch]]

        converter.representative_dataset = representative
        dtypes = {"int8": tf.int8, "uint8": tf.uint8, "float32": tf.float32}
        converter.inference_input_type = dtypes[io_dtype]
        converter.inference_output_type = dtypes[io_dtype]
    try:
        return converter.convert()
    except Exception as error:  # noqa: BLE001 - the converter raises ConverterError and others
        raise ExportError(
            f"The TFLite converter failed ({quantization}, builtin ops only, no TF ops): "
            f"{str(error)[:2000]}"
        ) from error


def _write_atomically(path, content):
    path = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    handle, temporary = tempfile.mkstemp(prefix=".partial-", dir=directory)
    try:
        with os.fdopen(handle, "wb") as file:
            file.write(content)
        os.replace(temporary, path)
    finally:
        if os.path.exists(temporary):
            os.remove(temporary)


def _sidecar(path, model_name, details, options, classes):
    """labels.txt + JSON input contract next to the file (tflite-support, the maintained
    metadata writer, does not install on Python >= 3.10)."""
    from keras_swiftformer.preprocessing import IMAGENET_MEAN, IMAGENET_STD, imagenet_classes

    base = os.path.splitext(os.fspath(path))[0]
    labels = None
    if classes == 1000:
        labels = base + ".labels.txt"
        _write_atomically(labels, "".join(f"{names.split(',')[0]}\n" for _, names in imagenet_classes()).encode())
    contract = {
        "model": model_name,
        **options,
        "input": details["inputs"][0],
        "output": details["outputs"][0],
        **({"outputs": details["outputs"]} if len(details["outputs"]) > 1 else {}),
        "task": "classification" if classes else "dense (segmentation logits or feature maps)",
        "pixels": "RGB, channels last, official evaluation transform (shorter side to "
        "int(256/224*size) bicubic, centre crop)" if classes else
        "RGB, channels last, resized (aspect ratio kept) and padded to the input size",
        "normalization": "built into the model: feed pixels in [0, 255]"
        if options["include_preprocessing"]
        else {"mean": [m * 255 for m in IMAGENET_MEAN], "std": [s * 255 for s in IMAGENET_STD],
              "formula": "(pixel - mean) / std"},
        "labels": os.path.basename(labels) if labels else None,
    }
    _write_atomically(base + ".json", json.dumps(contract, indent=2).encode())
    return base + ".json"


def _export_tflite_here(model, path, quantization, calibration, input_size, batch_size,
                        edgetpu, include_preprocessing, io_dtype):
    from conversion.deploy import deploy_model
    from conversion.tflite_report import io_details, op_report, resize_operators

    deployed = deploy_model(model, input_size, batch_size, include_preprocessing)
    input_shape = tuple(deployed.inputs[0].shape)
    content = _tflite_bytes(deployed, quantization, calibration, input_shape, io_dtype, edgetpu)
    report = op_report(content)
    if quantization == "int8":
        floating = [row["op"] for row in report if not row["integer"] and row["op"] not in ("QUANTIZE", "DEQUANTIZE")]
        if floating:
            raise ExportError(f"Full-integer export left float operators in the graph: {floating}")
    if edgetpu:
        unmapped = [f"{row['op']} v{row['version']}" for row in report if not row["edgetpu"]]
        if unmapped:
            raise ExportError(f"The Edge TPU graph holds operators the Edge TPU cannot map: {unmapped}")
    _write_atomically(path, content)
    details = io_details(content)
    options = {"quantization": quantization, "edgetpu": edgetpu,
               "include_preprocessing": include_preprocessing, "io_dtype": io_dtype}
    sidecar = _sidecar(path, model.name, details, options, architecture_classes(model))
    result = {"path": os.fspath(path), "bytes": len(content), "ops": report, "io": details,
              "sidecar": sidecar, **options}
    resizes = resize_operators(content)
    if resizes:
        result["resizes"] = resizes
    if edgetpu:
        result["edgetpu_compiler"] = run_edgetpu_compiler(path)
    return result


def run_edgetpu_compiler(path):
    """Runs `edgetpu_compiler` on the file when it is on PATH (it is not installable on every
    machine, so nothing depends on it) and reports how many operators it maps.

    Returns None when the compiler is absent, else a dict with its verdict and log.
    """
    import re
    import shutil

    compiler = shutil.which("edgetpu_compiler")
    if compiler is None:
        return None
    directory = os.path.dirname(os.path.abspath(path))
    process = subprocess.run(
        [compiler, "--show_operations", "--out_dir", directory, os.fspath(path)],
        capture_output=True, text=True,
    )
    log = process.stdout + process.stderr
    on_tpu = re.search(r"Number of operations that will run on Edge TPU:\s*(\d+)", log)
    on_cpu = re.search(r"Number of operations that will run on CPU:\s*(\d+)", log)
    return {
        "returncode": process.returncode,
        "ops_on_edgetpu": int(on_tpu.group(1)) if on_tpu else None,
        "ops_on_cpu": int(on_cpu.group(1)) if on_cpu else None,
        "compiled": os.path.splitext(os.fspath(path))[0] + "_edgetpu.tflite",
        "log": log[-4000:],
    }


def architecture_classes(model):
    from conversion.deploy import architecture, is_classifier

    return architecture(model)["classes"] if is_classifier(model) else None


# ---------------------------------------------------------------- public API


def _as_model(model_or_weights, variant):
    if isinstance(model_or_weights, keras.Model):
        return model_or_weights
    if variant is None:
        raise ValueError("Pass `variant` (XS, S, L1, L3) when exporting from weights rather than a model.")
    import keras_swiftformer
    from keras_swiftformer.models.variants import get_variant

    key, _ = get_variant(variant)
    return getattr(keras_swiftformer, f"SwiftFormer{key}")(weights=model_or_weights)


def _require_installed(module, extra, purpose):
    import importlib.util

    from keras_swiftformer.optional import MissingDependencyError

    if importlib.util.find_spec(module) is None:
        raise MissingDependencyError(
            f"`{module}` is required for {purpose} but is not installed. "
            f"Install it with: pip install 'keras-swiftformer[{extra}]'"
        )


def _run_in_tensorflow(job, model, calibration):
    """Runs `job` in a subprocess on the TensorFlow backend with the same model."""
    with tempfile.TemporaryDirectory(prefix="swiftformer-export-") as workspace:
        model_path = os.path.join(workspace, "model.keras")
        model.save(model_path)
        calibration_path = None
        if calibration is not None:
            calibration_path = os.path.join(workspace, "calibration.npy")
            np.save(calibration_path, calibration)
        spec_path = os.path.join(workspace, "job.json")
        result_path = os.path.join(workspace, "result.json")
        with open(spec_path, "w") as file:
            json.dump({**job, "model": model_path, "calibration": calibration_path, "result": result_path}, file)
        environment = dict(os.environ, KERAS_BACKEND="tensorflow")
        process = subprocess.run(
            [sys.executable, "-m", "conversion.export", spec_path],
            env=environment, capture_output=True, text=True,
        )
        if process.returncode != 0 or not os.path.exists(result_path):
            raise ExportError(
                "Export on the TensorFlow backend (subprocess) failed:\n" + process.stderr[-4000:]
            )
        with open(result_path) as file:
            result = json.load(file)
    if "error" in result:
        raise (ValueError if result["error_type"] == "ValueError" else ExportError)(result["error"])
    return result


def export_tflite(
    model_or_weights,
    path,
    quantization="float32",
    representative_data=None,
    input_size=224,
    batch_size=1,
    edgetpu=False,
    include_preprocessing=None,
    io_dtype=None,
    num_calibration=DEFAULT_CALIBRATION_IMAGES,
    variant=None,
):
    """Writes a TFLite file of a SwiftFormer classifier, verified to hold builtin ops only.

    Args:
        model_or_weights: a Keras SwiftFormer (any backend), or weights (`"imagenet"`, a path)
            together with `variant`.
        path: the `.tflite` file to write (atomically); `<name>.json` (input contract) and,
            for ImageNet models, `<name>.labels.txt` are written beside it.
        quantization: "float32", "float16", "dynamic" (int8 weights, float activations) or
            "int8" (full integer, calibrated on `representative_data`).
        representative_data: for int8: a folder of images, a tfds dataset name, a NumPy array
            or an iterable of arrays (model inputs exactly as `model.predict` takes them; raw
            [0, 255] pixels when `include_preprocessing`).
        input_size: side (or (height, width)) of the fixed input.
        batch_size: fixed batch size (1 for phones and the Edge TPU).
        edgetpu: restrict the graph to what the Edge TPU compiler maps: full int8, uint8 I/O
            and preprocessing folded in by default, GELU in its tanh form (see
            `keras_swiftformer.layers.numerics.edgetpu_gelu`). Fails if any op would not map.
        include_preprocessing: fold the ImageNet normalisation into the graph so the file
            takes RGB pixels in [0, 255]. Default: True with `edgetpu`, else False.
        io_dtype: input/output type of an int8 file: "int8" (default), "uint8" (default
            with `edgetpu`) or "float32".
        num_calibration: how many calibration images to use (default 200).

    Returns:
        A dict: path, size in bytes, the operator report, input/output details, options.
    """
    io_dtype, include_preprocessing = _check_options(
        quantization, edgetpu, io_dtype, include_preprocessing, batch_size
    )
    _require_installed("tensorflow", "export", "TFLite export (the converter is TensorFlow's)")
    if not os.fspath(path).endswith(".tflite"):
        raise ValueError(f"`path` must end in '.tflite'. Received: path={path!r}")
    model = _as_model(model_or_weights, variant)
    calibration = None
    if quantization == "int8":
        if representative_data is None:
            raise ValueError("quantization='int8' needs `representative_data` to calibrate on.")
        size = input_size if np.isscalar(input_size) else max(input_size)
        calibration = calibration_array(representative_data, num_calibration, size, include_preprocessing)
        expected = (input_size, input_size) if np.isscalar(input_size) else tuple(input_size)
        if calibration.shape[1:3] != expected:
            raise ValueError(
                f"Calibration images are {calibration.shape[1:3]} but the model input is "
                f"{expected}: resize them, or set `input_size`."
            )
        if len(calibration) < batch_size:
            raise ValueError(f"Need at least batch_size={batch_size} calibration images.")
    options = dict(quantization=quantization, input_size=input_size, batch_size=batch_size,
                   edgetpu=edgetpu, include_preprocessing=include_preprocessing, io_dtype=io_dtype)
    if keras.backend.backend() != "tensorflow":
        return _run_in_tensorflow({"format": "tflite", "path": os.fspath(path), **options}, model, calibration)
    return _export_tflite_here(model, path, calibration=calibration, **options)


def export_onnx(model_or_weights, path, input_size=224, batch_size=1, dynamic_axes=False,
                opset=17, variant=None):
    """Writes an ONNX file of a SwiftFormer classifier with tf2onnx, checked by onnxruntime.

    `dynamic_axes=True` leaves batch, height and width free (SwiftFormer runs at any size);
    otherwise the input is fixed at (batch_size, input_size, input_size, 3). Opset 17 is read
    by onnxruntime >= 1.12.
    """
    if not os.fspath(path).endswith(".onnx"):
        raise ValueError(f"`path` must end in '.onnx'. Received: path={path!r}")
    _require_installed("tensorflow", "export", "ONNX export (tf2onnx converts TensorFlow graphs)")
    _require_installed("tf2onnx", "export", "ONNX export")
    model = _as_model(model_or_weights, variant)
    options = dict(input_size=input_size, batch_size=batch_size, dynamic_axes=dynamic_axes, opset=opset)
    if keras.backend.backend() != "tensorflow":
        return _run_in_tensorflow({"format": "onnx", "path": os.fspath(path), **options}, model, None)
    return _export_onnx_here(model, path, **options)


def _export_onnx_here(model, path, input_size, batch_size, dynamic_axes, opset):
    import tensorflow as tf

    tf2onnx = require("tf2onnx", "ONNX export")
    from conversion.deploy import deploy_model

    from keras_swiftformer.layers.numerics import onnx_gelu

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
    _write_atomically(path, content)
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
    from onnx import numpy_helper

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


# ---------------------------------------------------------------- verification


def file_runner(path, threads=2):
    """A function from float32 images to float32 outputs of a .tflite (LiteRT interpreter,
    XNNPACK) or .onnx (onnxruntime) file, loaded once; int8 inputs/outputs are quantised and
    dequantised by the file's own parameters."""
    if os.fspath(path).endswith(".onnx"):
        ort = require("onnxruntime", "running ONNX files")
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        session = ort.InferenceSession(os.fspath(path), options, providers=["CPUExecutionProvider"])
        name = session.get_inputs()[0].name
        fixed = session.get_inputs()[0].shape[0]

        def run_onnx(images):
            images = np.asarray(images, "float32")
            if isinstance(fixed, int):
                return np.concatenate([session.run(None, {name: images[i : i + fixed]})[0]
                                       for i in range(0, len(images), fixed)])
            return session.run(None, {name: images})[0]

        return run_onnx
    interpreter_module = require("ai_edge_litert.interpreter", "running TFLite files")
    interpreter = interpreter_module.Interpreter(model_path=os.fspath(path), num_threads=threads)
    interpreter.allocate_tensors()
    inp = interpreter.get_input_details()[0]
    out = interpreter.get_output_details()[0]
    batch = inp["shape"][0]

    def run_tflite(images):
        images = np.asarray(images, "float32")
        outputs = []
        for start in range(0, len(images), batch):
            x = images[start : start + batch]
            if inp["dtype"] != np.float32:
                scale, zero = inp["quantization"]
                info = np.iinfo(inp["dtype"])
                x = np.clip(np.round(x / scale + zero), info.min, info.max).astype(inp["dtype"])
            interpreter.set_tensor(inp["index"], x)
            interpreter.invoke()
            y = interpreter.get_tensor(out["index"])
            if out["dtype"] != np.float32:
                scale, zero = out["quantization"]
                y = (y.astype("float32") - zero) * scale
            outputs.append(y.copy())
        return np.concatenate(outputs)

    return run_tflite


def run_file(path, images, threads=2):
    """Outputs of a .tflite or .onnx file on `images` (see `file_runner`)."""
    return file_runner(path, threads)(images)


def _folds_preprocessing(exported_file):
    sidecar = os.path.splitext(os.fspath(exported_file))[0] + ".json"
    if os.path.exists(sidecar):
        with open(sidecar) as file:
            return bool(json.load(file).get("include_preprocessing"))
    return False


def verify(exported_file, keras_model, data, threads=2, repeats=10, include_preprocessing=None):
    """Compares an exported file with the Keras model on the same images.

    `data`: model inputs as `keras_model.predict` takes them; if the file folds the
    preprocessing in (`include_preprocessing`, default: what its JSON sidecar says), `data` is
    raw [0, 255] pixels, fed as they are to the file and through `preprocess_input` to Keras.

    Returns max abs difference, cosine similarity and top-1 agreement of the logits, and the
    median latency of one sample through the file and through the Keras model.
    """
    from keras_swiftformer.preprocessing import preprocess_input

    data = np.asarray(data, "float32")
    if include_preprocessing is None:
        include_preprocessing = _folds_preprocessing(exported_file)
    keras_inputs = preprocess_input(data) if include_preprocessing else data
    reference = keras.ops.convert_to_numpy(keras_model.predict(keras_inputs, verbose=0))
    runner = file_runner(exported_file, threads)  # loaded once: latency excludes loading
    outputs = runner(data)
    flat_a, flat_b = outputs.reshape(len(data), -1), reference.reshape(len(data), -1)
    cosine = float(np.mean(np.sum(flat_a * flat_b, 1) / np.maximum(np.linalg.norm(flat_a, axis=1) * np.linalg.norm(flat_b, axis=1), 1e-30)))
    sample = data[:1]
    runner(sample)
    timings = []
    for _ in range(repeats):
        start = time.perf_counter()
        runner(sample)
        timings.append(time.perf_counter() - start)
    keras_timings = []
    keras_sample = keras_inputs[:1]
    keras_model.predict(keras_sample, verbose=0)
    for _ in range(repeats):
        start = time.perf_counter()
        keras_model.predict(keras_sample, verbose=0)
        keras_timings.append(time.perf_counter() - start)
    return {
        "max_abs_diff": float(np.abs(outputs - reference).max()),
        "cosine": cosine,
        "top1_agreement": float(np.mean(outputs.argmax(-1) == reference.argmax(-1))),
        "latency_ms": 1000 * float(np.median(timings)),
        "keras_latency_ms": 1000 * float(np.median(keras_timings)),
    }


def _worker(spec_path):
    """Subprocess entry point: runs an export job on the TensorFlow backend."""
    with open(spec_path) as file:
        job = json.load(file)
    import keras_swiftformer  # noqa: F401 - registers the layers for loading

    from conversion import deploy  # noqa: F401 - registers ImageNetNormalization

    result_path = job.pop("result")
    try:
        model = keras.saving.load_model(job.pop("model"), compile=False)
        calibration = job.pop("calibration")
        calibration = np.load(calibration) if calibration else None
        kind = job.pop("format")
        if kind == "tflite":
            result = _export_tflite_here(model, calibration=calibration, **job)
        else:
            result = _export_onnx_here(model, **job)
    except (ValueError, ExportError) as error:
        result = {"error": str(error), "error_type": type(error).__name__}
    with open(result_path, "w") as file:
        json.dump(result, file)


if __name__ == "__main__":
    _worker(sys.argv[1])
