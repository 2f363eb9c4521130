"""Summarizes several `results.json` files (e.g. one per seed) as a Markdown table.

    python examples/summarize_results.py runs/digits_fc_seed*/results.json

For every model (dense, condnet_tau...) prints the mean and standard deviation
over the files of test error, FLOP fraction, per-layer active fraction,
inference time and speedup over the dense net, plus the per-file values of
test error, so a reader sees the seed-to-seed spread behind each mean.
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


def summarize(runs):
    """Markdown table, one row per model, aggregated over `runs`."""
    models = []
    for run in runs:
        models += [row["model"] for row in run["rows"] if row["model"] not in models]
    lines = [
        "| model | runs | test error (mean ± sd) | per run | FLOP fraction | active fraction "
        "per gated layer | Keras ms / batch | Keras speedup | TFLite ms / batch | "
        "TFLite speedup |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
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
            f"{_mean_std([row['flop_fraction'] for row in rows], 3)} | {active} | "
            f"{_mean_std([row.get('inference_ms') for row in rows], 2)} | "
            f"{_mean_std([row.get('speedup_vs_dense') for row in rows], 2)} | "
            f"{_mean_std([row.get('tflite_inference_ms') for row in rows], 3) or '–'} | "
            f"{_mean_std([row.get('tflite_speedup_vs_dense') for row in rows], 2) or '–'} |"
        )
    timing = runs[0]["timing"]
    lines.append("")
    lines.append(
        f"Data: {runs[0]['dataset']['source']} ({runs[0]['dataset']['num_train']} train / "
        f"{runs[0]['dataset']['num_test']} test){' — SMOKE (synthetic)' if runs[0]['smoke'] else ''}. "
        f"Timing: batch of {timing['batch_size']}, {timing['statistic']}; {timing['machine']}. "
        f"Keras: {timing.get('keras', '')}. TFLite: {timing.get('tflite', 'not timed')}."
    )
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("results", nargs="+", help="results.json files of one example")
    args = parser.parse_args(argv)
    print(summarize(load_runs(args.results)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
