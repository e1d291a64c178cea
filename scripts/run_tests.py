"""Runs the whole test suite once per Keras backend (TensorFlow, JAX, PyTorch).

A backend is chosen when Keras is first imported, so each backend needs its own pytest
process. Extra arguments go to pytest, e.g. `python scripts/run_tests.py -k parity -x`.
`--backends jax,torch` picks backends. Tests marked `any_backend` (the backend cannot change
their result: file formats, downloads, command lines, export, which always runs on TensorFlow)
run in one session only, the one their marker's `runs_on=` names or the first (see
tests/conftest.py). Exits non-zero if any run failed or ran no test
(pytest's exit code 5). Prints the time of each backend and one combined closing line.
"""

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time

BACKENDS = ("tensorflow", "jax", "torch")
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
_COUNT = re.compile(r"(\d+) (passed|failed|skipped|errors?|xfailed|xpassed)")
# pytest's closing line, e.g. "12 passed, 1 skipped, 3 warnings in 4.20s" (maybe in ===).
_SUMMARY = re.compile(r"^=*\s*\d+ (passed|failed|skipped|errors?|deselected).* in [\d.]+s")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backends", default=",".join(BACKENDS))
    args, pytest_args = parser.parse_known_args(argv)
    timings = []
    totals = {"passed": 0, "failed": 0, "skipped": 0, "error": 0}
    failures = []
    backends = args.backends.split(",")
    for backend in backends:
        if backend not in BACKENDS:
            parser.error(f"unknown backend {backend!r}; choose from {BACKENDS}")
    for backend in backends:
        print(f"\n===== KERAS_BACKEND={backend} =====", flush=True)
        # One thread per numeric library per pytest worker: two workers on two cores would
        # otherwise oversubscribe the CPU several times over.
        environment = dict(
            os.environ, KERAS_BACKEND=backend, KSF_SESSION_BACKENDS=",".join(backends), OMP_NUM_THREADS="1",
            TF_NUM_INTRAOP_THREADS="1", TF_NUM_INTEROP_THREADS="1",
        )
        cache = None
        if backend == "jax":
            # XLA compiles the same small programs again and again (every fit of the same tiny
            # model, every worker and subprocess): a compilation cache of this run, shared by
            # its processes, compiles each once. Results are the same; only time changes. It is
            # removed after the run (about 0.5 MB a run, left behind in /tmp before).
            cache = tempfile.mkdtemp(prefix="swiftformer-jax-cache-")
            environment.update(JAX_COMPILATION_CACHE_DIR=cache, JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS="0",
                               JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES="0")
        start = time.time()
        try:
            process = subprocess.Popen(
                [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", *pytest_args],
                cwd=ROOT, env=environment, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
            )
            last_line = ""
            for line in process.stdout:
                sys.stdout.write(line)
                if _SUMMARY.match(line.strip()):
                    last_line = line
            code = process.wait()
        finally:
            if cache is not None:
                shutil.rmtree(cache, ignore_errors=True)
        counts = {kind.rstrip("s").replace("errors", "error"): int(n) for n, kind in _COUNT.findall(last_line)}
        for kind in totals:
            totals[kind] += counts.get(kind, 0)
        elapsed = time.time() - start
        timings.append((backend, elapsed, last_line.strip().strip("= ")))
        print(f"===== {backend}: exit {code} in {elapsed:.0f}s =====", flush=True)
        if code != 0:
            failures.append(f"{backend} (pytest exit {code}{', no tests ran' if code == 5 else ''})")
    print("\ntime per backend:")
    for backend, elapsed, summary in timings:
        print(f"  {backend:<10} {elapsed / 60:5.1f} min  ({summary})")
    print(f"  {'total':<10} {sum(t for _, t, _ in timings) / 60:5.1f} min")
    if failures:
        print("failed backends: " + ", ".join(failures))
    failed = totals["failed"] + totals["error"] + (len(failures) if not totals["failed"] + totals["error"] else 0)
    print(f"all backends: {totals['passed']} passed, {failed} failed, {totals['skipped']} skipped")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
