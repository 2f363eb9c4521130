"""How much of a condnet's batch-1 time is fetching weights that are not in cache.

A condnet's active blocks change from example to example, so over a stream of
inputs its whole weight set (7.4 MB in float32 for 784-1024-1024-10) cycles
through the caches, while a dense net of the same multiply-adds reads the
same 1.1 MB every time. This times trained `.tflite` models of the frontier
(`examples/frontier.py`'s run directories) two ways in one interleaved run:
on 64 different test images (what the frontier reports) and on one image
repeated (the blocks it needs stay in cache):

    python examples/working_set.py --data-dir ../shared/datasets/mnist \\
        runs/frontier_mnist/dense_h256/seed0 \\
        runs/frontier_mnist/condnet_h1024_b16_k4_straight_through_a4_kd-dense_h1024/seed0
"""

import argparse
import sys
from pathlib import Path

import frontier
import numpy as np

from keras_condcomp import data as condcomp_data
from keras_condcomp.litert import cpu_name, interpreter_for_batch, time_interleaved


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("runs", type=Path, nargs="+", help="frontier run directories (seedN)")
    parser.add_argument("--dataset", default="mnist", choices=("mnist", "fashion_mnist"))
    parser.add_argument("--data-dir", type=Path, default=None)
    parser.add_argument("--precisions", nargs="+", default=["float32", "int8"],
                        choices=frontier.PRECISIONS)
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument("--runs-per-round", type=int, default=20)
    args = parser.parse_args(argv)
    x = condcomp_data.load_dataset(args.dataset, data_dir=args.data_dir).flattened().x_test
    models = {}
    for run in args.runs:
        for precision in args.precisions:
            path = run / f"model_{precision}.tflite"
            if not path.exists():
                parser.error(f"{path} not found: run examples/frontier.py on it first")
            models[(run.parent.name, precision)] = (path.read_bytes(), "condnet" in run.parent.name)
    print(f"CPU: {cpu_name()}; batch 1, 1 thread, medians of interleaved invokes (ms)")
    print("| model | precision | 64 different images | one image repeated | ratio |")
    print("|---|---|---|---|---|")
    inputs = {"different": [np.ascontiguousarray(x[i:i + 1]) for i in range(64)],
              "repeated": [np.ascontiguousarray(x[:1])] * 64}
    # One interleaved run: every (model, input stream) pair in each round.
    jobs = {(key, how): (interpreter_for_batch(data, 1, 1, gated), inputs[how])
            for key, (data, gated) in models.items() for how in inputs}
    times = time_interleaved(jobs, args.rounds, args.runs_per_round, warmup=3)
    for key in models:
        different, repeated = times[(key, "different")], times[(key, "repeated")]
        print(f"| {key[0]} | {key[1]} | {different * 1e3:.4f} | {repeated * 1e3:.4f} | "
              f"{different / repeated:.2f}x |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
