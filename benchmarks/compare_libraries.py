"""Two builds of the CondComp op library on the same trained models, timed in one run.

For kernel work: the speed change of a library build (B) against another (A),
free of what moves between runs on a virtual machine (memory bandwidth,
frequency). Each model of `--models` (`.tflite` files) is loaded twice in one
process, once with each library as its delegate (LiteRT or tf.lite, 1
thread), and the pairs are timed interleaved (random order per round,
medians) on a stream of 64 different test images per batch size (a model
whose input is not an image of `--dataset`, e.g. the conv layers that
`benchmarks/benchmark_conv.py --save-models DIR` writes: 64 batches of N(0, 1)
values, seeded). Also
checks that the two libraries give the same outputs on the first batch (the
largest absolute difference is reported; a kernel change that is meant to
keep outputs bit-identical shows 0).

    python benchmarks/compare_libraries.py OLD.so build/tflite_ops/libcondcomp_tflite_ops.so \\
        --models runs/frontier_mnist/condnet_*/seed0/model_{float32,int8}.tflite \\
        --data-dir ../shared/datasets/mnist --name compare_libraries

With `--models-b`, B runs those files instead (one per `--models` file, in
order): two conversions of the same trained model (e.g. before and after a
converter change) timed the same way, with the same or another library.

Writes `<out>/<name>.{md,json}` when `--name` is given.
"""

import argparse
import os
import sys
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("ABSL_MIN_LOG_LEVEL", "2")

import bench_common  # noqa: E402
import numpy as np  # noqa: E402

from keras_condcomp import litert  # noqa: E402


def interpreter(library, model, batch):
    """The runtime's interpreter of `model` with `library` as its delegate, for `batch` rows."""
    _, module, _ = litert.resolve_runtime()
    interp = module.Interpreter(model_content=model.read_bytes(), num_threads=1,
                                experimental_delegates=[module.load_delegate(str(library))])
    detail = interp.get_input_details()[0]
    interp.resize_tensor_input(detail["index"], [batch, *detail["shape"][1:]])
    interp.allocate_tensors()
    return interp


def output_of(interp, x):
    interp.set_tensor(interp.get_input_details()[0]["index"], x)
    interp.invoke()
    return interp.get_tensor(interp.get_output_details()[0]["index"]).copy()


def model_inputs(images, interp, batch, seed=0):
    """64 input batches for `interp`: test images where its input takes them, else N(0, 1)."""
    shape = tuple(interp.get_input_details()[0]["shape"][1:])
    if shape == images.shape[1:]:
        return bench_common.image_stream(images, batch)
    rng = np.random.default_rng(seed)
    return [rng.standard_normal((batch, *shape)).astype(np.float32)
            for _ in range(bench_common.STREAM)]


def run(args):
    images = bench_common.frontier_test_images(args)
    rows = []
    for model, model_b in zip(args.models, args.models_b or args.models):
        for batch in args.batches:
            pair = {"a": interpreter(args.library_a, model, batch),
                    "b": interpreter(args.library_b, model_b, batch)}
            inputs = model_inputs(images, pair["a"], batch)
            difference = float(np.max(np.abs(output_of(pair["a"], inputs[0])
                                              - output_of(pair["b"], inputs[0]))))
            seconds = litert.time_interleaved(
                {name: (interp, inputs) for name, interp in pair.items()},
                rounds=args.rounds, runs=args.runs_per_round)
            row = {"model": str(model), "model_b": str(model_b), "batch": batch, "threads": 1,
                   "a_ms": seconds["a"] * 1e3, "b_ms": seconds["b"] * 1e3,
                   "ratio": seconds["b"] / seconds["a"], "max_abs_output_difference": difference}
            rows.append(row)
            print(f"{model} b{batch}: A {row['a_ms']:.4f} ms, B {row['b_ms']:.4f} ms, "
                  f"B/A {row['ratio']:.3f}, outputs differ by {difference:.3g}", flush=True)
    return rows


def markdown(report):
    two_models = any(row["model_b"] != row["model"] for row in report["rows"])
    lines = [
        "# Two conversions of the same models" if two_models
        else "# Two op library builds on the same models",
        "",
        f"CPU: {report['cpu']}; kernels: {report['kernel_isa']}; LiteRT, 1 thread; medians of "
        f"{report['rounds']} interleaved rounds x {report['runs_per_round']} invokes on 64 "
        "different inputs (test images; N(0, 1) values for a model that does not take "
        "them). A: `{a}`, B: `{b}`.".format(a=report["library_a"],
                                                             b=report["library_b"]),
        "",
        f"Regenerate: `{report['command']}`",
        "",
        "| model | batch | A ms | B ms | B / A | max abs output difference |",
        "|---|---|---|---|---|---|",
    ]
    for row in report["rows"]:
        model = row["model"] if row["model_b"] == row["model"] else (
            f"{row['model']} (B: {row['model_b']})")
        lines.append(f"| {model} | {row['batch']} | {row['a_ms']:.4f} | "
                     f"{row['b_ms']:.4f} | {row['ratio']:.3f} | "
                     f"{row['max_abs_output_difference']:.3g} |")
    return "\n".join(lines) + "\n"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("library_a", type=Path, help="the op library to compare against")
    parser.add_argument("library_b", type=Path, help="the op library under test")
    parser.add_argument("--models", type=Path, nargs="+", required=True,
                        help=".tflite models with CondComp ops")
    parser.add_argument("--models-b", type=Path, nargs="+", default=None,
                        help="B's models, one per --models file (default: the same files)")
    bench_common.add_frontier_test_images(parser)
    bench_common.add_batches(parser, default=[1, 32])
    bench_common.add_interleaved_runs(parser, rounds=20)
    parser.add_argument("--out", type=Path, default=Path("benchmarks"))
    parser.add_argument("--name", default=None,
                        help="writes <out>/<name>.{md,json} (default: print only)")
    args = parser.parse_args(argv)
    if args.models_b is not None and len(args.models_b) != len(args.models):
        parser.error(f"--models-b: {len(args.models_b)} files for {len(args.models)} --models")
    for path in (args.library_a, args.library_b, *args.models, *(args.models_b or [])):
        if not path.is_file():
            parser.error(f"{path} is not a file")
    bench_common.load_ops_library("compare_libraries.py")
    report = {"command": bench_common.command_line("compare_libraries.py", argv),
              **bench_common.machine(), "library_a": str(args.library_a),
              "library_b": str(args.library_b), "rounds": args.rounds,
              "runs_per_round": args.runs_per_round, "rows": run(args)}
    text = markdown(report)
    print(text)
    if args.name:
        bench_common.write_report(args.out / f"{args.name}.md", text,
                                  args.out / f"{args.name}.json", report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
