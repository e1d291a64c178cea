"""Command-line checks that the benchmark's tools share."""

import importlib.util
import os

from keras_swiftformer.variants import get_variant


def require_installed(modules, advice="choose --runtimes without them"):
    """Exits with one error naming every module of `modules` that is not installed."""
    missing = sorted(m for m in modules if importlib.util.find_spec(m) is None)
    if missing:
        raise SystemExit(
            "error: the benchmarks need " + ", ".join(missing) + ". Install them with: pip install "
            "'keras-swiftformer[test]' (on CPU-only machines install torch==2.13.0 first)"
            + (f", or {advice}." if advice else ".")
        )


def check_threads(parser, threads):
    """Exits with a usage error unless `threads` is between 1 and the cores this process has."""
    cores = len(os.sched_getaffinity(0))
    if not 1 <= threads <= cores:
        parser.error(f"--threads must be between 1 and the {cores} cores available")


def variant_list(parser, text, flag="--models"):
    """The variants named in a comma-separated `text`, upper-cased; a usage error names an
    unknown one."""
    variants = [name.strip().upper() for name in text.split(",") if name.strip()]
    if not variants:
        parser.error(f"{flag} names no variant")
    for variant in variants:
        try:
            get_variant(variant)
        except ValueError as error:
            parser.error(f"{flag}: {error}")
    return variants
