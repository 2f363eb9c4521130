#!/usr/bin/env python3
"""aarch64 instructions per model invocation on the real LiteRT runtime, under qemu-user.

For each tau, converts the 784-2048-2048-2048-10 benchmark condnet (16 blocks,
policy biases set on random inputs so each block is on for a fraction tau)
to a CondComp-op model, and the same network to a builtin-op model (XNNPACK),
and counts the guest instructions one `invoke()` executes in LiteRT's aarch64
libraries, the op library and libm/libstdc++ (Python and libc excluded):
runs with 1 and 1 + N invocations differ by N invocations, whose instructions
are counted through qemu's `-d in_asm,exec,nochain` log restricted with
`-dfilter` to those libraries' code (tflite/arm/insn_count.py). qemu-user
places the guest's mappings deterministically when the host's address
randomization is off (`setarch -R`); every run checks that they did not move.

These are emulated instruction counts, not phone time: no caches, no memory
bandwidth, no pipeline. The builtin-op model runs XNNPACK's aarch64 NEON
kernels (for the fake Cortex-A76 of tflite/arm/litert_sysroot.sh).

    python tflite/arm/litert_insn.py --out benchmarks/arm_litert_insn   # .md + .json

Needs tflite/arm/litert_sysroot.sh and tflite/arm/build.sh to have run.
"""

import argparse
import json
import math
import os
import re
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
import insn_count  # noqa: E402  (this directory is sys.path[0] for the script)

# Code counted: LiteRT's libraries, the op library, libm, libstdc++, libgcc.
COUNTED = re.compile(r"ai_edge_litert/lib[^/]*\.so|libcondcomp_tflite_ops\.so|/libm\.so|"
                     r"/libstdc\+\+\.so|/libgcc_s\.so")


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--taus", type=float, nargs="+", default=[0.5, 0.25, 0.1])
    p.add_argument("--invokes", type=int, default=4, help="N invocations counted per model")
    p.add_argument("--sysroot", default=os.path.join(REPO, "build", "arm-litert"))
    p.add_argument("--library", default=os.path.join(REPO, "build", "arm",
                                                     "libcondcomp_tflite_ops.so"))
    p.add_argument("--qemu", default=os.environ.get("QEMU", "qemu-aarch64"))
    p.add_argument("--hidden", type=int, default=2048)
    p.add_argument("--quantize", choices=("none", "dynamic"), default="none",
                   help="dynamic: both models int8 (dense: the standard converter's "
                   "dynamic-range quantization; CondComp: the int8 ops, int8 weights and "
                   "activations; qemu's default CPU has the dot-product extension, so sdot)")
    p.add_argument("--kernel-isa", choices=("default", "baseline"), default="default",
                   help="baseline: the op library's kernels without the dot-product extension "
                   "($CONDCOMP_KERNEL_ISA=baseline in the guest: plain NEON smull/sadalp for "
                   "int8, as on a phone core without sdot)")
    p.add_argument("--out", default=None, help="write OUT.md and OUT.json")
    return p.parse_args(argv)


def benchmark_condnet(tau, hidden, seed=1):
    """784-H-H-H-10 condnet (16 blocks) whose blocks are each on for a fraction tau."""
    import keras
    import numpy as np

    import keras_condcomp as kc

    keras.utils.set_random_seed(seed)
    network = keras.Sequential([keras.Input((784,))] + [
        kc.GatedDense(hidden, 16, activation="relu", name=f"gated_{i}") for i in range(3)
    ] + [keras.layers.Dense(10)])
    h = np.random.default_rng(0).uniform(size=(256, 784)).astype("float32")
    x = h[:8]
    for layer in kc.layers.gated_layers(network):
        logits = h @ layer.policy.kernel.numpy()
        layer.policy.bias.assign((-np.quantile(logits, 1.0 - tau, axis=0)).astype("float32"))
        h = np.asarray(layer(h, training=False))
    return network, x


def multiply_adds(network, active):
    """(dense, condnet) multiply-adds of one example with these per-layer active fractions.

    A gated layer does `D_in * units * (active input fraction) * (active
    output fraction)`; the input of the first is dense, and the classifier
    reads the last gated layer's output (policy products are left out).
    """
    dense = sparse = 0.0
    previous = 1.0
    active = list(active)
    for layer in network.layers:
        d_in, units = layer.kernel.shape
        out = active.pop(0) if hasattr(layer, "policy") else 1.0
        dense += d_in * units
        sparse += d_in * units * previous * out
        previous = out
    return dense, sparse


def equal_mac_dense(network, macs, seed=1):
    """The dense peer of `network` with `macs` multiply-adds per example (ReLU, random weights).

    Same input and output sizes and as many hidden layers as `network`, all
    h units wide: d_in-h-...-h-d_out, h the width whose d_in*h + (L-1)*h^2 +
    h*d_out (L hidden layers) is nearest `macs`.
    """
    import keras

    d_in, d_out = int(network.input_shape[-1]), int(network.output_shape[-1])
    hidden_layers = len(network.layers) - 1  # every layer but the classifier
    if hidden_layers > 1:
        a, b = hidden_layers - 1, d_in + d_out  # a*h^2 + b*h = macs
        h = (-b + math.sqrt(b * b + 4 * a * macs)) / (2 * a)
    else:
        h = macs / (d_in + d_out)
    h = max(1, round(h))
    keras.utils.set_random_seed(seed)
    return keras.Sequential([keras.Input((d_in,))] + [
        keras.layers.Dense(h, activation="relu") for _ in range(hidden_layers)] + [
        keras.layers.Dense(d_out)])


def layer_sizes(network):
    """The input size, then each layer's units, joined by "-" (784-2048-2048-2048-10)."""
    sizes = [network.input_shape[-1]] + [layer.units for layer in network.layers]
    return "-".join(str(int(size)) for size in sizes)


def _guest(args, model, x_path, out_path, invokes, custom_ops):
    """`(qemu options, program argv, env)` of one guest run of litert_run.py --invokes."""
    root = os.path.join(args.sysroot, "root")
    qemu_args = ["-L", root]
    argv = [os.path.join(root, "usr", "bin", "python3.11"), os.path.join(HERE, "litert_run.py"),
            model, x_path, out_path, "--invokes", str(invokes)]
    if not custom_ops:
        argv.append("--no-custom-ops")
    env = {"PATH": os.environ["PATH"], "PYTHONNOUSERSITE": "1",
           "PYTHONPATH": f"{os.path.join(args.sysroot, 'site')}:{REPO}",
           "CONDCOMP_TFLITE_OPS": args.library, "CONDCOMP_RUNTIME": "litert",
           # Copying kernels at the first invoke is not per-invoke work.
           "CONDCOMP_PACK": "0"}
    if args.kernel_isa != "default":
        env["CONDCOMP_KERNEL_ISA"] = args.kernel_isa
    return qemu_args, argv, env


def _maps(stdout):
    """`[(start, end, path)]` of the counted executable mappings in the guest's output."""
    out = []
    for line in stdout.splitlines():
        fields = line.split()
        if fields[:1] == ["map"] and len(fields) >= 7 and COUNTED.search(fields[-1]):
            start, end = (int(v, 16) for v in fields[1].split("-"))
            out.append((start, end, fields[-1]))
    return out


def count_per_invoke(args, model, x_path, tmp, custom_ops):
    """Guest instructions of one invoke() in the counted libraries."""
    out_path = os.path.join(tmp, "y.npy")
    qemu_args, argv, env = _guest(args, model, x_path, out_path, 0, custom_ops)
    res = subprocess.run(["setarch", "-R", args.qemu] + qemu_args + argv, capture_output=True,
                         text=True, env=env, timeout=600)
    if res.returncode != 0:
        raise RuntimeError(f"{argv} failed:\n{res.stdout}\n{res.stderr}")
    maps = _maps(res.stdout)
    if not maps:
        raise RuntimeError(f"no counted library mapped:\n{res.stdout}")
    log_filter = ",".join(f"0x{s:x}..0x{e - 1:x}" for s, e, _ in maps)
    totals = {}
    for n in (0, args.invokes):
        qemu_args, argv, env = _guest(args, model, x_path, out_path, n, custom_ops)
        with open(os.path.join(tmp, "stdout.txt"), "w+") as stdout:
            totals[n], _ = insn_count.count(argv, qemu=args.qemu, env=env, stdout=stdout,
                                            qemu_args=qemu_args + ["-dfilter", log_filter],
                                            wrapper=["setarch", "-R"])
            stdout.seek(0)
            if _maps(stdout.read()) != maps:
                raise RuntimeError("guest mappings moved between runs: counts not comparable")
    return (totals[args.invokes] - totals[0]) / args.invokes


def main(argv=None):
    args = parse_args(argv)
    import numpy as np

    from keras_condcomp import converter

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        dense_count = None
        for tau in args.taus:
            network, x = benchmark_condnet(tau, args.hidden)
            x_path = os.path.join(tmp, "x.npy")
            np.save(x_path, x)
            model = os.path.join(tmp, f"condnet_{tau:g}.tflite")
            with open(model, "wb") as f:
                f.write(converter.convert(network, quantize=args.quantize))
            if dense_count is None:
                dense = os.path.join(tmp, "dense.tflite")
                with open(dense, "wb") as f:
                    f.write(converter.convert(network, dense=True, quantize=args.quantize))
                dense_count = count_per_invoke(args, dense, x_path, tmp, custom_ops=False)
            ops = count_per_invoke(args, model, x_path, tmp, custom_ops=True)
            network(x[:1], training=False)  # the example every counted invoke runs
            active = [float(np.asarray(layer.gate_outputs.mask).mean())
                      for layer in converter.gated_layers_of(network)]
            dense_macs, condnet_macs = multiply_adds(network, active)
            # The dense net a user would otherwise pick: the condnet's multiply-adds.
            peer = equal_mac_dense(network, condnet_macs)
            peer_model = os.path.join(tmp, f"equal_mac_dense_{tau:g}.tflite")
            with open(peer_model, "wb") as f:
                f.write(converter.convert(peer, dense=True, quantize=args.quantize))
            peer_count = count_per_invoke(args, peer_model, x_path, tmp, custom_ops=False)
            rows.append({"tau": tau, "hidden": args.hidden, "batch": 1,
                         "precision": "float32" if args.quantize == "none" else "dynamic",
                         "dense_xnnpack_insns": dense_count, "condcomp_insns": ops,
                         "ratio": dense_count / ops, "ideal": 1.0 / (tau * tau),
                         "ideal_this_example": dense_macs / condnet_macs,
                         "condnet_multiply_adds": condnet_macs,
                         "equal_mac_dense": layer_sizes(peer),
                         "equal_mac_dense_insns": peer_count,
                         "condcomp_over_equal_mac_dense": ops / peer_count,
                         "active_fraction": active})
            print(f"# tau {tau:g}: dense {dense_count:,.0f} condcomp {ops:,.0f} "
                  f"equal-MAC dense {peer_count:,.0f}", file=sys.stderr)
    int8_kernel = ("NEON sdot: qemu's default CPU has the dot-product extension"
                   if args.kernel_isa == "default" else
                   "plain NEON smull/sadalp: $CONDCOMP_KERNEL_ISA=baseline, as without sdot")
    precision = ("float32" if args.quantize == "none" else
                 "int8 (dense: dynamic-range, XNNPACK; CondComp: int8 weights and activations, "
                 f"{int8_kernel})")
    lines = [f"784-{args.hidden}-{args.hidden}-{args.hidden}-10, 16 blocks, batch 1, {precision}, "
             "real LiteRT "
             "(ai-edge-litert aarch64 wheel) under qemu-aarch64: emulated guest instructions "
             "per invoke() in LiteRT, the op library, libm and libstdc++ (not seconds).", "",
             "\"equal-MAC dense\": the dense net 784-h-h-h-10 (XNNPACK) whose multiply-adds "
             "are nearest the condnet's for the invoked example; \"CondComp / equal-MAC\" "
             "is the target of <= 1.25 (instructions here, time on a device).", "",
             "| tau | active fraction per layer (the invoked example) | dense XNNPACK insns "
             "| CondComp insns | ratio (dense / CondComp) | ideal: its multiply-adds "
             "| 1/tau^2 | equal-MAC dense | its insns | CondComp / equal-MAC |",
             "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for r in rows:
        active = ", ".join(f"{a:.2f}" for a in r["active_fraction"])
        lines.append(f"| {r['tau']:g} | {active} | {r['dense_xnnpack_insns']:,.0f} | "
                     f"{r['condcomp_insns']:,.0f} | {r['ratio']:.2f}x | "
                     f"{r['ideal_this_example']:.1f}x | {r['ideal']:.0f}x | "
                     f"{r['equal_mac_dense']} | {r['equal_mac_dense_insns']:,.0f} | "
                     f"{r['condcomp_over_equal_mac_dense']:.2f}x |")
    text = "\n".join(lines) + "\n"
    print(text)
    if args.out:
        with open(args.out + ".md", "w") as f:
            quantize = f"--quantize {args.quantize} " if args.quantize != "none" else ""
            if args.kernel_isa != "default":
                quantize += f"--kernel-isa {args.kernel_isa} "
            f.write("# aarch64 LiteRT instruction counts\n\n`python tflite/arm/litert_insn.py "
                    f"{quantize}--out {args.out}`\n\n" + text)
        with open(args.out + ".json", "w") as f:
            json.dump(rows, f, indent=2)


if __name__ == "__main__":
    main()
