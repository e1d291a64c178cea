"""Timing and memory measurement shared by every worker."""

import os
import statistics
import time

import numpy as np

THREAD_VARIABLES = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")


def pin_threads(threads):
    """Every runtime gets the same cores: the process is pinned to `threads` CPUs (the
    runtimes' own thread settings are set to the same number by each worker). The benchmark
    starts its workers already pinned (`benchmarks.__main__`); this is for a script that pins
    itself, before it creates any thread pool."""
    available = sorted(os.sched_getaffinity(0))
    os.sched_setaffinity(0, available[:threads])
    for name in THREAD_VARIABLES:
        os.environ[name] = str(threads)


def _status(field):
    with open("/proc/self/status") as file:
        for line in file:
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    return None


def reset_peak_memory():
    """Resets the kernel's resident-set high-water mark (Linux: clear_refs 5)."""
    try:
        with open("/proc/self/clear_refs", "w") as file:
            file.write("5")
        return True
    except OSError:
        return False


def time_call(function, warmup=2, min_repeats=5, max_repeats=50, budget_s=1.0, warmup_s=0.5):
    """Median latency (ms) and spread of `function()` after warm-up, plus peak memory.

    Warms up with at least `warmup` calls and `warmup_s` seconds (a process that waited
    while the others ran needs its pages and thread pools back), then runs at least
    `min_repeats` and at most `max_repeats` times, stopping once `budget_s` seconds of
    measurement are spent. `activation_mb`: how far the resident set rose above
    its level just before the timed runs (the memory one call needs beyond the weights, which
    are resident by then); `peak_rss_mb`: the whole process's peak, runtime included.
    """
    start = time.perf_counter()
    calls = 0
    while calls < warmup or time.perf_counter() - start < warmup_s:
        function()
        calls += 1
    baseline = _status("VmRSS")
    resettable = reset_peak_memory()
    times = []
    start = time.perf_counter()
    while len(times) < max_repeats and (len(times) < min_repeats or time.perf_counter() - start < budget_s):
        begin = time.perf_counter()
        function()
        times.append((time.perf_counter() - begin) * 1000)
    peak = _status("VmHWM")
    quartiles = np.percentile(times, [25, 75])
    return {
        "median_ms": statistics.median(times),
        "p25_ms": float(quartiles[0]),
        "p75_ms": float(quartiles[1]),
        "min_ms": min(times),
        "runs": len(times),
        "peak_rss_mb": peak / 2**20 if peak else None,
        "activation_mb": max(0.0, (peak - baseline) / 2**20) if (peak and baseline and resettable) else None,
    }


def sgemm_peak_gflops(threads, side=2048, repeats=8):
    """This machine's float32 matrix-product peak on `threads` cores (GFLOP/s): the best of
    PyTorch's (oneDNN/MKL) and NumPy's sgemm on a square product, best of `repeats`."""
    import torch

    torch.set_num_threads(threads)
    results = {}
    a = np.random.RandomState(0).rand(side, side).astype("float32")
    b = np.random.RandomState(1).rand(side, side).astype("float32")
    ta, tb = torch.from_numpy(a), torch.from_numpy(b)
    for name, multiply in (("torch", lambda: torch.mm(ta, tb)), ("numpy", lambda: a @ b)):
        multiply()
        best = float("inf")
        for _ in range(repeats):
            begin = time.perf_counter()
            multiply()
            best = min(best, time.perf_counter() - begin)
        results[name] = 2 * side**3 / best / 1e9
    return results
