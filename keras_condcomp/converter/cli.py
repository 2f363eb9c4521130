"""Command line of the converter: `python -m keras_condcomp.converter` (and tflite/convert.py)."""

import argparse
import os
import sys

from keras_condcomp.converter.export import convert, load_keras_model, op_counts
from keras_condcomp.converter.network import (
    ConversionError,
    folded_head,
    gated_layers_of,
    unwrap,
)
from keras_condcomp.converter.quantize import QUANTIZE_MODES, calibrate_input_scales
from keras_condcomp.converter.verify import VERIFY_TOLERANCE, verify, verify_quantized_ops
from keras_condcomp.validation import positive_int_argument


def _parse_args(argv):
    parser = argparse.ArgumentParser(
        prog="convert.py",
        description="Convert a Keras model with GatedDense/GatedConv2D layers (custom ops), "
        "or any Keras model (builtin ops), to TFLite.",
    )
    parser.add_argument("model", metavar="MODEL", help="Keras model file (.keras)")
    parser.add_argument("-o", "--output", required=True, help="output .tflite path")
    parser.add_argument(
        "--dense", action="store_true",
        help="export the dense baseline with builtin ops (every block on, masks ignored); "
        "a model without gated layers is always converted this way",
    )
    parser.add_argument(
        "--verify", type=int, default=0, metavar="N",
        help="after converting, run the .tflite (custom ops registered) and the Keras model "
        "on N random inputs (batch 1 and batch N) and fail unless they agree within 1e-5",
    )
    parser.add_argument(
        "--summary-data", metavar="X.npy",
        help="inputs (a .npy array, e.g. a validation split) on which to print the per-layer "
        "gate summary (keras_condcomp.summary): active fractions and multiply-adds",
    )
    parser.add_argument(
        "--quantize", choices=QUANTIZE_MODES, default="none",
        help="dynamic: int8 weights, activations quantized at run time (builtin ops by the "
        "standard converter's Optimize.DEFAULT; the CondComp ops: per-unit int8 weights, "
        "int8 activations per input block); int8: activation scales calibrated on "
        "--representative-data (with --dense: the standard full-integer baseline; the "
        "CondComp ops: a static int8 scale per input block, builtin ops as in dynamic)",
    )
    parser.add_argument(
        "--representative-data", metavar="X.npy",
        help="inputs (a .npy array of real examples) for --quantize int8's calibration",
    )
    parser.add_argument(
        "--representative", type=positive_int_argument, default=200, metavar="N",
        help="how many examples of --representative-data to calibrate on (default 200)",
    )
    parser.add_argument(
        "--verbose", action="store_true",
        help="show TensorFlow's start-up and converter logging (tflite/convert.py hides it)",
    )
    args = parser.parse_args(argv)
    if args.summary_data is not None and not os.path.isfile(args.summary_data):
        parser.error(f"argument --summary-data: file not found: {args.summary_data!r}")
    if args.verify < 0:
        parser.error(f"argument --verify: must be >= 0, got {args.verify}")
    if args.quantize == "int8":
        if args.representative_data is None:
            parser.error("argument --quantize int8 needs --representative-data X.npy")
        if not os.path.isfile(args.representative_data):
            parser.error("argument --representative-data: file not found: "
                         f"{args.representative_data!r}")
    elif args.representative_data is not None:
        parser.error("argument --representative-data: used by --quantize int8 only")
    if not os.path.isfile(args.model):
        parser.error(f"argument MODEL: file not found: {args.model!r}")
    if not args.model.endswith((".keras", ".h5")):
        parser.error(f"argument MODEL: expected a .keras (or .h5) file, got {args.model!r}")
    out_dir = os.path.dirname(os.path.abspath(args.output))
    if not os.path.isdir(out_dir):
        parser.error(f"argument -o/--output: directory does not exist: {out_dir!r}")
    if os.path.isdir(args.output):
        parser.error(f"argument -o/--output: is a directory: {args.output!r}")
    return parser, args


def main(argv=None):
    parser, args = _parse_args(argv)
    try:
        model = load_keras_model(args.model)
    except Exception as e:  # noqa: BLE001 - report any loading failure with the argument
        parser.error(f"argument MODEL: could not load {args.model!r}: {e}")
    network = unwrap(model)
    # A plain Keras model (e.g. the dense net a condnet is compared with) has
    # only builtin ops: converted and verified as --dense.
    args.dense = args.dense or not gated_layers_of(network)
    try:
        representative = scales = None
        if args.quantize == "int8":
            import numpy as np

            try:
                representative = np.load(args.representative_data)[: args.representative]
                if not args.dense:  # calibrated once: the same scales are converted and verified
                    scales = calibrate_input_scales(network, representative)
                    representative = None
            except (ValueError, OSError) as e:  # not an array of model inputs, NaN, ...
                parser.error(f"argument --representative-data: {e}")
        data = convert(model, dense=args.dense, quantize=args.quantize,
                       representative=representative, input_scales=scales)
    except ConversionError as e:
        parser.error(f"argument MODEL: {e}")
    with open(args.output, "wb") as f:
        f.write(data)
    kind = "dense baseline (builtin ops)" if args.dense else "custom ops"
    if args.quantize == "dynamic":
        kind += ", dynamic-range int8 (int8 weights, run-time activation scales)"
    elif args.quantize == "int8":
        kind += (", full-integer int8" if args.dense else
                 ", int8 (int8 weights, static activation scales per input block)")
    print(f"wrote {args.output}: {len(data):,} bytes, {kind}")
    for name, count in sorted(op_counts(data).items()):
        print(f"  {name}: {count}")
    for layer in gated_layers_of(network):
        rule = (f"top_k={layer.policy.top_k}" if layer.policy.top_k is not None
                else f"threshold={layer.threshold}")
        head = None if args.dense else folded_head(network, layer)
        print(
            f"  {layer.name}: {type(layer).__name__} num_blocks={layer.num_blocks} "
            f"block_size={layer.block_size} {rule}"
            + (" (run densely)" if args.dense else "")
            + (f", then {head.name} ({head.units} units) folded into its op" if head else "")
        )
    if args.summary_data is not None:
        import numpy as np

        from keras_condcomp import summary

        x = np.load(args.summary_data)
        print(f"gates of the Keras model on {len(x)} examples of {args.summary_data}:")
        summary(network, x)
    if args.verify:
        if args.quantize != "none":
            # int8 rounding moves the outputs from the float model's: reported.
            worst = verify(model, data, args.verify, dense=args.dense)
            print(f"quantized: max |tflite - keras float32| = {worst:.2e} on {args.verify} "
                  "random inputs (not compared with a tolerance)")
            if args.dense:
                return 0
            # Each CondComp int8 op computes its layer's quantized reference
            # on the input it gets: checked op by op (the builtin ops around
            # them are the standard converter's dynamic-range ones).
            worst = verify_quantized_ops(model, data, args.verify, input_scales=scales)
            print(f"verified: max |CondComp op - keras int8 reference of its layer| = "
                  f"{worst:.2e} on {args.verify} random inputs")
        else:
            worst = verify(model, data, args.verify, dense=args.dense)
            print(f"verified: max |tflite - keras| = {worst:.2e} on {args.verify} random inputs")
        if not worst <= VERIFY_TOLERANCE:
            print(f"error: exceeds {VERIFY_TOLERANCE:g}", file=sys.stderr)
            return 1
    return 0
