"""The benchmark CLI runs every runtime end to end and writes its report (numbers are not
asserted: speed belongs in the report, not in tests)."""

import json
import os
import subprocess
import sys

import pytest
from helpers import ROOT, optional

from benchmarks.__main__ import RUNTIMES, _parser

# Every runtime runs in its own subprocess whatever the backend of the test session.
pytestmark = pytest.mark.any_backend(runs_on="torch")


def test_quick_benchmark_covers_every_runtime(tmp_path):
    for module in ("torch", "transformers", "jax", "onnxruntime", "tf2onnx", "ai_edge_litert", "matplotlib"):
        optional(module)
    # Keras on JAX and the files are measured in the main table; the sweep's machinery is the same.
    result = subprocess.run(
        [sys.executable, "-m", "benchmarks", "--quick", "--threads", "1", "--output", str(tmp_path / "out"),
         "--cache", str(tmp_path / "cache"), "--sweep-runtimes", "torch-eager"],
        capture_output=True, text=True, timeout=1500, cwd=ROOT,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    with open(tmp_path / "out" / "results.json") as file:
        report = json.load(file)
    measured = {row["runtime"] for row in report["results"] if "median_ms" in row}
    assert measured == set(RUNTIMES), [row for row in report["results"] if "error" in row]
    for row in report["results"]:
        assert row["p25_ms"] <= row["median_ms"] <= row["p75_ms"] and row["runs"] >= 5
        assert row["peak_rss_mb"] > 0
    sweep = {(row["runtime"], row["size"]) for row in report["sweep"] if "median_ms" in row}
    for runtime in ("torch-eager", "torch-eager-mhsa"):
        assert {(runtime, 224), (runtime, 448)} <= sweep, runtime
    gmacs = {m["variant"]: m["gmacs"] for m in report["macs"] if m["attention"] == "additive" and m["size"] == 224}
    assert abs(gmacs["XS"] - 0.6) < 0.05  # the paper's 0.6 GMACs
    mhsa = {m["size"]: m["gmacs"] for m in report["macs"] if m["attention"] == "mhsa"}
    additive = {m["size"]: m["gmacs"] for m in report["macs"] if m["attention"] == "additive" and m["variant"] == "XS"}
    assert mhsa[448] / mhsa[224] > additive[448] / additive[224] * 1.2  # quadratic vs linear
    markdown = (tmp_path / "out" / "results.md").read_text()
    assert "PyTorch eager (official model)" in markdown and "Targets" in markdown
    assert "L1 at batch 1, which this run did not measure" in markdown and "(None)" not in markdown
    assert (tmp_path / "out" / "latency.png").stat().st_size > 1000
    assert (tmp_path / "out" / "resolution.png").stat().st_size > 1000
    assert report["machine"]["versions"]["keras"]


def test_benchmark_rejects_bad_arguments(tmp_path):
    for arguments, message in ((["--runtimes", "keras-mxnet"], "unknown runtimes"),
                               (["--threads", "0"], "--threads"),
                               (["--models", "XL"], "XL")):
        result = subprocess.run([sys.executable, "-m", "benchmarks", *arguments, "--output", str(tmp_path)],
                                capture_output=True, text=True, timeout=300, cwd=ROOT)
        assert result.returncode == 2 and message in result.stderr + result.stdout, result.stderr[-2000:]
    assert not os.listdir(tmp_path)


def test_default_output_is_a_scratch_folder():
    """A plain run never overwrites the committed results; --publish does, on purpose."""
    parser = _parser()
    assert parser.parse_args([]).output == os.path.join(ROOT, "runs", "benchmarks")
    assert "--publish" in parser.format_help()
