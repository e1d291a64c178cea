import os

import keras
import numpy as np
import pytest


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
