#!/usr/bin/env python3
"""Command line of the TFLite converter (`keras_condcomp.tflite`).

    python tflite/convert.py MODEL.keras -o model.tflite [--dense] [--verify N] [--summary-data X.npy]

Same as `python -m keras_condcomp.tflite ...`; see that module for the route
(Keras -> SavedModel -> TFLite with one custom op per gated layer).
"""

import sys

from keras_condcomp.tflite import main

if __name__ == "__main__":
    sys.exit(main())
