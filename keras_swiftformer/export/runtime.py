"""Running exported files, and checking them against the Keras model they came from.

`load_runtime` is the one wrapper for exported files that the library, the tests, the examples
and the benchmarks share: a `.tflite` file through LiteRT's interpreter (XNNPACK), an `.onnx`
file through ONNX Runtime, loaded once, with the file's own quantisation applied to integer
inputs and outputs.
"""

import json
import os
import time

import keras
import numpy as np

from keras_swiftformer.optional import require
from keras_swiftformer.preprocessing import preprocess_input


class TFLiteRuntime:
    """A `.tflite` file in LiteRT's interpreter (XNNPACK, `threads` threads)."""

    def __init__(self, path, threads=2):
        interpreter_module = require("ai_edge_litert.interpreter", "running TFLite files")
        self.interpreter = interpreter_module.Interpreter(model_path=os.fspath(path), num_threads=threads)
        self.interpreter.allocate_tensors()
        self.input = self.interpreter.get_input_details()[0]
        self.output = self.interpreter.get_output_details()[0]
        self.batch = int(self.input["shape"][0])

    def prepare(self, images):
        """float32 model inputs -> what the file's input takes (quantised by its parameters)."""
        images = np.asarray(images, "float32")
        if self.input["dtype"] == np.float32:
            return images
        scale, zero = self.input["quantization"]
        info = np.iinfo(self.input["dtype"])
        return np.clip(np.round(images / scale + zero), info.min, info.max).astype(self.input["dtype"])

    def invoke(self, prepared):
        """One batch of prepared inputs -> the file's raw output."""
        self.interpreter.set_tensor(self.input["index"], prepared)
        self.interpreter.invoke()
        return self.interpreter.get_tensor(self.output["index"])

    def dequantize(self, raw):
        if self.output["dtype"] == np.float32:
            return raw.copy()
        scale, zero = self.output["quantization"]
        return (raw.astype("float32") - zero) * scale

    def run(self, images):
        """float32 inputs of any batch size -> float32 outputs."""
        prepared = self.prepare(images)
        return np.concatenate([
            self.dequantize(self.invoke(prepared[start : start + self.batch]))
            for start in range(0, len(prepared), self.batch)
        ])


class ONNXRuntime:
    """An `.onnx` file in ONNX Runtime's CPU provider with every graph optimisation.

    `spinning=False` stops idle worker threads from spinning, for a process that shares its
    cores with others; a process that runs alone is fastest with the default.
    """

    def __init__(self, path, threads=2, spinning=True, profile_prefix=None):
        ort = require("onnxruntime", "running ONNX files")
        options = ort.SessionOptions()
        if profile_prefix:  # ONNX Runtime's per-node timer, written by `end_profiling`
            options.enable_profiling = True
            options.profile_file_prefix = os.fspath(profile_prefix)
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        if not spinning:
            options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        self.session = ort.InferenceSession(os.fspath(path), options, providers=["CPUExecutionProvider"])
        self.name = self.session.get_inputs()[0].name
        fixed = self.session.get_inputs()[0].shape[0]
        self.batch = fixed if isinstance(fixed, int) else None

    def prepare(self, images):
        return np.asarray(images, "float32")

    def end_profiling(self):
        """The profile's JSON file (Chrome trace events), for a session made with `profile_prefix`."""
        return self.session.end_profiling()

    def invoke(self, prepared):
        return self.session.run(None, {self.name: prepared})[0]

    def run(self, images):
        prepared = self.prepare(images)
        if self.batch is None:
            return self.invoke(prepared)
        return np.concatenate([
            self.invoke(prepared[start : start + self.batch])
            for start in range(0, len(prepared), self.batch)
        ])


def load_runtime(path, threads=2, spinning=True):
    """The runtime for an exported `.tflite` or `.onnx` file, loaded once."""
    path = os.fspath(path)
    if path.endswith(".onnx"):
        return ONNXRuntime(path, threads, spinning)
    if path.endswith(".tflite"):
        return TFLiteRuntime(path, threads)
    raise ValueError(f"Expected a .tflite or .onnx file. Received: path={path!r}")


def file_runner(path, threads=2):
    """A function from float32 images to float32 outputs of a `.tflite` or `.onnx` file."""
    return load_runtime(path, threads).run


def run_file(path, images, threads=2):
    """Outputs of a `.tflite` or `.onnx` file on `images` (see `load_runtime`)."""
    return file_runner(path, threads)(images)


def _contract(exported_file):
    """A `.tflite` file's JSON sidecar ({} when there is none; ONNX files have none, and a
    `model.json` beside `model.onnx` belongs to a `model.tflite`)."""
    sidecar = os.path.splitext(os.fspath(exported_file))[0] + ".json"
    if os.fspath(exported_file).endswith(".tflite") and os.path.exists(sidecar):
        with open(sidecar) as file:
            return json.load(file)
    return {}


def softmax(logits, axis=-1):
    logits = np.asarray(logits, "float32")
    exponentials = np.exp(logits - logits.max(axis=axis, keepdims=True))
    return exponentials / exponentials.sum(axis=axis, keepdims=True)


def verify(exported_file, keras_model, data, threads=2, repeats=10, include_preprocessing=None,
           probabilities=None):
    """Compares an exported file with the Keras model on the same images, like with like.

    `data`: model inputs as `keras_model.predict` takes them; if the file folds the
    preprocessing in (`include_preprocessing`, default: what its JSON sidecar says), `data` is
    raw [0, 255] pixels, fed as they are to the file and through `preprocess_input` to Keras.
    If the file ends in a softmax that the Keras model does not have (`probabilities`, default:
    what the sidecar says, as `export_tflite` writes by default), Keras' logits go through a
    softmax before the comparison.

    Returns max abs difference, cosine similarity and top-1 agreement of the outputs
    (probabilities or logits, as the file gives), whether they are probabilities, Keras' mean
    top score, and the median latency of one sample through the file and through the Keras
    model.
    """
    data = np.asarray(data, "float32")
    contract = _contract(exported_file)
    if include_preprocessing is None:
        include_preprocessing = bool(contract.get("include_preprocessing"))
    if probabilities is None:
        probabilities = bool(contract.get("softmax_added"))
    keras_inputs = preprocess_input(data) if include_preprocessing else data
    reference = keras.ops.convert_to_numpy(keras_model.predict(keras_inputs, verbose=0))
    if probabilities:
        reference = softmax(reference)
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
        "keras_top_score": float(reference.reshape(len(data), -1).max(-1).mean()),
        "probabilities": bool(probabilities or contract.get("probabilities")),
        "latency_ms": 1000 * float(np.median(timings)),
        "keras_latency_ms": 1000 * float(np.median(keras_timings)),
    }
