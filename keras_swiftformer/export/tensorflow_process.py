"""Export needs TensorFlow graphs: on the JAX or PyTorch backend the model is saved to a
temporary `.keras` file and rebuilt in a subprocess with `KERAS_BACKEND=tensorflow` (same
configuration, same weights), which writes the file (`tensorflow_worker`); nothing changes for
the caller."""

import json
import os
import subprocess
import sys
import tempfile

import numpy as np

from keras_swiftformer.export.errors import ExportError

WORKER_MODULE = "keras_swiftformer.export.tensorflow_worker"


def run_in_tensorflow(job, model, calibration):
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
            [sys.executable, "-m", WORKER_MODULE, spec_path],
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
