"""Epoch times of the README's MNIST recipe on each Keras backend, 1 and 2 threads.

    python benchmarks/training_backends.py --data-dir ../shared/datasets/mnist

runs the README's recipe ("## Using it": a dense 784-1024-1024-10 net, then
the condnet gated from it, straight-through top-4-of-16 gates, the dense net
as teacher) with each backend and thread count in a process of its own
(Keras fixes its backend at import), one after the other, and writes
benchmarks/training_backends.{json,md}: seconds per epoch of the dense fit and
of the condnet fit (the median over the epochs after the first, which also
compiles), the first epoch, and the test accuracies. Thread counts are CPU
affinity (the process runs on that many cores) plus each backend's own
setting. Nothing else should run on the machine meanwhile.

`--worker` is the per-process step (also used by tests/test_backends.py):

    KERAS_BACKEND=jax python benchmarks/training_backends.py --worker \\
        --data DATA.npz --out DIR --epochs 6 [--threads N]

runs the recipe on DATA.npz's x_train, y_train, x_val, y_val, x_test, y_test
and writes DIR/model.keras, DIR/predictions.npy (x_test[:64]) and
DIR/result.json.
"""

import argparse
import importlib.metadata
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
README = REPO / "README.md"
BACKENDS = ("tensorflow", "jax", "torch")


def readme_recipe(epochs):
    """The README's '## Using it' code block, run for `epochs` instead of its 12."""
    block = re.search(r"## Using it\n.*?```python\n(.*?)```", README.read_text(), re.S)
    if block is None:
        raise SystemExit("README.md lost its '## Using it' python example")
    code = block.group(1)
    if "epochs, batch_size = 12, 128" not in code:
        raise SystemExit("README.md's recipe no longer sets `epochs, batch_size = 12, 128`")
    return code.replace("epochs, batch_size = 12, 128", f"epochs, batch_size = {epochs}, 128")


def limit_threads(threads):
    """Runs this process (and the threads it starts) on `threads` cores, before any import."""
    cores = sorted(os.sched_getaffinity(0))
    if threads > len(cores):
        raise SystemExit(f"--threads {threads}: this process may use {len(cores)} cores")
    os.sched_setaffinity(0, cores[:threads])
    os.environ["TF_NUM_INTRAOP_THREADS"] = str(threads)
    os.environ["TF_NUM_INTEROP_THREADS"] = str(threads)
    os.environ["OMP_NUM_THREADS"] = str(threads)


def worker(data_path, out_dir, epochs, threads):
    if threads:
        limit_threads(threads)
    import keras
    import numpy as np

    if keras.backend.backend() == "torch" and threads:
        import torch

        torch.set_num_threads(threads)

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    data = np.load(data_path)

    class EpochTimes(keras.callbacks.Callback):
        def on_train_begin(self, logs=None):
            self.seconds = []

        def on_epoch_begin(self, epoch, logs=None):
            self.start = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            self.seconds.append(time.perf_counter() - self.start)

    # The recipe's two fits (dense, then condnet), each timed per epoch.
    timers = []
    fit = keras.Model.fit

    def timed_fit(model, *args, callbacks=None, **kwargs):
        timers.append(EpochTimes())
        return fit(model, *args, callbacks=list(callbacks or []) + [timers[-1]], **kwargs)

    keras.Model.fit = timed_fit
    keras.utils.set_random_seed(0)
    namespace = {name: data[name] for name in ("x_train", "y_train", "x_val", "y_val")}
    cwd = os.getcwd()
    os.chdir(out_dir)  # the recipe writes model.keras and best.keras
    try:
        exec(compile(readme_recipe(epochs), str(README), "exec"), namespace)  # noqa: S102
    finally:
        os.chdir(cwd)
        keras.Model.fit = fit
    model, dense = namespace["model"], namespace["dense"]
    x_test, y_test = data["x_test"], data["y_test"]
    np.save(out_dir / "predictions.npy", np.asarray(model.predict(x_test[:64], verbose=0)))
    result = {
        "backend": keras.backend.backend(),
        "threads": threads,
        "history": {k: [float(v) for v in vals] for k, vals in model.history.history.items()},
        "test": {k: float(v) for k, v in
                 model.evaluate(x_test, y_test, verbose=0, return_dict=True).items()},
        "dense_test_accuracy": float(
            dense.evaluate(x_test, y_test, verbose=0, return_dict=True)["accuracy"]),
        "dense_epoch_seconds": timers[0].seconds,
        "condnet_epoch_seconds": timers[1].seconds,
    }
    (out_dir / "result.json").write_text(json.dumps(result, indent=1))


def _steady(seconds):
    return statistics.median(seconds[1:]) if len(seconds) > 1 else seconds[0]


def markdown(report):
    lines = [
        "# Training speed of the README recipe per Keras backend",
        "",
        f"`{report['command']}`",
        "",
        f"CPU: {report['cpu']}; MNIST {report['train_examples']:,} training / "
        f"{report['val_examples']:,} validation / {report['test_examples']:,} test images; "
        f"{report['epochs']} epochs per fit, batch 128. Seconds per epoch are medians over "
        "the epochs after the first (which also compiles); ratios are to TensorFlow at the "
        "same thread count.",
        "",
        "| backend | threads | dense s/epoch | condnet s/epoch | condnet vs TF | "
        "condnet 1st epoch s | condnet test acc | dense test acc |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    base = {row["threads"]: row["condnet_epoch_s"] for row in report["rows"]
            if row["backend"] == "tensorflow"}
    for row in report["rows"]:
        ratio = (f"{base[row['threads']] / row['condnet_epoch_s']:.2f}x"
                 if row["threads"] in base else "-")
        lines.append(
            f"| {row['backend']} | {row['threads']} | {row['dense_epoch_s']:.2f} | "
            f"{row['condnet_epoch_s']:.2f} | {ratio} | {row['condnet_first_epoch_s']:.2f} | "
            f"{row['condnet_test_accuracy']:.4f} | {row['dense_test_accuracy']:.4f} |")
    lines += ["", "Versions: " + ", ".join(
        f"{k} {v}" for k, v in sorted(report["versions"].items())), ""]
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data-dir", help="directory with the MNIST idx files")
    parser.add_argument("--backends", default=",".join(BACKENDS))
    parser.add_argument("--threads", default="1,2",
                        help="comma-separated thread counts (worker: one)")
    parser.add_argument("--epochs", type=int, default=3, help="epochs per fit")
    parser.add_argument("--max-train", type=int, default=None,
                        help="training images (default: 55,000; 5,000 more are validation)")
    parser.add_argument("--out", default=str(REPO / "benchmarks" / "training_backends"),
                        help="output path without extension (.json and .md are written)")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--data", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.epochs < 1:
        parser.error(f"--epochs must be a positive integer. Received: {args.epochs}")
    if args.worker:
        threads = int(args.threads) if args.threads and "," not in args.threads else None
        worker(args.data, args.out, args.epochs, threads)
        return
    backends = [b for b in args.backends.split(",") if b]
    unknown = sorted(set(backends) - set(BACKENDS))
    if unknown:
        parser.error(f"--backends must name {BACKENDS}. Received: {unknown}")
    threads = [int(t) for t in args.threads.split(",") if t]
    if not args.data_dir:
        parser.error("--data-dir is required (the MNIST idx files)")

    import numpy as np

    from keras_condcomp import data as condcomp_data
    from keras_condcomp.litert import cpu_name

    train = 55000 if args.max_train is None else args.max_train
    dataset = condcomp_data.load_dataset("mnist", data_dir=args.data_dir, seed=0).flattened()
    arrays = {"x_train": dataset.x_train[:train], "y_train": dataset.y_train[:train],
              "x_val": dataset.x_train[55000:60000], "y_val": dataset.y_train[55000:60000],
              "x_test": dataset.x_test, "y_test": dataset.y_test}
    rows = []
    versions = {name: importlib.metadata.version(name) for name in ["keras", *backends]}
    with tempfile.TemporaryDirectory() as tmp:
        np.savez(Path(tmp) / "mnist.npz", **arrays)
        for backend in backends:
            for count in threads:
                out = Path(tmp) / f"{backend}_{count}"
                env = dict(os.environ, KERAS_BACKEND=backend)
                subprocess.run([sys.executable, __file__, "--worker", "--data",
                                str(Path(tmp) / "mnist.npz"), "--out", str(out),
                                "--epochs", str(args.epochs), "--threads", str(count)],
                               env=env, check=True)
                result = json.loads((out / "result.json").read_text())
                rows.append({
                    "backend": backend, "threads": count,
                    "dense_epoch_s": _steady(result["dense_epoch_seconds"]),
                    "condnet_epoch_s": _steady(result["condnet_epoch_seconds"]),
                    "dense_first_epoch_s": result["dense_epoch_seconds"][0],
                    "condnet_first_epoch_s": result["condnet_epoch_seconds"][0],
                    "dense_epoch_seconds": result["dense_epoch_seconds"],
                    "condnet_epoch_seconds": result["condnet_epoch_seconds"],
                    "condnet_test_accuracy": result["test"]["accuracy"],
                    "dense_test_accuracy": result["dense_test_accuracy"],
                })
                print(rows[-1], flush=True)
    report = {
        "command": "python benchmarks/training_backends.py " + " ".join(
            sys.argv[1:] if argv is None else argv),
        "cpu": cpu_name(),
        "cores": len(os.sched_getaffinity(0)),
        "epochs": args.epochs,
        "train_examples": len(arrays["x_train"]),
        "val_examples": len(arrays["x_val"]),
        "test_examples": len(arrays["x_test"]),
        "versions": versions,
        "rows": rows,
    }
    out = Path(args.out)
    out.with_suffix(".json").write_text(json.dumps(report, indent=1) + "\n")
    out.with_suffix(".md").write_text(markdown(report))
    print(markdown(report))


if __name__ == "__main__":
    main()
