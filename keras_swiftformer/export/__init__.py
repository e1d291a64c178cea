"""Export to TFLite (float32, float16, dynamic-range, full int8, Edge TPU) and ONNX, verified.

One module per concern: `deploy` (the inference-only model that is exported), `calibration`
(images for int8), `tflite`, `metadata` (the TFLite metadata MediaPipe Tasks reads, with
`metadata_schema` its vendored flatbuffer schema), `onnx`, `report` (what a `.tflite` file holds), `runtime`
(running exported files and comparing them with Keras), `tensorflow_process` and
`tensorflow_worker` (exporting from the JAX and PyTorch backends through a TensorFlow
subprocess).
"""

from keras_swiftformer.export.calibration import DEFAULT_CALIBRATION_IMAGES, calibration_array
from keras_swiftformer.export.deploy import ImageNetNormalization, deploy_model, export_input_size
from keras_swiftformer.export.errors import ExportError
from keras_swiftformer.export.metadata import add_metadata, associated_files, image_model_metadata, read_metadata
from keras_swiftformer.export.onnx import export_onnx
from keras_swiftformer.export.report import format_report, io_details, op_report
from keras_swiftformer.export.runtime import file_runner, load_runtime, run_file, verify
from keras_swiftformer.export.tflite import QUANTIZATIONS, export_tflite, run_edgetpu_compiler

__all__ = [
    "DEFAULT_CALIBRATION_IMAGES",
    "ExportError",
    "ImageNetNormalization",
    "QUANTIZATIONS",
    "add_metadata",
    "associated_files",
    "calibration_array",
    "deploy_model",
    "export_onnx",
    "export_input_size",
    "export_tflite",
    "file_runner",
    "format_report",
    "image_model_metadata",
    "io_details",
    "load_runtime",
    "op_report",
    "read_metadata",
    "run_edgetpu_compiler",
    "run_file",
    "verify",
]
