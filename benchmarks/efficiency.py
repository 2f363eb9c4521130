"""Speed per multiply-add: trained condnets against the dense net doing the same work.

For every trained condnet of a frontier run directory (`examples/frontier.py`,
the first seed's `model_<precision>.tflite`), times in one interleaved run
(LiteRT, 1 thread, medians; a stream of 64 different test images, batch 1
and 32):
- the condnet;
- the dense net with the same active multiply-adds (`--equal-mac-dense`,
  784-256-256-10 for the 1024-unit condnets computing 4 of 16 blocks);
- the dense net of the condnet's full width (784-W-W-10), where trained;
in float32, "dynamic" and "int8" (see `examples/frontier.py`), and writes the
rows `{"model", "precision", "batch", "threads", "cpu", "condnet_ms",
"equal_mac_dense_ms", "ratio", "full_dense_ms", ...}` (ratio = condnet_ms /
equal_mac_dense_ms; the target is <= 1.25) to `<out>/<name>.{json,md}`
(`--name`, default `efficiency`):

    python benchmarks/efficiency.py runs/frontier_mnist --data-dir ../shared/datasets/mnist
"""

import argparse
import re
import sys
from pathlib import Path

import bench_common

from keras_condcomp import litert

CONDNET = re.compile(r"condnet_h(\d+)_b(\d+)_k(\d+)_")


def first_seed(model_dir):
    seeds = sorted(model_dir.glob("seed*"), key=lambda p: int(p.name[4:]))
    return seeds[0] if seeds else None


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("runs", type=Path, help="a frontier run directory (runs/frontier_mnist)")
    bench_common.add_frontier_test_images(parser)
    parser.add_argument("--equal-mac-dense", default="dense_h256")
    parser.add_argument("--models", nargs="+", default=None,
                        help="condnet run names to time (default: every condnet_* run)")
    bench_common.add_precisions(parser)
    bench_common.add_batches(parser, default=[1, 32])
    bench_common.add_interleaved_runs(parser, rounds=20)
    parser.add_argument("--out", type=Path, default=Path("benchmarks"))
    parser.add_argument("--name", default="efficiency",
                        help="writes <out>/<name>.{json,md} (one name per CPU class)")
    args = parser.parse_args(argv)
    condnets = sorted(p.name for p in args.runs.iterdir() if CONDNET.match(p.name))
    if args.models is not None:
        unknown = sorted(set(args.models) - set(condnets))
        if unknown:
            parser.error(f"--models: no condnet run {unknown} in {args.runs}")
        condnets = [name for name in condnets if name in args.models]
    peer = first_seed(args.runs / args.equal_mac_dense)
    if peer is None or not condnets:
        parser.error(f"{args.runs} needs {args.equal_mac_dense}/seed* and condnet_* runs")
    x = bench_common.frontier_test_images(args)
    models = {}  # name -> (run dir, custom ops)
    for name in condnets:
        models[name] = (first_seed(args.runs / name), True)
        width = CONDNET.match(name).group(1)
        full = first_seed(args.runs / f"dense_h{width}")
        if full is not None:
            models[f"dense_h{width}"] = (full, False)
    models[args.equal_mac_dense] = (peer, False)
    cpu = bench_common.machine()
    rows = []
    for batch in args.batches:
        stream = bench_common.image_stream(x, batch)
        jobs = {}
        for name, (run, custom) in models.items():
            for precision in args.precisions:
                path = run / f"model_{precision}.tflite"
                if not path.exists():
                    parser.error(f"{path} not found: run examples/frontier.py --measure-only")
                interp = litert.interpreter_for_batch(path.read_bytes(), batch, custom_ops=custom)
                jobs[(name, precision)] = (interp, stream)
        medians = litert.time_interleaved(jobs, args.rounds, args.runs_per_round)
        for name in condnets:
            width = CONDNET.match(name).group(1)
            for precision in args.precisions:
                condnet_ms = medians[(name, precision)] * 1e3
                equal_ms = medians[(args.equal_mac_dense, precision)] * 1e3
                full = medians.get((f"dense_h{width}", precision))
                rows.append({
                    "model": name, "precision": precision, "batch": batch, "threads": 1, **cpu,
                    "condnet_ms": condnet_ms, "equal_mac_dense": args.equal_mac_dense,
                    "equal_mac_dense_ms": equal_ms, "ratio": condnet_ms / equal_ms,
                    "full_dense_ms": None if full is None else full * 1e3,
                })
        print(f"batch {batch} timed", flush=True)
    command = bench_common.command_line("efficiency.py", argv)
    lines = [
        "# Condnet time over the time of the dense net with the same multiply-adds", "",
        f"CPU: {rows[0]['cpu']}; kernels: {rows[0]['kernel_isa']}; LiteRT, 1 thread; "
        f"medians of {args.rounds} interleaved rounds x {args.runs_per_round} invokes on "
        f"{bench_common.STREAM} different test images. Equal-MAC peer: {args.equal_mac_dense}. "
        "Target (issue 24): ratio <= 1.25 at batch 1; int8 never slower at batch 32.", "",
        f"Regenerate: `{command}`", "",
        "| condnet | precision | batch | condnet ms | equal-MAC dense ms | ratio | full-width "
        "dense ms |", "|---|---|---|---|---|---|---|"]
    for r in rows:
        full = "-" if r["full_dense_ms"] is None else f"{r['full_dense_ms']:.4f}"
        lines.append(f"| {r['model']} | {r['precision']} | {r['batch']} | {r['condnet_ms']:.4f} "
                     f"| {r['equal_mac_dense_ms']:.4f} | {r['ratio']:.2f}x | {full} |")
    text = "\n".join(lines)
    print(text)
    bench_common.write_report(args.out / f"{args.name}.md", text, args.out / f"{args.name}.json",
                              {"command": command, "rows": rows})
    return 0


if __name__ == "__main__":
    sys.exit(main())
