"""Hides TensorFlow/absl/CUDA start-up and converter logging of the command-line tools.

TensorFlow's native libraries write straight to file descriptor 2 (absl's
pre-init notice, oneDNN, CUDA probing, MLIR converter warnings); no
environment variable silences all of it in TF 2.21. `silence(argv)` points
descriptor 2 at /dev/null unless `--verbose` is in `argv`, and gives Python
a `sys.stderr` on the original descriptor, so our own errors (argparse,
tracebacks) still show. Call it before importing TensorFlow or Keras. The
tools in this directory import it first (it is next to them on sys.path).
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
