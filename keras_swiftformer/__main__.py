"""`python -m keras_swiftformer ...`: the `swiftformer` command."""

import sys

from keras_swiftformer.cli import main

if __name__ == "__main__":
    sys.exit(main())
