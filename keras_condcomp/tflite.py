"""Converts a Keras 3 model with gated layers to a TFLite model.

    python tflite/convert.py MODEL.keras -o model.tflite           # custom ops
    python tflite/convert.py MODEL.keras -o dense.tflite --dense   # builtin-op baseline
    python -m keras_condcomp.tflite MODEL.keras -o model.tflite    # the same command line

From Python: `keras_condcomp.tflite.convert(model, dense=False)` returns the
flatbuffer bytes; `verify(model, tflite_bytes, n)` compares it with Keras.

Route: Keras model -> SavedModel (Keras `ExportArchive`) ->
`tf.lite.TFLiteConverter.from_saved_model`. Each `GatedDense` / `GatedConv2D`
is emitted as ONE custom op (`CondCompGatedDense` / `CondCompGatedConv2D`):
during export the layer's `call` is temporarily replaced by a `tf.function`
whose `experimental_implements` carries `tfl_fusable_op: true` and the op's
attributes, so the converter's prepare-composite-functions pass replaces the
whole function by a `tfl.custom` op whose inputs are the function arguments
(x, block-major kernel, bias, policy kernel, policy bias) and whose custom
options are a FlexBuffers map of the attributes (see
tensorflow/compiler/mlir/lite/transforms/prepare_composite_functions_tf.cc).
The function body is the reference masked computation, so the SavedModel
itself still runs in TensorFlow with the same semantics.

Weights are stored block-major (kernel [K, D_in, bs] for dense,
[K, KH, KW, C_in, bs] for conv) so an output block's weights are contiguous.

`--dense` exports the same network with each gated layer run densely
(activation(x W + b), masks ignored = every block on) with builtin ops
(FULLY_CONNECTED / CONV_2D), the XNNPACK baseline of the same shape and weights.

Running the result needs the custom-op library: `bash tflite/build_ops.sh`,
then `keras_condcomp.litert.Interpreter("model.tflite")`.
"""

import argparse
import collections
import contextlib
import os
import sys
import tempfile

DENSE_OP = "CondCompGatedDense"
CONV_OP = "CondCompGatedConv2D"

# Activations the C kernels implement (tflite/ops/condcomp_kernels.c).
SUPPORTED_ACTIVATIONS = (
    "linear", "relu", "relu6", "sigmoid", "tanh", "elu", "selu", "softplus", "softsign",
    "silu", "swish", "gelu", "leaky_relu", "hard_sigmoid", "hard_silu", "hard_swish", "mish",
    "exponential",
)


class ConversionError(ValueError):
    """The model cannot be converted (unsupported layer configuration)."""


def _tf():
    import tensorflow as tf

    return tf


def activation_name(layer):
    """Keras activation of `layer` as the name the C kernels accept."""
    import keras

    act = layer.activation
    name = keras.activations.serialize(act) if act is not None else "linear"
    if isinstance(name, dict):  # e.g. {"class_name": "function", "config": "relu", ...}
        name = name.get("config") if name.get("class_name") == "function" else None
    if not isinstance(name, str) or name not in SUPPORTED_ACTIVATIONS:
        raise ConversionError(
            f"Layer {layer.name!r}: activation {act!r} has no CondComp kernel; supported: "
            f"{', '.join(SUPPORTED_ACTIVATIONS)}"
        )
    # keras.activations.leaky_relu's default slope (0.2) is what the kernel uses.
    return name


def _implements(op_name, attrs):
    parts = [f'name: "{op_name}"', 'attr {key: "tfl_fusable_op" value { b: true } }']
    for key, value in sorted(attrs.items()):
        if isinstance(value, bool):
            raise TypeError(key)
        if isinstance(value, int):
            parts.append(f'attr {{key: "{key}" value {{ i: {value} }} }}')
        elif isinstance(value, float):
            parts.append(f'attr {{key: "{key}" value {{ f: {value!r} }} }}')
        else:
            parts.append(f'attr {{key: "{key}" value {{ s: "{value}" }} }}')
    return " ".join(parts)


def _tf_activation(name):
    import keras

    return keras.activations.get(name)


def _check_gated_layer(layer):
    import keras

    if layer.policy.inference_mode != "threshold":
        raise ConversionError(
            f"Layer {layer.name!r}: inference_mode={layer.policy.inference_mode!r} samples the "
            "gates at inference; only inference_mode='threshold' can be converted."
        )
    for var in (layer.kernel, layer.policy.kernel):
        if keras.backend.standardize_dtype(var.dtype) != "float32":
            raise ConversionError(
                f"Layer {layer.name!r}: only float32 weights are supported, got {var.dtype}."
            )
    if keras.backend.standardize_dtype(layer.compute_dtype) != "float32":
        raise ConversionError(
            f"Layer {layer.name!r}: only float32 compute is supported (dtype policy "
            f"{layer.dtype_policy.name!r})."
        )


def _check_finite_weights(network):
    """NaN/Inf weights would silently become a model that outputs NaN (or turns blocks off)."""
    import numpy as np

    for layer in network._flatten_layers(include_self=False, recursive=True):
        # Each variable once, under the layer that created it (not its parents too).
        for var in layer._trainable_variables + layer._non_trainable_variables:
            values = np.asarray(var)
            if not np.issubdtype(values.dtype, np.floating):
                continue
            bad = ~np.isfinite(values)
            if bad.any():
                raise ConversionError(
                    f"Layer {layer.name!r}: weight {var.path!r} holds {int(bad.sum())} NaN/Inf "
                    "values; a diverged model cannot be converted."
                )


QUANTIZE_MODES = ("none", "dynamic", "int8")


def quantize_kernel(kernel):
    """Symmetric per-output-unit int8 weights: `(q, scale)` with kernel ~ q * scale.

    `kernel` is `[..., units]` (float); `scale[c] = max |kernel[..., c]| / 127`
    (1 for an all-zero unit), `q = round(kernel / scale)` in [-127, 127]. The
    dynamic-range CondCompGatedDense op computes with exactly `q * scale`.
    """
    import numpy as np

    kernel = np.asarray(kernel, np.float32)
    axes = tuple(range(kernel.ndim - 1))
    scale = np.max(np.abs(kernel), axis=axes) / 127.0
    scale = np.where(scale > 0, scale, 1.0).astype(np.float32)
    q = np.clip(np.round(kernel / scale), -127, 127).astype(np.int8)
    return q, scale


def block_major_kernel(kernel, num_blocks):
    """[D, K*bs] -> [K, D, bs] or [KH, KW, C, K*bs] -> [K, KH, KW, C, bs] (NumPy)."""
    import numpy as np

    from keras_condcomp.reference import block_major

    return np.ascontiguousarray(np.asarray(block_major(kernel, num_blocks)))


def _producer(layer):
    """The layer producing `layer`'s (first) input in a functional graph, or None."""
    try:
        node = layer._inbound_nodes[0]
        tensor = node.input_tensors[0]
        return tensor._keras_history.operation
    except (AttributeError, IndexError, TypeError):
        return None


def input_block_size(layer, num_inputs):
    """Granularity at which the kernel looks for all-zero input blocks.

    When the input comes straight from another gated layer, its blocks are the
    ones that can be exactly zero; otherwise 0 (= the whole input, skipped only
    if it is all zero). Any divisor is correct: the kernel checks the data, this
    only sets how finely it looks.
    """
    from keras_condcomp.layers import GatedLayer

    prev = _producer(layer)
    if isinstance(prev, GatedLayer) and num_inputs % prev.block_size == 0:
        if type(prev).__name__ == type(layer).__name__:
            return int(prev.block_size)
    return 0


class _GatedExport:
    """Block-major copies of one gated layer's weights plus its fused call."""

    def __init__(self, module, layer, dense, quantize="none", input_scale=None):
        import numpy as np

        tf = _tf()
        from keras_condcomp.layers import GatedConv2D, GatedDense

        _check_gated_layer(layer)
        self.layer = layer
        self.dense = dense
        self.is_conv = isinstance(layer, GatedConv2D)
        if not self.is_conv and not isinstance(layer, GatedDense):
            raise ConversionError(f"Unsupported gated layer type {type(layer).__name__}")
        self.quantized = quantize != "none" and not dense
        self.activation = activation_name(layer)
        k = int(layer.num_blocks)
        kernel = np.asarray(layer.kernel.numpy(), dtype=np.float32)
        units = kernel.shape[-1]
        bias = (
            np.asarray(layer.bias.numpy(), dtype=np.float32)
            if layer.bias is not None
            else np.zeros((units,), np.float32)
        )
        prefix = layer.name.replace("/", "_")
        # Inputs after policy_bias: the int8 kernel's scales, then ("int8") the
        # static activation scales.
        self.extra = []
        if dense:
            self.kernel = tf.Variable(kernel, trainable=False, name=f"{prefix}_kernel")
        elif self.quantized:
            q, scale = quantize_kernel(kernel)
            self.kernel = tf.Variable(block_major_kernel(q, k), trainable=False,
                                      name=f"{prefix}_kernel_q")
            self.extra = [tf.Variable(scale, trainable=False, name=f"{prefix}_kernel_scale")]
            if quantize == "int8":
                self.extra.append(tf.Variable(np.asarray(input_scale, np.float32),
                                              trainable=False, name=f"{prefix}_input_scale"))
        else:
            self.kernel = tf.Variable(
                block_major_kernel(kernel, k), trainable=False, name=f"{prefix}_kernel_bm"
            )
        self.bias = tf.Variable(bias, trainable=False, name=f"{prefix}_bias")
        self.policy_kernel = tf.Variable(
            np.asarray(layer.policy.kernel.numpy(), np.float32), trainable=False,
            name=f"{prefix}_policy_kernel",
        )
        self.policy_bias = tf.Variable(
            np.asarray(layer.policy.bias.numpy(), np.float32), trainable=False,
            name=f"{prefix}_policy_bias",
        )
        module.tracked.extend([self.kernel, self.bias, self.policy_kernel, self.policy_bias,
                               *self.extra])
        num_inputs = kernel.shape[-2]
        self.attrs = {
            "activation": self.activation,
            "threshold": float(layer.threshold),
            "input_block_size": input_block_size(layer, num_inputs),
        }
        if layer.policy.top_k is not None:
            self.attrs["top_k"] = int(layer.policy.top_k)
        if layer.scale_by_gate:
            self.attrs["scale_by_gate"] = 1
        if self.is_conv:
            self.attrs.update(
                padding=layer.padding,
                stride_h=int(layer.strides[0]),
                stride_w=int(layer.strides[1]),
                dilation_h=int(layer.dilation_rate[0]),
                dilation_w=int(layer.dilation_rate[1]),
            )
        self.fn = self._dense_fn() if dense else self._fused_fn()

    def _fused_fn(self):
        tf = _tf()
        act = _tf_activation(self.activation)
        threshold = self.attrs["threshold"]
        top_k = self.attrs.get("top_k")
        scale_by_gate = bool(self.attrs.get("scale_by_gate"))
        from keras_condcomp import reference, sparse

        in_block = self.attrs["input_block_size"] or int(self.layer.kernel.shape[-2])
        is_conv = self.is_conv

        def policy_block_scale(x, policy_kernel, policy_bias):
            # A conv's policy reads the spatial mean of its input.
            features = tf.reduce_mean(x, axis=(1, 2)) if is_conv else x
            return sparse.block_mask(features, policy_kernel, policy_bias, threshold, top_k,
                                     scale_by_gate)[1]

        def int8_inputs(x, kernel_q, kernel_scale, input_scale):
            # What the int8 ops multiply: int8 activations (per input block;
            # static scales if given) and the int8 weights, both scaled back
            # (quantized_reference, docs).
            kernel = reference.from_block_major(tf.cast(kernel_q, x.dtype)) * kernel_scale
            scale = input_scale[0] if input_scale else None
            return reference.quantize_activations(x, in_block, scale), kernel

        if self.is_conv:
            strides = (self.attrs["stride_h"], self.attrs["stride_w"])
            dilations = (self.attrs["dilation_h"], self.attrs["dilation_w"])
            padding = self.attrs["padding"].lower()

            if self.quantized:
                @tf.function(experimental_implements=_implements(CONV_OP, self.attrs))
                def gated_conv2d_q8(x, kernel_q, bias, policy_kernel, policy_bias, kernel_scale,
                                    *input_scale):
                    scale = policy_block_scale(x, policy_kernel, policy_bias)
                    xq, kernel = int8_inputs(x, kernel_q, kernel_scale, input_scale)
                    return reference.masked_conv2d(xq, kernel, bias, act, scale,
                                                   kernel_q.shape[-1], strides, padding, dilations)

                return gated_conv2d_q8

            @tf.function(experimental_implements=_implements(CONV_OP, self.attrs))
            def gated_conv2d(x, kernel_bm, bias, policy_kernel, policy_bias):
                # Reference semantics (docs/architecture.md); TFLite replaces this body.
                scale = policy_block_scale(x, policy_kernel, policy_bias)
                return reference.masked_conv2d(
                    x, reference.from_block_major(kernel_bm), bias, act, scale,
                    kernel_bm.shape[-1], strides, padding, dilations)

            return gated_conv2d

        if self.quantized:
            @tf.function(experimental_implements=_implements(DENSE_OP, self.attrs))
            def gated_dense_q8(x, kernel_q, bias, policy_kernel, policy_bias, kernel_scale,
                               *input_scale):
                scale = policy_block_scale(x, policy_kernel, policy_bias)
                xq, kernel = int8_inputs(x, kernel_q, kernel_scale, input_scale)
                return reference.masked_dense(xq, kernel, bias, act, scale, kernel_q.shape[-1])

            return gated_dense_q8

        @tf.function(experimental_implements=_implements(DENSE_OP, self.attrs))
        def gated_dense(x, kernel_bm, bias, policy_kernel, policy_bias):
            # Reference semantics (docs/architecture.md); TFLite replaces this body.
            scale = policy_block_scale(x, policy_kernel, policy_bias)
            return reference.masked_dense(x, reference.from_block_major(kernel_bm), bias, act,
                                          scale, kernel_bm.shape[-1])

        return gated_dense

    def _dense_fn(self):
        tf = _tf()
        act = _tf_activation(self.activation)
        if self.is_conv:
            strides = (self.attrs["stride_h"], self.attrs["stride_w"])
            dilations = (self.attrs["dilation_h"], self.attrs["dilation_w"])
            padding = self.attrs["padding"].upper()

            def conv(x, kernel, bias, policy_kernel, policy_bias):
                y = tf.nn.conv2d(x, kernel, strides=strides, padding=padding, dilations=dilations)
                return act(tf.nn.bias_add(y, bias))

            return conv

        def dense(x, kernel, bias, policy_kernel, policy_bias):
            return act(tf.matmul(x, kernel) + bias)

        return dense

    def call(self, inputs, *args, **kwargs):
        return self.fn(inputs, self.kernel, self.bias, self.policy_kernel, self.policy_bias,
                       *self.extra)


def gated_layers_of(network):
    from keras_condcomp.layers import gated_layers

    return gated_layers(network)


def unwrap(model):
    """The user's network: `CondCompModel.network`, or the model itself."""
    return getattr(model, "network", model)


@contextlib.contextmanager
def _patched_calls(exports):
    """Temporarily routes each gated layer's `call` to its export function."""
    saved = []
    try:
        for exp in exports:
            saved.append((exp.layer, exp.layer.__dict__.get("call")))
            exp.layer.call = exp.call
        yield
    finally:
        for layer, original in saved:
            if original is None:
                del layer.call
            else:
                layer.call = original


def _input_spec(network):
    tf = _tf()
    inputs = getattr(network, "inputs", None)
    if not inputs:
        raise ConversionError(
            "The network has no defined inputs; build it with keras.Input (functional or "
            "Sequential with an Input) before converting."
        )
    if len(inputs) != 1:
        raise ConversionError(f"Only single-input networks are supported, got {len(inputs)}.")
    shape = tuple(inputs[0].shape)
    return tf.TensorSpec((None,) + shape[1:], tf.float32, name="x")


def export_saved_model(model, directory, dense=False, quantize="none", input_scales=None):
    """Writes the SavedModel used for conversion; returns the export objects.

    `input_scales` ({gated layer name: scales}, `calibrate_input_scales`) is
    needed by the CondComp ops of `quantize="int8"`.
    """
    import keras

    tf = _tf()
    network = unwrap(model)
    gated = gated_layers_of(network)
    spec = _input_spec(network)
    module = tf.Module()
    module.tracked = []
    static = quantize == "int8" and not dense
    exports = [_GatedExport(module, layer, dense, quantize,
                            input_scales[layer.name] if static else None) for layer in gated]
    archive = keras.export.ExportArchive()
    archive.track(network)
    archive.track(module)

    def serve(x):
        with _patched_calls(exports):
            return network(x, training=False)

    archive.add_endpoint("serve", serve, input_signature=[spec])
    with contextlib.redirect_stdout(sys.stderr):
        archive.write_out(directory, verbose=False)
    return exports


def convert(model, dense=False, quantize="none", representative=None, input_scales=None):
    """Returns the .tflite flatbuffer (bytes) of a Keras model, with or without gated layers.

    Args:
        model: A Keras model holding GatedDense/GatedConv2D layers (or a
            `CondCompModel`), or a plain Keras model (converted with builtin
            ops as with `dense=True`: one tool for a condnet and the dense
            net it is compared with).
        dense: Export the builtin-op baseline (every block on, masks ignored).
        quantize: "none" (float32); "dynamic": the standard converter's
            `Optimize.DEFAULT` for the builtin ops (int8 weights, activations
            quantized at run time), and in the CondComp ops (dense and conv)
            int8 weights with per-unit scales (`quantize_kernel`) times int8
            activations quantized per input block at run time (exact int32
            dot products; `quantized_reference` is what they compute), the
            policies staying float32; "int8": activation scales calibrated
            on `representative`. With `dense=True` (the baseline a phone user
            would deploy) the standard converter's full-integer quantization:
            int8 weights and activations, float input and output. For the
            CondComp ops, the same int8 weights times int8 activations with a
            static scale per input block (`calibrate_input_scales`: the
            largest |x| seen there / 127; values beyond it clip), the policies
            float32. The TF converter cannot calibrate through custom ops,
            so the builtin ops between them (e.g. an output `Dense`) get
            "dynamic"'s int8 weights, and the tensors between ops stay
            float32: not an integer-only model.
        representative: For "int8": an array of model inputs (a few hundred
            examples of real data) for the activation ranges.
        input_scales: For "int8" CondComp ops, instead of `representative`:
            `{gated layer name: scales}`, one float32 > 0 per input block
            (e.g. `calibrate_input_scales`' output, adjusted).
    """
    import keras
    import numpy as np

    if quantize not in QUANTIZE_MODES:
        raise ValueError(
            f"Argument `quantize` must be one of {QUANTIZE_MODES}. Received: quantize={quantize!r}"
        )
    if not isinstance(model, keras.layers.Layer):
        raise ValueError(
            "Argument `model` must be a Keras model (load a file with "
            f"`load_keras_model(path)`). Received: model={model!r}"
        )
    dense = dense or not gated_layers_of(unwrap(model))
    static = quantize == "int8" and not dense
    if input_scales is not None and not static:
        raise ValueError("Argument `input_scales` is used by quantize='int8' without "
                         f"dense=True only. Received: quantize={quantize!r}, dense={dense!r}")
    if quantize == "int8" and input_scales is None:
        if representative is None or len(representative) == 0:
            raise ValueError("quantize='int8' needs `representative` inputs to calibrate the "
                             f"activation ranges. Received: representative={representative!r}")
        representative = np.asarray(representative, np.float32)
    elif representative is not None:
        raise ValueError("Argument `representative` is used by quantize='int8' only (and not "
                         f"with `input_scales`). Received: quantize={quantize!r}")
    _check_finite_weights(unwrap(model))
    tf = _tf()
    if static:
        input_scales = (calibrate_input_scales(unwrap(model), representative)
                        if input_scales is None else _check_input_scales(unwrap(model),
                                                                         input_scales))
    with tempfile.TemporaryDirectory() as tmp:
        export_saved_model(model, tmp, dense=dense, quantize=quantize, input_scales=input_scales)
        converter = tf.lite.TFLiteConverter.from_saved_model(tmp)
        converter.allow_custom_ops = not dense
        # The converter's calibration would have to run the custom ops.
        configure_quantization(converter, "dynamic" if static else quantize, representative)
        return converter.convert()


def _input_blocks(layer):
    """(number of input blocks, their size) of a gated layer, as the ops see them."""
    num_inputs = int(layer.kernel.shape[-2])
    in_block = input_block_size(layer, num_inputs) or num_inputs
    return num_inputs // in_block, in_block


def _check_input_scales(network, input_scales):
    """`input_scales` as float32 arrays, one per gated layer, each [num input blocks] > 0."""
    import numpy as np

    layers = gated_layers_of(network)
    names = {layer.name for layer in layers}
    if not isinstance(input_scales, dict) or set(input_scales) != names:
        got = sorted(input_scales) if isinstance(input_scales, dict) else input_scales
        raise ValueError("Argument `input_scales` must map each gated layer's name "
                         f"{sorted(names)} to its scales. Received: input_scales={got!r}")
    checked = {}
    for layer in layers:
        scale = np.asarray(input_scales[layer.name], np.float32)
        n_in, _ = _input_blocks(layer)
        if scale.shape != (n_in,) or not np.all(np.isfinite(scale) & (scale > 0)):
            raise ValueError(
                f"Argument `input_scales[{layer.name!r}]` must hold {n_in} finite scales > 0 "
                f"(one per input block). Received: {scale!r}")
        checked[layer.name] = scale
    return checked


def calibrate_input_scales(network, representative, batch_size=256):
    """Static activation scales of the "int8" CondComp ops: `{layer name: scales}`.

    `network` is a chain (as for `quantized_reference`); the float32 network
    runs on `representative` (model inputs) and each gated layer's input
    block i (over all positions of a GatedConv2D input) gets
    `scale_i = max |x| / 127` over all examples, as the standard converter's
    min/max calibration of symmetric int8 activations. A block that is zero
    on every example gets the layer's largest block scale (1 if all are
    zero). Non-finite representative values are refused.
    """
    import keras
    import numpy as np

    from keras_condcomp.layers import GatedLayer

    x = np.asarray(representative, np.float32)
    if x.ndim < 2 or len(x) == 0:
        raise ValueError("Argument `representative` must be a non-empty batch of model inputs. "
                         f"Received: representative with shape {x.shape}")
    if not np.all(np.isfinite(x)):
        raise ValueError(f"Argument `representative` holds {int(np.sum(~np.isfinite(x)))} "
                         "NaN/Inf values; calibrate on real, finite examples.")
    layers = _chain_layers(network, "calibrate_input_scales")
    maxima = {layer.name: None for layer in layers if isinstance(layer, GatedLayer)}
    for start in range(0, len(x), batch_size):
        h = keras.ops.convert_to_tensor(x[start:start + batch_size])
        for layer in layers:
            if isinstance(layer, GatedLayer):
                blocks = np.abs(np.asarray(h)).reshape(-1, *_input_blocks(layer))
                m = blocks.max(axis=(0, 2))
                prev = maxima[layer.name]
                maxima[layer.name] = m if prev is None else np.maximum(prev, m)
            h = layer(h, training=False)
    scales = {}
    for name, m in maxima.items():
        scale = (m / np.float32(127)).astype(np.float32)
        fallback = scale.max() if scale.max() > 0 else np.float32(1)
        scales[name] = np.where(scale > 0, scale, fallback).astype(np.float32)
    return _check_input_scales(network, scales)


def configure_quantization(converter, quantize, representative=None):
    """Sets a `tf.lite.TFLiteConverter` for `quantize` ("none", "dynamic", "int8").

    "dynamic": `Optimize.DEFAULT` (int8 weights; builtin ops quantize their
    activations at run time); "int8": full-integer builtin ops with activation
    scales calibrated on `representative` (an array of inputs, one example per
    calibration step), float input and output.
    """
    tf = _tf()
    if quantize != "none":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
    if quantize == "int8":
        converter.representative_dataset = lambda: (
            [representative[i:i + 1]] for i in range(len(representative)))
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]


def op_counts(tflite_bytes):
    """{op name: count} over all subgraphs of a .tflite flatbuffer."""
    from tensorflow.lite.python import schema_py_generated as schema

    names = {v: k for k, v in vars(schema.BuiltinOperator).items() if not k.startswith("_")}
    model = schema.Model.GetRootAsModel(tflite_bytes, 0)
    counts = collections.Counter()
    for s in range(model.SubgraphsLength()):
        sub = model.Subgraphs(s)
        for o in range(sub.OperatorsLength()):
            code = model.OperatorCodes(sub.Operators(o).OpcodeIndex())
            builtin = max(code.BuiltinCode(), code.DeprecatedBuiltinCode())
            if builtin == schema.BuiltinOperator.CUSTOM:
                counts[code.CustomCode().decode()] += 1
            else:
                counts[names.get(builtin, str(builtin))] += 1
    return dict(counts)


def load_keras_model(path):
    import keras

    import keras_condcomp  # noqa: F401  (registers the serializable classes)

    return keras.saving.load_model(path, compile=False)


def _parse_args(argv):
    parser = argparse.ArgumentParser(
        prog="convert.py",
        description="Convert a Keras model with GatedDense/GatedConv2D layers (custom ops), "
        "or any Keras model (builtin ops), to TFLite.",
    )
    parser.add_argument("model", metavar="MODEL", help="Keras model file (.keras)")
    parser.add_argument("-o", "--output", required=True, help="output .tflite path")
    parser.add_argument(
        "--dense", action="store_true",
        help="export the dense baseline with builtin ops (every block on, masks ignored); "
        "a model without gated layers is always converted this way",
    )
    parser.add_argument(
        "--verify", type=int, default=0, metavar="N",
        help="after converting, run the .tflite (custom ops registered) and the Keras model "
        "on N random inputs (batch 1 and batch N) and fail unless they agree within 1e-5",
    )
    parser.add_argument(
        "--summary-data", metavar="X.npy",
        help="inputs (a .npy array, e.g. a validation split) on which to print the per-layer "
        "gate summary (keras_condcomp.summary): active fractions and multiply-adds",
    )
    parser.add_argument(
        "--quantize", choices=QUANTIZE_MODES, default="none",
        help="dynamic: int8 weights, activations quantized at run time (builtin ops by the "
        "standard converter's Optimize.DEFAULT; the CondComp ops: per-unit int8 weights, "
        "int8 activations per input block); int8: activation scales calibrated on "
        "--representative-data (with --dense: the standard full-integer baseline; the "
        "CondComp ops: a static int8 scale per input block, builtin ops as in dynamic)",
    )
    parser.add_argument(
        "--representative-data", metavar="X.npy",
        help="inputs (a .npy array of real examples) for --quantize int8's calibration",
    )
    parser.add_argument(
        "--representative", type=int, default=200, metavar="N",
        help="how many examples of --representative-data to calibrate on (default 200)",
    )
    parser.add_argument(
        "--verbose", action="store_true",
        help="show TensorFlow's start-up and converter logging (tflite/convert.py hides it)",
    )
    args = parser.parse_args(argv)
    if args.summary_data is not None and not os.path.isfile(args.summary_data):
        parser.error(f"argument --summary-data: file not found: {args.summary_data!r}")
    if args.verify < 0:
        parser.error(f"argument --verify: must be >= 0, got {args.verify}")
    if args.representative < 1:
        parser.error(f"argument --representative: must be >= 1, got {args.representative}")
    if args.quantize == "int8":
        if args.representative_data is None:
            parser.error("argument --quantize int8 needs --representative-data X.npy")
        if not os.path.isfile(args.representative_data):
            parser.error("argument --representative-data: file not found: "
                         f"{args.representative_data!r}")
    elif args.representative_data is not None:
        parser.error("argument --representative-data: used by --quantize int8 only")
    if not os.path.isfile(args.model):
        parser.error(f"argument MODEL: file not found: {args.model!r}")
    if not args.model.endswith((".keras", ".h5")):
        parser.error(f"argument MODEL: expected a .keras (or .h5) file, got {args.model!r}")
    out_dir = os.path.dirname(os.path.abspath(args.output))
    if not os.path.isdir(out_dir):
        parser.error(f"argument -o/--output: directory does not exist: {out_dir!r}")
    if os.path.isdir(args.output):
        parser.error(f"argument -o/--output: is a directory: {args.output!r}")
    return parser, args


def main(argv=None):
    parser, args = _parse_args(argv)
    try:
        model = load_keras_model(args.model)
    except Exception as e:  # noqa: BLE001 - report any loading failure with the argument
        parser.error(f"argument MODEL: could not load {args.model!r}: {e}")
    network = unwrap(model)
    # A plain Keras model (e.g. the dense net a condnet is compared with) has
    # only builtin ops: converted and verified as --dense.
    args.dense = args.dense or not gated_layers_of(network)
    try:
        representative = scales = None
        if args.quantize == "int8":
            import numpy as np

            try:
                representative = np.load(args.representative_data)[: args.representative]
                if not args.dense:  # calibrated once: the same scales are converted and verified
                    scales = calibrate_input_scales(network, representative)
                    representative = None
            except (ValueError, OSError) as e:  # not an array of model inputs, NaN, ...
                parser.error(f"argument --representative-data: {e}")
        data = convert(model, dense=args.dense, quantize=args.quantize,
                       representative=representative, input_scales=scales)
    except ConversionError as e:
        parser.error(f"argument MODEL: {e}")
    with open(args.output, "wb") as f:
        f.write(data)
    kind = "dense baseline (builtin ops)" if args.dense else "custom ops"
    if args.quantize == "dynamic":
        kind += ", dynamic-range int8 (int8 weights, run-time activation scales)"
    elif args.quantize == "int8":
        kind += (", full-integer int8" if args.dense else
                 ", int8 (int8 weights, static activation scales per input block)")
    print(f"wrote {args.output}: {len(data):,} bytes, {kind}")
    for name, count in sorted(op_counts(data).items()):
        print(f"  {name}: {count}")
    for layer in gated_layers_of(network):
        rule = (f"top_k={layer.policy.top_k}" if layer.policy.top_k is not None
                else f"threshold={layer.threshold}")
        print(
            f"  {layer.name}: {type(layer).__name__} num_blocks={layer.num_blocks} "
            f"block_size={layer.block_size} {rule}"
            + (" (run densely)" if args.dense else "")
        )
    if args.summary_data is not None:
        import numpy as np

        from keras_condcomp import summary

        x = np.load(args.summary_data)
        print(f"gates of the Keras model on {len(x)} examples of {args.summary_data}:")
        summary(network, x)
    if args.verify:
        if args.quantize != "none":
            # int8 rounding moves the outputs from the float model's: reported.
            worst = verify(model, data, args.verify, dense=args.dense)
            print(f"quantized: max |tflite - keras float32| = {worst:.2e} on {args.verify} "
                  "random inputs (not compared with a tolerance)")
            if args.dense:
                return 0
            # Each CondComp int8 op computes its layer's quantized reference
            # on the input it gets: checked op by op (the builtin ops around
            # them are the standard converter's dynamic-range ones).
            worst = verify_quantized_ops(model, data, args.verify, input_scales=scales)
            print(f"verified: max |CondComp op - keras int8 reference of its layer| = "
                  f"{worst:.2e} on {args.verify} random inputs")
        else:
            worst = verify(model, data, args.verify, dense=args.dense)
            print(f"verified: max |tflite - keras| = {worst:.2e} on {args.verify} random inputs")
        if not worst <= VERIFY_TOLERANCE:
            print(f"error: exceeds {VERIFY_TOLERANCE:g}", file=sys.stderr)
            return 1
    return 0


VERIFY_TOLERANCE = 1e-5


def verify(model, tflite_bytes, num_examples, dense=False, seed=0, quantized=False,
           input_scales=None):
    """Max abs difference between the .tflite and Keras deterministic inference.

    Inputs are standard-normal; batch 1 and batch `num_examples` are both run
    (the TFLite input is resized). For `dense=True` the reference is the
    network with every block forced on (what the builtin-op export computes);
    for `quantized=True` it is `quantized_reference` (the int8 CondComp ops;
    pass the `input_scales` the model was converted with for "int8").
    """
    import numpy as np

    from keras_condcomp import litert

    network = unwrap(model)
    shape = tuple(network.inputs[0].shape[1:])
    x = np.random.default_rng(seed).standard_normal((num_examples, *shape)).astype("float32")
    interpreter = litert.Interpreter(model_content=tflite_bytes, custom_ops=not dense)
    if quantized:
        expected = quantized_reference(network, x, input_scales)[0]
    else:
        with _all_blocks_on(network) if dense else contextlib.nullcontext():
            expected = np.asarray(network(x, training=False))
    worst = 0.0
    for batch in (x[:1], x):
        got = interpreter.predict(batch)
        worst = max(worst, float(np.max(np.abs(got - expected[: len(batch)]))))
    return worst


def _chain_layers(network, caller):
    """The layers of the chain `network` in order, InputLayers left out.

    A gated layer nested in another layer would run as float32 there, not as
    the int8 ops do: refused.
    """
    import keras

    from keras_condcomp.layers import GatedLayer
    from keras_condcomp.sparse import _check_chain

    _check_chain(network)
    layers = []
    for layer in network.layers:
        if isinstance(layer, keras.layers.InputLayer):
            continue
        if not isinstance(layer, GatedLayer) and gated_layers_of(layer):
            raise ConversionError(
                f"{caller} runs the gated layers of the top-level chain; "
                f"{layer.name!r} holds gated layers inside it. Flatten the model first.")
        layers.append(layer)
    return layers


def quantized_reference(network, x, input_scales=None):
    """What the int8 CondComp model computes, in Keras: `(outputs, masks)`.

    `network` is a chain (Sequential, or functional with one path); each
    gated layer takes its mask from its float policy on its float input, then
    computes with `reference.quantize_activations` of that input (per input
    block, `input_block_size`; over all positions for a GatedConv2D) and
    `q * scale` weights (`quantize_kernel`); other layers run as they are.
    Activation scales are per example (`quantize="dynamic"`) or, with
    `input_scales` ({layer name: scales}, `calibrate_input_scales`), static
    (`quantize="int8"`). `masks` holds one (batch, num_blocks) array per
    gated layer, for comparing decisions with the float model.
    """
    import keras
    import numpy as np

    from keras_condcomp.layers import GatedLayer

    h = keras.ops.convert_to_tensor(np.asarray(x, np.float32))
    masks = []
    for layer in _chain_layers(network, "quantized_reference"):
        if not isinstance(layer, GatedLayer):
            h = layer(h, training=False)
            continue
        h, mask = _quantized_gated_layer(
            layer, h, None if input_scales is None else input_scales[layer.name])
        masks.append(np.asarray(mask))
    return np.asarray(h), masks


def _quantized_gated_layer(layer, h, input_scale=None):
    """`(output, mask)` of one int8 CondComp op: `layer` on input `h` (`quantized_reference`)."""
    import keras
    import numpy as np

    from keras_condcomp import reference
    from keras_condcomp.layers import GatedConv2D, nonfinite_rows_to_nan

    h = keras.ops.convert_to_tensor(h)
    is_conv = isinstance(layer, GatedConv2D)
    policy_input = keras.ops.mean(h, axis=(1, 2)) if is_conv else h  # as the layers do
    mask, sigma, _ = layer.policy(policy_input, training=False)
    block_scale = reference.block_scale(mask, sigma, layer.scale_by_gate)
    q, scale = quantize_kernel(layer.kernel.numpy())
    _, in_block = _input_blocks(layer)
    xq = reference.quantize_activations(h, in_block, input_scale)
    kernel = q.astype(np.float32) * scale
    if is_conv:
        y = reference.masked_conv2d(xq, kernel, layer.bias, layer.activation, block_scale,
                                    layer.block_size, layer.strides, layer.padding,
                                    layer.dilation_rate)
    else:
        y = reference.masked_dense(xq, kernel, layer.bias, layer.activation, block_scale,
                                   layer.block_size)
    return nonfinite_rows_to_nan(h, y), mask


def verify_quantized_ops(model, tflite_bytes, num_examples, seed=0, input_scales=None):
    """Max abs difference of each int8 CondComp op from its reference, on the op's own input.

    The converter quantizes the builtin ops around the CondComp ops (e.g. an
    output `Dense` becomes a dynamic-range FULLY_CONNECTED), which no Keras
    reference reproduces bit for bit; so each CondComp op is checked alone:
    the tensor it received in the .tflite run goes through
    `_quantized_gated_layer` of its layer (what the op computes) and the
    result is compared with the tensor the op wrote. Inputs are standard
    normal, batch `num_examples`. Returns the worst difference over the ops.
    """
    import numpy as np

    from keras_condcomp import litert

    network = unwrap(model)
    layers = gated_layers_of(network)
    shape = tuple(network.inputs[0].shape[1:])
    x = np.random.default_rng(seed).standard_normal((num_examples, *shape)).astype("float32")
    interpreter = litert.Interpreter(model_content=tflite_bytes,
                                     experimental_preserve_all_tensors=True)
    interpreter.predict(x)
    ops = [op for op in interpreter._get_ops_details() if op["op_name"] in (DENSE_OP, CONV_OP)]
    if len(ops) != len(layers):
        raise ConversionError(f"The model has {len(ops)} CondComp ops for {len(layers)} gated "
                              "layers; it was not converted from this Keras model.")
    worst = 0.0
    for layer, op in zip(layers, ops):
        got = interpreter.get_tensor(int(op["outputs"][0]))
        op_input = interpreter.get_tensor(int(op["inputs"][0]))
        scale = None if input_scales is None else input_scales[layer.name]
        expected = np.asarray(_quantized_gated_layer(layer, op_input, scale)[0])
        worst = max(worst, float(np.max(np.abs(got - expected))))
    return worst


@contextlib.contextmanager
def _all_blocks_on(network):
    """Gated layers of `network` with threshold 0 and no top-k: every block on, as in `--dense`."""
    layers = gated_layers_of(network)
    saved = [(layer, layer.policy.threshold, layer.policy.top_k) for layer in layers]
    try:
        for layer in layers:
            layer.policy.threshold = 0.0
            layer.policy.top_k = None
        yield
    finally:
        for layer, threshold, top_k in saved:
            layer.policy.threshold = threshold
            layer.policy.top_k = top_k


if __name__ == "__main__":
    sys.exit(main())
