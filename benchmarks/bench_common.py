"""What the programs of benchmarks/ share: options, the op library, the machine, inputs, reports.

benchmark.py, benchmark_conv.py, benchmark_trained.py, compare_libraries.py,
efficiency.py, profile_invoke.py and quantized_accuracy.py import it (it is next to them on
sys.path). Importing it does not import TensorFlow (keras_condcomp is
imported inside the functions that need it), so a program can import it
first and call `quiet_stderr()` before anything loads TensorFlow.
"""

import importlib.util
import json
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent

# --precisions -> keras_condcomp.converter.convert(quantize=...) of the dense
# baseline and of the CondComp model, the same mode on both sides: "dynamic"
# (dense dynamic-range vs CondComp int8 ops with activation scales per input
# block at run time) and "int8" (dense full-integer vs CondComp int8 ops with
# static activation scales), both calibrated on the same inputs.
QUANTIZE = {"float32": "none", "dynamic": "dynamic", "int8": "int8"}
PRECISIONS = tuple(QUANTIZE)
STREAM = 64  # different test images a timed stream cycles through, as examples/frontier.py


# ------------------------------------------------------------------ start-up


def quiet_stderr(argv=None):
    """Hides TensorFlow's start-up logging unless `--verbose` is in `argv`: tflite/quiet_stderr.

    Call it before anything imports TensorFlow. That module belongs to the
    converter's command line, tflite/convert.py, which imports it as its
    sibling; the benchmarks load the same file from its path rather than
    copying it or putting tflite/ on sys.path.
    """
    spec = importlib.util.spec_from_file_location(
        "quiet_stderr", REPO / "tflite" / "quiet_stderr.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.silence(argv)


# ------------------------------------------------------------------ options


def add_precisions(parser, default=PRECISIONS):
    parser.add_argument(
        "--precisions", nargs="+", choices=PRECISIONS, default=list(default),
        help="float32; dynamic: dense dynamic-range int8 (Optimize.DEFAULT) vs the CondComp "
        "int8 ops with run-time activation scales; int8: dense full-integer int8 vs the "
        "CondComp int8 ops with static activation scales, both calibrated on the same inputs")


def add_batches(parser, default):
    from keras_condcomp.validation import positive_int_argument

    parser.add_argument("--batches", type=positive_int_argument, nargs="+",
                        default=list(default), help="batch sizes timed")


def add_threads(parser, default):
    from keras_condcomp.validation import positive_int_argument

    parser.add_argument("--threads", type=positive_int_argument, nargs="+",
                        default=list(default), help="interpreter threads timed")


def add_interleaved_runs(parser, rounds):
    """--rounds and --runs-per-round of `keras_condcomp.litert.time_interleaved`."""
    from keras_condcomp.validation import positive_int_argument

    parser.add_argument("--rounds", type=positive_int_argument, default=rounds,
                        help="interleaved rounds (each times every model; medians reported)")
    parser.add_argument("--runs-per-round", type=positive_int_argument, default=20,
                        help="invokes per model per round")


def add_frontier_test_images(parser):
    """--dataset and --data-dir: the test images of frontier runs (examples/frontier.py)."""
    parser.add_argument("--dataset", default="mnist", choices=("mnist", "fashion_mnist"))
    parser.add_argument("--data-dir", type=Path, default=None)


def frontier_test_images(args):
    from keras_condcomp import data as condcomp_data

    return condcomp_data.load_dataset(args.dataset, data_dir=args.data_dir).flattened().x_test


def command_line(script, argv):
    """The command that reruns tool `script` with `argv` (default: this process's arguments).

    A forced kernel choice ($CONDCOMP_KERNEL_ISA) is part of it.
    """
    args = sys.argv[1:] if argv is None else argv
    command = " ".join([f"python benchmarks/{script}", *map(str, args)])
    isa = os.environ.get("CONDCOMP_KERNEL_ISA")
    return f"CONDCOMP_KERNEL_ISA={isa} {command}" if isa else command


# ------------------------------------------------------------------ machine


def load_ops_library(script):
    """Loads the CondComp op library; exits with `script`'s name and the reason if it cannot."""
    from keras_condcomp import litert

    try:
        litert.load_library()
    except litert.OpsLibraryError as error:
        sys.exit(f"{script}: {error}")


def machine():
    """`{"cpu", "kernel_isa"}`: the machine every timing table records (speeds differ)."""
    from keras_condcomp import litert

    return {"cpu": litert.cpu_name(), "kernel_isa": litert.kernel_isa()}


# ------------------------------------------------------------------ inputs and timing


def cycled_batches(pool, batch, count):
    """`count` batches of `batch` rows taken in turn from `pool` (a short one: `pool[:batch]`)."""
    batches = [pool[(i * batch) % len(pool):][:batch] for i in range(count)]
    return [x if len(x) == batch else pool[:batch] for x in batches]


def image_stream(x, batch, count=STREAM):
    """The first `count` consecutive batches of `batch` images of `x`, each contiguous."""
    return [np.ascontiguousarray(x[i * batch:(i + 1) * batch]) for i in range(count)]


def time_pair(interp_a, interp_b, inputs, runs, warmup):
    """Median seconds of interleaved invoke() calls of two interpreters on the same inputs.

    Run r sets `inputs[r % len(inputs)]` on both and invokes them, in the order
    a, b on even runs and b, a on odd ones; the first `warmup` runs are not recorded.
    """
    ta, tb = [], []
    ia = interp_a.get_input_details()[0]["index"]
    ib = interp_b.get_input_details()[0]["index"]
    n = len(inputs)
    for r in range(warmup + runs):
        x = inputs[r % n]
        order = (0, 1) if r % 2 == 0 else (1, 0)
        for which in order:
            interp, idx, sink = (interp_a, ia, ta) if which == 0 else (interp_b, ib, tb)
            interp.set_tensor(idx, x)
            t0 = time.perf_counter()
            interp.invoke()
            t1 = time.perf_counter()
            if r >= warmup:
                sink.append(t1 - t0)
    return statistics.median(ta), statistics.median(tb)


# ------------------------------------------------------------------ reports


def write_report(md_path, text, json_path, data):
    """Writes the markdown `text` and `data` as JSON (creating their directory)."""
    md_path, json_path = Path(md_path), Path(json_path)
    md_path.parent.mkdir(parents=True, exist_ok=True)
    md_path.write_text(text.rstrip("\n") + "\n")
    json_path.write_text(json.dumps(data, indent=1) + "\n")
    print(f"wrote {md_path} and {json_path}")
