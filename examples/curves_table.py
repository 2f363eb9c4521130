#!/usr/bin/env python3
"""Epochs and training time to reach the dense accuracy minus 0.2 points.

    python examples/curves_table.py runs/curves_s0 runs/curves_s1 runs/curves_s2 \
        --out benchmarks/mnist_curves

Reads the `results.json` of `examples/gate_pretrained.py` runs (one seed
each, recorded with per-epoch validation curves: every row's `curve`). For
each seed the target is that seed's dense validation error + 0.002 (its
accuracy minus 0.2 points); for each condnet row (gated from the dense net,
from scratch) it finds the first epoch whose validation error, under the
inference budget, is at or below the target, and the training seconds summed
up to that epoch (validation passes excluded). For the gated rows the dense
net's own training is listed beside it, since a user who starts from scratch
has to train that too. Writes `OUT.md` and `OUT.json`.
"""

import argparse
import json
import statistics
from pathlib import Path

from summarize_results import _mean_std

MARGINS = (0.002, 0.005)  # 0.2 points of error (the target), and a looser 0.5


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("runs", type=Path, nargs="+", help="run directories (one seed each)")
    p.add_argument("--out", type=Path, default=Path("benchmarks/mnist_curves"))
    p.add_argument("--margins", type=float, nargs="+", default=list(MARGINS),
                   help="targets: dense validation error + each margin")
    return p.parse_args(argv)


def time_to_target(curve, target):
    """`(epochs, seconds)` until the first epoch with val error <= target, or `(None, None)`."""
    seconds = 0.0
    for epoch, point in enumerate(curve, start=1):
        seconds += point["train_seconds"]
        if point["val_error"] <= target:
            return epoch, seconds
    return None, None


def per_seed(result, margin):
    """One record per row of a run: target, epochs/seconds to it, final errors."""
    dense = next(r for r in result["rows"] if r["how"] == "dense")
    if not dense.get("curve"):
        raise ValueError(f"run of seed {result['args']['seed']} has no dense curve "
                         "(it was trained with --dense-model, or before curves were recorded)")
    target = dense["val"]["error"] + margin
    dense_seconds = sum(p["train_seconds"] for p in dense["curve"])
    records = [{"how": "dense", "seed": result["args"]["seed"], "target": target,
                "epochs_to_target": None, "seconds_to_target": None,
                "total_epochs": len(dense["curve"]), "total_seconds": dense_seconds,
                "val_error": dense["val"]["error"], "test_error": dense["test"]["error"],
                "curve": [p["val_error"] for p in dense["curve"]]}]
    for row in result["rows"]:
        if row["model"] != "condnet":
            continue
        epochs, seconds = time_to_target(row["curve"], target)
        records.append({
            "how": row["how"], "tau": row["tau"], "top_k": row["top_k"],
            "seed": result["args"]["seed"], "target": target,
            "epochs_to_target": epochs, "seconds_to_target": seconds,
            "total_epochs": len(row["curve"]),
            "total_seconds": sum(p["train_seconds"] for p in row["curve"]),
            "dense_pretraining_seconds": dense_seconds if row["how"] == "gated_dense" else 0.0,
            "val_error": row["val"]["error"], "test_error": row["test"]["error"],
            "curve": [p["val_error"] for p in row["curve"]]})
    return records


def table(run_dirs, margins=MARGINS):
    results = [json.loads((d / "results.json").read_text()) for d in run_dirs]
    sizes = results[0]["sizes"]
    groups = {}
    for margin in margins:
        for result in results:
            for record in per_seed(result, margin):
                if record["how"] != "dense" or margin == margins[0]:
                    groups.setdefault((record["how"], margin), []).append(record)
    rows = []
    for (how, margin), members in groups.items():
        reached = [m for m in members if m["epochs_to_target"] is not None]
        rows.append({
            "how": how, "margin": None if how == "dense" else margin,
            "tau": members[0].get("tau"), "top_k": members[0].get("top_k"),
            "train_size": sizes["train"], "val_size": sizes["val"], "test_size": sizes["test"],
            "seeds": [m["seed"] for m in members], "reached": len(reached),
            "epochs_to_target": [m["epochs_to_target"] for m in members],
            "seconds_to_target": [m["seconds_to_target"] for m in members],
            "dense_pretraining_seconds": [m.get("dense_pretraining_seconds", 0.0)
                                          for m in members],
            "total_seconds": [m["total_seconds"] for m in members],
            "val_errors": [m["val_error"] for m in members],
            "test_errors": [m["test_error"] for m in members],
            "test_error_mean": statistics.fmean(m["test_error"] for m in members),
            "curves": [m["curve"] for m in members], "targets": [m["target"] for m in members],
        })
    return rows


def markdown(rows):
    """The table (one row per model and margin) and the mean validation curves."""
    r0 = rows[0]
    lines = [
        f"Train {r0['train_size']} / validation {r0['val_size']} / test {r0['test_size']}; "
        "target: each seed's dense validation error + the margin (0.002: the dense accuracy "
        "minus 0.2 points); seconds are training "
        "only (per-epoch validation excluded), one TensorFlow thread pinned to one core, "
        "runs one after another.", "",
        "| model | budget | margin | seeds | reached | epochs to target (per seed) "
        "| seconds to target | + dense pretraining s | total training s | val error "
        "| test error (per seed) |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for r in rows:
        epochs = ", ".join("–" if e is None else str(e) for e in r["epochs_to_target"])
        seconds = [s for s in r["seconds_to_target"] if s is not None]
        budget = f"top-{r['top_k']} (tau {r['tau']:g})" if r["top_k"] else "–"
        pre = _mean_std(r["dense_pretraining_seconds"], 0) if r["how"] == "gated_dense" else "–"
        reached = "–" if r["how"] == "dense" else f"{r['reached']}/{len(r['seeds'])}"
        margin = "–" if r["margin"] is None else f"{r['margin']:g}"
        lines.append(
            f"| {r['how']} | {budget} | {margin} | {len(r['seeds'])} | {reached} "
            f"| {epochs} | {_mean_std(seconds, 0) or '–'} | {pre} "
            f"| {_mean_std(r['total_seconds'], 0)} | {_mean_std(r['val_errors'], 4)} "
            f"| {_mean_std(r['test_errors'], 4)} "
            f"({', '.join(f'{e:.4f}' for e in r['test_errors'])}) |")
    lines += ["", "Validation error per epoch (mean over seeds; the gated row's first epoch "
              "is the policy warm-up with the network frozen):", ""]
    first_margin = next(r["margin"] for r in rows if r["margin"] is not None)
    for r in rows:
        if r["margin"] not in (None, first_margin):
            continue  # one curve per model
        width = min(len(c) for c in r["curves"])
        mean = [statistics.fmean(c[i] for c in r["curves"]) for i in range(width)]
        lines.append(f"- {r['how']}: " + " ".join(f"{v:.4f}" for v in mean))
    return "\n".join(lines) + "\n"


def main(argv=None):
    args = parse_args(argv)
    rows = table(args.runs, tuple(args.margins))
    text = markdown(rows)
    print(text)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.with_suffix(".md").write_text(
        "# Epochs and time to reach the dense accuracy minus 0.2 points\n\n"
        f"`python examples/curves_table.py {' '.join(str(d) for d in args.runs)} "
        f"--out {args.out}` (runs: `bash scripts/run_mnist_curves.sh MNIST_DIR`)\n\n" + text)
    args.out.with_suffix(".json").write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
