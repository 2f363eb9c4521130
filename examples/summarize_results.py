"""Summarizes several `results.json` files (e.g. one per seed) as a Markdown table.

    python examples/summarize_results.py runs/digits_fc_seed*/results.json

For every model (dense, condnet_tau...) prints the mean and standard deviation
over the files of test error, FLOP fraction and per-layer active fraction,
plus the per-file test errors (so a reader sees the seed-to-seed spread behind
each mean), then the inference times and speedups of every timed path and
batch size.
"""

import argparse
import json
import sys
from pathlib import Path

import numpy as np


def load_runs(paths):
    """The parsed `results.json` files; all must come from the same example."""
    runs = [json.loads(Path(p).read_text()) for p in paths]
    examples = {run["example"] for run in runs}
    if len(examples) != 1:
        raise ValueError(f"Argument `paths` mixes examples {sorted(examples)}. Received: {paths}")
    return runs


def _mean_std(values, digits):
    values = [v for v in values if v is not None]
    if not values:
        return ""
    if len(values) == 1:
        return f"{values[0]:.{digits}f}"
    return f"{np.mean(values):.{digits}f} ± {np.std(values, ddof=1):.{digits}f}"


def _timing_keys(runs):
    keys = []
    for run in runs:
        for t in run.get("timings", []):
            if (t["path"], t["batch_size"]) not in keys:
                keys.append((t["path"], t["batch_size"]))
    return keys


def summarize(runs):
    """Markdown tables aggregated over `runs`: accuracy/computation, then timings."""
    models = []
    for run in runs:
        models += [row["model"] for row in run["rows"] if row["model"] not in models]
    lines = [
        "| model | runs | test error (mean ± sd) | per run | FLOP fraction | active fraction "
        "per gated layer |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for model in models:
        rows = [row for run in runs for row in run["rows"] if row["model"] == model]
        layer_names = list(rows[0]["active_fraction"])
        active = " / ".join(
            _mean_std([row["active_fraction"][name] for row in rows], 2) for name in layer_names
        ) or "–"
        errors = [row["test_error"] for row in rows]
        lines.append(
            f"| {model} | {len(rows)} | {_mean_std(errors, 4)} | "
            f"{', '.join(f'{e:.4f}' for e in errors)} | "
            f"{_mean_std([row['flop_fraction'] for row in rows], 3)} | {active} |"
        )
    keys = _timing_keys(runs)
    if keys:
        lines += ["", "Inference time, ms per call (speedup = dense / model on the same path "
                  "and batch), mean ± sd over runs:", "",
                  "| model | " + " | ".join(f"{p}, batch {b}" for p, b in keys) + " |",
                  "| --- |" + " --- |" * len(keys)]
        for model in models:
            cells = []
            for path, batch_size in keys:
                found = [t for run in runs for t in run.get("timings", [])
                         if (t["model"], t["path"], t["batch_size"]) == (model, path, batch_size)]
                if not found:
                    cells.append("–")
                    continue
                ms = _mean_std([t["ms"] for t in found], 3)
                speed = _mean_std([t["speedup_vs_dense"] for t in found], 2)
                cells.append(f"{ms} ({speed}x)" if speed else ms)
            lines.append(f"| {model} | " + " | ".join(cells) + " |")
    timing = runs[0]["timing"]
    lines.append("")
    lines.append(
        f"Data: {runs[0]['dataset']['source']} ({runs[0]['dataset']['num_train']} train / "
        f"{runs[0]['dataset']['num_test']} test)"
        f"{' — SMOKE (synthetic)' if runs[0]['smoke'] else ''}. "
        f"Timing: {timing['statistic']}; {timing['machine']}."
    )
    for path, description in timing.get("paths", {}).items():
        lines.append(f"- {path}: {description}")
    for path, reason in timing.get("skipped_paths", {}).items():
        lines.append(f"- {path}: not timed ({reason})")
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("results", nargs="+", help="results.json files of one example")
    args = parser.parse_args(argv)
    print(summarize(load_runs(args.results)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
