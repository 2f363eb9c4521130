"""Hides TensorFlow/absl/CUDA start-up and converter logging of the command-line tools.

TensorFlow's native libraries write straight to file descriptor 2 (absl's
pre-init notice, oneDNN, CUDA probing, MLIR converter warnings); no
environment variable silences all of it in TF 2.21. `silence(argv)` points
descriptor 2 at /dev/null unless `--verbose` is in `argv`, and gives Python
a `sys.stderr` on the original descriptor, so our own errors (argparse,
tracebacks) still show. Call it before importing TensorFlow or Keras.

Why here, as a file of its own: it must run before TensorFlow loads, so it
cannot be part of keras_condcomp (whose `__init__` imports Keras, which
imports TensorFlow), and it is not worth a second top-level module in the
wheel for programs that only run from a checkout. It lives next to the
converter's command line, tflite/convert.py, which imports it as its sibling
(the script's own directory is on sys.path), and which must work from a
checkout with only the wheel installed. The benchmark programs of
benchmarks/, which depend on tflite/ anyway (not the other way round), use
this same file through `bench_common.quiet_stderr()`, which loads it from its
path (and importing bench_common does not import TensorFlow).
"""

import os
import sys


def silence(argv=None):
    """Returns True if native stderr was silenced (no `--verbose` in `argv`)."""
    argv = sys.argv[1:] if argv is None else argv
    if "--verbose" in argv:
        return False
    sys.stderr.flush()
    original = os.dup(2)
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 2)
    os.close(devnull)
    sys.stderr = os.fdopen(original, "w", buffering=1)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    return True
