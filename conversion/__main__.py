"""`python -m conversion convert|export ...`: the library's `swiftformer` command, run from a
clone (see `swiftformer --help`)."""

import sys

from keras_swiftformer.cli import main

if __name__ == "__main__":
    sys.exit(main(prog="python -m conversion"))
