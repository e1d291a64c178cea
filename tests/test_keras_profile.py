"""`python -m benchmarks.keras_profile`: our inference form's operators on this backend beside
the official model's in torch eager (numbers are not asserted: speed belongs in its output)."""

import re

import pytest
from helpers import BACKEND, optional


def test_keras_profile_times_both_models_operator_by_operator(capsys, monkeypatch):
    """A smoke run at 32x32 and two calls on this backend. What the table holds is asserted:
    both sides spend time in convolutions, and each side's categories (the outside-operator
    time included) add up to its call's wall time."""
    for module in ("torch", "transformers"):
        optional(module)
    from benchmarks import keras_profile
    from benchmarks.keras_profile import main

    pinned = []
    # Both would act on the test worker, whose TensorFlow context other tests have started.
    monkeypatch.setattr(keras_profile, "pin_threads", pinned.append)
    monkeypatch.setattr(keras_profile, "use_threads", pinned.append)
    arguments = ["--models", "XS", "--runs", "2", "--image-size", "32", "--threads", "1"]
    if BACKEND not in ("tensorflow", "torch"):
        with pytest.raises(SystemExit) as info:
            main(arguments)
        assert info.value.code == 2 and "KERAS_BACKEND=tensorflow or torch" in capsys.readouterr().err
        return
    assert main(arguments) == 0
    assert pinned == [1, 1]
    lines = capsys.readouterr().out.splitlines()
    [summary] = [line for line in lines if line.startswith("XS, batch 1:")]
    walls = [float(n) for n in re.findall(r"(\d+\.\d+) ms", summary)]
    assert len(walls) == 2 and all(wall > 0 for wall in walls), summary
    rows = [line.split(" | ") for line in lines if line.startswith("| ") and " (" in line and "%)" in line]
    categories = {row[0][2:]: row for row in rows[:9]}
    assert "convolutions" in categories and "outside operators" in categories, rows
    for side, wall in enumerate(walls):
        milliseconds = [float(row[1 + side].split(" (")[0]) for row in categories.values()]
        assert float(categories["convolutions"][1 + side].split(" (")[0]) > 0
        assert sum(milliseconds) == pytest.approx(wall, rel=0.02, abs=0.05), (side, milliseconds, wall)
    if BACKEND == "tensorflow":
        with pytest.raises(SystemExit) as info:
            main(["--compile"])
        assert info.value.code == 2 and "KERAS_BACKEND=torch" in capsys.readouterr().err
