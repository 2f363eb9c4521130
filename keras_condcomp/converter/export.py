"""Keras model -> SavedModel -> .tflite flatbuffer (`convert`).

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

A plain `Dense` that alone reads a `GatedDense`'s output (`folded_head`, an
output layer) is folded into that layer's op: option `head_units`, its kernel
and bias as the op's last two inputs (float32 in every quantize mode), the
Dense's activation left to a builtin op after it.

`--dense` exports the same network with each gated layer run densely
(activation(x W + b), masks ignored = every block on) with builtin ops
(FULLY_CONNECTED / CONV_2D), the XNNPACK baseline of the same shape and weights.

The int8 weights and activation scales of `quantize=` come from
`keras_condcomp.converter.quantize`.
"""

import collections
import contextlib
import sys
import tempfile

from keras_condcomp.converter.network import (
    ConversionError,
    folded_head,
    gated_layers_of,
    input_block_size,
    require_tensorflow_backend,
    unwrap,
)
from keras_condcomp.converter.quantize import (
    QUANTIZE_MODES,
    _check_input_scales,
    calibrate_input_scales,
    quantize_kernel,
)

# Changes whenever the same Keras model converts to a different .tflite
# (2: an output Dense folded into the GatedDense op before it), so that
# tools caching converted files (examples/frontier.py) convert again.
FORMAT_VERSION = 2

DENSE_OP = "CondCompGatedDense"
CONV_OP = "CondCompGatedConv2D"

# Activations the C kernels implement (tflite/ops/cc_activations.c).
SUPPORTED_ACTIVATIONS = (
    "linear", "relu", "relu6", "sigmoid", "tanh", "elu", "selu", "softplus", "softsign",
    "silu", "swish", "gelu", "leaky_relu", "hard_sigmoid", "hard_silu", "hard_swish", "mish",
    "exponential",
)


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


def block_major_kernel(kernel, num_blocks):
    """[D, K*bs] -> [K, D, bs] or [KH, KW, C, K*bs] -> [K, KH, KW, C, bs] (NumPy)."""
    import numpy as np

    from keras_condcomp.reference import block_major

    return np.ascontiguousarray(np.asarray(block_major(kernel, num_blocks)))


class _GatedExport:
    """Block-major copies of one gated layer's weights plus its fused call."""

    def __init__(self, module, layer, dense, quantize="none", input_scale=None, head=None):
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
        # The folded output layer (head): kept float32, its multiply-adds a
        # small part of the layer's, its inputs last.
        self.head = None if dense else head
        if self.head is not None:
            head_kernel = np.asarray(self.head.kernel.numpy(), np.float32)
            head_bias = (np.asarray(self.head.bias.numpy(), np.float32) if self.head.use_bias
                         else np.zeros(head_kernel.shape[-1:], np.float32))
            self.extra += [
                tf.Variable(head_kernel, trainable=False, name=f"{prefix}_head_kernel"),
                tf.Variable(head_bias, trainable=False, name=f"{prefix}_head_bias"),
            ]
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
        if self.head is not None:
            self.attrs["head_units"] = int(self.head.units)
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
        head = self.head is not None

        def split_head(extra):
            # (the inputs before the head's, the head's output function)
            if not head:
                return extra, lambda y: y
            *rest, head_kernel, head_bias = extra
            return rest, lambda y: tf.matmul(y, head_kernel) + head_bias

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
                               *extra):
                input_scale, head_fn = split_head(extra)
                scale = policy_block_scale(x, policy_kernel, policy_bias)
                xq, kernel = int8_inputs(x, kernel_q, kernel_scale, input_scale)
                return head_fn(reference.masked_dense(xq, kernel, bias, act, scale,
                                                      kernel_q.shape[-1]))

            return gated_dense_q8

        @tf.function(experimental_implements=_implements(DENSE_OP, self.attrs))
        def gated_dense(x, kernel_bm, bias, policy_kernel, policy_bias, *extra):
            # Reference semantics (docs/architecture.md); TFLite replaces this body.
            _, head_fn = split_head(extra)
            scale = policy_block_scale(x, policy_kernel, policy_bias)
            return head_fn(reference.masked_dense(x, reference.from_block_major(kernel_bm), bias,
                                                  act, scale, kernel_bm.shape[-1]))

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


@contextlib.contextmanager
def _patched_calls(exports):
    """Temporarily routes each gated layer's `call` to its export function.

    A folded output layer (head) then receives the op's output, already its
    product: its `call` is only its activation, with its input check off.
    """
    saved = []
    try:
        for exp in exports:
            saved.append((exp.layer, exp.layer.__dict__.get("call"), None))
            exp.layer.call = exp.call
            if exp.head is not None:
                saved.append((exp.head, exp.head.__dict__.get("call"), exp.head.input_spec))
                exp.head.input_spec = None
                exp.head.call = _activation_only(exp.head)
        yield
    finally:
        for layer, original, input_spec in reversed(saved):
            if original is None:
                del layer.call
            else:
                layer.call = original
            if input_spec is not None:
                layer.input_spec = input_spec


def _activation_only(head):
    def call(inputs, *args, **kwargs):
        return head.activation(inputs)

    return call


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
    require_tensorflow_backend()
    import keras

    tf = _tf()
    network = unwrap(model)
    gated = gated_layers_of(network)
    spec = _input_spec(network)
    module = tf.Module()
    module.tracked = []
    static = quantize == "int8" and not dense
    exports = [_GatedExport(module, layer, dense, quantize,
                            input_scales[layer.name] if static else None,
                            folded_head(network, layer)) for layer in gated]
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
            so the builtin ops between them (e.g. an output `Dense` that
            is not folded into the op before it) get "dynamic"'s int8
            weights, and the tensors between ops stay float32: not an
            integer-only model.
        representative: For "int8": an array of model inputs (a few hundred
            examples of real data) for the activation ranges.
        input_scales: For "int8" CondComp ops, instead of `representative`:
            `{gated layer name: scales}`, one float32 > 0 per input block
            (e.g. `calibrate_input_scales`' output, adjusted).
    """
    require_tensorflow_backend()
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
    require_tensorflow_backend()
    import keras

    import keras_condcomp  # noqa: F401  (registers the serializable classes)

    return keras.saving.load_model(path, compile=False)
