"""The benchmark CLI runs every runtime end to end and writes its report (numbers are not
asserted: speed belongs in the report, not in tests)."""

import ast
import json
import os
import subprocess
import sys

import pytest
from helpers import ROOT, optional

from benchmarks.__main__ import DEFAULT_RUNTIMES, _parser, alone, cache_key, peer_cache_key, preparing
from benchmarks.__main__ import main as benchmark_main
from benchmarks.report import _target_lines, ratio_over_rounds, target_ratios

# Every runtime runs in its own subprocess whatever the backend of the test session.
pytestmark = pytest.mark.any_backend(runs_on="torch")


def test_quick_benchmark_covers_every_runtime(tmp_path):
    for module in ("torch", "transformers", "jax", "onnxruntime", "tf2onnx", "ai_edge_litert", "matplotlib"):
        optional(module)
    # Keras on JAX and the files are measured in the main table; the sweep's machinery is the
    # same. The training step runs the official model in torch eager and Keras on the PyTorch
    # backend: the Keras step is one function for every backend (`model.compile` and
    # `train_on_batch`, whose TensorFlow and JAX paths the fine-tuning tests run), and its
    # tf.function and XLA compilations cost this test about two minutes. The step under
    # torch.compile (minutes of compilation) is left to real runs.
    result = subprocess.run(
        [sys.executable, "-m", "benchmarks", "--quick", "--threads", "2", "--output", str(tmp_path / "out"),
         "--cache", str(tmp_path / "cache"), "--sweep-runtimes", "torch-eager", "--one-thread-runtimes", "tflite-int8",
         "--training-runtimes", "torch-eager,keras-torch"],
        capture_output=True, text=True, timeout=1500, cwd=ROOT,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    with open(tmp_path / "out" / "results.json") as file:
        report = json.load(file)
    measured = {row["runtime"] for row in report["results"] if "median_ms" in row and row["threads"] == 2}
    assert measured == set(DEFAULT_RUNTIMES), [row for row in report["results"] if "error" in row]
    assert {(row["runtime"], row["threads"]) for row in report["results"] if row["threads"] == 1} == {("tflite-int8", 1)}
    for row in report["results"]:
        assert row["p25_ms"] <= row["median_ms"] <= row["p75_ms"] and row["runs"] >= 3
        assert row["peak_rss_mb"] > 0 and row["weights_mb"] > 1
    steps = {row["runtime"] for row in report["training"] if row.get("task") == "training" and "median_ms" in row}
    assert steps == {"torch-eager", "keras-torch"}, report["training"]
    pipelines = {row["pipeline"]: row for row in report["training"] if row["runtime"] == "input-pipeline"}
    assert len(pipelines) == 3 and all(row["images_per_s"] > 0 for row in pipelines.values())
    assert report["sgemm"][0]["sgemm_gflops"]["torch"] > 1
    sweep = {(row["runtime"], row["size"]) for row in report["sweep"] if "median_ms" in row}
    for runtime in ("torch-eager", "torch-eager-mhsa"):
        assert {(runtime, 224), (runtime, 448)} <= sweep, runtime
    gmacs = {m["variant"]: m["gmacs"] for m in report["macs"] if m["attention"] == "additive" and m["size"] == 224}
    assert abs(gmacs["XS"] - 0.6) < 0.05  # the paper's 0.6 GMACs
    mhsa = {m["size"]: m["gmacs"] for m in report["macs"] if m["attention"] == "mhsa"}
    additive = {m["size"]: m["gmacs"] for m in report["macs"] if m["attention"] == "additive" and m["variant"] == "XS"}
    assert mhsa[448] / mhsa[224] > additive[448] / additive[224] * 1.2  # quadratic vs linear
    markdown = (tmp_path / "out" / "results.md").read_text()
    for text in ("PyTorch eager (official model)", "torch.compile, freezing", "vs best peer", "Targets",
                 "Training step at batch 2", "Training input pipeline", "sgemm peak"):
        assert text in markdown, text
    assert "(None)" not in markdown
    assert (tmp_path / "out" / "latency.png").stat().st_size > 1000
    assert (tmp_path / "out" / "resolution.png").stat().st_size > 1000
    assert report["machine"]["versions"]["keras"]
    # Where the run's time went, for the "under 20 minutes" target: every phase, adding up.
    assert list(report["phases_s"]) == ["sgemm", "preparing", "rounds", "training, sweep and pipeline"]
    assert abs(sum(report["phases_s"].values()) - report["wall_s"]) < 1.0
    assert isinstance(report["machine"]["int8_dot_product"], list)
    # Exported files and compiled kernels live under a key of the code and versions: ours under
    # the library's, the official model's under the peers'.
    assert report["settings"]["cache_key"] == cache_key()
    assert sorted(os.listdir(tmp_path / "cache")) == sorted([cache_key(), peer_cache_key()])
    assert os.listdir(tmp_path / "cache" / peer_cache_key())  # the torch export and inductor's kernels


def test_a_measurement_stops_every_preparing_process_and_its_children():
    """`alone`: a preparation (here a process with a busy child, as inductor's compiler is)
    is stopped while a measurement runs and continues after it."""
    script = ("import subprocess, sys; child = subprocess.Popen([sys.executable, '-c', 'while True: pass']);"
              "print(child.pid, flush=True); child.wait()")

    def state(pid):
        with open(f"/proc/{pid}/stat") as file:
            return file.read().rsplit(")", 1)[1].split()[0]

    def launch():
        return subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)

    with preparing(launch) as process:
        try:
            child = int(process.stdout.readline())
            assert state(process.pid) != "T" and state(child) != "T"
            with alone():
                assert state(process.pid) == "T" and state(child) == "T"
            assert state(process.pid) != "T" and state(child) != "T"
        finally:
            os.kill(child, 9)
            process.wait()
    with alone():  # nothing preparing any more: nothing to stop
        pass


def test_ratios_are_taken_within_rounds():
    """Each round's ratio is against that round's fastest peer; the spread is over rounds."""
    table = {("ours", "XS", 1, 224, 2): {0: 10.0, 1: 30.0, 2: 12.0},
             ("a", "XS", 1, 224, 2): {0: 20.0, 1: 30.0, 2: 10.0},
             ("b", "XS", 1, 224, 2): {0: 25.0, 1: 20.0, 2: 40.0}}
    value = ratio_over_rounds(table, "ours", ("a", "b"), ("XS", 1, 224, 2))
    assert value["rounds"] == 3 and value["low"] == 0.5 and value["high"] == 1.5 and value["median"] == 1.2
    assert ratio_over_rounds(table, "missing", ("a",), ("XS", 1, 224, 2)) is None


def test_a_subset_of_runtimes_reports_its_targets_as_not_measured():
    """`--runtimes keras-jax` measures no PyTorch peer: its target rows say so (a subset run
    once ended in a KeyError while writing its report)."""
    rows = [{"runtime": "keras-jax", "variant": "L1", "batch": 1, "size": 224, "threads": 2, "round": r,
             "median_ms": 30.0 + r} for r in range(2)]
    report = {"settings": {"variants": ["L1"], "batch_sizes": [1], "size": 224, "threads": 2, "training_batch": 32},
              "results": rows, "training": []}
    [row] = target_ratios(report)["keras_vs_best_pytorch"]
    assert row["runtime"] == "keras-jax" and "median" not in row
    lines = [line for line in _target_lines(report) if line.startswith("| best Keras")]
    assert lines == ["| best Keras backend / best PyTorch runtime | L1 | 1 | Keras, JAX (jit) | - | 1.0 | not measured |"]


def test_benchmark_rejects_bad_arguments(tmp_path, capsys):
    # The command line's exit status once; the other cases in this process (each process
    # imports the library, seconds apiece), before any work starts.
    result = subprocess.run([sys.executable, "-m", "benchmarks", "--runtimes", "keras-mxnet", "--output", str(tmp_path)],
                            capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert result.returncode == 2 and "unknown runtimes" in result.stderr, result.stderr[-2000:]
    for arguments, message in ((["--training-runtimes", "keras-mxnet"], "--training-runtimes"),
                               (["--threads", "0"], "--threads"),
                               (["--rounds", "0"], "--rounds"),
                               (["--batch-sizes", "one"], "--batch-sizes"),
                               (["--models", "XL"], "XL")):
        with pytest.raises(SystemExit) as info:
            benchmark_main([*arguments, "--output", str(tmp_path)])
        assert info.value.code == 2 and message in capsys.readouterr().err
    assert not os.listdir(tmp_path)


def test_default_output_is_a_scratch_folder():
    """A plain run never overwrites the committed results; --publish does, on purpose."""
    parser = _parser()
    assert parser.parse_args([]).output == os.path.join(ROOT, "runs", "benchmarks")
    assert "--publish" in parser.format_help()


def test_a_file_that_fails_to_export_costs_only_its_rows(tmp_path, monkeypatch):
    """The sweep exports every size in one job: a size that fails is reported, the others kept."""
    optional("tensorflow")
    import keras_swiftformer.export as export
    from benchmarks import workers

    def fake_export(model, path, input_size, **_):
        if input_size == 64:
            raise MemoryError("out of memory at 64")
        open(path, "w").close()

    monkeypatch.setattr(export, "export_tflite", fake_export)
    monkeypatch.setattr(workers, "_images", lambda batch, size: None)
    [written] = workers.export_files({"variants": ["XS"], "sizes": [32, 64], "kinds": ["float32"],
                                      "cache": str(tmp_path)})
    assert written["XS/float32/32"] == str(tmp_path / "swiftformer_xs_32_float32.tflite")
    assert "XS/float32/64" not in written
    assert written["errors"] == {"XS/float32/64": "MemoryError: out of memory at 64"}
    assert sorted(os.listdir(tmp_path)) == ["swiftformer_xs_32_float32.tflite"]


def test_pipeline_stages_are_each_measured(tmp_path):
    """`python -m benchmarks.input_pipeline --stages`, run as users run it (its own process:
    TensorFlow's thread counts can only be set before its first operation): one row per stage
    and round, the last stage being the default pipeline; every row measured."""
    optional("tensorflow")
    result = subprocess.run(
        [sys.executable, "-m", "benchmarks.input_pipeline", "--stages", "--threads", "2", "--image-size", "64",
         "--batch-size", "8", "--budget", "0.2", "--cache", str(tmp_path)],
        cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    rows = [ast.literal_eval(line) for line in result.stdout.splitlines() if line.startswith("{")]
    assert len(rows) == 12 and [row["round"] for row in rows] == [0] * 6 + [1] * 6
    assert rows[5]["stage"] == rows[-1]["stage"] == "+ MixUp/CutMix (L1 recipe, default)"
    assert all(row["images_per_s"] > 0 and row["cpu_ms_per_image"] > 0 for row in rows)
