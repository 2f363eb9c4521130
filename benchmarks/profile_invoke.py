"""Where a trained condnet's invoke time goes, next to the dense net of the same work.

For one trained condnet and its equal-multiply-adds dense peer (run
directories of `examples/frontier.py`, each with `model.keras` and
`model_<precision>.tflite`), in one process:

1. times both whole models interleaved (LiteRT, 1 thread, medians) on a
   stream of different test images and on one image repeated (its active
   blocks stay in cache);
2. splits the condnet's invoke with the op library's profile
   (`keras_condcomp.litert.start_profile`): per CondComp node, phase 1
   (input checks, policy product, int8 activation quantization, masks) and
   phase 2 (the weight-tile loops), the output layer folded into the op
   (if any), the weight bytes it read per invoke and its weight working set
   over the stream (distinct tiles read, plus the policy), against the CPU's
   L2 / L3 sizes;
3. times every builtin layer (the condnet's classifier if not folded, each dense-peer
   layer) as a one-layer model of the same precision, interleaved, on the
   activations it sees in the whole model, less the time of an empty invoke
   (a 1-unit model: the call and interpreter cost every model pays once);
   what is left of the condnet's invoke (total - CondComp nodes - builtin
   layers) is the interpreter and per-op overhead.

Writes `<out>/profile_<name>.{md,json}` (the CPU in the JSON):

    python benchmarks/profile_invoke.py --data-dir ../shared/datasets/mnist \\
        runs/frontier_mnist/condnet_h1024_b16_k4_straight_through_a4_kd-dense_h1024/seed0 \\
        runs/frontier_mnist/dense_h256/seed0
"""

import argparse
import os
import sys
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("ABSL_MIN_LOG_LEVEL", "2")

import bench_common  # noqa: E402
import keras  # noqa: E402
import numpy as np  # noqa: E402

from keras_condcomp import converter, litert  # noqa: E402
from keras_condcomp.converter.network import folded_head  # noqa: E402
from keras_condcomp.layers import GatedDense  # noqa: E402
from keras_condcomp.validation import positive_int_argument  # noqa: E402


def cache_sizes():
    """`{"L1d": bytes, "L2": bytes, "L3": bytes}` of CPU 0 from sysfs (what is known)."""
    sizes = {}
    root = Path("/sys/devices/system/cpu/cpu0/cache")
    for index in sorted(root.glob("index*")) if root.exists() else []:
        try:
            level = (index / "level").read_text().strip()
            kind = (index / "type").read_text().strip()
            text = (index / "size").read_text().strip()
        except OSError:
            continue
        if kind == "Instruction":
            continue
        scale = {"K": 1024, "M": 1024 ** 2}.get(text[-1], 1)
        sizes["L1d" if level == "1" else f"L{level}"] = int(text.rstrip("KM")) * scale
    return sizes


def empty_model():
    """The cheapest model there is: one 1-unit Dense layer (times a bare invoke)."""
    model = keras.Sequential([keras.Input((1,)), keras.layers.Dense(1)])
    return converter.convert(model)


def network_of(model):
    return getattr(model, "network", model)


def layer_inputs(network, x):
    """The input each layer of a Sequential `network` sees for `x` (inference masks)."""
    inputs, h = [], x
    for layer in network.layers:
        inputs.append(h)
        h = keras.ops.convert_to_numpy(layer(h, training=False))
    return inputs


def builtin_layer_model(layer, precision, representative):
    """The Dense `layer` alone, converted in `precision` (the frontier's conversion)."""
    single = keras.Sequential([keras.Input((layer.input.shape[-1],)),
                               keras.layers.Dense.from_config(layer.get_config())])
    single.layers[-1].set_weights(layer.get_weights())
    if precision == "int8":
        return converter.convert(single, quantize="int8", representative=representative)
    return converter.convert(single, quantize="none" if precision == "float32" else precision)


def layer_label(layer, index):
    units = getattr(layer, "units", "?")
    if isinstance(layer, GatedDense):
        return (f"{index}: GatedDense {layer.input.shape[-1]}->{units} "
                f"({layer.num_blocks} blocks, top-{layer.policy.top_k})")
    return f"{index}: Dense {layer.input.shape[-1]}->{units}"


def profile_condnet(data, streams, batch, runs):
    """Per CondComp node (profile) and the whole invoke's mean, per stream."""
    out = {}
    for how, stream in streams.items():
        interp = litert.interpreter_for_batch(data, batch)
        litert.invoke_times(interp, stream, 200)  # warm up before recording
        litert.start_profile()
        total = litert.invoke_times(interp, stream, runs)
        out[how] = {"nodes": litert.stop_profile(), "invoke_mean_s": float(np.mean(total))}
    return out


def bytes_of(node):
    n = max(node["invokes"], 1)
    per_invoke = node["tile_reads"] / n * node["tile_bytes"] + node["policy_bytes"] / n
    policy_total = node["in_dim"] * node["num_blocks"] * 4
    working = (None if node["tiles_seen"] is None
               else node["tiles_seen"] * node["tile_bytes"] + policy_total)
    return per_invoke, working


def run(args):
    x = bench_common.frontier_test_images(args)
    condnet = keras.models.load_model(args.condnet / "model.keras")
    dense = keras.models.load_model(args.dense / "model.keras")
    caches = cache_sizes()
    rows = {**bench_common.machine(), "caches": caches,
            "condnet": str(args.condnet), "dense": str(args.dense), "dataset": args.dataset,
            "threads": 1, "runs_per_round": args.runs, "rounds": args.rounds, "results": []}
    for batch in args.batches:
        images = bench_common.image_stream(x, batch)
        streams = {"different": images, "repeated": [images[0]] * bench_common.STREAM}
        stack = np.concatenate(images)
        c_inputs = layer_inputs(network_of(condnet), stack)
        d_inputs = layer_inputs(network_of(dense), stack)
        for precision in args.precisions:
            c_data = (args.condnet / f"model_{precision}.tflite").read_bytes()
            d_data = (args.dense / f"model_{precision}.tflite").read_bytes()
            jobs = {}
            for how, stream in streams.items():
                jobs[("condnet", how)] = (litert.interpreter_for_batch(c_data, batch), stream)
                jobs[("dense", how)] = (
                    litert.interpreter_for_batch(d_data, batch, custom_ops=False), stream)
            builtin = {}
            for who, net, inputs in (("condnet", network_of(condnet), c_inputs),
                                     ("dense", network_of(dense), d_inputs)):
                folded = [folded_head(net, g) for g in net.layers if isinstance(g, GatedDense)]
                for i, layer in enumerate(net.layers):
                    if isinstance(layer, GatedDense) or not isinstance(layer, keras.layers.Dense):
                        continue
                    if any(layer is head for head in folded):
                        continue
                    h = inputs[i].astype("float32")
                    one = builtin_layer_model(layer, precision, h[:500])
                    builtin[(who, i)] = layer_label(layer, i)
                    jobs[(who, i)] = (litert.interpreter_for_batch(one, batch, custom_ops=False),
                                      bench_common.image_stream(h, batch))
            jobs["empty"] = (litert.interpreter_for_batch(empty_model(), batch, custom_ops=False),
                             [np.zeros((batch, 1), "float32")])
            medians = litert.time_interleaved(jobs, args.rounds, args.runs)
            empty_us = medians["empty"] * 1e6
            profiled = profile_condnet(c_data, streams, batch, args.rounds * args.runs)
            result = {"batch": batch, "precision": precision, "streams": {}}
            for how in streams:
                nodes = profiled[how]["nodes"]
                gated = [layer for layer in network_of(condnet).layers
                         if isinstance(layer, GatedDense)]
                layers = []
                for layer, node in zip(gated, nodes):
                    per_invoke, working = bytes_of(node)
                    n = max(node["invokes"], 1)
                    head = folded_head(network_of(condnet), layer)
                    layers.append({
                        "layer": layer_label(layer, network_of(condnet).layers.index(layer)),
                        "phase1_us": node["gate_ns"] / n / 1e3,
                        "phase2_us": node["block_ns"] / n / 1e3,
                        "macs": node["macs"] / n,
                        "weight_bytes_per_invoke": per_invoke,
                        "working_set_bytes": working,
                        "all_weight_bytes": (node["num_blocks"] * node["in_dim"]
                                             // node["in_block_size"] * node["tile_bytes"]
                                             + node["in_dim"] * node["num_blocks"] * 4),
                        "head": None if head is None else {
                            "layer": layer_label(head, network_of(condnet).layers.index(head)),
                            "us": node["head_ns"] / n / 1e3, "macs": node["head_macs"] / n},
                    })
                ops_us = sum(r["phase1_us"] + r["phase2_us"] + (r["head"] or {"us": 0})["us"]
                             for r in layers)
                builtin_us = sum(medians[key] * 1e6 - empty_us
                                 for key in builtin if key[0] == "condnet")
                invoke_us = profiled[how]["invoke_mean_s"] * 1e6
                result["streams"][how] = {
                    "condnet_ms": medians[("condnet", how)] * 1e3,
                    "dense_ms": medians[("dense", how)] * 1e3,
                    "profiled_invoke_mean_us": invoke_us,
                    "condcomp_layers": layers,
                    "empty_invoke_us": empty_us,
                    "condnet_builtin_layers": [
                        {"layer": label, "us": medians[key] * 1e6 - empty_us}
                        for key, label in builtin.items() if key[0] == "condnet"],
                    "dense_layers": [
                        {"layer": label, "us": medians[key] * 1e6 - empty_us}
                        for key, label in builtin.items() if key[0] == "dense"],
                    "interpreter_and_overhead_us": invoke_us - ops_us - builtin_us,
                }
            rows["results"].append(result)
            print(f"batch {batch} {precision}: done", flush=True)
    return rows


def kib(value):
    return "-" if value is None else f"{value / 1024:.0f}"


def peer_cell(peer):
    return "" if peer is None else f"{peer['us']:.2f} ({peer['layer']})"


def markdown(rows, command):
    caches = ", ".join(f"{k} {v // 1024} KiB" for k, v in rows["caches"].items())
    lines = ["# Profile of one trained condnet invoke against its equal-MAC dense peer", "",
             f"CPU: {rows['cpu']} ({caches}); kernels: {rows['kernel_isa']}; LiteRT, 1 thread.",
             f"Condnet `{rows['condnet']}`, dense peer `{rows['dense']}`. Whole-model times are",
             f"medians of {rows['rounds']} interleaved rounds x {rows['runs_per_round']} "
             "invokes; the phase split is a mean over a profiled pass of the same length.",
             "'different': 64 different test images in turn; 'repeated': one image.",
             "", f"Regenerate: `{command}`", ""]
    for result in rows["results"]:
        lines += [f"## batch {result['batch']}, {result['precision']}", "",
                  "| stream | part | condnet us | dense peer us | condnet weight KiB read / "
                  "working set / all |", "|---|---|---|---|---|"]
        for how, s in result["streams"].items():
            dense_layers = list(s["dense_layers"])
            for i, layer in enumerate(s["condcomp_layers"]):
                peer = dense_layers[i] if i < len(dense_layers) else None
                lines.append(
                    f"| {how} | {layer['layer']}: phase 1 (policy, checks, quantize) | "
                    f"{layer['phase1_us']:.2f} | | |")
                lines.append(
                    f"| {how} | {layer['layer']}: phase 2 (tiles; "
                    f"{layer['macs'] / 1e3:.0f}k MACs, "
                    f"{layer['macs'] / max(layer['phase2_us'], 1e-9) / 1e3:.1f} GMAC/s) | "
                    f"{layer['phase2_us']:.2f} | "
                    f"{peer_cell(peer)} | "
                    f"{kib(layer['weight_bytes_per_invoke'])} / {kib(layer['working_set_bytes'])}"
                    f" / {kib(layer['all_weight_bytes'])} |")
            # the dense peer's later layers face the folded heads, then the builtin layers
            peer_index = len(s["condcomp_layers"])
            for layer in s["condcomp_layers"]:
                head = layer.get("head")
                if head is None:
                    continue
                peer = dense_layers[peer_index] if peer_index < len(dense_layers) else None
                peer_index += 1
                lines.append(f"| {how} | {head['layer']} (folded into the op before it; "
                             f"{head['macs'] / 1e3:.1f}k MACs) | {head['us']:.2f} | "
                             f"{peer_cell(peer)} | |")
            for layer in s["condnet_builtin_layers"]:
                peer = dense_layers[peer_index] if peer_index < len(dense_layers) else None
                peer_index += 1
                lines.append(f"| {how} | {layer['layer']} (builtin, alone) | {layer['us']:.2f} | "
                             f"{peer_cell(peer)} | |")
            lines.append(f"| {how} | an empty invoke (subtracted from each layer alone) | "
                         f"{s['empty_invoke_us']:.2f} | {s['empty_invoke_us']:.2f} | |")
            lines.append(f"| {how} | interpreter and per-op overhead (rest of the profiled "
                         f"invoke, {s['profiled_invoke_mean_us']:.2f} us) | "
                         f"{s['interpreter_and_overhead_us']:.2f} | | |")
            lines.append(f"| {how} | **whole model (median)** | **{s['condnet_ms'] * 1e3:.2f}** | "
                         f"**{s['dense_ms'] * 1e3:.2f}** | ratio "
                         f"{s['condnet_ms'] / s['dense_ms']:.2f}x |")
        lines.append("")
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("condnet", type=Path, help="a condnet's frontier run directory (seedN)")
    parser.add_argument("dense", type=Path, help="its equal-multiply-adds dense peer's")
    bench_common.add_frontier_test_images(parser)
    bench_common.add_precisions(parser, default=["float32", "int8"])
    bench_common.add_batches(parser, default=[1, 32])
    parser.add_argument("--rounds", type=positive_int_argument, default=20)
    parser.add_argument("--runs", type=positive_int_argument, default=50,
                        help="invokes per model per round")
    parser.add_argument("--out", type=Path, default=Path("benchmarks"))
    parser.add_argument("--name", default=None,
                        help="output name (default: the data set and the CPU's ISA)")
    args = parser.parse_args(argv)
    for run_dir in (args.condnet, args.dense):
        for precision in args.precisions:
            if not (run_dir / f"model_{precision}.tflite").exists():
                parser.error(f"{run_dir}/model_{precision}.tflite not found: run "
                             "examples/frontier.py --measure-only on it first")
    rows = run(args)
    command = rows["command"] = bench_common.command_line("profile_invoke.py", argv)
    name = args.name or f"{args.dataset}_{litert.kernel_isa().split(';')[0].split()[1]}"
    text = markdown(rows, command)
    print(text)
    bench_common.write_report(args.out / f"profile_{name}.md", text,
                              args.out / f"profile_{name}.json", rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
