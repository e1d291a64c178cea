"""Subprocess entry point of `tensorflow_process.run_in_tensorflow`: runs one export job on
the TensorFlow backend. `python -m keras_swiftformer.export.tensorflow_worker JOB.json`."""

import json
import sys

import keras
import numpy as np

import keras_swiftformer.models  # noqa: F401 - registers the model classes for loading
from keras_swiftformer.export.errors import ExportError
from keras_swiftformer.export.onnx import export_onnx_here
from keras_swiftformer.export.tflite import export_tflite_here


def main(spec_path):
    """Reads the job, exports, and writes the result (or the error) where the job says."""
    with open(spec_path) as file:
        job = json.load(file)
    result_path = job.pop("result")
    try:
        model = keras.saving.load_model(job.pop("model"), compile=False)
        calibration = job.pop("calibration")
        calibration = np.load(calibration) if calibration else None
        kind = job.pop("format")
        if kind == "tflite":
            result = export_tflite_here(model, calibration=calibration, **job)
        else:
            result = export_onnx_here(model, **job)
    except (ValueError, ExportError) as error:
        result = {"error": str(error), "error_type": type(error).__name__}
    with open(result_path, "w") as file:
        json.dump(result, file)


if __name__ == "__main__":
    main(sys.argv[1])
