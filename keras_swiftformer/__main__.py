import sys

from keras_swiftformer.cli import main

sys.exit(main())
