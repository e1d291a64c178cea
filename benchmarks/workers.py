"""One benchmark job per process: `python -m benchmarks.workers JOB.json RESULT.json`.

A process runs one runtime (its Keras backend, thread pools and allocator state are then its
own), pinned to the same number of cores as every other runtime. Each result row: runtime,
variant, batch, image size, median and quartile latency (ms), peak memory.
"""

import json
import os
import sys

import numpy as np

from benchmarks.measure import pin_threads, time_call

# Each worker imports the runtime it measures inside its function, and nothing else: a process
# measuring torch eager holds no TensorFlow, one measuring JAX no torch.


def _images(batch, size, layout="nhwc"):
    images = np.random.RandomState(0).uniform(-2, 2, (batch, size, size, 3)).astype("float32")
    return images if layout == "nhwc" else np.ascontiguousarray(images.transpose(0, 3, 1, 2))


def _row(job, variant, batch, size, timing, **extra):
    return {"runtime": job["runtime"], "variant": variant, "batch": batch, "size": size, **timing, **extra}


def _cases(job):
    for variant in job["variants"]:
        for size in job["sizes"]:
            for batch in job["batch_sizes"]:
                yield variant, size, batch


# ------------------------------------------------------------------ PyTorch: the baseline


def run_torch(job):
    import torch

    from conversion.official_model import official_swiftformer

    torch.set_num_threads(job["threads"])
    attention = "mhsa" if job["runtime"].endswith("mhsa") else "additive"
    rows = []
    for variant in job["variants"]:
        model = official_swiftformer(variant, attention)
        for size in job["sizes"]:
            for batch in job["batch_sizes"]:
                x = torch.from_numpy(_images(batch, size, "nchw"))
                if job["runtime"].startswith("torch-compile"):
                    runner = torch.compile(model, dynamic=False)
                elif job["runtime"] == "ort-torch-export":
                    runner = _ort_on_torch_export(model, x, job)
                else:
                    runner = model
                if rows and job.get("max_ms") and rows[-1]["median_ms"] > job["max_ms"]:
                    # Quadratic cost: the next size would take minutes per run; say so instead.
                    rows.append({"runtime": job["runtime"], "variant": variant, "batch": batch, "size": size,
                                 "skipped": f"the previous size already took over {job['max_ms'] / 1000:.0f} s"})
                    continue
                with torch.no_grad():
                    timing = time_call(lambda runner=runner, x=x: runner(x), **job["timing"])
                rows.append(_row(job, variant, batch, size, timing))
                print(json.dumps(rows[-1]), flush=True)
    return rows


def count_macs(job):
    """GMACs per image of each variant at the benchmark size, and of L1 with additive and
    with self-attention at each sweep size (PyTorch's FlopCounterMode on the official model)."""
    from conversion.official_model import count_gmacs, official_swiftformer

    rows = [{"variant": v, "size": job["sizes"][0], "attention": "additive",
             "gmacs": count_gmacs(official_swiftformer(v), job["sizes"][0])} for v in job["variants"]]
    for attention in ("additive", "mhsa"):
        model = official_swiftformer(job["sweep_variant"], attention)
        for size in job["sweep_sizes"]:
            rows.append({"variant": job["sweep_variant"], "size": size, "attention": attention,
                         "gmacs": count_gmacs(model, size)})
    return rows


def _ort_on_torch_export(model, x, job):
    """What a PyTorch user deploying on CPU runs: torch.onnx.export + ONNX Runtime."""
    import torch

    path = os.path.join(job["cache"], f"torch_{model.config.embed_dims[-1]}_{tuple(x.shape)}.onnx")
    from keras_swiftformer.io import atomic_path

    if not os.path.exists(path):
        with torch.no_grad(), atomic_path(path) as temporary:
            # The TorchScript exporter: the dynamo one needs onnxscript, which no other part uses.
            torch.onnx.export(model, (x,), temporary, dynamo=False, input_names=["pixel_values"],
                              output_names=["logits"], opset_version=17)
    return _file_call(path, x.numpy(), job["threads"])


def _file_call(path, x, threads):
    """The call to time for an exported file: the runtime's invoke on a prepared input."""
    from keras_swiftformer.export.runtime import ONNXRuntime, TFLiteRuntime

    # Idle ONNX Runtime threads spin by default and would steal the next runtime's cores.
    runtime = ONNXRuntime(path, threads, spinning=False) if path.endswith(".onnx") else TFLiteRuntime(path, threads)
    prepared = runtime.prepare(x)
    return lambda *_: runtime.invoke(prepared)


# ------------------------------------------------------------------ Keras on its three backends


def _keras_model(variant):
    from keras_swiftformer.models import build_variant

    return build_variant(variant, weights=None)


def _keras_runner(model, x, runtime):
    import keras

    backend = keras.backend.backend()
    if backend == "tensorflow":
        import tensorflow as tf

        function = tf.function(lambda t: model(t, training=False), jit_compile=runtime.endswith("xla"),
                               reduce_retracing=True)
        tensor = tf.constant(x)
        return lambda: function(tensor).numpy()
    if backend == "jax":
        import jax

        trainable = [v.value for v in model.trainable_variables]
        frozen = [v.value for v in model.non_trainable_variables]

        @jax.jit
        def forward(trainable, frozen, images):
            return model.stateless_call(trainable, frozen, images, training=False)[0]

        tensor = jax.numpy.asarray(x)
        return lambda: forward(trainable, frozen, tensor).block_until_ready()
    import torch

    tensor = torch.from_numpy(x)

    def call():
        with torch.no_grad():
            return model(tensor, training=False)

    return call


def run_keras(job):
    import keras

    if keras.backend.backend() == "tensorflow":
        import tensorflow as tf

        tf.config.threading.set_intra_op_parallelism_threads(job["threads"])
        tf.config.threading.set_inter_op_parallelism_threads(1)
    elif keras.backend.backend() == "torch":
        import torch

        torch.set_num_threads(job["threads"])
    rows = []
    for variant in job["variants"]:
        model = _keras_model(variant)
        for size in job["sizes"]:
            for batch in job["batch_sizes"]:
                runner = _keras_runner(model, _images(batch, size), job["runtime"])
                rows.append(_row(job, variant, batch, size, time_call(runner, **job["timing"])))
                print(json.dumps(rows[-1]), flush=True)
    return rows


# ------------------------------------------------------------------ our exported files


def export_files(job):
    """TFLite float32/int8 and ONNX files of each variant (TensorFlow backend), cached."""
    from keras_swiftformer.export import export_onnx, export_tflite

    written = {}
    calibration = _images(8, job["sizes"][0])
    for variant in job["variants"]:
        model = None
        for kind in job["kinds"]:
            path = os.path.join(job["cache"], f"swiftformer_{variant.lower()}_{job['sizes'][0]}_{kind}")
            path += ".onnx" if kind == "onnx" else ".tflite"
            if not os.path.exists(path):
                model = model or _keras_model(variant)
                if kind == "onnx":
                    export_onnx(model, path, input_size=job["sizes"][0])
                else:
                    # The raw files (normalised inputs, logits): the runtimes compared here all
                    # run the same graph on the same normalised images.
                    export_tflite(model, path, quantization=kind, input_size=job["sizes"][0],
                                  representative_data=calibration if kind == "int8" else None,
                                  num_calibration=len(calibration), include_preprocessing=False,
                                  probabilities=False)
            written[f"{variant}/{kind}"] = path
    return [written]


def run_files(job):
    rows = []
    for variant in job["variants"]:
        path = job["files"][f"{variant}/{job['kind']}"]
        for size in job["sizes"]:
            runner = _file_call(path, _images(1, size), job["threads"])
            rows.append(_row(job, variant, 1, size, time_call(runner, **job["timing"]),
                             file_mb=os.path.getsize(path) / 1e6))
            print(json.dumps(rows[-1]), flush=True)
    return rows


RUNNERS = {"macs": count_macs, "torch": run_torch, "keras": run_keras, "export": export_files, "files": run_files}


def main(job_path, result_path):
    with open(job_path) as file:
        job = json.load(file)
    pin_threads(job["threads"])
    rows = RUNNERS[job["worker"]](job)
    # Read by the parent only after this process has exited successfully.
    with open(result_path, "w") as file:
        json.dump(rows, file)


if __name__ == "__main__":
    main(*sys.argv[1:3])
