"""Repository hygiene, run by the test command before the tests: no committed file over 2 MB
unless it is a documented asset, and no generated file (profiles, exports, caches, run
outputs) committed at all. Exits non-zero listing what to remove."""

import fnmatch
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
LIMIT = 2 * 1024 * 1024
# Files allowed over the limit, each with the reason it must be in the repository.
ASSETS = {}
GENERATED = (
    "onnxruntime_profile__*.json", "*.tflite", "*.onnx", "*.keras", "*.weights.h5", "*.npy",
    "*.pyc", "runs/*", ".benchmarks/*",
)


def main():
    files = subprocess.run(
        ["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True
    ).stdout.decode().split("\0")
    problems = []
    for name in filter(None, files):
        path = os.path.join(ROOT, name)
        if any(fnmatch.fnmatch(name, pattern) for pattern in GENERATED):
            problems.append(f"{name}: a generated file; remove it from git (it is in .gitignore)")
        elif os.path.isfile(path) and os.path.getsize(path) > LIMIT and name not in ASSETS:
            problems.append(
                f"{name}: {os.path.getsize(path) / 1e6:.1f} MB, over the 2 MB limit; remove it, or "
                "add it to ASSETS in scripts/check_repository.py with the reason it must be committed"
            )
    for problem in problems:
        print(f"error: {problem}", file=sys.stderr)
    print(f"repository check: {len(files) - 1} committed files, {len(problems)} problems")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
