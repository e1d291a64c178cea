"""Timing and memory measurement shared by every worker."""

import os
import statistics
import time

import numpy as np


def pin_threads(threads):
    """Every runtime gets the same cores: the process is pinned to `threads` CPUs (the
    runtimes' own thread settings are set to the same number by each worker)."""
    available = sorted(os.sched_getaffinity(0))
    os.sched_setaffinity(0, available[:threads])
    for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
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


def time_call(function, warmup=3, min_repeats=5, max_repeats=30, budget_s=4.0):
    """Median latency (ms) and spread of `function()` after warm-up, plus peak memory.

    Runs at least `min_repeats` and at most `max_repeats` times, stopping once `budget_s`
    seconds of measurement are spent. Memory: resident-set growth above the level before the
    timed runs (the inference working set) and the process's peak resident set.
    """
    for _ in range(warmup):
        function()
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
        "working_set_mb": (peak - baseline) / 2**20 if (peak and baseline and resettable) else None,
    }
