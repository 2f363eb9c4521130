#!/usr/bin/env python3
"""Speed of the CondComp conv op vs XNNPACK's convolution of the same layers.

    bash tflite/build_ops.sh
    python benchmarks/benchmark_conv.py                 # table -> benchmarks/conv_layers.{md,json}
    python benchmarks/benchmark_conv.py --shapes 16x16x64x64 --rounds 5   # quick look

Each shape HxWxCxF is a 3x3 "same" convolution with ReLU, F filters in
--blocks channel blocks, of which each example computes --top-k (default half:
the layer's own budget, `GatedConv2D(top_k=...)`). Two networks per shape:
- "one layer": the gated layer alone on an N(0, 1) input (every input channel
  non-zero, so its work is top_k / blocks of the dense layer's);
- "two layers": two such gated layers stacked; the second one's input has
  the first one's blocks off (exact zeros), which the op skips, so its work
  is (top_k / blocks)^2.
Random Glorot weights; the policy picks the blocks (different ones per
example). Both sides are converted from the same Keras model by
keras_condcomp.converter.convert: `dense=True` gives builtin CONV_2D ops (run by
XNNPACK, masks ignored), the other the CondComp conv ops. Precisions as in
benchmark.py: float32; "dynamic" (dense dynamic-range vs the CondComp
int8 ops with run-time activation scales) and "int8" (dense full-integer vs the
CondComp int8 ops with static scales, both calibrated on the same inputs).
Timing: LiteRT, 1 thread, batch 1 and 8 by default, all models of one shape
interleaved in one run (`keras_condcomp.litert.time_interleaved`), medians.
speedup = dense ms / CondComp ms; ideal = dense multiply-adds / CondComp
multiply-adds (gated products only: the policy's are in the CondComp ms).
`--save-models DIR` also writes each CondComp model as
DIR/conv_<shape>_<layers>layer_<precision>.tflite (for
benchmarks/compare_libraries.py, which feeds them N(0, 1) inputs).
"""

import argparse
import os
from pathlib import Path

import bench_common  # does not import TensorFlow

if __name__ == "__main__":  # before TensorFlow is imported
    bench_common.quiet_stderr()

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")

import numpy as np  # noqa: E402

from keras_condcomp.validation import positive_int_argument  # noqa: E402

HERE = Path(__file__).resolve().parent  # benchmarks/: the tables live here too
DEFAULT_SHAPES = ("32x32x32x32", "16x16x64x64", "8x8x128x128")


def shape_arg(text):
    """argparse type: HxWxCxF, four positive integers."""
    sizes = text.lower().split("x")
    if len(sizes) != 4:
        raise argparse.ArgumentTypeError(f"--shapes: expected HxWxCxF, got {text!r}")
    return tuple(positive_int_argument(size) for size in sizes)


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--shapes", type=shape_arg, nargs="+",
                   default=[shape_arg(s) for s in DEFAULT_SHAPES])
    p.add_argument("--blocks", type=int, default=4)
    p.add_argument("--top-k", type=int, default=None, help="blocks per example (default half)")
    bench_common.add_precisions(p)
    bench_common.add_batches(p, default=[1, 8])
    bench_common.add_interleaved_runs(p, rounds=15)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", type=Path, default=HERE / "conv_layers")
    p.add_argument("--save-models", type=Path, default=None, metavar="DIR",
                   help="also write the CondComp models there")
    args = p.parse_args(argv)
    if args.blocks < 2:
        p.error(f"--blocks must be at least 2, got {args.blocks}")
    if args.top_k is None:
        args.top_k = args.blocks // 2
    if not 1 <= args.top_k <= args.blocks:
        p.error(f"--top-k must be in [1, --blocks], got {args.top_k}")
    for _, _, c, f in args.shapes:
        if f % args.blocks or c % args.blocks:
            p.error(f"--shapes: C and F must be multiples of --blocks={args.blocks}")
    return args


def build(shape, layers, blocks, top_k, seed):
    import keras

    import keras_condcomp as kc

    h, w, c, f = shape
    keras.utils.set_random_seed(seed)
    net = keras.Sequential([keras.Input((h, w, c))])
    for i in range(layers):
        net.add(kc.GatedConv2D(f, 3, num_blocks=blocks, padding="same", activation="relu",
                               top_k=top_k, name=f"gated_conv_{i}"))
    return net


def main(argv=None):
    args = parse_args(argv)
    bench_common.load_ops_library("benchmark_conv.py")
    from keras_condcomp import converter as cv
    from keras_condcomp import litert

    rng = np.random.default_rng(args.seed)
    cpu = bench_common.machine()
    command = bench_common.command_line("benchmark_conv.py", argv)
    rows = []
    density = args.top_k / args.blocks
    for shape in args.shapes:
        h, w, c, f = shape
        x_cal = rng.standard_normal((64, h, w, c)).astype(np.float32)
        pool = rng.standard_normal((32, h, w, c)).astype(np.float32)
        jobs, meta = {}, {}
        for layers in (1, 2):
            net = build(shape, layers, args.blocks, args.top_k, args.seed)
            dense_macs = h * w * 9 * f * (c + (layers - 1) * f)
            cc_macs = h * w * 9 * f * density * (c + (layers - 1) * f * density)
            for precision in args.precisions:
                q = bench_common.QUANTIZE[precision]
                scales = cv.calibrate_input_scales(net, x_cal) if q == "int8" else None
                dense = cv.convert(net, dense=True, quantize=q,
                                   representative=x_cal if q == "int8" else None)
                sparse = cv.convert(net, quantize=q, input_scales=scales)
                if args.save_models is not None:
                    args.save_models.mkdir(parents=True, exist_ok=True)
                    name = f"conv_{'x'.join(map(str, shape))}_{layers}layer_{precision}.tflite"
                    (args.save_models / name).write_bytes(sparse)
                # What the CondComp model computes: Keras float32, or the int8 reference.
                reference = (net(pool, training=False).numpy() if q == "none"
                             else cv.quantized_reference(net, pool, scales)[0])
                for batch in args.batches:
                    inputs = bench_common.cycled_batches(pool, batch, 8)
                    key = (layers, precision, batch)
                    condcomp = litert.interpreter_for_batch(sparse, batch)
                    err = float(np.max(np.abs(condcomp.predict(pool[:batch])
                                              - reference[:batch])))
                    jobs[key + ("dense",)] = (litert.interpreter_for_batch(dense, batch), inputs)
                    jobs[key + ("condcomp",)] = (condcomp, inputs)
                    meta[key] = (dense_macs, cc_macs, err)
        times = litert.time_interleaved(jobs, args.rounds, args.runs_per_round, seed=args.seed)
        for key, (dense_macs, cc_macs, err) in meta.items():
            layers, precision, batch = key
            td, ts = times[key + ("dense",)], times[key + ("condcomp",)]
            rows.append({
                "shape": "x".join(map(str, shape)), "layers": layers, "precision": precision,
                "batch": batch, "threads": 1, "cpu": cpu["cpu"], "blocks": args.blocks,
                "top_k": args.top_k, "dense_ms": td * 1e3, "condcomp_ms": ts * 1e3,
                "speedup": td / ts, "ideal": dense_macs / cc_macs,
                "condcomp_gmacs": batch * cc_macs / ts / 1e9,
                "dense_gmacs": batch * dense_macs / td / 1e9, "max_abs_err": err,
            })
            r = rows[-1]
            print(f"{r['shape']} layers={layers} {precision} b{batch}: dense {r['dense_ms']:.3f} "
                  f"ms, condcomp {r['condcomp_ms']:.3f} ms, {r['speedup']:.2f}x "
                  f"(ideal {r['ideal']:.2f}x)", flush=True)
    write(args, rows, cpu, command)


def write(args, rows, cpu, command):
    lines = [
        "# The CondComp conv op vs XNNPACK's convolution, layer by layer",
        "",
        f"3x3 \"same\" convolutions with ReLU, {args.blocks} channel blocks, top_k="
        f"{args.top_k} per example (random Glorot weights, N(0, 1) inputs). \"one layer\": "
        "the gated layer on a dense input; \"two layers\": two stacked, the second one's "
        "input has the first one's off blocks. LiteRT, 1 thread; all models of a shape timed "
        f"in one interleaved run ({args.rounds} rounds x {args.runs_per_round} invokes, "
        "medians). speedup = dense ms / CondComp ms; ideal = the multiply-adds ratio. "
        "\"max abs err\": the CondComp model vs what it computes (float32: the Keras model; "
        "int8: keras_condcomp.converter.quantized_reference).",
        "",
        f"CPU: {cpu['cpu']}; kernel path: {cpu['kernel_isa']}.",
        "",
        f"Command: `{command}`",
        "",
        "| shape HxWxCxF | layers | precision | batch | dense XNNPACK ms | CondComp ms "
        "| speedup | ideal | CondComp GMAC/s | dense GMAC/s | max abs err vs reference |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['shape']} | {r['layers']} | {r['precision']} | {r['batch']} | "
            f"{r['dense_ms']:.3f} | {r['condcomp_ms']:.3f} | {r['speedup']:.2f}x | "
            f"{r['ideal']:.2f}x | {r['condcomp_gmacs']:.1f} | {r['dense_gmacs']:.1f} | "
            f"{r['max_abs_err']:.1e} |")
    bench_common.write_report(args.out.with_suffix(".md"), "\n".join(lines),
                              args.out.with_suffix(".json"),
                              {"command": command, **cpu, "rows": rows})


if __name__ == "__main__":
    main()
