#!/usr/bin/env python3
"""Speed of the CondComp custom ops vs the dense XNNPACK baseline (TFLite, CPU).

    bash tflite/build_ops.sh
    python benchmarks/benchmark.py                      # full table -> benchmarks/
    python benchmarks/benchmark.py --runs 50 --taus 0.25 --batches 1 --threads 1   # quick look

Network: 784-2048-2048-2048-10, three `GatedDense(2048, num_blocks=16,
activation="relu")` layers and a `Dense(10)`, random (Glorot) weights. This
measures speed, not accuracy: for each tau the policy biases are set so that
every block of every layer is on for a fraction tau of the benchmark inputs
(bias_k = -quantile_{1-tau} of block k's policy logit over a calibration set,
layer by layer), so each example uses about tau of the blocks, a different set
per example. Both models are converted from the same Keras model by
tflite/convert.py: `--dense` (builtin FULLY_CONNECTED, run by XNNPACK, masks
ignored) and the custom-op model. Runs are interleaved in one process (A, B, B,
A, ... on the same inputs, a fresh input batch each run); medians over --runs.

Columns: time per inference (median of invoke()), speedup = dense / custom,
ideal = dense multiply-adds / custom multiply-adds for the measured active
fractions (per layer 1/(a_in*a_out), plus the policies and the final Dense that
the custom model also runs), and speedup as a percent of ideal.
"""

import argparse
import os
import statistics
import sys
import time

import bench_common  # does not import TensorFlow

if __name__ == "__main__":  # before TensorFlow is imported (--verbose keeps its logging)
    bench_common.quiet_stderr()

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")

HERE = os.path.dirname(os.path.abspath(__file__))  # benchmarks/: the tables live here too

import numpy as np  # noqa: E402

from keras_condcomp.validation import positive_int_argument  # noqa: E402

DENSE_MODEL = {"float32": "float32", "dynamic": "dynamic-range int8",
               "int8": "full-integer int8 (calibrated)"}
CONDCOMP_OPS = {"float32": "float32",
                "dynamic": "int8 weights and activations (run-time scales)",
                "int8": "int8 weights and activations (static scales, calibrated)"}
CALIBRATION = 200  # inputs the int8 scales of both models are calibrated on


def fraction(name, low_inclusive):
    """argparse type: a number in (0, 1] (or [0, 1] when `low_inclusive`)."""
    interval = "[0, 1]" if low_inclusive else "(0, 1]"

    def parse(value):
        try:
            v = float(value)
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"{name} values must be numbers in {interval}, got {value!r}")
        if not (0.0 <= v if low_inclusive else 0.0 < v) or v > 1.0:
            raise argparse.ArgumentTypeError(f"{name} values must be in {interval}, got {value!r}")
        return v

    return parse


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--taus", type=fraction("--taus", low_inclusive=False), nargs="+",
                   default=[0.5, 0.25, 0.1])
    bench_common.add_batches(p, default=[1, 32])
    bench_common.add_threads(p, default=[1, 2])
    p.add_argument("--runs", type=positive_int_argument, default=200,
                   help="timed runs per configuration and model (median reported)")
    p.add_argument("--warmup", type=positive_int_argument, default=20)
    p.add_argument("--blocks", type=positive_int_argument, default=16,
                   help="num_blocks of each gated layer (must divide 2048)")
    p.add_argument("--hidden", type=positive_int_argument, default=2048)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default=os.path.join(HERE, "tflite_gated_mlp.md"),
                   help="markdown table written here ('' to skip)")
    p.add_argument("--profile", action="store_true",
                   help="also time each gated layer alone (batch 1) to see where time goes")
    p.add_argument("--tf", action="store_true",
                   help="also time the TensorFlow paths (keras_condcomp.sparse vs masked Keras)")
    bench_common.add_precisions(p)
    p.add_argument("--verbose", action="store_true",
                   help="show TensorFlow's start-up and converter logging")
    p.add_argument("--max-density", type=fraction("--max-density", low_inclusive=True),
                   nargs="+", default=None,
                   help="max_density value(s) of the TF sparse path (default: the package's)")
    args = p.parse_args(argv)
    if args.hidden % args.blocks:
        p.error(f"argument --blocks: {args.blocks} does not divide --hidden {args.hidden}")
    if args.out:
        d = os.path.dirname(os.path.abspath(args.out))
        if not os.path.isdir(d):
            p.error(f"argument --out: directory does not exist: {d!r}")
        if os.path.isdir(args.out):  # found now, not after the whole benchmark
            p.error(f"argument --out: is a directory: {args.out!r}")
    return args


def build_network(hidden, blocks, seed):
    import keras

    import keras_condcomp as kc

    keras.utils.set_random_seed(seed)
    layers = [keras.Input((784,))]
    for i in range(3):
        layers.append(kc.GatedDense(hidden, num_blocks=blocks, activation="relu",
                                    name=f"gated_{i}"))
    layers.append(keras.layers.Dense(10, name="logits"))
    return keras.Sequential(layers, name="gated_mlp")


def calibrate(network, tau, x_cal):
    """Sets each gated layer's policy bias so every block is on for a fraction tau."""
    import keras_condcomp as kc

    h = x_cal
    for layer in network.layers:
        if isinstance(layer, kc.GatedDense):
            logits = h @ layer.policy.kernel.numpy()
            bias = -np.quantile(logits, 1.0 - tau, axis=0)
            layer.policy.bias.assign(bias.astype(np.float32))
        h = layer(h, training=False).numpy()


def active_fractions(network, x):
    import keras_condcomp as kc

    network(x, training=False)
    return [float(np.mean(layer.gate_outputs.mask)) for layer in network.layers
            if isinstance(layer, kc.GatedDense)]


def mac_counts(network, fracs, blocks):
    """(dense MACs, custom-op MACs) per example for the measured active fractions."""
    import keras_condcomp as kc

    dense = custom = 0.0
    a_in = 1.0
    i = 0
    for layer in network.layers:
        d_in = layer.kernel.shape[0]
        units = layer.kernel.shape[1]
        dense += d_in * units
        if isinstance(layer, kc.GatedDense):
            a_out = fracs[i]
            custom += d_in * units * a_in * a_out + d_in * blocks * a_in  # main + policy
            a_in = a_out
            i += 1
        else:
            custom += d_in * units  # builtin FULLY_CONNECTED does not skip zeros
    return dense, custom


def weights_read(network, batches):
    """Mean fraction of the gated layers' weights in tiles some example of a batch needs.

    The op reads the (output block j, input block i) weight tile once per
    batch if any example has block j on and input block i non-zero (the
    previous gated layer's mask; the first layer's input is one dense block).
    With few multiply-adds per weight byte, a batch's time is bounded by
    reading these bytes, whatever the ideal multiply-add ratio says.
    """
    import keras_condcomp as kc

    fractions = []
    for x in batches:
        network(x, training=False)
        touched = total = 0.0
        in_mask = np.ones((len(x), 1), bool)
        for layer in network.layers:
            if not isinstance(layer, kc.GatedDense):
                in_mask = np.ones((len(x), 1), bool)
                continue
            out = np.asarray(layer.gate_outputs.mask) > 0
            need = (out[:, :, None] & in_mask[:, None, :]).any(axis=0)
            size = float(np.prod(layer.kernel.shape))
            touched += need.mean() * size
            total += size
            in_mask = out
        fractions.append(touched / total)
    return float(np.mean(fractions))


def stream_bandwidth(megabytes=256, repeats=5):
    """Bytes per second one thread reads streaming through a large array (NumPy sum).

    The bound for memory-bound rows: reading the weight tiles a batch needs
    takes at least `weights_read * weight bytes / stream_bandwidth()`.
    """
    a = np.ones(megabytes << 18, np.float32)
    a.sum()
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        a.sum()
        best = min(best, time.perf_counter() - t0)
    return a.nbytes / best


def gated_weight_bytes(network, precision):
    """Bytes of the gated layers' kernels in the CondComp model (int8: 1 per weight)."""
    import keras_condcomp as kc

    per_weight = 4 if bench_common.QUANTIZE[precision] == "none" else 1
    return per_weight * sum(int(np.prod(layer.kernel.shape)) for layer in network.layers
                            if isinstance(layer, kc.GatedDense))


def profile_layers(network, x, threads, runs, warmup, precision="float32"):
    """Times each gated layer alone (batch 1): custom op vs dense FC, both at `precision`."""
    import keras

    import keras_condcomp as kc
    from keras_condcomp import converter as cv
    from keras_condcomp import litert

    rows = []
    h = x
    for layer in network.layers:
        out = layer(h, training=False).numpy()
        if isinstance(layer, kc.GatedDense):
            a_out = float(np.mean(np.asarray(layer.gate_outputs.mask)))
            d_in = h.shape[1]
            single = keras.Sequential([keras.Input((d_in,)), layer])
            q = bench_common.QUANTIZE[precision]
            rep = h if q == "int8" else None
            sparse = cv.convert(single, quantize=q, representative=rep)
            dense = cv.convert(single, dense=True, quantize=q, representative=rep)
            a = litert.interpreter_for_batch(dense, 1, num_threads=threads)
            b = litert.interpreter_for_batch(sparse, 1, num_threads=threads)
            inputs = [h[i:i + 1] for i in range(len(h))]
            td, ts = bench_common.time_pair(a, b, inputs, runs, warmup)
            a_in = float(np.mean(np.any(h.reshape(len(h), -1, layer.block_size) != 0, axis=2))) \
                if d_in != 784 else 1.0
            macs = d_in * layer.units * a_in * a_out
            rows.append((layer.name, td, ts, a_in, a_out, macs, d_in * layer.units))
        h = out
    return rows


def time_tf_paths(network, pool, batches, runs, warmup, max_density):
    """Median seconds of tf.function(masked Keras network) vs the gathered sparse path."""
    import tensorflow as tf

    from keras_condcomp import sparse

    masked = tf.function(lambda x: network(x, training=False))
    gathered = sparse.SparseInference(network, mode="auto", max_density=max_density)
    rows = []
    for batch in batches:
        xs = [tf.constant(x) for x in bench_common.cycled_batches(pool, batch, 8)]
        err = float(np.max(np.abs(masked(xs[0]).numpy() - gathered(xs[0]).numpy())))
        ta, tb = [], []
        for r in range(warmup + runs):
            x = xs[r % len(xs)]
            for fn, sink in ((masked, ta), (gathered, tb)) if r % 2 == 0 else \
                    ((gathered, tb), (masked, ta)):
                t0 = time.perf_counter()
                fn(x).numpy()
                if r >= warmup:
                    sink.append(time.perf_counter() - t0)
        rows.append((max_density, batch, statistics.median(ta), statistics.median(tb), err))
    return rows


def header_lines(args, argv, bandwidth, load):
    """The markdown table's title, what it measures on which machine, and its column heads."""
    from keras_condcomp import litert

    cpu, runtime = bench_common.machine(), litert.resolve_runtime()
    return [
        "# CondComp TFLite custom ops vs dense XNNPACK: 784-2048-2048-2048-10 gated MLP",
        "",
        f"Policy biases are SET so each block is on for a fraction tau of the inputs "
        f"(this measures speed, not accuracy; random Glorot weights, N(0,1) inputs). "
        f"num_blocks={args.blocks} (block size {args.hidden // args.blocks}), "
        f"median of {args.runs} interleaved invoke() runs after {args.warmup} warm-up runs, "
        f"a new input batch each run.",
        "",
        f"CPU: {cpu['cpu']}, {os.cpu_count()} logical cores; kernel path: "
        f"{cpu['kernel_isa']}; runtime {runtime[0]} "
        f"{runtime[2]} (XNNPACK for builtin ops, our ops as a delegate); "
        f"1-min load average at start: {load:.2f}. \"weights read\": the fraction "
        "of the gated layers' weight bytes in tiles some example of the batch needs (read once "
        f"per batch: the bound at large batch); \"bytes bound ms\": those bytes at this "
        f"machine's one-thread streaming read bandwidth, {bandwidth / 1e9:.1f} GB/s (NumPy sum of "
        "256 MB), the least time a memory-bound CondComp run can take. Precision: "
        "float32 = both models float32; "
        "dynamic = dense dynamic-range int8 (the converter's Optimize.DEFAULT) vs the CondComp "
        "int8 ops (int8 weights and activations, activation scales per input block at run "
        "time); int8 = dense full-integer int8 vs the CondComp int8 ops with static "
        f"activation scales per input block, both calibrated on the same {CALIBRATION} inputs. "
        "\"max abs err\": the CondComp model vs what it computes (float32: the Keras model; "
        "int8: keras_condcomp.converter.quantized_reference).",
        "",
        f"Command: `{bench_common.command_line('benchmark.py', argv)}`",
        "",
        "| tau | precision | batch | threads | active (per layer) | weights read "
        "| bytes bound ms | dense XNNPACK ms | CondComp ms | speedup | ideal | % of ideal "
        "| max abs err vs reference |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]


def load_average():
    """The 1-minute load average (NaN where the OS has none): how busy the machine was."""
    return os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")


def convert_models(network, precisions, x_cal, pool):
    """`(models, references)` of the network as calibrated now.

    `models[precision]` is `(dense flatbuffer, CondComp flatbuffer)`;
    `references[quantize]` what the CondComp model computes on `pool`: the
    Keras float32 output, or the int8 reference with the same static scales
    it is converted with.
    """
    from keras_condcomp import converter as cv

    calibration = x_cal[:CALIBRATION]
    input_scales = (cv.calibrate_input_scales(network, calibration)
                    if "int8" in precisions else None)
    models, references = {}, {}
    for precision in precisions:
        q = bench_common.QUANTIZE[precision]
        scales = input_scales if q == "int8" else None
        models[precision] = (
            cv.convert(network, dense=True, quantize=q,
                       representative=calibration if q == "int8" else None),
            cv.convert(network, quantize=q, input_scales=scales))
        references[q] = (network(pool, training=False).numpy() if q == "none"
                         else cv.quantized_reference(network, pool, scales)[0])
    return models, references


def time_tau(network, tau, args, x_cal, pool, bandwidth):
    """Rows of the main table for one tau: `(markdown rows, JSON rows)`, printed as they come."""
    from keras_condcomp import litert

    calibrate(network, tau, x_cal)
    fracs = active_fractions(network, pool)
    dense_macs, custom_macs = mac_counts(network, fracs, args.blocks)
    ideal = dense_macs / custom_macs
    models, references = convert_models(network, args.precisions, x_cal, pool)
    lines, json_rows = [], []
    for precision, batch in ((p, b) for p in args.precisions for b in args.batches):
        dense_data, sparse_data = models[precision]
        inputs = bench_common.cycled_batches(pool, batch, len(pool))
        read = weights_read(network, inputs[:16])
        bound_ms = 1e3 * read * gated_weight_bytes(network, precision) / bandwidth
        for threads in args.threads:
            a = litert.interpreter_for_batch(dense_data, batch, num_threads=threads)
            b = litert.interpreter_for_batch(sparse_data, batch, num_threads=threads)
            reference = references[bench_common.QUANTIZE[precision]]
            err = float(np.max(np.abs(b.predict(pool[:batch]) - reference[:batch])))
            td, ts = bench_common.time_pair(a, b, inputs, args.runs, args.warmup)
            speedup = td / ts
            row = (f"| {tau:g} | {precision} | {batch} | {threads} | "
                   f"{', '.join(f'{f:.3f}' for f in fracs)} | {read:.3f} | {bound_ms:.3f} | "
                   f"{td * 1e3:.3f} | "
                   f"{ts * 1e3:.3f} | {speedup:.2f}x | {ideal:.2f}x | "
                   f"{100 * speedup / ideal:.0f}% | {err:.1e} |")
            json_rows.append({"tau": tau, "batch": batch, "threads": threads,
                              "precision": precision, "dense_ms": td * 1e3,
                              "condcomp_ms": ts * 1e3, "speedup": speedup, "ideal": ideal,
                              "pct_of_ideal": 100 * speedup / ideal,
                              "dense_model": DENSE_MODEL[precision],
                              "condcomp_ops": CONDCOMP_OPS[precision],
                              "active": fracs, "weights_read": read,
                              "bytes_bound_ms": bound_ms,
                              "max_abs_err": err})
            print(row, flush=True)
            lines.append(row)
    return lines, json_rows


def profile_table(profile):
    """The per-layer profile table (`--profile`) of rows `(tau, precision, threads) + layer row`."""
    lines = [
        "",
        "Per-layer profile (each gated layer converted alone, batch 1): dense = same "
        "layer as builtin FULLY_CONNECTED (XNNPACK).",
        "",
        "| tau | precision | threads | layer | dense ms | CondComp ms | a_in | a_out "
        "| custom MACs | CondComp GMAC/s | dense GMAC/s |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for tau, precision, threads, name, td, ts, a_in, a_out, macs, dmacs in profile:
        lines.append(f"| {tau:g} | {precision} | {threads} | {name} | {td * 1e3:.3f} | "
                     f"{ts * 1e3:.3f} | "
                     f"{a_in:.3f} | {a_out:.3f} | {macs / 1e6:.2f}M | "
                     f"{macs / ts / 1e9:.1f} | {dmacs / td / 1e9:.1f} |")
    return lines


def tf_table(tf_rows):
    """The TensorFlow paths table (`--tf`) of rows `(tau,) + time_tf_paths row`."""
    lines = [
        "",
        "TensorFlow paths (tf.function, TF intra-op threads as configured by TF): masked "
        "Keras network vs keras_condcomp.sparse.SparseInference(mode='auto') (gathers "
        "block-major tiles).",
        "",
        "| tau | max_density | batch | masked Keras ms | sparse TF ms | speedup | "
        "max abs diff |",
        "|---|---|---|---|---|---|---|",
    ]
    for tau, max_density, batch, tm, tg, err in tf_rows:
        lines.append(f"| {tau:g} | {max_density:g} | {batch} | {tm * 1e3:.3f} | "
                     f"{tg * 1e3:.3f} | {tm / tg:.2f}x | {err:.1e} |")
    return lines


def main(argv=None):
    args = parse_args(argv)
    bench_common.load_ops_library("benchmark.py")
    from keras_condcomp import litert

    rng = np.random.default_rng(args.seed)
    network = build_network(args.hidden, args.blocks, args.seed)
    x_cal = rng.standard_normal((4096, 784)).astype(np.float32)
    pool = rng.standard_normal((max(64, 4 * max(args.batches)), 784)).astype(np.float32)
    load = load_average()
    bandwidth = stream_bandwidth()

    lines = header_lines(args, argv, bandwidth, load)
    print("\n".join(lines), flush=True)
    json_rows, profile, tf_rows = [], [], []
    for tau in args.taus:
        tau_lines, tau_rows = time_tau(network, tau, args, x_cal, pool, bandwidth)
        lines += tau_lines
        json_rows += tau_rows
        if args.tf:
            from keras_condcomp.sparse import DEFAULT_MAX_DENSITY

            for max_density in args.max_density or [DEFAULT_MAX_DENSITY]:
                tf_rows += [(tau,) + row for row in time_tf_paths(
                    network, pool, args.batches, args.runs, args.warmup, max_density)]
        if args.profile:
            for precision in args.precisions:
                for threads in args.threads:
                    profile += [(tau, precision, threads) + row for row in profile_layers(
                        network, pool[:64], threads, args.runs, args.warmup, precision)]
    extra = (profile_table(profile) if profile else []) + (tf_table(tf_rows) if tf_rows else [])
    extra += ["", f"1-min load average at end: {load_average():.2f}."]
    print("\n".join(extra))
    lines += extra
    if args.out:
        runtime, _, version = litert.resolve_runtime()
        bench_common.write_report(
            args.out, "\n".join(lines), os.path.splitext(args.out)[0] + ".json",
            {**bench_common.machine(), "stream_bandwidth_gb_s": bandwidth / 1e9,
             "runtime": f"{runtime} {version}", "rows": json_rows})
    return 0


if __name__ == "__main__":
    sys.exit(main())
