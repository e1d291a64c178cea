"""Where a TFLite file's time goes in LiteRT: which operators XNNPACK leaves to TFLite's own
kernels, and what they cost, measured by timing the same model with them swapped out.

    python -m benchmarks.tflite_profile                 # XS and L1, float32 and full int8
    python -m benchmarks.tflite_profile --models S --rounds 5

LiteRT gives Python no per-operator timer, so this is an ablation profile: each model is
exported as the benchmark exports it (224x224, random weights, normalised inputs, logits),
then again with GELU replaced by ReLU, without the attention's L2 normalisations, and with
both; the difference in latency is what those operators cost, including the breaks they put
in XNNPACK's partitions. A last form spells GELU as `x * sigmoid(1.702 x)`, which XNNPACK
delegates in int8: what such an approximation would buy. The swapped files compute another function and exist only to be
timed. Each row also lists the operators left outside XNNPACK's delegate and the number of
delegated partitions. Timing: interleaved rounds, the median of each round's median.
"""

import argparse
import collections
import contextlib
import os
import statistics
import tempfile
import time
from unittest import mock

import keras
import numpy as np
from keras import ops

import keras_swiftformer.layers.conv_encoder as conv_encoder
import keras_swiftformer.layers.efficient_additive_attention as attention
import keras_swiftformer.layers.swiftformer_encoder as swiftformer_encoder
from benchmarks.arguments import check_threads, require_installed, variant_list
from benchmarks.measure import pin_threads
from keras_swiftformer.cli import HelpFormatter
from keras_swiftformer.export import export_tflite
from keras_swiftformer.export.runtime import TFLiteRuntime
from keras_swiftformer.models import build_variant

# The operators each form swaps out, and what replaces them.
FORMS = {
    "as exported": (),
    "GELU -> ReLU": ("gelu",),
    "no L2 normalisation": ("l2",),
    "both": ("gelu", "l2"),
    # What a GELU that XNNPACK does delegate in int8 would cost: x * sigmoid(1.702 x), an
    # approximation (up to 0.02 from the exact GELU), which the export does not use.
    "GELU -> x sigmoid(1.702x)": ("sigmoid_gelu",),
}


@contextlib.contextmanager
def _swapped(parts):
    """The model's GELUs traced as ReLU (`"gelu"`) or as `x * sigmoid(1.702 x)`
    (`"sigmoid_gelu"`), and its attention's L2 normalisations traced as a scaling by 0.5
    (`"l2"`, which keeps the values in range), in this block."""
    with contextlib.ExitStack() as stack:
        for part, gelu in (("gelu", ops.relu), ("sigmoid_gelu", lambda x: x * ops.sigmoid(1.702 * x))):
            if part in parts:
                for module in (conv_encoder, swiftformer_encoder):
                    stack.enter_context(mock.patch.object(module, "exact_gelu", gelu))
        if "l2" in parts:
            stack.enter_context(mock.patch.object(attention, "l2_normalize", lambda x, axis=-1: x * 0.5))
        yield


def delegation(interpreter):
    """`(partitions, {operator: count})`: XNNPACK's delegated partitions in a loaded
    interpreter, and the operators that run outside them (TFLite's own kernels)."""
    operators = interpreter._get_ops_details()  # the one view of the execution plan
    delegates = [op for op in operators if op["op_name"] == "DELEGATE"]
    produced = {int(t) for op in delegates for t in op["outputs"]}
    needed = {int(t) for op in delegates for t in op["inputs"]}
    needed |= {int(detail["index"]) for detail in interpreter.get_output_details()}
    # A node outside the delegate feeds a delegate or the output without being produced by one.
    outside = [op for op in operators if op["op_name"] != "DELEGATE"
               and any(int(t) in needed for t in op["outputs"])
               and not any(int(t) in produced for t in op["outputs"])]
    return len(delegates), dict(collections.Counter(op["op_name"] for op in outside))


def export_forms(variant, quantizations, folder, size=224):
    """`{(form, quantization): path}`: the benchmark's file of `variant` in every form."""
    calibration = np.random.RandomState(0).uniform(-2, 2, (8, size, size, 3)).astype("float32")
    paths = {}
    for form, parts in FORMS.items():
        keras.utils.set_random_seed(0)
        model = build_variant(variant, weights=None)
        for quantization in quantizations:
            name = f"{variant.lower()}_{size}_{quantization}_{'-'.join(parts) or 'exported'}.tflite"
            path = os.path.join(folder, name)
            with _swapped(parts):
                export_tflite(model, path, quantization=quantization, input_size=size,
                              representative_data=calibration if quantization == "int8" else None,
                              num_calibration=8, include_preprocessing=False, probabilities=False)
            paths[form, quantization] = path
    return paths


def profile(variants, quantizations, threads, rounds, folder, size=224, calls=30):
    """Rows of the ablation profile (see the module's docstring)."""
    rows = []
    for variant in variants:
        runtimes = {key: TFLiteRuntime(path, threads=threads)
                    for key, path in export_forms(variant, quantizations, folder, size).items()}
        images = np.random.RandomState(1).uniform(-2, 2, (1, size, size, 3)).astype("float32")
        prepared = {key: runtime.prepare(images) for key, runtime in runtimes.items()}
        medians = {key: [] for key in runtimes}
        for _ in range(rounds):
            for key, runtime in runtimes.items():
                for _ in range(5):  # warm-up: pages and thread pools back after the others ran
                    runtime.invoke(prepared[key])
                times = []
                for _ in range(calls):
                    start = time.perf_counter()
                    runtime.invoke(prepared[key])
                    times.append(1000 * (time.perf_counter() - start))
                medians[key].append(statistics.median(times))
        for (form, quantization), runtime in runtimes.items():
            partitions, outside = delegation(runtime.interpreter)
            exported = statistics.median(medians["as exported", quantization])
            median = statistics.median(medians[form, quantization])
            rows.append({"variant": variant, "quantization": quantization, "form": form,
                         "median_ms": round(median, 2),
                         "range_ms": [round(min(medians[form, quantization]), 2),
                                      round(max(medians[form, quantization]), 2)],
                         "share_removed": round(1 - median / exported, 3),
                         "partitions": partitions, "outside_xnnpack": outside})
    return rows


def markdown(rows):
    lines = ["| variant | file | form | ms (range over rounds) | time removed | XNNPACK partitions "
             "| operators outside XNNPACK |", "|---|---|---|---|---|---|---|"]
    for row in rows:
        outside = ", ".join(f"{op} x{count}" for op, count in sorted(row["outside_xnnpack"].items())) or "none"
        low, high = row["range_ms"]
        lines.append(f"| {row['variant']} | {row['quantization']} | {row['form']} | {row['median_ms']:.2f} "
                     f"({low:.2f}-{high:.2f}) | {100 * row['share_removed']:.0f}% | {row['partitions']} | {outside} |")
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m benchmarks.tflite_profile", description=__doc__.splitlines()[0],
                                     formatter_class=HelpFormatter)
    parser.add_argument("--models", default="XS,L1", help="comma-separated variants")
    parser.add_argument("--quantizations", default="float32,int8", help="comma-separated: float32, int8")
    parser.add_argument("--threads", type=int, default=2, help="threads (and pinned cores)")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds")
    parser.add_argument("--image-size", type=int, default=224, help="input side")
    args = parser.parse_args(argv)
    quantizations = [q.strip() for q in args.quantizations.split(",") if q.strip()]
    if not quantizations or set(quantizations) - {"float32", "int8"}:
        parser.error("--quantizations takes float32, int8 or both")
    if args.rounds < 1 or args.image_size < 32:
        parser.error("--rounds must be at least 1 and --image-size at least 32")
    check_threads(parser, args.threads)
    require_installed(("tensorflow", "ai_edge_litert"), advice=None)
    variants = variant_list(parser, args.models)
    if keras.backend.backend() != "tensorflow":
        # The swapped operators are patched in this process; an export from another backend
        # runs in a TensorFlow subprocess, which would not see them.
        parser.error("the profile exports in this process: run it with KERAS_BACKEND=tensorflow (Keras' default)")
    pin_threads(args.threads)
    with tempfile.TemporaryDirectory(prefix="swiftformer-tflite-profile-") as folder:
        rows = profile(variants, quantizations, args.threads, args.rounds, folder, args.image_size)
    print(markdown(rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
