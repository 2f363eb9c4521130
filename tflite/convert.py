#!/usr/bin/env python3
"""Command line of the TFLite converter (`keras_condcomp.converter`).

    python tflite/convert.py MODEL.keras -o model.tflite [--dense] [--verify N]
                             [--summary-data X.npy] [--verbose]

Same as `python -m keras_condcomp.converter ...`; see that package for the
route (Keras -> SavedModel -> TFLite with one custom op per gated layer). This
script hides TensorFlow's start-up and converter logging unless `--verbose`,
and runs on the Keras TensorFlow backend whatever $KERAS_BACKEND says.
"""

import os
import sys

if __name__ == "__main__":  # before Keras and TensorFlow are imported; not when imported
    import quiet_stderr

    quiet_stderr.silence()
    # The converter runs on the TensorFlow backend, whichever backend trained
    # the model (a .keras file loads on any).
    os.environ["KERAS_BACKEND"] = "tensorflow"

from keras_condcomp.converter import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
