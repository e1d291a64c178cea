"""Benchmark keras-swiftformer against the official PyTorch model on this machine.

    python -m benchmarks                       # the full table, sweep and plots (< 15 min, 2 cores)
    python -m benchmarks --models L1 --batch-sizes 1 --no-sweep
    python -m benchmarks --quick               # a one-minute smoke run

Every runtime runs in its own process, pinned to the same `--threads` cores, with warm-up and
the median of repeated runs. Ratios are against torch eager on the official model measured in
the same run. Writes results.json, results.md, latency.png and resolution.png to --output
(runs/benchmarks, a scratch folder), or with --publish to docs/benchmarks, which the README
embeds.
"""

import argparse
import datetime
import importlib.metadata
import importlib.util
import json
import os
import platform
import subprocess
import sys
import tempfile
import time

from benchmarks.report import write_report
from keras_swiftformer.cli import HelpFormatter
from keras_swiftformer.variants import get_variant

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# runtime name -> (worker, Keras backend or None)
RUNTIMES = {
    "torch-eager": ("torch", None),
    "torch-compile": ("torch", None),
    "ort-torch-export": ("torch", None),
    "keras-tensorflow": ("keras", "tensorflow"),
    "keras-tensorflow-xla": ("keras", "tensorflow"),
    "keras-jax": ("keras", "jax"),
    "keras-torch": ("keras", "torch"),
    "tflite-float32": ("files", None),
    "tflite-int8": ("files", None),
    "onnx-ours": ("files", None),
}
FILE_KINDS = {"tflite-float32": "float32", "tflite-int8": "int8", "onnx-ours": "onnx"}
REQUIRED = {"torch": "torch==2.13.0", "transformers": "transformers", "onnxruntime": "onnxruntime",
            "tensorflow": "tensorflow", "jax": "jax", "tf2onnx": "tf2onnx", "ai_edge_litert": "ai-edge-litert",
            "matplotlib": "matplotlib"}


def _check_installed(runtimes):
    needed = {"torch", "transformers", "matplotlib"}
    for runtime in runtimes:
        if runtime.startswith("keras-"):
            needed.add(RUNTIMES[runtime][1])
        if runtime in ("ort-torch-export", "onnx-ours"):
            needed.add("onnxruntime")
        if runtime in FILE_KINDS:
            needed |= {"tensorflow", "ai_edge_litert"} | ({"tf2onnx"} if runtime == "onnx-ours" else set())
    missing = sorted(m for m in needed if importlib.util.find_spec(m) is None)
    if missing:
        raise SystemExit(
            "error: the benchmarks need " + ", ".join(missing) + ". Install them with: pip install "
            "'keras-swiftformer[test]' (on CPU-only machines install torch==2.13.0 first), or "
            "choose --runtimes without them."
        )


def run_job(job, backend=None, log=print):
    """Runs one job in a fresh process and returns its rows (an error row if it failed)."""
    with tempfile.TemporaryDirectory(prefix="swiftformer-bench-") as workspace:
        job_path, result_path = os.path.join(workspace, "job.json"), os.path.join(workspace, "result.json")
        with open(job_path, "w") as file:
            json.dump(job, file)
        env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""),
                   TF_CPP_MIN_LOG_LEVEL="3")
        # A PyTorch job's process imports Keras only through the library's helpers: on the
        # torch backend that adds no second framework to it.
        env["KERAS_BACKEND"] = backend or "torch"
        start = time.time()
        process = subprocess.run([sys.executable, "-m", "benchmarks.workers", job_path, result_path],
                                 env=env, capture_output=True, text=True, cwd=ROOT)
        if process.returncode != 0 or not os.path.exists(result_path):
            log(f"  {job['runtime']}: FAILED ({process.stderr.strip().splitlines()[-1] if process.stderr.strip() else process.returncode})")
            return [{"runtime": job["runtime"], "error": process.stderr[-2000:]}]
        with open(result_path) as file:
            rows = json.load(file)
        log(f"  {job['runtime']}: {len(rows)} measurements in {time.time() - start:.0f} s")
        return rows


def machine():
    cpu = platform.processor() or "unknown"
    try:
        with open("/proc/cpuinfo") as file:
            cpu = next(line.split(":", 1)[1].strip() for line in file if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    versions = {}
    for module in ("keras", "tensorflow", "jax", "torch", "transformers", "onnxruntime", "ai_edge_litert", "tf2onnx", "numpy"):
        try:
            versions[module] = importlib.metadata.version(module.replace("_", "-"))
        except Exception:  # noqa: BLE001 - not installed
            versions[module] = None
    return {"cpu": cpu, "cores_visible": len(os.sched_getaffinity(0)), "python": platform.python_version(),
            "platform": platform.platform(), "versions": versions,
            "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")}


def _parser():
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks", description=__doc__.splitlines()[0], formatter_class=HelpFormatter
    )
    parser.add_argument("--models", default="XS,S,L1,L3", help="comma-separated variants")
    parser.add_argument("--batch-sizes", default="1,8", help="comma-separated batch sizes")
    parser.add_argument("--image-size", type=int, default=224, help="input side")
    parser.add_argument("--threads", type=int, default=2, help="threads (and pinned cores) per runtime")
    parser.add_argument("--runtimes", default=",".join(RUNTIMES), help="comma-separated subset of " + ",".join(RUNTIMES))
    parser.add_argument("--compile-batch-sizes", default="1",
                        help="batch sizes for torch.compile (each compiles anew: ~1 min per model on 2 cores)")
    parser.add_argument("--sweep-sizes", default="224,448,672,896,1024", help="input sides of the resolution sweep")
    parser.add_argument("--sweep-model", default="L1", help="the variant of the resolution sweep")
    parser.add_argument("--sweep-runtimes", default="torch-eager,keras-jax,tflite-float32",
                        help="runtimes for SwiftFormer in the resolution sweep (self-attention runs in torch eager)")
    parser.add_argument("--no-sweep", action="store_true", help="skip the resolution sweep")
    parser.add_argument("--budget", type=float, default=2.0, help="seconds of timed runs per measurement")
    parser.add_argument("-o", "--output", default=os.path.join(ROOT, "runs", "benchmarks"),
                        help="where results.md/json and the plots go (a scratch folder unless --publish)")
    parser.add_argument("--publish", action="store_true",
                        help="write to docs/benchmarks, the committed results the README embeds")
    parser.add_argument("--cache", default=os.path.join(os.path.expanduser("~"), ".cache", "keras-swiftformer-benchmarks"),
                        help="exported files are kept here between runs")
    parser.add_argument("--quick", action="store_true", help="XS, batch 1, a two-size sweep: a smoke run")
    return parser


def main(argv=None):
    parser = _parser()
    args = parser.parse_args(argv)
    if args.publish:
        args.output = os.path.join(ROOT, "docs", "benchmarks")
    if args.quick:
        args.models, args.batch_sizes, args.sweep_sizes, args.sweep_model, args.budget = "XS", "1", "224,448", "XS", 0.3
        args.compile_batch_sizes = "1"
    variants = [v.strip().upper() for v in args.models.split(",") if v.strip()]
    batch_sizes = [int(b) for b in args.batch_sizes.split(",")]
    runtimes = [r.strip() for r in args.runtimes.split(",") if r.strip()]
    sweep_runtimes = [] if args.no_sweep else [r.strip() for r in args.sweep_runtimes.split(",") if r.strip()]
    unknown = sorted(set(runtimes + sweep_runtimes) - set(RUNTIMES))
    if unknown:
        parser.error(f"unknown runtimes {unknown}; choose from {', '.join(RUNTIMES)}")
    if args.threads < 1 or args.threads > len(os.sched_getaffinity(0)):
        parser.error(f"--threads must be between 1 and the {len(os.sched_getaffinity(0))} cores available")
    for variant in variants + [args.sweep_model]:
        try:
            get_variant(variant)
        except ValueError as error:
            parser.error(f"--models: {error}")
    _check_installed(set(runtimes) | set(sweep_runtimes))
    os.makedirs(args.cache, exist_ok=True)
    sweep_sizes = [int(s) for s in args.sweep_sizes.split(",")]
    common = {"threads": args.threads, "cache": args.cache}
    timing = {"warmup": 3, "min_repeats": 5, "max_repeats": 50, "budget_s": args.budget}
    sweep_timing = {"warmup": 1, "min_repeats": 3, "max_repeats": 10, "budget_s": args.budget}
    started = time.time()
    print(f"benchmarking {', '.join(variants)} at {args.image_size}x{args.image_size}, batch {batch_sizes}, {args.threads} threads")

    rows = run_job({**common, "worker": "macs", "runtime": "macs", "variants": variants, "sizes": [args.image_size],
                    "sweep_variant": args.sweep_model, "sweep_sizes": [] if args.no_sweep else sweep_sizes})
    macs = [r for r in rows if "gmacs" in r]
    files = {}
    file_runtimes = [r for r in runtimes if r in FILE_KINDS]
    if file_runtimes:
        exported = run_job({**common, "worker": "export", "runtime": "export", "variants": variants,
                            "sizes": [args.image_size], "kinds": [FILE_KINDS[r] for r in file_runtimes]},
                           backend="tensorflow")
        files.update(exported[0] if exported and "error" not in exported[0] else {})
    results = []
    for runtime in runtimes:
        worker, backend = RUNTIMES[runtime]
        batches = [1] if worker == "files" else batch_sizes
        if runtime == "torch-compile":
            batches = [int(b) for b in args.compile_batch_sizes.split(",")]
        job = {**common, "worker": worker, "runtime": runtime, "variants": variants, "sizes": [args.image_size],
               "batch_sizes": batches, "timing": timing, "files": files,
               "kind": FILE_KINDS.get(runtime)}
        if worker == "files" and not all(f"{v}/{FILE_KINDS[runtime]}" in files for v in variants):
            results.append({"runtime": runtime, "error": "export failed (see the export job's error)"})
            continue
        results += run_job(job, backend)
    sweep = []
    for runtime in sweep_runtimes + (["torch-eager-mhsa"] if sweep_runtimes else []):
        worker, backend = RUNTIMES.get(runtime, ("torch", None))
        job = {**common, "worker": worker, "runtime": runtime, "variants": [args.sweep_model],
               "sizes": sweep_sizes, "batch_sizes": [1], "timing": sweep_timing, "max_ms": 4000,
               "kind": FILE_KINDS.get(runtime)}
        if worker == "files":
            sweep_job = {**common, "worker": "export", "runtime": "export", "variants": [args.sweep_model],
                         "kinds": [FILE_KINDS[runtime]]}
            per_size = {}
            for size in sweep_sizes:
                exported = run_job({**sweep_job, "sizes": [size]}, backend="tensorflow", log=lambda *_: None)
                if exported and "error" not in exported[0]:
                    per_size[size] = next(iter(exported[0].values()))
            for size, path in per_size.items():
                sweep += run_job({**job, "sizes": [size], "files": {f"{args.sweep_model}/{FILE_KINDS[runtime]}": path}},
                                 log=lambda *_: None)
            print(f"  {runtime}: sweep over {len(per_size)} sizes")
            continue
        sweep += run_job(job, backend)
    report = {"machine": machine(), "settings": {"variants": variants, "batch_sizes": batch_sizes, "size": args.image_size,
                                                 "threads": args.threads, "budget_s": args.budget,
                                                 "sweep_sizes": sweep_sizes, "sweep_variant": args.sweep_model},
              "macs": macs, "results": results, "sweep": sweep, "wall_s": time.time() - started}
    paths = write_report(report, args.output)
    print(open(paths["markdown"]).read())
    print(f"wrote {', '.join(paths.values())} in {time.time() - started:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
