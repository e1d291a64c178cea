"""Where a Keras backend's time goes, operator by operator: the inference form on TensorFlow
(`tf.function`) or on the PyTorch backend (eager), beside the official model in torch eager.

    KERAS_BACKEND=tensorflow python -m benchmarks.keras_profile     # XS and L1 at 224, batch 1
    KERAS_BACKEND=torch python -m benchmarks.keras_profile --models L3 --batch-size 8
    KERAS_BACKEND=torch python -m benchmarks.keras_profile --compile  # both under torch.compile

Both models are the benchmark's (random weights, 224x224): ours as `inference_model` folds
it, run as the benchmark's row for the backend runs it; the official model (transformers'
SwiftFormer with the current release's attention) in `inference_mode`, NCHW. With `--compile`
(PyTorch backend) both run under `torch.compile` with inductor's freezing, as in the
benchmark's compiled rows: the table then shows inductor's fused kernels and the oneDNN calls
it makes. Each side's own
profiler times its operators over `--runs` calls after a warm-up: TensorFlow's (the executor's
op events, read from its XPlane trace) and torch.profiler (each operator's self time, so
nested operators are not counted twice). The operators are grouped into the same categories
on both sides; "outside operators" is the wall time of a call (profiler on) that no operator
accounts for: the runtime's own dispatch and bookkeeping.
"""

import argparse
import collections
import glob
import re
import tempfile
import time

import keras
import numpy as np

from benchmarks.arguments import check_threads, require_installed, variant_list
from benchmarks.measure import pin_threads
from benchmarks.workers import official_torch_call, torch_compile_frozen
from keras_swiftformer.cli import HelpFormatter
from keras_swiftformer.models import build_variant
from keras_swiftformer.models.inference import inference_model

WARMUP_CALLS = 10
# Events of TensorFlow's executor, not operators (`Process` spans the operators it runs).
EXECUTOR_EVENTS = {"Process", "StartRegion", "StopRegion", "Record", "MemoryAllocation", "MemoryDeallocation",
                   "ExecutorDoneCallback"}

# Operator name (lower case) -> category, first match wins. TensorFlow's names are its op
# types (`_MklNativeFusedConv2D`, `Erf`), PyTorch's are `aten::` operators.
CATEGORIES = (
    ("convolutions", r"conv"),
    ("fused kernels (torch.compile)", r"cpp_fused|triton_|compiledfxgraph"),
    ("matrix products", r"matmul|addmm|aten::mm$|aten::bmm|linear"),
    ("layout copies", r"copy|transpose|permute|contiguous|clone|reorder|to_dense|as_strided|expand"),
    ("reductions and pooling", r"sum|mean|pool|reduce|norm|l2"),
    ("elementwise and activations", r"mul|add|sub|div|erf|gelu|relu|sigmoid|tanh|sqrt|square|maximum|"
                                    r"clamp|clip|max|pow|bias"),
)


def category(operator):
    name = operator.lower()
    return next((label for label, pattern in CATEGORIES if re.search(pattern, name)), "other operators")


def tensorflow_operator_times(call, runs):
    """`({op type: ms per call}, {op type: ops per call}, wall ms per call)` of `call` (which
    runs a `tf.function`) from TensorFlow's profiler."""
    import tensorflow as tf
    from tensorflow.tsl.profiler.protobuf import xplane_pb2

    with tempfile.TemporaryDirectory(prefix="swiftformer-tf-profile-") as folder:
        tf.profiler.experimental.start(folder)
        start = time.perf_counter()
        for _ in range(runs):
            call()
        wall_ms = 1000 * (time.perf_counter() - start) / runs
        tf.profiler.experimental.stop()
        space = xplane_pb2.XSpace()
        with open(glob.glob(f"{folder}/**/*.xplane.pb", recursive=True)[0], "rb") as file:
            space.ParseFromString(file.read())
    totals, counts = collections.Counter(), collections.Counter()
    for plane in space.planes:
        names = {key: metadata.name for key, metadata in plane.event_metadata.items()}
        for line in plane.lines:
            if not line.name.startswith("tf_Compute"):
                continue
            # Operator events are named "<node name>:<op type>".
            for event in line.events:
                op_type = names.get(event.metadata_id, "").rsplit(":", 1)[-1]
                if op_type and op_type not in EXECUTOR_EVENTS:
                    totals[op_type] += event.duration_ps / 1e9 / runs
                    counts[op_type] += 1
    return dict(totals), {op: count // runs for op, count in counts.items()}, wall_ms


def torch_operator_times(call, runs):
    """`({operator: self ms per call}, {operator: calls per call}, wall ms per call)` of
    `call` from torch.profiler."""
    import torch

    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as profiler:
        start = time.perf_counter()
        for _ in range(runs):
            call()
        wall_ms = 1000 * (time.perf_counter() - start) / runs
    totals, counts = {}, {}
    for entry in profiler.key_averages():
        if entry.self_cpu_time_total > 0:
            totals[entry.key] = entry.self_cpu_time_total / 1000 / runs
            counts[entry.key] = entry.count // runs
    return totals, counts, wall_ms


def our_call(model, images, compile_torch=False):
    """Our inference form as the benchmark's row for this backend runs it."""
    backend = keras.backend.backend()
    if backend == "tensorflow":
        import tensorflow as tf

        function = tf.function(lambda t: model(t, training=False), reduce_retracing=True)
        tensor = tf.constant(images)
        return lambda: function(tensor).numpy()
    import torch

    tensor = torch.from_numpy(images)
    run = torch_compile_frozen(model) if compile_torch else model

    def call():
        with torch.inference_mode():
            return run(tensor, training=False)

    return call


def side(label, call, times, runs):
    for _ in range(WARMUP_CALLS):
        call()
    totals, counts, wall_ms = times(call, runs)
    by_category = collections.Counter()
    for operator, ms in totals.items():
        by_category[category(operator)] += ms
    by_category["outside operators"] = max(0.0, wall_ms - sum(totals.values()))
    return {"side": label, "wall_ms": round(wall_ms, 2), "categories": {k: round(v, 3) for k, v in by_category.items()},
            "operators": {op: {"ms": round(ms, 3), "calls": counts.get(op, 0), "category": category(op)}
                          for op, ms in sorted(totals.items(), key=lambda item: -item[1])}}


def use_threads(threads):
    """Both frameworks' thread pools at `threads`, as the benchmark's workers set them; before
    either creates its pools (TensorFlow refuses once its context exists)."""
    import torch

    torch.set_num_threads(threads)
    if keras.backend.backend() == "tensorflow":
        import tensorflow as tf

        tf.config.threading.set_intra_op_parallelism_threads(threads)
        tf.config.threading.set_inter_op_parallelism_threads(1)


def profile(variants, runs, batch, size=224, compile_torch=False):
    backend = keras.backend.backend()
    ours_times = tensorflow_operator_times if backend == "tensorflow" else torch_operator_times
    images = np.random.RandomState(0).uniform(-2, 2, (batch, size, size, 3)).astype("float32")
    rows = []
    for variant in variants:
        model = inference_model(build_variant(variant, weights=None))
        how = "torch.compile" if compile_torch else "eager"
        rows.append({"variant": variant, "batch": batch,
                     **side(f"Keras, {backend}" + (", torch.compile" if compile_torch else ""),
                            our_call(model, images, compile_torch), ours_times, runs)})
        rows.append({"variant": variant, "batch": batch,
                     **side(f"official, torch {how}", official_torch_call(variant, images, compile_torch),
                            torch_operator_times, runs)})
    return rows


def markdown(rows, top=12):
    lines = []
    for key in dict.fromkeys((row["variant"], row["batch"]) for row in rows):
        ours, theirs = [row for row in rows if (row["variant"], row["batch"]) == key]
        lines += [f"{key[0]}, batch {key[1]}: {ours['side']} {ours['wall_ms']:.2f} ms per call, "
                  f"{theirs['side']} {theirs['wall_ms']:.2f} ms (profilers on)", "",
                  f"| category | {ours['side']}: ms (share) | {theirs['side']}: ms (share) |", "|---|---|---|"]
        labels = [label for label, _ in CATEGORIES] + ["other operators", "outside operators"]
        for label in labels:
            cells = [f"{row['categories'].get(label, 0.0):.2f} ({row['categories'].get(label, 0.0) / row['wall_ms']:.0%})"
                     for row in (ours, theirs)]
            lines.append(f"| {label} | {cells[0]} | {cells[1]} |")
        for row in (ours, theirs):
            lines += ["", f"{row['side']}, the {top} costliest operators:", "",
                      "| operator | category | ms | calls |", "|---|---|---|---|"]
            for operator, entry in list(row["operators"].items())[:top]:
                lines.append(f"| {operator} | {entry['category']} | {entry['ms']:.3f} | {entry['calls']} |")
        lines.append("")
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m benchmarks.keras_profile", description=__doc__.splitlines()[0],
                                     formatter_class=HelpFormatter)
    parser.add_argument("--models", default="XS,L1", help="comma-separated variants")
    parser.add_argument("--batch-size", type=int, default=1, help="images per call")
    parser.add_argument("--threads", type=int, default=2, help="threads (and pinned cores)")
    parser.add_argument("--runs", type=int, default=30, help="profiled calls per model")
    parser.add_argument("--image-size", type=int, default=224, help="input side")
    parser.add_argument("--compile", action="store_true",
                        help="both models under torch.compile with freezing (PyTorch backend only)")
    args = parser.parse_args(argv)
    if args.runs < 1 or args.batch_size < 1 or args.image_size < 32:
        parser.error("--runs and --batch-size must be at least 1 and --image-size at least 32")
    if keras.backend.backend() not in ("tensorflow", "torch"):
        parser.error(f"profiles the TensorFlow and PyTorch backends (set KERAS_BACKEND=tensorflow or torch); "
                     f"this process runs {keras.backend.backend()}")
    if args.compile and keras.backend.backend() != "torch":
        parser.error("--compile profiles the PyTorch backend (set KERAS_BACKEND=torch)")
    check_threads(parser, args.threads)
    require_installed(("torch", "transformers"), advice=None)
    variants = variant_list(parser, args.models)
    pin_threads(args.threads)
    use_threads(args.threads)
    print(markdown(profile(variants, args.runs, args.batch_size, args.image_size, args.compile)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
