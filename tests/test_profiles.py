"""The profiling tools behind the benchmark's "where the time goes" (numbers are not asserted:
speed belongs in their output, not in tests). Both export in process, so they run in the
TensorFlow session."""

import re

import pytest
from helpers import BACKEND, optional

pytestmark = pytest.mark.any_backend(runs_on="tensorflow")


def _unpinned(monkeypatch, module):
    """The tools pin their process to their cores; here that would pin the test worker."""
    pinned = []
    monkeypatch.setattr(module, "pin_threads", pinned.append)
    return pinned


def test_tflite_profile_times_the_file_without_the_operators_xnnpack_leaves_out(capsys, monkeypatch):
    """The ablation profile of the int8 file (at 32x32, one round: a smoke run of the tool).
    What the files hold is asserted: with GELU and the L2 normalisations swapped out, no GELU
    or RSQRT is left outside XNNPACK, in no more partitions than the exported file has."""
    for module in ("tensorflow", "ai_edge_litert"):
        optional(module)
    if BACKEND != "tensorflow":
        pytest.skip("the tool patches the model's operators in process: TensorFlow's session runs it")
    from benchmarks import tflite_profile
    from benchmarks.tflite_profile import FORMS, main

    pinned = _unpinned(monkeypatch, tflite_profile)
    assert main(["--models", "XS", "--quantizations", "int8", "--rounds", "1", "--image-size", "32",
                 "--threads", "1"]) == 0
    assert pinned == [1]
    rows = [line.split(" | ") for line in capsys.readouterr().out.splitlines() if line.startswith("| XS | int8 |")]
    assert [row[2] for row in rows] == list(FORMS)
    partitions = {row[2]: int(row[5]) for row in rows}
    outside = {row[2]: row[6] for row in rows}
    assert "GELU" not in outside["both"] and "RSQRT" not in outside["both"], outside
    assert partitions["both"] <= partitions["as exported"], partitions
    with pytest.raises(SystemExit) as info:
        main(["--quantizations", "float16"])
    assert info.value.code == 2 and "--quantizations" in capsys.readouterr().err


def test_onnx_profile_times_both_files_operator_by_operator(capsys, monkeypatch):
    """ONNX Runtime's profiler on our file and the torch export (32x32, two calls: a smoke
    run of the tool); the node times add up to no more than the calls' wall time."""
    for module in ("tensorflow", "tf2onnx", "onnxruntime", "torch", "transformers"):
        optional(module)
    from benchmarks import onnx_profile
    from benchmarks.onnx_profile import main

    pinned = _unpinned(monkeypatch, onnx_profile)
    assert main(["--models", "XS", "--runs", "2", "--image-size", "32", "--threads", "1"]) == 0
    assert pinned == [1]
    output = capsys.readouterr().out
    [summary] = [line for line in output.splitlines() if line.startswith("XS: ours")]
    numbers = [float(n) for n in re.findall(r"(\d+\.\d+) (?:ms|in nodes)", summary)]
    assert len(numbers) == 4 and all(n > 0 for n in numbers), summary
    assert numbers[1] <= numbers[0] * 1.05 and numbers[3] <= numbers[2] * 1.05, summary
    [conv] = [line for line in output.splitlines() if line.startswith("| Conv |")]
    assert conv.count("(") == 2, conv  # convolutions on both sides
    with pytest.raises(SystemExit) as info:
        main(["--models", "XL"])
    assert info.value.code == 2 and "XL" in capsys.readouterr().err
