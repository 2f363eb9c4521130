#!/usr/bin/env python3
"""Accuracy of the trained models after dynamic-range int8 quantization.

    python tflite/quantized_accuracy.py runs/curves_s0 runs/curves_s1 runs/curves_s2 \
        --data-dir ../shared/datasets/mnist --out benchmarks/quantized_accuracy

For every model of each run directory of examples/gate_pretrained.py (the
dense net and its condnets), converts it twice, float32 and
`--quantize dynamic` (dense: the standard converter's dynamic-range
quantization; condnets: int8 CondCompGatedDense weights, float policies),
runs both on the whole test set through `keras_condcomp.litert` and reports
the test errors, their difference, and for the condnets how many (example,
block) decisions of the quantized model equal the float model's (computed in
Keras with each gated kernel replaced by the int8 * scale values the op
uses). Writes OUT.md and OUT.json; mean ± sd over the run directories.
"""

import argparse
import contextlib
import json
import statistics
import sys
from pathlib import Path

if __name__ == "__main__":  # before TensorFlow is imported (--verbose keeps its logging)
    import quiet_stderr

    quiet_stderr.silence()

import numpy as np  # noqa: E402


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("runs", type=Path, nargs="+", help="run directories (one seed each)")
    p.add_argument("--data-dir", default=None, help="the data set files (default: the run's)")
    p.add_argument("--out", type=Path, default=Path("benchmarks/quantized_accuracy"))
    p.add_argument("--verbose", action="store_true",
                   help="show TensorFlow's start-up and converter logging")
    return p.parse_args(argv)


def error(interpreter, x, y, batch=500):
    wrong = 0
    for i in range(0, len(x), batch):
        wrong += int(np.sum(np.argmax(interpreter.predict(x[i:i + batch]), 1) != y[i:i + batch]))
    return wrong / len(x)


def mask_agreement(network, x, converter):
    """Fraction of (example, block) decisions equal between float and int8 weights."""
    from keras_condcomp.layers import gated_layers

    layers = gated_layers(network)

    def masks():
        network(x, training=False)
        return [np.asarray(layer.gate_outputs.mask) for layer in layers]

    float_masks = masks()
    with converter.dequantized_kernels(network):
        int8_masks = masks()
    same = sum(int(np.sum(a == b)) for a, b in zip(float_masks, int8_masks))
    return same / sum(a.size for a in float_masks)


def measure(run_dir, data_dir):
    import keras

    from keras_condcomp import data as condcomp_data
    from keras_condcomp import litert
    from keras_condcomp import tflite as converter

    result = json.loads((run_dir / "results.json").read_text())
    dataset = condcomp_data.load_dataset(result["dataset"],
                                         data_dir=data_dir or result["args"]["data_dir"])
    dataset = dataset.flattened()
    x, y = dataset.x_test, dataset.y_test
    rows = []
    for path in sorted(run_dir.glob("*.keras")):
        model = converter.load_keras_model(str(path))
        network = converter.unwrap(model)
        is_condnet = bool(converter.gated_layers_of(network))
        dense = not is_condnet
        if dense:  # a plain Keras net: the converter's builtin-op route needs a gated layer
            tf = converter._tf()

            def tflite_bytes(quantize):
                c = tf.lite.TFLiteConverter.from_keras_model(network)
                if quantize == "dynamic":
                    c.optimizations = [tf.lite.Optimize.DEFAULT]
                with contextlib.redirect_stdout(sys.stderr):  # its "Saved artifact" report
                    return c.convert()
        else:
            def tflite_bytes(quantize):
                return converter.convert(model, quantize=quantize)
        errors = {}
        for quantize in ("none", "dynamic"):
            interpreter = litert.Interpreter(model_content=tflite_bytes(quantize),
                                             custom_ops=is_condnet)
            errors[quantize] = error(interpreter, x, y)
        row = {"model": path.stem, "seed": result["args"]["seed"], "test_size": len(x),
               "float32_error": errors["none"], "dynamic_error": errors["dynamic"],
               "difference": errors["dynamic"] - errors["none"]}
        if is_condnet:
            row["mask_agreement"] = mask_agreement(network, x, converter)
        rows.append(row)
        print(f"{run_dir.name}/{path.name}: float32 {errors['none']:.4f} dynamic "
              f"{errors['dynamic']:.4f}" + (f" masks equal {row['mask_agreement']:.4%}"
                                             if is_condnet else ""), flush=True)
        keras.backend.clear_session()
    return rows


def main(argv=None):
    args = parse_args(argv)
    rows = [row for run in args.runs for row in measure(run, args.data_dir)]
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
             "| model | float32 test error | dynamic-range int8 test error | difference "
             "| (example, block) decisions equal |", "| --- | --- | --- | --- | --- |"]
    for model, members in groups.items():
        agree = [m["mask_agreement"] for m in members if "mask_agreement" in m]
        lines.append(
            f"| {model} | {mean_sd([m['float32_error'] for m in members])} | "
            f"{mean_sd([m['dynamic_error'] for m in members])} | "
            f"{mean_sd([m['difference'] for m in members])} | "
            + (f"{100 * min(agree):.2f}% (lowest seed)" if agree else "–") + " |")
    text = "\n".join(lines) + "\n"
    print(text)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.with_suffix(".md").write_text(
        "# Accuracy after dynamic-range int8 quantization\n\n`python tflite/quantized_accuracy.py "
        + " ".join(str(r) for r in args.runs) + f" --out {args.out}`\n\n" + text)
    args.out.with_suffix(".json").write_text(json.dumps(rows, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
