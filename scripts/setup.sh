#!/usr/bin/env bash
# Creates .venv and installs keras-swiftformer with every backend and test tool.
# Safe to re-run: an up-to-date environment installs nothing new.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi
.venv/bin/python -m pip install --quiet --upgrade pip
# torch first and pinned: an unpinned torch resolves to a CUDA build of several GB, while
# 2.13.0 is a CPU wheel. Later requirements (torch>=2.1) are then already satisfied.
.venv/bin/python -m pip install --quiet "torch==2.13.0"
.venv/bin/python -m pip install --quiet -e ".[test]"
.venv/bin/python -m pip check
