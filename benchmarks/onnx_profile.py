"""Where an ONNX file's time goes in ONNX Runtime, operator by operator: our ONNX file beside
the official model's `torch.onnx.export`, the two sides of the benchmark's ONNX target.

    python -m benchmarks.onnx_profile                  # XS and L1 at 224, batch 1
    python -m benchmarks.onnx_profile --models L3 --runs 100

Both files are made as the benchmark makes them (random weights, 224x224, batch 1) and run in
ONNX Runtime's CPU provider with every graph optimisation, threads spinning, on the
benchmark's cores. ONNX Runtime's own profiler times each node of the optimised graph (fused
convolutions, layout reorders included); the table gives the milliseconds per call of each
operator type on each side, and the whole call (the nodes' sum and the wall time with the
profiler on, which adds a little to both sides).
"""

import argparse
import collections
import json
import os
import tempfile
import time

import numpy as np

from benchmarks.arguments import check_threads, require_installed, variant_list
from benchmarks.measure import pin_threads
from benchmarks.workers import official_onnx_file
from keras_swiftformer.cli import HelpFormatter
from keras_swiftformer.export import export_onnx
from keras_swiftformer.export.runtime import ONNXRuntime
from keras_swiftformer.models import build_variant

WARMUP_CALLS = 10


def node_times(path, images, threads, runs):
    """`({operator type: ms per call}, {operator type: nodes}, wall ms per call)` of an ONNX
    file, from ONNX Runtime's profiler over `runs` calls after a warm-up."""
    with tempfile.TemporaryDirectory(prefix="swiftformer-onnx-profile-") as folder:
        runtime = ONNXRuntime(path, threads, spinning=True, profile_prefix=os.path.join(folder, "profile"))
        prepared = runtime.prepare(images)
        for _ in range(WARMUP_CALLS):
            runtime.invoke(prepared)
        start = time.perf_counter()
        for _ in range(runs):
            runtime.invoke(prepared)
        wall_ms = 1000 * (time.perf_counter() - start) / runs
        with open(runtime.end_profiling()) as file:
            events = json.load(file)
    # Node events are "<node>_kernel_time" (one per node per call); the warm-up is skipped.
    kernels = [e for e in events if e.get("cat") == "Node" and e["name"].endswith("_kernel_time")]
    per_call = len(kernels) // (runs + WARMUP_CALLS)
    timed = kernels[WARMUP_CALLS * per_call:]
    totals, nodes = collections.Counter(), collections.Counter()
    for event in timed:
        totals[event["args"]["op_name"]] += event["dur"] / 1000 / runs
    for event in timed[:per_call]:
        nodes[event["args"]["op_name"]] += 1
    return dict(totals), dict(nodes), wall_ms


def files(variant, folder, size=224):
    """`(ours, torch's)`: the two ONNX files of `variant`, written into `folder`."""
    ours = os.path.join(folder, f"swiftformer_{variant.lower()}_{size}.onnx")
    export_onnx(build_variant(variant, weights=None), ours, input_size=size)
    theirs = official_onnx_file(variant, size, folder)
    return ours, theirs


def profile(variants, threads, runs, folder, size=224):
    rows = []
    images = np.random.RandomState(0).uniform(-2, 2, (1, size, size, 3)).astype("float32")
    for variant in variants:
        ours, theirs = files(variant, folder, size)
        sides = {"ours": node_times(ours, images, threads, runs),
                 "torch export": node_times(theirs, np.ascontiguousarray(images.transpose(0, 3, 1, 2)), threads, runs)}
        for side, (totals, nodes, wall_ms) in sides.items():
            rows.append({"variant": variant, "file": side, "wall_ms": round(wall_ms, 2),
                         "nodes_ms": round(sum(totals.values()), 2),
                         "operators": {op: {"ms": round(ms, 3), "nodes": nodes.get(op, 0)}
                                       for op, ms in sorted(totals.items(), key=lambda item: -item[1])}})
    return rows


def markdown(rows):
    lines = []
    for variant in dict.fromkeys(row["variant"] for row in rows):
        ours, theirs = [next(r for r in rows if r["variant"] == variant and r["file"] == side)
                        for side in ("ours", "torch export")]
        lines += [f"{variant}: ours {ours['wall_ms']:.2f} ms per call ({ours['nodes_ms']:.2f} in nodes), "
                  f"torch export {theirs['wall_ms']:.2f} ms ({theirs['nodes_ms']:.2f} in nodes)", "",
                  "| operator | ours: ms (nodes) | torch export: ms (nodes) |", "|---|---|---|"]
        operators = sorted(set(ours["operators"]) | set(theirs["operators"]),
                           key=lambda op: -max(side["operators"].get(op, {"ms": 0})["ms"] for side in (ours, theirs)))
        for op in operators:
            cells = [f"{side['operators'][op]['ms']:.3f} ({side['operators'][op]['nodes']})"
                     if op in side["operators"] else "-" for side in (ours, theirs)]
            lines.append(f"| {op} | {cells[0]} | {cells[1]} |")
        lines.append("")
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m benchmarks.onnx_profile", description=__doc__.splitlines()[0],
                                     formatter_class=HelpFormatter)
    parser.add_argument("--models", default="XS,L1", help="comma-separated variants")
    parser.add_argument("--threads", type=int, default=2, help="threads (and pinned cores)")
    parser.add_argument("--runs", type=int, default=50, help="profiled calls per file")
    parser.add_argument("--image-size", type=int, default=224, help="input side")
    args = parser.parse_args(argv)
    if args.runs < 1 or args.image_size < 32:
        parser.error("--runs must be at least 1 and --image-size at least 32")
    check_threads(parser, args.threads)
    require_installed(("tensorflow", "tf2onnx", "onnxruntime", "torch", "transformers"), advice=None)
    variants = variant_list(parser, args.models)
    pin_threads(args.threads)
    with tempfile.TemporaryDirectory(prefix="swiftformer-onnx-files-") as folder:
        print(markdown(profile(variants, args.threads, args.runs, folder, args.image_size)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
