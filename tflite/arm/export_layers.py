#!/usr/bin/env python3
"""Exports the gated layers of a Keras model, with Keras' own inputs and outputs,
for the aarch64 driver (`condcomp_driver model FILE`).

    python tflite/arm/export_layers.py MODEL.keras -o build/arm/layers.bin [--batch 8]
    python tflite/arm/export_layers.py --demo -o build/arm/layers.bin

For every GatedDense / GatedConv2D the file holds its attributes, its weights
in the block-major layout of the custom ops (tflite/convert.py), the input the
layer received in Keras for a random batch and the output Keras computed
(inference: `sigma > threshold`). The driver runs each layer through the
custom-op glue and kernels and compares. `--demo` builds a small untrained
conv + dense network whose policies switch roughly half the blocks off.

File format (little endian), read by load_layers() in tflite/ops/driver/layer_file.cc:
    b"CCLAYER1", i32 n_layers, then per layer
    i32 op (0 dense, 1 conv), i32 len + name, i32 len + activation,
    f32 threshold, i32 has_bias,
    i32 B, D (or C_in), H, W, K, bs, KH, KW, stride_h, stride_w, dil_h, dil_w,
    i32 same, i32 input_block_size,
    f32 x, kernel_bm, [bias], policy_kernel [D, K], policy_bias [K], y
"""

import argparse
import os
import struct

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")

HERE = os.path.dirname(os.path.abspath(__file__))


def demo_model(seed=0):
    """Small untrained network with both gated layer types, chained."""
    import keras
    import numpy as np

    from keras_condcomp.layers import GatedConv2D, GatedDense

    keras.utils.set_random_seed(seed)
    inputs = keras.Input((10, 10, 3))
    h = GatedConv2D(16, 3, num_blocks=4, padding="same", activation="relu", name="conv_a")(inputs)
    h = GatedConv2D(12, 3, num_blocks=3, strides=2, activation="elu", name="conv_b")(h)
    h = keras.layers.Flatten()(h)
    h = GatedDense(64, num_blocks=8, activation="relu", name="dense_a")(h)
    h = GatedDense(40, num_blocks=5, activation="tanh", name="dense_b")(h)
    outputs = keras.layers.Dense(10, name="head")(h)
    model = keras.Model(inputs, outputs)
    rng = np.random.default_rng(seed)
    for layer in model.layers:
        if hasattr(layer, "policy"):
            # Spread the policy logits so that some blocks are on and some off.
            k = layer.policy.kernel
            b = layer.policy.bias
            k.assign(rng.normal(0, 2.0 / np.sqrt(k.shape[0]), k.shape).astype("float32"))
            b.assign(rng.normal(0, 1.0, b.shape).astype("float32"))
            if layer.bias is not None:
                layer.bias.assign(rng.normal(0, 0.2, layer.bias.shape).astype("float32"))
    return model


def export(model, path, batch=4, seed=0):
    import keras
    import numpy as np

    from keras_condcomp import converter as cv
    from keras_condcomp.layers import GatedConv2D, GatedDense

    network = cv.unwrap(model)
    layers = cv.gated_layers_of(network)
    if not layers:
        raise SystemExit("export_layers: the model has no gated layers")
    probe = keras.Model(network.inputs,
                        [t for layer in layers for t in (layer.input, layer.output)])
    rng = np.random.default_rng(seed)
    shape = (batch,) + tuple(network.inputs[0].shape[1:])
    # Per-example offsets, so that the pooled policy input of a conv layer is
    # not ~0 for every example.
    offset = rng.normal(0, 1, (batch,) + (1,) * (len(shape) - 2) + shape[-1:])
    x = (offset + rng.normal(0, 1, shape)).astype("float32")
    values = probe([x], training=False)
    values = [np.asarray(v, dtype="float32") for v in values]
    out = bytearray(b"CCLAYER1")
    out += struct.pack("<i", len(layers))

    def i32(*vals):
        return struct.pack("<" + "i" * len(vals), *vals)

    def text(s):
        b = s.encode()
        return i32(len(b)) + b

    for n, layer in enumerate(layers):
        lin, lout = values[2 * n], values[2 * n + 1]
        k = layer.num_blocks
        act = cv.activation_name(layer)
        if isinstance(layer, GatedDense):
            d = lin.shape[1]
            kernel = cv.block_major_kernel(np.asarray(layer.kernel), k)
            geom = (lin.shape[0], d, 1, 1, k, layer.units // k, 1, 1, 1, 1, 1, 1, 0)
            op = 0
        elif isinstance(layer, GatedConv2D):
            b, h, w, c = lin.shape
            d = c
            kernel = cv.block_major_kernel(np.asarray(layer.kernel), k)
            kh, kw = layer.kernel_size
            geom = (b, c, h, w, k, layer.filters // k, kh, kw, *layer.strides,
                    *layer.dilation_rate, int(layer.padding == "same"))
            op = 1
        else:
            continue
        has_bias = layer.bias is not None
        out += i32(op) + text(layer.name) + text(act)
        out += struct.pack("<f", float(layer.threshold)) + i32(int(has_bias))
        out += i32(*geom) + i32(cv.input_block_size(layer, d))
        out += lin.astype("<f4").tobytes() + kernel.astype("<f4").tobytes()
        if has_bias:
            out += np.asarray(layer.bias, dtype="<f4").tobytes()
        out += np.asarray(layer.policy.kernel, dtype="<f4").tobytes()
        out += np.asarray(layer.policy.bias, dtype="<f4").tobytes()
        out += lout.astype("<f4").tobytes()
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path, "wb") as f:
        f.write(out)
    return len(layers)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", nargs="?", help="a .keras file (or use --demo)")
    parser.add_argument("--demo", action="store_true", help="export a small built-in network")
    parser.add_argument("-o", "--output", required=True)
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    if args.demo == bool(args.model):
        parser.error("give a model file or --demo")
    if args.demo:
        model = demo_model(args.seed)
    else:
        from keras_condcomp import converter as cv

        model = cv.load_keras_model(args.model)
    n = export(model, args.output, batch=args.batch, seed=args.seed)
    print(f"wrote {n} gated layers to {args.output}")


if __name__ == "__main__":
    main()
