"""Keras SwiftFormer -> TFLite: float32, float16, dynamic-range, full int8 and Edge TPU.

The file is checked as it is written: builtin operators only, no float operator left in a
full-integer graph, every operator mappable by the Edge TPU compiler for `edgetpu=True`.
Classifiers and segmenters carry standard TFLite metadata with their labels packed in
(`metadata`), so MediaPipe Tasks runs them as they are; a JSON input contract (and a label
file, when the classes have names) is also written beside the file.

Phone-facing defaults: the ImageNet normalisation is folded in (RGB pixels in [0, 255] go in),
a full-int8 file takes and gives uint8, and a classifier ends in a softmax (probabilities).
"""

import os
import re
import shutil
import subprocess

import keras
import numpy as np

from keras_swiftformer.export.calibration import DEFAULT_CALIBRATION_IMAGES, calibration_array
from keras_swiftformer.export.deploy import (
    appends_softmax,
    architecture_classes,
    as_model,
    deploy_model,
    export_input_size,
    segmenter_classes,
)
from keras_swiftformer.export.errors import ExportError
from keras_swiftformer.export.metadata import LABELS_FILE, add_metadata, image_model_metadata
from keras_swiftformer.export.report import io_details, op_report, resize_operators
from keras_swiftformer.export.tensorflow_process import run_in_tensorflow
from keras_swiftformer.io import write_bytes, write_json
from keras_swiftformer.layers.numerics import edgetpu_gelu
from keras_swiftformer.optional import require, require_installed
from keras_swiftformer.preprocessing import IMAGENET_MEAN, IMAGENET_STD, imagenet_classes

QUANTIZATIONS = ("float32", "float16", "dynamic", "int8")


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
        # uint8 for full int8: MediaPipe, Coral and most Android code take uint8 images.
        io_dtype = "uint8" if quantization == "int8" else "float32"
    if include_preprocessing is None:
        include_preprocessing = True
    if quantization == "int8" and io_dtype not in ("int8", "uint8", "float32"):
        raise ValueError(f"`io_dtype` for int8 must be int8, uint8 or float32. Received: {io_dtype!r}")
    if quantization != "int8" and io_dtype != "float32":
        raise ValueError(f"`io_dtype={io_dtype!r}` needs quantization='int8'.")
    return io_dtype, include_preprocessing


def _frozen_function(model, input_shape, edgetpu):
    tf = require("tensorflow", "TFLite export", extra="export")
    convert_to_constants = require(
        "tensorflow.python.framework.convert_to_constants", "TFLite export", extra="export"
    )
    convert_variables_to_constants_v2 = convert_to_constants.convert_variables_to_constants_v2

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
    tf = require("tensorflow", "TFLite export", extra="export")

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


def _label_names(classes, class_names):
    """`class_names` (a fine-tuned model's), else ImageNet's for a 1000-class classifier."""
    if class_names is None and classes == 1000:
        class_names = [names.split(",")[0] for _, names in imagenet_classes()]
    return class_names


def _sidecar(path, model_name, details, options, classes, class_names=None):
    """labels.txt + JSON input contract next to the file, for runtimes that do not read the
    file's metadata (the Coral example, a plain LiteRT Interpreter)."""
    base = os.path.splitext(os.fspath(path))[0]
    labels = None
    if class_names is not None:
        labels = base + ".labels.txt"
        write_bytes(labels, "".join(f"{name}\n" for name in class_names).encode())
    contract = {
        "model": model_name,
        **options,
        "input": details["inputs"][0],
        "output": details["outputs"][0],
        **({"outputs": details["outputs"]} if len(details["outputs"]) > 1 else {}),
        "task": "classification" if classes else "dense (segmentation logits or feature maps)",
        "scores": "probabilities (softmax in the file)" if options.get("probabilities") else "logits",
        "pixels": "RGB, channels last, official evaluation transform (shorter side to "
        "int(256/224*size) bicubic, centre crop)" if classes else
        "RGB, channels last, resized (aspect ratio kept) and padded to the input size",
        "normalization": "built into the model: feed pixels in [0, 255]"
        if options["include_preprocessing"]
        else {"mean": [m * 255 for m in IMAGENET_MEAN], "std": [s * 255 for s in IMAGENET_STD],
              "formula": "(pixel - mean) / std"},
        "labels": os.path.basename(labels) if labels else None,
    }
    write_json(base + ".json", contract)
    return base + ".json"


def _pin_input_range(calibration):
    """A copy of folded-preprocessing calibration pixels whose range is exactly [0, 255], so a
    uint8 input is quantised with scale 1 and zero point 0: MediaPipe (and most Android code)
    feeds the image's bytes as they are, without requantising them."""
    calibration = np.array(calibration, "float32", copy=True)
    calibration.reshape(-1)[:2] = (0.0, 255.0)
    return calibration


def _with_metadata(content, model, options, classes, class_names):
    """The file with TFLite metadata (classifiers and segmenters; backbones have no task)."""
    segmenter = segmenter_classes(model)
    if classes is None and segmenter is None:
        return content
    input_size = options["input_size"]
    size = (input_size, input_size) if np.isscalar(input_size) else tuple(input_size)
    if options["include_preprocessing"]:
        mean, std = [0.0], [1.0]  # pixels as they are; the ImageNet normalisation is in the graph
    else:
        mean, std = [m * 255 for m in IMAGENET_MEAN], [s * 255 for s in IMAGENET_STD]
    task = "classifier" if classes else "segmenter"
    what = (f"image classifier ({classes} classes)" if classes
            else f"semantic segmenter ({segmenter} classes, per-pixel logits)")
    description = (
        f"SwiftFormer {what}, exported by keras-swiftformer ({options['quantization']}"
        f"{', Edge TPU' if options['edgetpu'] else ''}). Input: RGB pixels in [0, 255]"
        + (" (ImageNet normalisation folded in)" if options["include_preprocessing"] else
           ", normalised per channel with ImageNet's mean and std") + "."
    )
    metadata = image_model_metadata(
        task, model.name, description, size, mean, std, labels=class_names,
        probabilities=options["probabilities"] if classes else True,
    )
    files = {LABELS_FILE: "".join(f"{name}\n" for name in class_names).encode()} if class_names else None
    return add_metadata(content, metadata, files)


def export_tflite_here(model, path, quantization, calibration, input_size, batch_size,
                       edgetpu, include_preprocessing, io_dtype, class_names=None, probabilities=True):
    """`export_tflite` on the TensorFlow backend, in this process."""
    classes = architecture_classes(model)
    deployed = deploy_model(model, input_size, batch_size, include_preprocessing, probabilities=probabilities)
    input_shape = tuple(deployed.inputs[0].shape)
    if quantization == "int8" and include_preprocessing:
        calibration = _pin_input_range(calibration)
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
    details = io_details(content)
    options = {"quantization": quantization, "edgetpu": edgetpu,
               "include_preprocessing": include_preprocessing, "io_dtype": io_dtype,
               # what the file's scores are, and whether they are a softmax that Keras' are not
               "probabilities": bool(classes is not None and (probabilities or not appends_softmax(model))),
               "softmax_added": bool(probabilities and appends_softmax(model))}
    class_names = _label_names(classes, class_names)
    content = _with_metadata(content, model, {**options, "input_size": input_size}, classes, class_names)
    write_bytes(path, content)
    sidecar = _sidecar(path, model.name, details, options, classes, class_names)
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


def export_tflite(
    model_or_weights,
    path,
    quantization="float32",
    representative_data=None,
    input_size=None,
    batch_size=1,
    edgetpu=False,
    include_preprocessing=None,
    io_dtype=None,
    num_calibration=DEFAULT_CALIBRATION_IMAGES,
    variant=None,
    class_names=None,
    probabilities=True,
):
    """Writes a TFLite file of a SwiftFormer classifier, verified to hold builtin ops only.

    Args:
        model_or_weights: a Keras SwiftFormer (any backend), or weights: a weights file (its
            variant, class names and trained side are read from it) or `"imagenet"` with
            `variant`.
        path: the `.tflite` file to write (atomically). Classifiers and segmenters carry TFLite
            metadata (input normalisation, labels packed in) that MediaPipe Tasks reads;
            `<name>.json` (input contract) and, when the classes have names,
            `<name>.labels.txt` are written beside it.
        quantization: "float32", "float16", "dynamic" (int8 weights, float activations) or
            "int8" (full integer, calibrated on `representative_data`).
        representative_data: for int8: a folder of images, a tfds dataset name, a NumPy array
            or an iterable of arrays (model inputs exactly as `model.predict` takes them; raw
            [0, 255] pixels when `include_preprocessing`).
        input_size: side (or (height, width)) of the fixed input; default: the model's own
            fixed input size, else 224.
        batch_size: fixed batch size (1 for phones and the Edge TPU).
        edgetpu: restrict the graph to what the Edge TPU compiler maps: full int8, uint8 I/O,
            GELU in its tanh form (see `keras_swiftformer.layers.numerics.edgetpu_gelu`), the
            softmax as SOFTMAX (which it maps). Fails if any op would not map.
        include_preprocessing: fold the ImageNet normalisation into the graph so the file
            takes RGB pixels in [0, 255] (default: True; False: ImageNet-normalised inputs,
            which MediaPipe cannot describe: it has no per-channel normalisation).
        io_dtype: input/output type of an int8 file: "uint8" (default: what MediaPipe, Coral
            and Android code take), "int8" or "float32".
        num_calibration: how many calibration images to use (default 200).
        class_names: the class names, one per class (a fine-tuned model's, or a segmenter's):
            packed into the file's metadata and written to `<name>.labels.txt`; default:
            ImageNet's for a 1000-class classifier, else none.
        probabilities: a classifier's file ends in a softmax, so its scores are probabilities
            (default; what MediaPipe's ImageClassifier reports as scores). False: raw logits.

    Returns:
        A dict: path, size in bytes, the operator report, input/output details, options.
    """
    io_dtype, include_preprocessing = _check_options(
        quantization, edgetpu, io_dtype, include_preprocessing, batch_size
    )
    require_installed("tensorflow", "TFLite export (the converter is TensorFlow's)", extra="export")
    if not os.fspath(path).endswith(".tflite"):
        raise ValueError(f"`path` must end in '.tflite'. Received: path={path!r}")
    model, recorded_names, trained_size = as_model(model_or_weights, variant)
    input_size = export_input_size(model, trained_size if input_size is None else input_size)
    class_names = recorded_names if class_names is None else class_names
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
    classes = architecture_classes(model) or segmenter_classes(model)
    if class_names is not None:
        class_names = [str(name) for name in class_names]
        if classes is None:
            raise ValueError("`class_names` applies to classifiers and segmenters, not to backbones.")
        if len(class_names) != classes:
            raise ValueError(
                f"`class_names` must name each of the model's {classes} classes. "
                f"Received: {len(class_names)} names"
            )
    options = dict(quantization=quantization, input_size=input_size, batch_size=batch_size,
                   edgetpu=edgetpu, include_preprocessing=include_preprocessing, io_dtype=io_dtype,
                   probabilities=bool(probabilities))
    if keras.backend.backend() != "tensorflow":
        return run_in_tensorflow({"format": "tflite", "path": os.fspath(path), "class_names": class_names, **options},
                                 model, calibration)
    return export_tflite_here(model, path, calibration=calibration, class_names=class_names, **options)
