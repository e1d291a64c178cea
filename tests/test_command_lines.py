"""Every command line speaks one vocabulary: the same flag means the same thing everywhere,
defaults are shown in --help, and a usage error is exit code 2 with a message naming the flag."""

import contextlib
import io
import os
import re
import runpy
import sys

import pytest
from helpers import ROOT

from keras_swiftformer import cli

pytestmark = [
    pytest.mark.any_backend(runs_on="torch"),  # argument parsing only
    # runpy warns when a module it runs was imported before (here by _parsers); a user runs each once
    pytest.mark.filterwarnings("ignore::RuntimeWarning:runpy"),
]

EXAMPLES = os.path.join(ROOT, "examples")
# (what a user types, how the test runs its --help in this process)
COMMANDS = {
    "swiftformer predict": ("module", "keras_swiftformer", ["predict"]),
    "swiftformer convert": ("module", "keras_swiftformer", ["convert"]),
    "swiftformer export": ("module", "keras_swiftformer", ["export"]),
    "swiftformer explain": ("module", "keras_swiftformer", ["explain"]),
    "python -m training.finetune": ("module", "training.finetune", []),
    "python -m training.segment": ("module", "training.segment", []),
    "python -m benchmarks": ("module", "benchmarks", []),
    **{
        f"python examples/{name}": ("path", os.path.join(EXAMPLES, name), [])
        for name in ("quickstart.py", "export_models.py", "segment_photo.py", "retinanet_shapes.py",
                     "make_shapes_dataset.py", "coral_edgetpu.py")
    },
}
# One name per meaning; the names they replace must not come back.
RETIRED = {
    "--variant": "--model", "--variants": "--models", "--sweep-variant": "--sweep-model",
    "--size": "--image-size", "--input-size": "--image-size", "--crop-size": "--image-size",
    "--out": "-o/--output", "--checkpoint": "--weights",
}


def _run(kind, target, argv):
    """(exit code, stdout + stderr) of a command run in this process."""
    output = io.StringIO()
    old_argv = sys.argv
    sys.argv = [target, *argv]
    code = 0
    try:
        with contextlib.redirect_stdout(output), contextlib.redirect_stderr(output):
            if kind == "module":
                runpy.run_module(target, run_name="__main__", alter_sys=False)
            else:
                runpy.run_path(target, run_name="__main__")
    except SystemExit as exit:
        code = exit.code if isinstance(exit.code, int) else 1
    finally:
        sys.argv = old_argv
    return code, output.getvalue()


@pytest.fixture(scope="module")
def helps():
    texts = {}
    for command, (kind, target, argv) in COMMANDS.items():
        code, text = _run(kind, target, [*argv, "--help"])
        assert code == 0, f"{command} --help: exit {code}\n{text[-2000:]}"
        texts[command] = text
    return texts


def _options(text):
    return set(re.findall(r"(?<![\w-])(--?[a-z][\w-]*)", text))


def test_one_name_for_each_meaning(helps):
    for command, text in helps.items():
        options = _options(text)
        for retired, instead in RETIRED.items():
            assert retired not in options, f"{command} has {retired}: use {instead}"
        if "--output" in options:
            assert "-o" in options, f"{command}: --output without its short form -o"


def _parsers():
    from benchmarks.__main__ import _parser as benchmarks_parser
    from training.finetune import _parser as finetune_parser
    from training.segment import _parser as segment_parser

    library = cli._parser("swiftformer")
    commands = next(a for a in library._actions if a.choices and "predict" in a.choices).choices
    return {**{f"swiftformer {n}": p for n, p in commands.items()}, "python -m training.finetune": finetune_parser(),
            "python -m training.segment": segment_parser(), "python -m benchmarks": benchmarks_parser()}


def test_help_shows_every_default(helps):
    """Each option with a default (not None, not a flag) has help text, so --help shows the
    default; every command's --help shows defaults."""
    for command, parser in _parsers().items():
        for action in parser._actions:
            if action.option_strings and action.default not in (None, False, True, "==SUPPRESS=="):
                assert action.help, f"{command}: {action.option_strings[-1]} has no help, so no default shown"
                shown = "".join(helps[command].split())  # argparse wraps long defaults, at hyphens too
                assert "(default:" + "".join(str(action.default).split()) + ")" in shown or "default" in action.help, (
                    command, action.option_strings)
    for command, text in helps.items():
        assert "(default:" in text, f"{command} --help shows no defaults"


@pytest.mark.parametrize("command, argv, message", [
    ("swiftformer export", ["--model", "XS", "-o", "x.tflite", "--image-size", "0"], "--image-size"),
    ("swiftformer predict", ["x.jpg", "--top", "many"], "--top"),
    ("swiftformer export", ["--format", "onnx", "--quantize", "int8", "-o", "x.onnx"], "--quantize"),
    ("python -m training.finetune", ["--dataset", "d", "-o", "out", "--epochs", "0"], "--epochs"),
    ("python -m training.segment", ["--dataset", "d", "-o", "out", "--depths", "1", "1", "1", "1"], "--widths"),
    ("python -m benchmarks", ["--models", "XXL"], "--models"),
    ("python examples/segment_photo.py", ["photo.jpg"], "--weights"),
    ("swiftformer predict", ["x.jpg", "--model", "L2"], "--model"),
    ("swiftformer convert", ["a.pth", "-o", "xs.h5"], ".weights.h5"),
    ("swiftformer export", ["--model", "XS", "-o", "m.bin"], ".tflite or .onnx"),
    ("swiftformer export", ["--format", "onnx", "-o", "m.tflite"], "--format"),
    ("python -m training.finetune", ["--dataset", "d", "-o", "out", "--model", "XL"], "--model"),
])
def test_usage_errors_exit_2_naming_the_flag(command, argv, message, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    kind, target, prefix = COMMANDS[command]
    code, text = _run(kind, target, [*prefix, *argv])
    assert code == 2 and message in text, f"{command} {argv}: exit {code}\n{text[-1500:]}"
    assert os.listdir(tmp_path) == []


def test_native_logs_are_held_back_unless_the_command_fails(capfd):
    with cli.native_logs_held(verbose=False):
        os.write(2, b"I0000 converter chatter\n")
    assert "chatter" not in capfd.readouterr().err
    with pytest.raises(RuntimeError), cli.native_logs_held(verbose=False):
        os.write(2, b"I0000 cudart_stub.cc:31] Could not find cuda drivers on your machine\n")
        os.write(2, b"E0000 the reason it failed\n")
        raise RuntimeError
    replayed = capfd.readouterr().err  # without TensorFlow's start-up banner
    assert "the reason it failed" in replayed and "cuda drivers" not in replayed
    with cli.native_logs_held(verbose=True):
        os.write(2, b"I0000 shown with --verbose\n")
    assert "shown with --verbose" in capfd.readouterr().err


def test_the_int8_note_tells_rounding_from_calibration():
    """A near-uniform model's int8 disagreement is rounding (1/256 steps), not calibration:
    judged against the model's own class count (a barely trained 4-class model at 0.3 got
    calibration advice when only 1000 classes were considered)."""
    assert cli.near_uniform(0.001, 1000) and not cli.near_uniform(0.3, 1000)
    assert cli.near_uniform(0.3, 4) and not cli.near_uniform(0.9, 4)
    assert cli.near_uniform(0.15, 10) and not cli.near_uniform(0.25, 10)
    assert not cli.near_uniform(0.6, 2)  # half of 2 classes is chance: 0.6 is not near-uniform
