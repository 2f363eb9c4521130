#!/usr/bin/env python3
"""Accuracy and speed of the trained models after int8 quantization.

    python benchmarks/quantized_accuracy.py runs/curves_s0 runs/curves_s1 runs/curves_s2 \
        --data-dir ../shared/datasets/mnist --out benchmarks/quantized_accuracy

For every model of each run directory of examples/gate_pretrained.py (the
dense net and its condnets), converts it float32 and `--quantize dynamic`
(dense: the standard converter's dynamic-range quantization; condnets: the
int8 CondComp ops, int8 weights, activations quantized per input block at run
time, float policies) and `--quantize int8` (activation scales calibrated on
200 training images; dense: the standard converter's full-integer
quantization; condnets: the int8 ops with static scales per input block),
runs them on the whole test set through `keras_condcomp.litert` and reports
the test errors and, for the condnets, how many (example, block) decisions of
each quantized model equal the float model's
(`keras_condcomp.converter.quantized_reference`). Then times each condnet
against the dense net of the same seed at the same precision (batch 1, 1
thread, interleaved invoke() on test images, medians of --timing-runs).
Writes OUT.md and OUT.json; mean ± sd over the run directories.
"""

import argparse
import contextlib
import json
import statistics
import sys
from pathlib import Path

import bench_common  # does not import TensorFlow

if __name__ == "__main__":  # before TensorFlow is imported (--verbose keeps its logging)
    bench_common.quiet_stderr()

import numpy as np  # noqa: E402


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("runs", type=Path, nargs="+", help="run directories (one seed each)")
    p.add_argument("--data-dir", default=None, help="the data set files (default: the run's)")
    p.add_argument("--out", type=Path, default=Path("benchmarks/quantized_accuracy"))
    p.add_argument("--timing-runs", type=int, default=300,
                   help="interleaved invoke() runs per timed pair (0: no timing)")
    p.add_argument("--verbose", action="store_true",
                   help="show TensorFlow's start-up and converter logging")
    return p.parse_args(argv)


def error(interpreter, x, y, batch=500):
    wrong = 0
    for i in range(0, len(x), batch):
        wrong += int(np.sum(np.argmax(interpreter.predict(x[i:i + batch]), 1) != y[i:i + batch]))
    return wrong / len(x)


def mask_agreements(network, x, converter, input_scales):
    """Fractions of (example, block) decisions equal between the float model and
    the int8 one with run-time scales, then with `input_scales`."""
    from keras_condcomp.layers import gated_layers

    network(x, training=False)
    float_masks = [np.asarray(layer.gate_outputs.mask) for layer in gated_layers(network)]
    total = sum(a.size for a in float_masks)
    fractions = []
    for scales in (None, input_scales):
        _, int8_masks = converter.quantized_reference(network, x, scales)
        fractions.append(sum(int(np.sum(a == b)) for a, b in zip(float_masks, int8_masks))
                         / total)
    return fractions


def speeds(dense_models, condnet_models, x, runs):
    """`{precision: (dense_ms, condnet_ms)}`, batch 1, 1 thread, interleaved."""
    from keras_condcomp import litert

    inputs = bench_common.image_stream(x, 1, count=256)
    out = {}
    for precision, quantize in bench_common.QUANTIZE.items():
        a = litert.interpreter_for_batch(dense_models[quantize], 1, custom_ops=False)
        b = litert.interpreter_for_batch(condnet_models[quantize], 1)
        td, tc = bench_common.time_pair(a, b, inputs, runs, max(20, runs // 10))
        out[precision] = (td * 1e3, tc * 1e3)
    return out


def measure(run_dir, data_dir, timing_runs):
    import keras

    from keras_condcomp import converter, litert
    from keras_condcomp import data as condcomp_data

    result = json.loads((run_dir / "results.json").read_text())
    dataset = condcomp_data.load_dataset(result["dataset"],
                                         data_dir=data_dir or result["args"]["data_dir"])
    dataset = dataset.for_arch(result["args"].get("arch", "fc"))
    x, y = dataset.x_test, dataset.y_test
    x_calibration = dataset.x_train[:200]
    rows = []
    dense_models = {}
    for path in sorted(run_dir.glob("*.keras"), key=lambda p: p.stem != "dense"):
        model = converter.load_keras_model(str(path))
        network = converter.unwrap(model)
        is_condnet = bool(converter.gated_layers_of(network))
        dense = not is_condnet
        if dense:  # a plain Keras net: the converter's builtin-op route needs a gated layer
            import tensorflow as tf

            def tflite_bytes(quantize):
                c = tf.lite.TFLiteConverter.from_keras_model(network)
                converter.configure_quantization(c, quantize, x_calibration)
                with contextlib.redirect_stdout(sys.stderr):  # its "Saved artifact" report
                    return c.convert()
        else:
            input_scales = converter.calibrate_input_scales(network, x_calibration)

            def tflite_bytes(quantize):
                return converter.convert(model, quantize=quantize, input_scales=(
                    input_scales if quantize == "int8" else None))
        errors, models = {}, {}
        for quantize in bench_common.QUANTIZE.values():
            models[quantize] = tflite_bytes(quantize)
            interpreter = litert.Interpreter(model_content=models[quantize],
                                             custom_ops=is_condnet)
            errors[quantize] = error(interpreter, x, y)
        row = {"model": path.stem, "seed": result["args"]["seed"], "test_size": len(x),
               "float32_error": errors["none"], "dynamic_error": errors["dynamic"],
               "difference": errors["dynamic"] - errors["none"], "int8_error": errors["int8"]}
        if dense:
            if path.stem == "dense":  # the seed's dense net (not an equal-FLOPs peer)
                dense_models = models
        if is_condnet:
            row["mask_agreement"], row["int8_mask_agreement"] = mask_agreements(
                network, x, converter, input_scales)
            if timing_runs and dense_models:
                row["speed_b1_t1"] = {p: {"dense_ms": d, "condnet_ms": c, "speedup": d / c}
                                      for p, (d, c) in speeds(dense_models, models, x,
                                                              timing_runs).items()}
        rows.append(row)
        print(f"{run_dir.name}/{path.name}: float32 {errors['none']:.4f} dynamic "
              f"{errors['dynamic']:.4f} int8 {errors['int8']:.4f}"
              + (f" masks equal {row['mask_agreement']:.4%} / {row['int8_mask_agreement']:.4%}"
                 if is_condnet else "")
              + "".join(f" {p} {v['speedup']:.2f}x" for p, v in row.get("speed_b1_t1", {}).items()),
              flush=True)
        keras.backend.clear_session()
    return rows


def main(argv=None):
    args = parse_args(argv)
    rows = [row for run in args.runs for row in measure(run, args.data_dir, args.timing_runs)]
    groups = {}
    for row in rows:
        groups.setdefault(row["model"], []).append(row)

    def mean_sd(values, digits=4):
        if len(values) == 1:
            return f"{values[0]:.{digits}f}"
        return f"{statistics.fmean(values):.{digits}f} ± {statistics.stdev(values):.{digits}f}"

    lines = [f"Test set: {rows[0]['test_size']} examples; seeds "
             f"{sorted({r['seed'] for r in rows})}; runtime: keras_condcomp.litert "
             "(LiteRT / XNNPACK for builtin ops).", "",
             "| model | float32 test error | `--quantize dynamic` test error (dense: "
             "dynamic-range; condnets: the int8 ops, scales at run time) | difference "
             "| `--quantize int8` test error (dense: full-integer; condnets: the int8 ops, "
             "calibrated static scales) | difference | (example, block) decisions equal to "
             "float32: dynamic / int8 |",
             "| --- | --- | --- | --- | --- | --- | --- |"]
    for model, members in groups.items():
        agree = [m["mask_agreement"] for m in members if "mask_agreement" in m]
        agree8 = [m["int8_mask_agreement"] for m in members if "int8_mask_agreement" in m]
        lines.append(
            f"| {model} | {mean_sd([m['float32_error'] for m in members])} | "
            f"{mean_sd([m['dynamic_error'] for m in members])} | "
            f"{mean_sd([m['difference'] for m in members])} | "
            f"{mean_sd([m['int8_error'] for m in members])} | "
            f"{mean_sd([m['int8_error'] - m['float32_error'] for m in members])} | "
            + (f"{100 * min(agree):.3f}% / {100 * min(agree8):.3f}% (lowest seed)"
               if agree else "–") + " |")
    timed = [(model, members) for model, members in groups.items()
             if all("speed_b1_t1" in m for m in members)]
    if timed:
        lines += ["", "Speed, batch 1, 1 thread: each condnet against the dense net of its seed "
                  "in the same precision (dynamic: dense dynamic-range vs the CondComp int8 "
                  "ops with run-time scales; int8: dense full-integer vs the CondComp int8 "
                  "ops with static scales), "
                  f"interleaved invoke() on test images, median of {args.timing_runs}; "
                  "mean ± sd of the per-seed ratios (every seed: OUT.json).", "",
                  "| model | float32: dense ms / condnet ms | speedup | dynamic: dense ms / "
                  "condnet ms | speedup | int8: dense ms / condnet ms | speedup |",
                  "| --- | --- | --- | --- | --- | --- | --- |"]
        for model, members in timed:
            cells = []
            for p in ("float32", "dynamic", "int8"):
                s = [m["speed_b1_t1"][p] for m in members]
                cells.append(f"{statistics.fmean(v['dense_ms'] for v in s):.3f} / "
                             f"{statistics.fmean(v['condnet_ms'] for v in s):.3f}")
                cells.append(mean_sd([v["speedup"] for v in s], 2) + "x")
            lines.append(f"| {model} | " + " | ".join(cells) + " |")
    text = "\n".join(lines) + "\n"
    print(text)
    command = bench_common.command_line("quantized_accuracy.py", argv)
    bench_common.write_report(
        args.out.with_suffix(".md"),
        f"# Accuracy (and speed) after int8 quantization\n\n`{command}`\n\n{text}",
        args.out.with_suffix(".json"), rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
