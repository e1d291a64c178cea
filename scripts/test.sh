#!/usr/bin/env bash
# The test command: sets up .venv if needed, checks the repository (no committed file over 2 MB
# or generated file; ruff clean), then runs the suite on TensorFlow, JAX and PyTorch.
# Arguments go to pytest, e.g. `bash scripts/test.sh -k parity`.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
.venv/bin/python scripts/check_repository.py
.venv/bin/ruff check --quiet . && echo "ruff: clean"
# Optional dependencies are part of the default run: a missing one fails instead of skipping.
export KSF_REQUIRE_ALL=1
# Two workers per backend (files kept whole, so module fixtures are built once): 2 cores.
exec .venv/bin/python scripts/run_tests.py -q -n 2 --dist loadfile "$@"
