"""`python -m keras_condcomp.converter MODEL.keras -o model.tflite` (see `cli.py`)."""

import sys

from keras_condcomp.converter.cli import main

sys.exit(main())
