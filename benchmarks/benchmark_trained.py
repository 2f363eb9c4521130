#!/usr/bin/env python3
"""Accuracy and TFLite speed of the *trained* models of examples/gate_pretrained.py.

    python benchmarks/benchmark_trained.py runs/mnist_gate_s0 runs/mnist_gate_s1 runs/mnist_gate_s2

Reads each run directory's `results.json` (one seed each) and summarizes
test error (mean ± sd over the seeds, every seed listed), per-layer active
fraction and FLOP fraction at inference. Then, for the first run directory of
each data set and block count,
converts its trained dense net (builtin FULLY_CONNECTED, run by XNNPACK) and
its trained condnets (`tflite/convert.py`, CondComp custom ops) and times them
side by side on the real test images: interleaved invoke() calls in one
process, medians over `--runs`, batch 1 and 32, 1 and 2 threads. Writes
`benchmarks/trained_models.json` (rows: dataset, train_size, test_size,
model, tau, seeds, test_error_mean, test_error_sd, active_max,
flop_fraction, tflite_speedup_b1) and `benchmarks/trained_models.md`.
"""

import argparse
import json
import os
import statistics
import sys
from pathlib import Path

import bench_common  # does not import TensorFlow

if __name__ == "__main__":  # before TensorFlow is imported (--verbose keeps its logging)
    bench_common.quiet_stderr()

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

HERE = Path(__file__).resolve().parent

import numpy as np  # noqa: E402

from keras_condcomp.validation import positive_int_argument  # noqa: E402


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("runs", type=Path, nargs="+", help="run directories (one seed each)")
    p.add_argument("--data-dir", default=None,
                   help="data directory for the test images (default: each run's own --data-dir)")
    p.add_argument("--timing-runs", type=positive_int_argument, default=300)
    p.add_argument("--warmup", type=positive_int_argument, default=30)
    bench_common.add_batches(p, default=[1, 32])
    bench_common.add_threads(p, default=[1, 2])
    p.add_argument("--no-timing", action="store_true",
                   help="the accuracy table only (no TFLite conversion or timing)")
    p.add_argument("--out", type=Path, default=HERE / "trained_models")
    p.add_argument("--verbose", action="store_true",
                   help="show TensorFlow's start-up and converter logging")
    return p.parse_args(argv)


def _summary(rows):
    errors = [r["test"]["error"] for r in rows]
    out = {"val_error_mean": statistics.fmean(r["val"]["error"] for r in rows),
           "test_error_mean": statistics.fmean(errors),
           "test_error_sd": statistics.stdev(errors) if len(errors) > 1 else 0.0,
           "test_errors": errors}
    if "active_fraction" in rows[0]["test"]:
        actives = [max(r["test"]["active_fraction"].values()) for r in rows]
        out["active_max"] = max(actives)
        out["active_per_seed"] = [r["test"]["active_fraction"] for r in rows]
        out["flop_fraction"] = statistics.fmean(r["test"]["flop_fraction"] for r in rows)
    else:
        out["active_max"], out["flop_fraction"] = None, 1.0
    return out


def variant(result, row):
    """How a condnet was trained, beyond the defaults (REINFORCE baseline, K, policy lr)."""
    if row["how"].startswith("dense"):
        return ""
    a = result["args"]
    parts = [f"{a.get('num_blocks', 16)} blocks", f"baseline={a.get('baseline', 'ema')}"]
    if a.get("num_samples", 1) > 1:
        parts.append(f"K={a['num_samples']}")
    if a.get("policy_learning_rate") is not None:
        parts.append(f"policy lr={a['policy_learning_rate']:g}")
    return ", ".join(parts)


def summarize(run_dirs):
    """Rows of the accuracy table, one per (dataset, how, tau, budget), over the seeds.

    Returns `(table, first)`: the rows and `{(dataset, num_blocks): (run dir,
    results)}` of the first run directory of each data set and block count
    (the one timed).
    """
    first = {}
    groups = {}
    for run_dir in run_dirs:
        result = json.loads((run_dir / "results.json").read_text())
        config = (result["dataset"], result["args"].get("num_blocks", 16))
        first.setdefault(config, (run_dir, result))
        for row in result["rows"]:
            key = (result["dataset"], row["how"], row["tau"], variant(result, row),
                   row["epochs"])
            seed = result["args"]["seed"]
            if any(m[0]["args"]["seed"] == seed for m in groups.get(key + ("threshold",), [])):
                continue  # the same seed's dense net, recorded again by another run
            groups.setdefault(key + ("threshold",), []).append((result, row))
            if "top_k_budget" in row:
                top = dict(row, **row["top_k_budget"])
                groups.setdefault(key + (f"top_k={row['top_k_budget']['k']}",), []).append(
                    (result, top))
    table = []
    for (dataset, how, tau, trained, epochs, budget), members in groups.items():
        result = members[0][0]
        rows = [row for _, row in members]
        table.append({
            "dataset": result["dataset"], "train_size": result["sizes"]["train"],
            "val_size": result["sizes"]["val"], "test_size": result["sizes"]["test"],
            "model": "dense" if how.startswith("dense") else "condnet", "how": how, "tau": tau,
            "budget": None if how.startswith("dense") else budget,
            "num_blocks": result["args"].get("num_blocks", 16),
            "variant": trained, "seeds": [m[0]["args"]["seed"] for m in members],
            "epochs": epochs, "train_seconds": [r.get("train_seconds") for r in rows],
            **_summary(rows), "tflite_speedup_b1": None,
        })
    return table, first


def speed(run_dir, result, args):
    """`{(how, tau, budget): {"cells": {(batch, threads): (dense_ms, condcomp_ms)}, ...}}`.

    Times every condnet of one run directory against its trained dense net,
    each condnet with its calibrated thresholds and with its top-k budget
    (the TFLite ops apply both rules).
    """
    import keras
    import tensorflow as tf

    import keras_condcomp
    from keras_condcomp import data as condcomp_data

    args_of_run = result["args"]
    dataset = condcomp_data.load_dataset(result["dataset"],
                                         data_dir=args.data_dir or args_of_run["data_dir"])
    dataset = dataset.for_arch(args_of_run.get("arch", "fc"))
    x = dataset.x_test[:2048]
    dense = keras.models.load_model(run_dir / "dense.keras")
    dense_bytes = tf.lite.TFLiteConverter.from_keras_model(dense).convert()
    timings = {}
    for row in result["rows"]:
        if row["how"] == "dense_equal_flops":
            peer = keras.models.load_model(run_dir / f"dense_equal_flops_tau{row['tau']:g}.keras")
            peer_bytes = tf.lite.TFLiteConverter.from_keras_model(peer).convert()
            timings[(row["how"], row["tau"], None)] = time_builtin(
                peer_bytes, dense_bytes, x, args,
                f"{result['dataset']} small dense {row['hidden']}")
            continue
        if row["how"] == "dense":
            continue
        name = f"{'gated' if row['how'] == 'gated_dense' else 'scratch'}_tau{row['tau']:g}.keras"
        model = keras.models.load_model(run_dir / name)
        budgets = [("threshold", None)]
        if "top_k_budget" in row:
            budgets.append((f"top_k={row['top_k_budget']['k']}", row["top_k_budget"]["k"]))
        for budget, top_k in budgets:
            keras_condcomp.set_top_k(model, top_k)
            label = f"{result['dataset']} {row['how']} tau={row['tau']:g} {budget}"
            timings[(row["how"], row["tau"], budget)] = time_model(
                model, dense_bytes, x, args, label)
    return timings


def time_against_dense(model_bytes, custom_ops, dense_bytes, x, args, label):
    """`{(batch, threads): (dense_ms, model_ms)}`: interleaved medians on the test inputs."""
    from keras_condcomp import litert

    cells = {}
    for batch in args.batches:
        inputs = bench_common.image_stream(x, batch, count=len(x) // batch)
        for threads in args.threads:
            a = litert.interpreter_for_batch(dense_bytes, batch, num_threads=threads,
                                             custom_ops=False)
            b = litert.interpreter_for_batch(model_bytes, batch, num_threads=threads,
                                             custom_ops=custom_ops)
            td, tm = bench_common.time_pair(a, b, inputs, args.timing_runs, args.warmup)
            cells[(batch, threads)] = (td * 1e3, tm * 1e3)
            print(f"{label} batch {batch} threads {threads}: dense {td * 1e3:.3f} ms, "
                  f"this model {tm * 1e3:.3f} ms, {td / tm:.2f}x", flush=True)
    return cells


def time_builtin(peer_bytes, dense_bytes, x, args, label):
    """A builtin-op (XNNPACK) peer model timed against the dense model."""
    return {"cells": time_against_dense(peer_bytes, False, dense_bytes, x, args, label),
            "max_abs_err": None}


def time_model(model, dense_bytes, x, args, label):
    """Checks the custom-op model against Keras, then times it against the dense model."""
    from keras_condcomp import converter as cv
    from keras_condcomp import litert

    custom_bytes = cv.convert(model)
    reference = np.asarray(model.predict(x[:256], verbose=0))
    check = litert.Interpreter(model_content=custom_bytes)
    err = float(np.max(np.abs(check.predict(x[:256]) - reference)))
    return {"cells": time_against_dense(custom_bytes, True, dense_bytes, x, args, label),
            "max_abs_err": err}


def main(argv=None):
    args = parse_args(argv)
    from keras_condcomp.litert import cpu_name

    table, first = summarize(args.runs)
    timings = {config: {} if args.no_timing else speed(run_dir, result, args)
               for config, (run_dir, result) in first.items()}
    cols = [] if args.no_timing else [(b, t) for b in args.batches for t in args.threads]
    lines = [
        "# Trained models: accuracy and TFLite speed of the same models",
        "",
        "Test error mean ± sd over the seeds (each listed); active = largest per-layer "
        "fraction of blocks computed at inference on the test set (mean over examples); "
        "FLOP fraction = gated layers' multiply-adds (policies included) over the same "
        "layers run densely. Budget: thresholds calibrated on the validation split to tau, "
        "or a fixed top-k blocks per example. Speed: the first seed's models, TFLite "
        "CondComp custom ops vs the trained dense net's builtin-op model (XNNPACK), "
        f"interleaved, median of {args.timing_runs} invoke() runs on test images, "
        f"speedup = dense ms / CondComp ms. CPU: {cpu_name()}, {os.cpu_count()} cores.",
        "",
        f"Command: `{bench_common.command_line('benchmark_trained.py', argv)}`",
        "",
        "| data (train/val/test) | model | trained | epochs | tau | budget | seeds | val error "
        "| test error "
        "| per seed | active (max layer) | FLOP fraction |"
        + "".join(f" speedup b{b} t{t} |" for b, t in cols),
        "|---|---|---|---|---|---|---|---|---|---|---|---|" + "---|" * len(cols),
    ]
    for row in table:
        timing = timings.get((row["dataset"], row["num_blocks"]), {}).get(
            (row["how"], row["tau"], row["budget"]))
        cells = []
        for b, t in cols:
            if timing is None:
                cells.append("1.00x" if row["how"] == "dense" else "-")
            else:
                dense_ms, custom_ms = timing["cells"][(b, t)]
                cells.append(f"{dense_ms / custom_ms:.2f}x ({custom_ms:.3f} vs {dense_ms:.3f} ms)")
        if timing is not None:
            dense_ms, custom_ms = timing["cells"][cols[0]]
            row["tflite_speedup_b1"] = dense_ms / custom_ms
            row["tflite_ms"] = {f"b{b}_t{t}": {"dense": timing["cells"][(b, t)][0],
                                               "condcomp": timing["cells"][(b, t)][1]}
                                for b, t in cols}
            row["tflite_max_abs_err_vs_keras"] = timing["max_abs_err"]
        active = "-" if row["active_max"] is None else f"{row['active_max']:.3f}"
        lines.append(
            f"| {row['dataset']} ({row['train_size']}/{row['val_size']}/{row['test_size']}) "
            f"| {row['how']} | {row['variant'] or '-'} | {row['epochs']} "
            f"| {row['tau'] if row['tau'] is not None else '-'} "
            f"| {row['budget'] or '-'} | {len(row['seeds'])} "
            f"| {row['val_error_mean']:.4f} "
            f"| {row['test_error_mean']:.4f} ± {row['test_error_sd']:.4f} "
            f"| {', '.join(f'{e:.4f}' for e in row['test_errors'])} | {active} "
            f"| {row['flop_fraction']:.3f} |" + "".join(f" {c} |" for c in cells))
    text = "\n".join(lines) + "\n"
    print(text)
    bench_common.write_report(args.out.with_suffix(".md"), text, args.out.with_suffix(".json"),
                              table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
