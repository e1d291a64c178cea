"""Benchmark keras-swiftformer against the official PyTorch model, at its best, on this machine.

    python -m benchmarks                       # everything: about 13 min on 2 cores (20 from empty caches)
    python -m benchmarks --models L1 --batch-sizes 1 --no-sweep --no-training
    python -m benchmarks --quick               # a smoke run of every runtime

Inference: every runtime runs in its own process, pinned to the same `--threads` cores, and
the whole set runs `--rounds` times, interleaved (round 1: every runtime, round 2: every
runtime, ...), so a slow minute of the machine hits every runtime alike. Each ratio is taken
within a round and reported as the median over rounds with its range. Training: one step
(forward, backward, AdamW) per runtime, and the default training input pipeline's
throughput. Writes results.json, results.md and plots to --output (runs/benchmarks, a scratch
folder), or with --publish to docs/benchmarks, which the README embeds.
"""

import argparse
import concurrent.futures
import contextlib
import datetime
import functools
import hashlib
import importlib.metadata
import json
import os
import platform
import signal
import subprocess
import sys
import tempfile
import threading
import time

from benchmarks.arguments import check_threads, require_installed, variant_list
from benchmarks.measure import THREAD_VARIABLES
from benchmarks.report import write_report
from benchmarks.workers import TORCH_PEERS
from keras_swiftformer.cli import HelpFormatter

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# runtime name -> (worker, Keras backend or None)
RUNTIMES = {
    "torch-eager": ("torch", None),
    "torch-eager-channels-last": ("torch", None),
    "torch-compile": ("torch", None),
    "torch-compile-max-autotune": ("torch", None),
    "ort-torch-export": ("torch", None),
    "keras-tensorflow": ("keras", "tensorflow"),
    "keras-tensorflow-xla": ("keras", "tensorflow"),
    "keras-jax": ("keras", "jax"),
    "keras-torch": ("keras", "torch"),
    "keras-torch-compile": ("keras", "torch"),
    "tflite-float32": ("files", None),
    "tflite-int8": ("files", None),
    "onnx-ours": ("files", None),
}
# max-autotune is measured on request (--runtimes): on 2 cores it compiles for minutes per
# shape and was no faster than the default mode with freezing (README, Benchmarks).
DEFAULT_RUNTIMES = [r for r in RUNTIMES if r != "torch-compile-max-autotune"]
# Minutes of compilation on 2 cores when the cache is cold; prepared first.
SLOW_TO_PREPARE = ("torch-compile", "torch-compile-max-autotune", "keras-torch-compile", "keras-jax",
                   "keras-tensorflow-xla")
FILE_KINDS = {"tflite-float32": "float32", "tflite-int8": "int8", "onnx-ours": "onnx"}
# The phone-like setting: the deployment runtimes and their peers (JAX is not one on a phone).
ONE_THREAD_RUNTIMES = "torch-eager,ort-torch-export,tflite-float32,tflite-int8,onnx-ours"
TRAINING_RUNTIMES = ("torch-eager", "torch-compile", "keras-tensorflow", "keras-jax", "keras-torch")
# torch.compile's training step compiles for minutes cold, tf.function's and JAX's for one to two.
TRAINING_SLOW_TO_PREPARE = ("torch-compile", "keras-tensorflow", "keras-jax")
VERSIONED = ("keras", "tensorflow", "jax", "torch", "transformers", "onnxruntime", "ai_edge_litert", "tf2onnx",
             "onnx", "numpy")


def _export_errors(files, runtime):
    """The export failures ("variant/kind/size": message) of the file kind `runtime` runs."""
    return {key: message for key, message in files.get("errors", {}).items()
            if key.split("/")[1] == FILE_KINDS[runtime]}


def _check_installed(runtimes, training, pipeline):
    needed = {"torch", "transformers", "matplotlib"}
    for runtime in runtimes:
        if runtime.startswith("keras-"):
            needed.add(RUNTIMES[runtime][1])
        if runtime in ("ort-torch-export", "onnx-ours"):
            needed.add("onnxruntime")
        if runtime in FILE_KINDS:
            needed |= {"tensorflow", "ai_edge_litert"} | ({"tf2onnx"} if runtime == "onnx-ours" else set())
    for runtime in training:
        if runtime.startswith("keras-"):
            needed.add(runtime.split("-")[1])
    if pipeline:
        needed |= {"tensorflow", "skimage"}
    require_installed(needed)


def versions():
    found = {}
    for module in VERSIONED:
        try:
            found[module] = importlib.metadata.version(module.replace("_", "-"))
        except importlib.metadata.PackageNotFoundError:
            found[module] = None
    return found


def _digest(folders, files=()):
    digest = hashlib.sha256(json.dumps(versions(), sort_keys=True).encode())
    paths = [os.path.join(directory, name) for folder in folders
             for directory, _, names in sorted(os.walk(os.path.join(ROOT, folder)))
             for name in sorted(names) if name.endswith(".py")]
    for path in paths + [os.path.join(ROOT, f) for f in files]:
        with open(path, "rb") as file:
            digest.update(os.path.basename(path).encode() + file.read())
    return digest.hexdigest()[:16]


def cache_key():
    """A key of everything our exported files and compiled kernels depend on: the library's
    code and the versions of the converters and runtimes. A change to either starts a new cache."""
    return _digest(("keras_swiftformer", "conversion"))


def peer_cache_key():
    """The official model's key (its torch.onnx.export and compiled kernels): the versions,
    the reference model's code and how the workers build, export and compile it. A change to
    the library alone keeps it, so the first run of new library code does not compile the
    peers again."""
    return "official-" + _digest(("conversion",), files=("benchmarks/workers.py",))


def _environment(job, backend):
    # Compiled kernels are kept with the exported files, under the same key: the official
    # model's under the peers' key, ours under the library's.
    cache = job["peer_cache"] if job["runtime"] in TORCH_PEERS else job["cache"]
    env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""),
               TF_CPP_MIN_LOG_LEVEL="3",
               TORCHINDUCTOR_CACHE_DIR=os.path.join(cache, "inductor"),
               JAX_COMPILATION_CACHE_DIR=os.path.join(cache, "jax"),
               JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS="0",
               # Inductor's pool of compile workers outlives the compilation and slows every
               # other process on the cores (torch eager 29 -> 41 ms beside it): compile in
               # the process itself.
               TORCHINDUCTOR_COMPILE_THREADS="1",
               **{name: str(job["threads"]) for name in THREAD_VARIABLES})
    # A PyTorch job's process imports Keras only through the library's helpers: on the torch
    # backend that adds no second framework to it.
    env["KERAS_BACKEND"] = backend or "torch"
    return env


def _pinned(threads):
    """For `preexec_fn`: the child starts on its `threads` cores, so every thread pool it
    creates (NumPy's OpenBLAS at import included) stays on them."""
    cores = sorted(os.sched_getaffinity(0))[:threads]
    return lambda: os.sched_setaffinity(0, cores)


def _name(job):
    return f"{job['runtime']} ({job['threads']} thread{'s' if job['threads'] > 1 else ''})"


def _error_row(job, text):
    return {"runtime": job["runtime"], "threads": job["threads"], "error": text[-2000:] or "the process failed"}


# Every timed measurement runs alone on the cores. Preparations (exporting, compiling: nothing
# timed) run two at a time, and a measurement may begin while one still runs: it stops every
# preparing process, with its subprocesses (inductor's C++ compilers), for its duration.
_MEASURING = threading.Lock()
_PREPARING = set()


def _stat(pid):
    """The fields of /proc/PID/stat after the command name (state first, then the parent), or
    None once the process is gone."""
    try:
        with open(f"/proc/{pid}/stat") as file:
            return file.read().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None


def _process_tree(pid):
    """`pid` and every process below it, from /proc."""
    children = {}
    for entry in os.listdir("/proc"):
        fields = _stat(entry) if entry.isdigit() else None
        if fields:
            children.setdefault(int(fields[1]), []).append(int(entry))
    tree, pending = [], [pid]
    while pending:
        tree.append(pending.pop())
        pending += children.get(tree[-1], [])
    return tree


def _send(pids, signal_number):
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal_number)


def _stop(pids):
    """SIGSTOP, then wait until each has stopped: the signal lands asynchronously."""
    _send(pids, signal.SIGSTOP)
    deadline = time.time() + 2.0
    while time.time() < deadline and any((_stat(pid) or ["X"])[0] not in ("T", "t", "Z", "X") for pid in pids):
        time.sleep(0.001)


@contextlib.contextmanager
def alone():
    """The cores to the caller only: every preparing process stopped until the block ends."""
    with _MEASURING:
        stopped = [pid for process in list(_PREPARING) if process.poll() is None
                   for pid in _process_tree(process.pid)]
        _stop(stopped)
        try:
            yield
        finally:
            _send(stopped, signal.SIGCONT)


@contextlib.contextmanager
def preparing(start):
    """`start()`'s process (a Popen) while it prepares: beside another, stopped by `alone`.
    It is started between measurements, never during one."""
    with _MEASURING:
        process = start()
        _PREPARING.add(process)
    try:
        yield process
    finally:
        with _MEASURING:
            _PREPARING.discard(process)


def run_job(job, backend=None, log=print, timed=False):
    """Runs one job in a fresh process and returns its rows (an error row if it failed):
    alone on the cores if `timed`, else as a preparation."""
    with tempfile.TemporaryDirectory(prefix="swiftformer-bench-") as workspace:
        job_path, result_path = os.path.join(workspace, "job.json"), os.path.join(workspace, "result.json")
        with open(job_path, "w") as file:
            json.dump(job, file)
        start = time.time()

        def launch():
            return subprocess.Popen([sys.executable, "-m", "benchmarks.workers", job_path, result_path],
                                    env=_environment(job, backend), stdout=subprocess.PIPE,
                                    stderr=subprocess.PIPE, text=True, cwd=ROOT,
                                    preexec_fn=_pinned(job["threads"]))

        if timed:
            with alone():
                process = launch()
                _, stderr = process.communicate()
        else:
            with preparing(launch) as process:
                _, stderr = process.communicate()
        if process.returncode != 0 or not os.path.exists(result_path):
            last = stderr.strip().splitlines()[-1] if stderr.strip() else process.returncode
            log(f"  {_name(job)}: FAILED ({last})")
            return [_error_row(job, stderr)]
        with open(result_path) as file:
            rows = json.load(file)
        log(f"  {_name(job)}: {len(rows)} measurements in {time.time() - start:.0f} s")
        return rows


class RuntimeProcess:
    """One runtime's process, kept for every round (`benchmarks.workers.serve`): it compiles
    (or exports, or loads) its cases once, then measures them when asked, while the other
    runtimes' processes wait idle."""

    def __init__(self, job, backend):
        self.job = job
        self.workspace = tempfile.TemporaryDirectory(prefix="swiftformer-bench-")
        job_path = os.path.join(self.workspace.name, "job.json")
        with open(job_path, "w") as file:
            json.dump(job, file)
        self.stderr = open(os.path.join(self.workspace.name, "stderr.txt"), "w+")
        start = time.time()

        def launch():
            return subprocess.Popen([sys.executable, "-m", "benchmarks.workers", job_path],
                                    env=_environment(job, backend), cwd=ROOT, text=True,
                                    preexec_fn=_pinned(job["threads"]),
                                    stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self.stderr)

        with preparing(launch) as self.process:
            self.error = None if self._answer("READY") is not None else self._failure()
        print(f"  {_name(job)}: " + (f"ready in {time.time() - start:.0f} s" if not self.error else "FAILED"), flush=True)
        self._pause()

    # A waiting runtime is stopped (SIGSTOP), not just idle: its thread pools' spinning and
    # housekeeping would otherwise share the cores with the one being measured (torch eager
    # measured 29 ms alone, 40-50 ms beside idle XLA and torch.compile processes).
    def _pause(self):
        if self.process.poll() is None:
            _stop([self.process.pid])

    def _resume(self):
        if self.process.poll() is None:
            os.kill(self.process.pid, signal.SIGCONT)

    def _answer(self, prefix):
        for line in self.process.stdout:
            if line.startswith(prefix):
                return line[len(prefix):]
        return None

    def _failure(self):
        self.stderr.seek(0)
        return self.stderr.read()

    def measure(self, round_index):
        if self.error:
            return [_error_row(self.job, self.error)]
        with alone():
            self._resume()
            try:
                self.process.stdin.write(f"measure {round_index}\n")
                self.process.stdin.flush()
            except BrokenPipeError:
                pass
            answer = self._answer("ROWS ")
            self._pause()
        if answer is None:
            self.error = self._failure()
            return [_error_row(self.job, self.error)]
        return json.loads(answer)

    def quit(self):
        self._resume()
        if self.process.poll() is None and not self.process.stdin.closed:
            try:
                self.process.stdin.write("quit\n")
                self.process.stdin.close()
            except BrokenPipeError:
                pass

    def close(self):
        self.quit()
        try:
            self.process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.stderr.close()
        self.workspace.cleanup()


def idle_load(seconds=1.0):
    """The share of this machine's CPU time spent busy over `seconds`, measured while every
    runtime's process waits: what the measurements share the cores with."""
    def counters():
        with open("/proc/stat") as file:
            fields = [int(v) for v in file.readline().split()[1:]]
        return sum(fields[:3]) + sum(fields[5:8]), sum(fields)

    busy, total = counters()
    time.sleep(seconds)
    busy_after, total_after = counters()
    return (busy_after - busy) / max(1, total_after - total)


# Instructions that multiply-accumulate int8 in one step: without one (an AVX2-only x86, say),
# XNNPACK's int8 kernels widen to 16 bits and run no faster than its float32 ones.
INT8_DOT_PRODUCT = ("avx512_vnni", "avx_vnni", "amx_int8", "asimddp", "i8mm")


def machine():
    cpu, flags = None, set()
    try:
        with open("/proc/cpuinfo") as file:
            for line in file:
                if line.startswith("model name") and cpu is None:
                    cpu = line.split(":", 1)[1].strip()
                if line.startswith(("flags", "Features")):
                    flags.update(line.split(":", 1)[1].split())
    except OSError:
        pass
    return {"cpu": cpu or platform.processor() or "unknown", "cores_visible": len(os.sched_getaffinity(0)), "python": platform.python_version(),
            "int8_dot_product": [f for f in INT8_DOT_PRODUCT if f in flags],
            "platform": platform.platform(), "versions": versions(),
            "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")}


def _list(text):
    return [item.strip() for item in text.split(",") if item.strip()]


def _parser():
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks", description=__doc__.splitlines()[0], formatter_class=HelpFormatter
    )
    parser.add_argument("--models", default="XS,S,L1,L3", help="comma-separated variants")
    parser.add_argument("--batch-sizes", default="1,8", help="comma-separated batch sizes")
    parser.add_argument("--image-size", type=int, default=224, help="input side")
    parser.add_argument("--threads", type=int, default=2, help="threads (and pinned cores) per runtime")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds of the inference table")
    parser.add_argument("--runtimes", default=",".join(DEFAULT_RUNTIMES),
                        help="comma-separated subset of " + ",".join(RUNTIMES))
    parser.add_argument("--one-thread-runtimes", default=ONE_THREAD_RUNTIMES,
                        help="runtimes also measured on 1 thread at batch 1 (a phone-like setting); '' for none")
    parser.add_argument("--training-models", default="XS,L1", help="variants of the training-step benchmark")
    parser.add_argument("--training-batch", type=int, default=32, help="batch of the training-step benchmark")
    parser.add_argument("--training-runtimes", default=",".join(TRAINING_RUNTIMES),
                        help="comma-separated subset of " + ",".join(TRAINING_RUNTIMES))
    parser.add_argument("--no-training", action="store_true", help="skip the training step and input pipeline")
    parser.add_argument("--sweep-sizes", default="224,448,896", help="input sides of the resolution sweep")
    parser.add_argument("--sweep-model", default="L1", help="the variant of the resolution sweep")
    parser.add_argument("--sweep-runtimes", default="torch-eager,keras-jax,tflite-float32",
                        help="runtimes for SwiftFormer in the resolution sweep (self-attention runs in torch eager)")
    parser.add_argument("--no-sweep", action="store_true", help="skip the resolution sweep")
    parser.add_argument("--budget", type=float, default=0.5,
                        help="seconds of timed runs per measurement (at least 3 runs)")
    parser.add_argument("-o", "--output", default=os.path.join(ROOT, "runs", "benchmarks"),
                        help="where results.md/json and the plots go (a scratch folder unless --publish)")
    parser.add_argument("--publish", action="store_true",
                        help="write to docs/benchmarks, the committed results the README embeds")
    parser.add_argument("--cache", default=os.path.join(os.path.expanduser("~"), ".cache", "keras-swiftformer-benchmarks"),
                        help="exported files and compiled kernels are kept here, keyed by code and versions")
    parser.add_argument("--quick", action="store_true",
                        help="XS, batch 1, one round, a two-size sweep, a training step at batch 2: a smoke run")
    return parser


def _validate(parser, args):
    if args.quick:
        args.models, args.batch_sizes, args.sweep_sizes, args.sweep_model, args.budget = "XS", "1", "224,448", "XS", 0.3
        args.rounds, args.training_models, args.training_batch, args.image_size = 1, "XS", 2, 224
    lists = {
        "runtimes": _list(args.runtimes),
        "one_thread": _list(args.one_thread_runtimes),
        "sweep": [] if args.no_sweep else _list(args.sweep_runtimes),
        "training": [] if args.no_training else _list(args.training_runtimes),
    }
    unknown = sorted(set(lists["runtimes"] + lists["one_thread"] + lists["sweep"]) - set(RUNTIMES))
    if unknown:
        parser.error(f"unknown runtimes {unknown}; choose from {', '.join(RUNTIMES)}")
    unknown = sorted(set(lists["training"]) - set(TRAINING_RUNTIMES))
    if unknown:
        parser.error(f"--training-runtimes: unknown runtimes {unknown}; choose from {', '.join(TRAINING_RUNTIMES)}")
    check_threads(parser, args.threads)
    if args.rounds < 1:
        parser.error("--rounds must be at least 1")
    for flag, value in (("--models", args.models), ("--training-models", args.training_models),
                        ("--sweep-model", args.sweep_model)):
        variant_list(parser, value, flag)
    try:
        batches = [int(b) for b in _list(args.batch_sizes)]
        sweep_sizes = [int(s) for s in _list(args.sweep_sizes)]
    except ValueError:
        parser.error("--batch-sizes and --sweep-sizes take comma-separated integers")
    if not batches or min(batches) < 1 or args.training_batch < 1 or args.image_size < 32:
        parser.error("batch sizes must be positive and --image-size at least 32")
    return lists, batches, sweep_sizes


def main(argv=None):
    parser = _parser()
    args = parser.parse_args(argv)
    if args.publish:
        args.output = os.path.join(ROOT, "docs", "benchmarks")
    lists, batch_sizes, sweep_sizes = _validate(parser, args)
    variants = [v.upper() for v in _list(args.models)]
    runtimes = lists["runtimes"]
    _check_installed(set(runtimes) | set(lists["one_thread"]) | set(lists["sweep"]), lists["training"],
                     pipeline=not args.no_training)
    cache = os.path.join(args.cache, cache_key())
    os.makedirs(cache, exist_ok=True)
    peer_cache = os.path.join(args.cache, peer_cache_key())
    os.makedirs(peer_cache, exist_ok=True)
    common = {"threads": args.threads, "cache": cache, "peer_cache": peer_cache}
    # The preparation ran each case once; a waiting process gets its pages and pools back in
    # the warm-up (a call and at least 0.2 s). Then at least 3 runs and `--budget` seconds: the
    # spread that matters is the one between rounds, which the report gives.
    timing = {"warmup": 1, "warmup_s": 0.2, "min_repeats": 3, "max_repeats": 50, "budget_s": args.budget}
    started = time.time()
    print(f"benchmarking {', '.join(variants)} at {args.image_size}x{args.image_size}, batch {batch_sizes}, "
          f"{args.threads} threads, {args.rounds} rounds; caches {cache}, {peer_cache}")

    sgemm = run_job({**common, "worker": "sgemm", "runtime": "sgemm"}, timed=True)
    if lists["one_thread"]:
        sgemm += run_job({**common, "threads": 1, "worker": "sgemm", "runtime": "sgemm"}, timed=True)
    file_runtimes = [r for r in dict.fromkeys(runtimes + lists["one_thread"]) if r in FILE_KINDS]
    one_thread = lists["one_thread"] if args.threads > 1 else []

    def export_files():
        exported = run_job({**common, "worker": "export", "runtime": "export", "variants": variants,
                            "sizes": [args.image_size], "kinds": [FILE_KINDS[r] for r in file_runtimes]},
                           backend="tensorflow")
        if "error" in exported[0]:  # the export process itself failed
            return {"errors": {f"{v}/{FILE_KINDS[r]}/{args.image_size}": exported[0]["error"]
                               for v in variants for r in file_runtimes}}
        return exported[0]

    def start(runtime, threads, batches, exported):
        worker, backend = RUNTIMES[runtime]
        job = {**common, "threads": threads, "worker": worker, "runtime": runtime, "variants": variants,
               "sizes": [args.image_size], "batch_sizes": [1] if worker == "files" else batches,
               "timing": timing, "kind": FILE_KINDS.get(runtime)}
        if worker == "files":
            job["files"] = exported.result()
            failed = _export_errors(job["files"], runtime)
            if failed:
                return failed
        return RuntimeProcess(job, backend)

    # Preparing (exporting, loading, compiling) is not timed, so two preparations share the
    # cores at a time: the compilers mostly use one core each, and this halves the longest
    # phase of the run. The export of our files runs beside the first runtimes' compilation;
    # the file runtimes start last, once it is done. Every timed measurement runs alone.
    phases = {"sgemm": time.time() - started}
    print(f"preparing every runtime, two at a time ({(time.time() - started) / 60:.1f} min so far)")
    plan = [(r, args.threads, batch_sizes) for r in runtimes] + [(r, 1, [1]) for r in one_thread]
    # Longest first (the compilers), so the short ones fill in beside them; files last.
    plan.sort(key=lambda entry: (RUNTIMES[entry[0]][0] == "files", entry[0] not in SLOW_TO_PREPARE))
    with concurrent.futures.ThreadPoolExecutor(max_workers=2) as pool:
        exported = pool.submit(export_files) if file_runtimes else None
        # Counting operations (untimed) fills a slot too.
        counted = pool.submit(run_job, {**common, "worker": "macs", "runtime": "macs", "variants": variants,
                                        "sizes": [args.image_size], "sweep_variant": args.sweep_model,
                                        "sweep_sizes": [] if args.no_sweep else sweep_sizes})
        futures = [pool.submit(start, *entry, exported) for entry in plan]
        # The sweep's files (every size in one job) are exported here too, untimed, after the
        # main export (they share the cache's files).
        sweep_kinds = sorted({FILE_KINDS[r] for r in lists["sweep"] if r in FILE_KINDS})

        def export_sweep_files():
            if exported:
                exported.result()
            return run_job({**common, "worker": "export", "runtime": "export", "variants": [args.sweep_model],
                            "kinds": sweep_kinds, "sizes": sweep_sizes}, backend="tensorflow")

        sweep_exported = pool.submit(export_sweep_files) if sweep_kinds else None
        processes = [(entry[0], entry[1], future.result()) for entry, future in zip(plan, futures)]
        macs = counted.result()
        sweep_exported = sweep_exported.result() if sweep_exported else None
    phases["preparing"] = time.time() - started - sum(phases.values())
    results, idle_loads = [], []
    try:
        for round_index in range(args.rounds):
            print(f"round {round_index + 1} of {args.rounds} ({(time.time() - started) / 60:.1f} min so far)")
            # Each round starts at another runtime: whatever the first slot costs (the
            # machine waking up) falls on a different runtime each time.
            shift = round_index % len(processes)
            for runtime, threads, process in processes[shift:] + processes[:shift]:
                if isinstance(process, dict):  # its files failed to export: {key: error}
                    results.append({"runtime": runtime, "threads": threads, "error": "export failed: " + "; ".join(
                        f"{key}: {message}" for key, message in process.items())})
                    continue
                results += process.measure(round_index)
            idle_loads.append(idle_load())
            print(f"  the cores were {100 * idle_loads[-1]:.0f}% busy with every runtime stopped")
    finally:
        # All are told to quit first: their exits (seconds each for TensorFlow or JAX) overlap
        # each other and the training step's (untimed) preparation; nothing is timed until
        # they are gone (`closed.result()`).
        running = [process for _, _, process in processes if isinstance(process, RuntimeProcess)]
        for process in running:
            process.quit()
        closer = concurrent.futures.ThreadPoolExecutor(max_workers=1)
        closed = closer.submit(lambda: [process.close() for process in running])
        closer.shutdown(wait=False)

    phases["rounds"] = time.time() - started - sum(phases.values())
    # Then the training steps, the resolution sweep and the input pipeline: each task prepares
    # (untimed; two at a time, so at most two batch-32 training steps are in memory) and is then
    # measured alone, the other task's preparation stopped meanwhile (`alone`). The longest
    # preparations start first, so the minutes torch.compile spends on a training step pass
    # beside the other tasks instead of before them.
    train_timing = {"warmup": 0, "warmup_s": 0.0, "min_repeats": 3, "max_repeats": 3, "budget_s": 0.0}
    sweep_timing = {"warmup": 1, "min_repeats": 3, "max_repeats": 10, "budget_s": args.budget}
    training_variants = [v.upper() for v in _list(args.training_models)]

    def measured_once(job, backend):
        process = RuntimeProcess(job, backend)
        try:
            closed.result()  # the inference processes are gone before anything is timed
            return process.measure(0)
        finally:
            process.close()

    def training_task(runtime):
        # A warm-up step in the preparation compiles (JAX, tf.function, torch.compile) and
        # fills the optimizer's state; then three timed steps (a step takes seconds at batch
        # 32 here, far more than a stopped process needs to get its caches back).
        backend = runtime.split("-")[1] if runtime.startswith("keras-") else None
        return measured_once({**common, "worker": "training", "runtime": runtime, "variants": training_variants,
                              "batch": args.training_batch, "size": args.image_size, "timing": train_timing}, backend)

    def sweep_task(runtime):
        worker, backend = RUNTIMES.get(runtime, ("torch", None))
        job = {**common, "worker": worker, "runtime": runtime, "variants": [args.sweep_model],
               "sizes": sweep_sizes, "batch_sizes": [1], "timing": sweep_timing, "max_ms": 4000,
               "kind": FILE_KINDS.get(runtime)}
        rows = []
        if worker == "files":
            job["files"] = sweep_exported[0] if "error" not in sweep_exported[0] else {}
            job["sizes"] = [s for s in sweep_sizes if f"{args.sweep_model}/{FILE_KINDS[runtime]}/{s}" in job["files"]]
            errors = _export_errors(job["files"], runtime) if job["files"] \
                else {"the export process": sweep_exported[0]["error"]}
            rows = [{"runtime": runtime, "threads": args.threads, "error": f"export failed: {key}: {message}"}
                    for key, message in errors.items()]
            if not job["sizes"]:
                return rows
        return rows + measured_once(job, backend)

    def pipeline_task():
        closed.result()
        return run_job({**common, "worker": "pipeline", "runtime": "input-pipeline", "image_size": args.image_size,
                        "batch_size": args.training_batch, "budget_s": 3.0 if not args.quick else 1.0},
                       backend="tensorflow", timed=True)

    sweep_runtimes = lists["sweep"] + (["torch-eager-mhsa"] if lists["sweep"] else [])
    slow = [r for r in lists["training"] if r in TRAINING_SLOW_TO_PREPARE]
    tasks = [("training", functools.partial(training_task, r)) for r in slow]
    tasks += [("sweep", functools.partial(sweep_task, r)) for r in sweep_runtimes]
    tasks += [("training", functools.partial(training_task, r)) for r in lists["training"] if r not in slow]
    if lists["training"]:
        tasks.append(("pipeline", pipeline_task))
    print(f"training step at batch {args.training_batch}, resolution sweep, input pipeline "
          f"({(time.time() - started) / 60:.1f} min so far)")
    rows = {"training": [], "sweep": [], "pipeline": []}
    with concurrent.futures.ThreadPoolExecutor(max_workers=2) as pool:
        for kind, future in [(kind, pool.submit(task)) for kind, task in tasks]:
            rows[kind] += future.result()
    closed.result()
    training = sorted(rows["training"], key=lambda row: lists["training"].index(row["runtime"])) + rows["pipeline"]
    sweep = sorted(rows["sweep"], key=lambda row: sweep_runtimes.index(row["runtime"]))
    phases["training, sweep and pipeline"] = time.time() - started - sum(phases.values())
    report = {"machine": machine(),
              "settings": {"variants": variants, "batch_sizes": batch_sizes, "size": args.image_size,
                           "threads": args.threads, "rounds": args.rounds, "budget_s": args.budget,
                           "runtimes": runtimes, "one_thread_runtimes": lists["one_thread"] if args.threads > 1 else [],
                           "sweep_sizes": sweep_sizes, "sweep_variant": args.sweep_model,
                           "training_batch": args.training_batch, "cache_key": os.path.basename(cache),
                           "idle_load_before_rounds": idle_loads},
              "macs": [m for m in macs if "gmacs" in m], "sgemm": [s for s in sgemm if "sgemm_gflops" in s],
              "results": results, "training": training, "sweep": sweep, "wall_s": time.time() - started,
              "phases_s": phases}
    paths = write_report(report, args.output)
    print(open(paths["markdown"]).read())
    print(f"wrote {', '.join(paths.values())} in {time.time() - started:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
