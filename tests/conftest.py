import os

import keras
import numpy as np
import pytest


def pytest_collection_modifyitems(config, items):
    """Tests marked `any_backend` run in one backend's session of a multi-backend run: the one
    named by `runs_on=` (the fastest for that test, or the one it needs in-process), else the
    first. `scripts/run_tests.py` names the run's backends in KSF_SESSION_BACKENDS; a plain
    `pytest` on one backend runs everything."""
    backends = [b for b in os.environ.get("KSF_SESSION_BACKENDS", "").split(",") if b]
    if not backends:
        return
    current = keras.backend.backend()
    keep, drop = [], []
    for item in items:
        marker = item.get_closest_marker("any_backend")
        preferred = marker.kwargs.get("runs_on", backends[0]) if marker else current
        target = preferred if preferred in backends else backends[0]
        (keep if target == current else drop).append(item)
    if drop:
        config.hook.pytest_deselected(items=drop)
        items[:] = keep


def pytest_report_header(config):
    return f"keras {keras.__version__}, backend: {keras.backend.backend()}"


@pytest.fixture(autouse=True)
def _seed_and_clear():
    keras.utils.set_random_seed(0)
    np.random.seed(0)
    yield
    keras.backend.clear_session()


@pytest.fixture(scope="session")
def golden():
    from helpers import GOLDEN_PATH

    if not os.path.exists(GOLDEN_PATH):
        pytest.fail(f"Golden fixture missing: {GOLDEN_PATH}. Run: PYTHONPATH=tests .venv/bin/python -m golden_fixture")
    with np.load(GOLDEN_PATH) as data:
        return {key: data[key] for key in data.files}
