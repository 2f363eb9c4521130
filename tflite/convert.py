#!/usr/bin/env python3
"""Command line of the TFLite converter (`keras_condcomp.converter`).

    python tflite/convert.py MODEL.keras -o model.tflite [--dense] [--verify N]
                             [--summary-data X.npy] [--verbose]

Same as `python -m keras_condcomp.converter ...`; see that package for the
route (Keras -> SavedModel -> TFLite with one custom op per gated layer). This
script hides TensorFlow's start-up and converter logging unless `--verbose`.
"""

import sys

if __name__ == "__main__":  # before TensorFlow is imported; not when imported
    import quiet_stderr

    quiet_stderr.silence()

from keras_condcomp.converter import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
