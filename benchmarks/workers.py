"""One benchmark job per process: `python -m benchmarks.workers JOB.json RESULT.json`.

A process runs one runtime (its Keras backend, thread pools and allocator state are then its
own), pinned to the same number of cores as every other runtime. Each result row: runtime,
variant, batch, image size, threads, median and quartile latency (ms), memory.
"""

import json
import os
import sys
import time

import numpy as np

from benchmarks.measure import pin_threads, sgemm_peak_gflops, time_call

# Each worker imports the runtime it measures inside its function, and nothing else: a process
# measuring torch eager holds no TensorFlow, one measuring JAX no torch.


def _images(batch, size, layout="nhwc"):
    images = np.random.RandomState(0).uniform(-2, 2, (batch, size, size, 3)).astype("float32")
    return images if layout == "nhwc" else np.ascontiguousarray(images.transpose(0, 3, 1, 2))


def _row(job, variant, batch, size, timing, **extra):
    return {"runtime": job["runtime"], "variant": variant, "batch": batch, "size": size,
            "threads": job["threads"], "round": job.get("round", 0), **timing, **extra}


def _emit(rows, row):
    rows.append(row)
    print(json.dumps(row), flush=True)


# ------------------------------------------------------------------ PyTorch: the peers

# The official model as a PyTorch user would run it at its best on a CPU:
# * eager in `inference_mode`, NCHW (contiguous) or channels_last memory;
# * torch.compile with inductor's freezing (folds BatchNorm into the convolutions, prepacks the
#   weights for oneDNN), default mode or max-autotune (which also benchmarks GEMM templates);
# * ONNX Runtime on its `torch.onnx.export`, all graph optimisations, threads spinning (the
#   process runs alone: spinning is what ORT does by default and is fastest then).
TORCH_PEERS = ("torch-eager", "torch-eager-channels-last", "torch-compile", "torch-compile-max-autotune",
               "ort-torch-export", "torch-eager-mhsa")


def torch_compile_frozen(model, mode=None):
    """`torch.compile` with inductor's freezing: BatchNorm folded, weights prepacked."""
    import torch
    import torch._inductor.config as inductor

    inductor.freezing = True
    return torch.compile(model, dynamic=False, mode=mode)


def official_torch_call(variant, images, compile_torch=False):
    """A call of the official model (NCHW, `inference_mode`) on NHWC `images`, eager or
    compiled as the benchmark's rows run it."""
    import torch

    from conversion.official_model import official_swiftformer

    model = official_swiftformer(variant)
    tensor = torch.from_numpy(np.ascontiguousarray(images.transpose(0, 3, 1, 2)))
    run = torch_compile_frozen(model) if compile_torch else model

    def call():
        with torch.inference_mode():
            return run(tensor)

    return call


def _torch_runner(model, x, job):
    import torch

    runtime = job["runtime"]
    if runtime.startswith("torch-compile"):
        mode = "max-autotune" if runtime.endswith("max-autotune") else None
        compiled = torch_compile_frozen(model, mode)
        return lambda: compiled(x)
    if runtime == "ort-torch-export":
        return _ort_on_torch_export(model, x, job)
    if runtime == "torch-eager-channels-last":
        model = model.to(memory_format=torch.channels_last)
        x = x.contiguous(memory_format=torch.channels_last)
    return lambda: model(x)


def prepare_torch(job):
    """The cases of a PyTorch job: (variant, batch, size, runner, extra) for each, compiled
    or exported on creation (see `measure_cases`)."""
    import torch

    from conversion.official_model import official_swiftformer

    torch.set_num_threads(job["threads"])
    attention = "mhsa" if job["runtime"].endswith("mhsa") else "additive"
    for variant in job["variants"]:
        model = official_swiftformer(variant, attention)
        weights_mb = sum(p.numel() * p.element_size() for p in model.parameters()) / 2**20
        for size in job["sizes"]:
            for batch in job["batch_sizes"]:
                x = torch.from_numpy(_images(batch, size, "nchw"))
                with torch.inference_mode():
                    runner = _torch_runner(model, x, job)

                def call(runner=runner):
                    with torch.inference_mode():
                        return runner()

                yield variant, batch, size, call, {"weights_mb": weights_mb}


def count_macs(job):
    """GMACs per image of each variant at the benchmark size, and of the sweep variant with
    additive and with self-attention at each sweep size (PyTorch's FlopCounterMode)."""
    from conversion.official_model import count_gmacs, official_swiftformer

    rows = [{"variant": v, "size": job["sizes"][0], "attention": "additive",
             "gmacs": count_gmacs(official_swiftformer(v), job["sizes"][0])} for v in job["variants"]]
    for attention in ("additive", "mhsa"):
        if not job["sweep_sizes"]:
            break
        model = official_swiftformer(job["sweep_variant"], attention)
        for size in job["sweep_sizes"]:
            rows.append({"variant": job["sweep_variant"], "size": size, "attention": attention,
                         "gmacs": count_gmacs(model, size)})
    return rows


def measure_sgemm(job):
    return [{"sgemm_gflops": sgemm_peak_gflops(job["threads"]), "threads": job["threads"]}]


def torch_onnx_file(model, x, cache):
    """The official model's `torch.onnx.export` at the shape of `x`, kept in `cache`."""
    import torch

    from keras_swiftformer.io import atomic_path

    path = os.path.join(cache, f"torch_{model.config.embed_dims[-1]}_{model.config.depths[-1]}_{tuple(x.shape)}.onnx")
    if not os.path.exists(path):
        with torch.no_grad(), atomic_path(path) as temporary:
            # The TorchScript exporter: the dynamo one needs onnxscript, which no other part uses.
            torch.onnx.export(model, (x,), temporary, dynamo=False, input_names=["pixel_values"],
                              output_names=["logits"], opset_version=17)
    return path


def official_onnx_file(variant, size, cache):
    """The official model's `torch.onnx.export` of `variant` (random weights) at batch 1."""
    import torch

    from conversion.official_model import official_swiftformer

    return torch_onnx_file(official_swiftformer(variant), torch.zeros(1, 3, size, size), cache)


def _ort_on_torch_export(model, x, job):
    """What a PyTorch user deploying on CPU runs: torch.onnx.export + ONNX Runtime."""
    return _file_call(torch_onnx_file(model, x, job["peer_cache"]), x.numpy(), job["threads"])


def _file_call(path, x, threads):
    """The call to time for an exported file: the runtime's invoke on a prepared input."""
    from keras_swiftformer.export.runtime import ONNXRuntime, TFLiteRuntime

    # Each runtime runs alone in its process: ONNX Runtime's default spinning threads are its
    # fastest setting then.
    runtime = ONNXRuntime(path, threads, spinning=True) if path.endswith(".onnx") else TFLiteRuntime(path, threads)
    prepared = runtime.prepare(x)
    return lambda *_: runtime.invoke(prepared)


# ------------------------------------------------------------------ Keras on its three backends


def _keras_model(variant):
    """The model a user serves: the variant in its inference form (BatchNorm, layer scales and
    the two heads folded into the weights; `keras_swiftformer.inference_model`)."""
    from keras_swiftformer.models import build_variant
    from keras_swiftformer.models.inference import inference_model

    return inference_model(build_variant(variant, weights=None))


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
    call = model
    if runtime.endswith("compile"):
        import torch._inductor.config as inductor

        # The official model's torch.compile row has freezing on; the same setting here.
        inductor.freezing = True
        call = torch.compile(model, dynamic=False)

    def run():
        with torch.inference_mode():
            return call(tensor, training=False)

    return run


def prepare_keras(job):
    import keras

    if keras.backend.backend() == "tensorflow":
        import tensorflow as tf

        tf.config.threading.set_intra_op_parallelism_threads(job["threads"])
        tf.config.threading.set_inter_op_parallelism_threads(1)
    elif keras.backend.backend() == "torch":
        import torch

        torch.set_num_threads(job["threads"])
    for variant in job["variants"]:
        model = _keras_model(variant)
        weights_mb = sum(int(np.prod(v.shape)) * 4 for v in model.weights) / 2**20
        for size in job["sizes"]:
            for batch in job["batch_sizes"]:
                yield variant, batch, size, _keras_runner(model, _images(batch, size), job["runtime"]), \
                    {"weights_mb": weights_mb}


# ------------------------------------------------------------------ our exported files


def export_files(job):
    """TFLite float32/int8 and ONNX files of each variant (TensorFlow backend) at each size,
    cached under a key of the library's code and the converters' versions (see
    `benchmarks.__main__`). Returns {"VARIANT/KIND/SIZE": path, "errors": {key: message}}: a
    file that fails to export costs its own rows only."""
    from keras_swiftformer.export import export_onnx, export_tflite
    from keras_swiftformer.models import build_variant

    written, errors = {}, {}
    for variant in job["variants"]:
        model = None
        for size in job["sizes"]:
            for kind in job["kinds"]:
                key = f"{variant}/{kind}/{size}"
                path = os.path.join(job["cache"], f"swiftformer_{variant.lower()}_{size}_{kind}")
                path += ".onnx" if kind == "onnx" else ".tflite"
                try:
                    if not os.path.exists(path):
                        model = model or build_variant(variant, weights=None)
                        if kind == "onnx":
                            export_onnx(model, path, input_size=size)
                        else:
                            # The raw files (normalised inputs, logits): the runtimes compared
                            # here all run the same graph on the same normalised images.
                            calibration = _images(8, size) if kind == "int8" else None
                            export_tflite(model, path, quantization=kind, input_size=size,
                                          representative_data=calibration, num_calibration=8,
                                          include_preprocessing=False, probabilities=False)
                except Exception as error:  # noqa: BLE001 - reported in the row, the run goes on
                    errors[key] = f"{type(error).__name__}: {error}"[-2000:]
                    continue
                written[key] = path
    return [{**written, "errors": errors}]


def prepare_files(job):
    for variant in job["variants"]:
        for size in job["sizes"]:
            path = job["files"][f"{variant}/{job['kind']}/{size}"]
            yield variant, 1, size, _file_call(path, _images(1, size), job["threads"]), \
                {"weights_mb": os.path.getsize(path) / 2**20}


# ------------------------------------------------------------------ measuring prepared cases

PREPARERS = {"torch": prepare_torch, "keras": prepare_keras, "files": prepare_files}


def prepare(job):
    """Every case of an inference job, each warmed up once (which compiles the jit runtimes)."""
    cases = []
    for variant, batch, size, runner, extra in PREPARERS[job["worker"]](job):
        if job.get("max_ms") and cases and cases[-1][4].get("first_ms", 0) > job["max_ms"]:
            # Quadratic cost (self-attention in the sweep): the next size would take minutes
            # per run; say so instead.
            cases.append((variant, batch, size, None, {"skipped": f"the previous size already took over "
                                                                   f"{job['max_ms'] / 1000:.0f} s"}))
            continue
        begin = time.perf_counter()
        runner()
        cases.append((variant, batch, size, runner, {**extra, "first_ms": (time.perf_counter() - begin) * 1000}))
    return cases


def measure_cases(job, cases, round_index=0):
    """One timed measurement of every prepared case: the rows of one round."""
    rows = []
    for variant, batch, size, runner, extra in cases:
        if runner is None:
            _emit(rows, {**_row(job, variant, batch, size, {}), **extra, "round": round_index})
            continue
        timing = job["timing"]
        if extra.get("first_ms", 0) > 1000:
            # Seconds a call (the sweep's largest sizes): the caches and pools a warm-up
            # refills are a rounding error of that, and the preparation's call compiled it.
            timing = {**timing, "warmup": 0, "warmup_s": 0.0}
        timing = time_call(runner, **timing)
        _emit(rows, {**_row(job, variant, batch, size, timing, **extra), "round": round_index})
    return rows


def serve(job):
    """A runtime's process kept for every round: prepares (compiles) its cases once, prints
    READY, then measures them each time a line `measure ROUND` arrives, answering with one
    JSON line of rows, until `quit`. The parent runs one such process at a time."""
    prepare_cases, measure = SERVED.get(job["worker"], (prepare, measure_cases))
    cases = prepare_cases(job)
    print("READY", flush=True)
    for line in sys.stdin:
        command = line.split()
        if not command or command[0] == "quit":
            break
        rows = measure(job, cases, int(command[1]))
        print("ROWS " + json.dumps(rows), flush=True)


# ------------------------------------------------------------------ training

# One training step (forward, backward, AdamW update) per runtime, at the recipe's batch.
# Keras: the variant as `training.finetune` trains it (class and distillation heads averaged,
# categorical cross-entropy on logits, AdamW), one `train_on_batch` per step, compiled as
# `model.compile` compiles it by default on each backend (`jit_compile="auto"`: XLA on JAX;
# plain graphs for TensorFlow on a CPU; PyTorch eager). The peers: the same step of the
# official model (transformers' SwiftFormer, current release's attention) in torch eager and
# under torch.compile, with `torch.optim.AdamW`. Stochastic depth is off on both sides.

LEARNING_RATE, WEIGHT_DECAY = 1e-3, 0.025


def _batch(batch, size, classes=1000):
    rng = np.random.RandomState(0)
    images = rng.uniform(-2, 2, (batch, size, size, 3)).astype("float32")
    labels = np.eye(classes, dtype="float32")[rng.randint(0, classes, batch)]
    return images, labels


def _keras_step(variant, images, labels):
    import keras

    from keras_swiftformer.models import build_variant

    model = build_variant(variant, weights=None)
    model.compile(
        optimizer=keras.optimizers.AdamW(LEARNING_RATE, weight_decay=WEIGHT_DECAY),
        loss=keras.losses.CategoricalCrossentropy(from_logits=True),
    )
    backend = keras.backend.backend()
    if backend == "tensorflow":
        import tensorflow as tf

        images, labels = tf.constant(images), tf.constant(labels)
    elif backend == "jax":
        import jax.numpy as jnp

        images, labels = jnp.asarray(images), jnp.asarray(labels)
    else:
        import torch

        images, labels = torch.from_numpy(images), torch.from_numpy(labels)
    return lambda: model.train_on_batch(images, labels)


def _torch_step(variant, images, labels, compiled):
    import torch

    from conversion.official_model import official_swiftformer

    model = official_swiftformer(variant).train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=LEARNING_RATE, weight_decay=WEIGHT_DECAY)
    forward = torch.compile(model, dynamic=False) if compiled else model
    x = torch.from_numpy(np.ascontiguousarray(images.transpose(0, 3, 1, 2)))
    y = torch.from_numpy(labels)

    def step():
        optimizer.zero_grad(set_to_none=True)
        loss = torch.nn.functional.cross_entropy(forward(x).logits, y)
        loss.backward()
        optimizer.step()
        return float(loss)

    return step


def prepare_training(job):
    """Each variant's step, run once: the first step compiles (JAX, tf.function,
    torch.compile) and fills the optimizer's state."""
    runtime = job["runtime"]
    if runtime.startswith("keras-"):
        import keras

        if keras.backend.backend() == "tensorflow":
            import tensorflow as tf

            tf.config.threading.set_intra_op_parallelism_threads(job["threads"])
            tf.config.threading.set_inter_op_parallelism_threads(1)
    import importlib.util

    if importlib.util.find_spec("torch") and (runtime.startswith("torch") or runtime == "keras-torch"):
        import torch

        torch.set_num_threads(job["threads"])
    cases = []
    for variant in job["variants"]:
        images, labels = _batch(job["batch"], job["size"])
        if runtime.startswith("keras-"):
            step = _keras_step(variant, images, labels)
        else:
            step = _torch_step(variant, images, labels, compiled=runtime == "torch-compile")
        step()
        cases.append((variant, step))
    return cases


def measure_training(job, cases, round_index=0):
    rows = []
    for variant, step in cases:
        timing = time_call(step, **job["timing"])
        _emit(rows, {"runtime": job["runtime"], "variant": variant, "batch": job["batch"], "size": job["size"],
                     "threads": job["threads"], "round": round_index, "task": "training", **timing})
    return rows


def run_pipeline(job):
    from benchmarks.input_pipeline import run_input_pipeline

    return run_input_pipeline(job)


def run_inference(job):
    return measure_cases(job, prepare(job), job.get("round", 0))


# Kept processes (`serve`): how each worker prepares its cases and measures them; inference
# workers by default.
SERVED = {"training": (prepare_training, measure_training)}
# One-shot processes (`main` with a result path).
RUNNERS = {"macs": count_macs, "sgemm": measure_sgemm, "torch": run_inference, "keras": run_inference,
           "export": export_files, "files": run_inference, "pipeline": run_pipeline}


def main(job_path, result_path=None):
    with open(job_path) as file:
        job = json.load(file)
    pin_threads(job["threads"])
    if result_path is None:
        serve(job)
        return
    rows = RUNNERS[job["worker"]](job)
    # Read by the parent only after this process has exited successfully.
    with open(result_path, "w") as file:
        json.dump(rows, file)


if __name__ == "__main__":
    main(*sys.argv[1:3])  # JOB.json RESULT.json: run once; JOB.json alone: serve rounds
