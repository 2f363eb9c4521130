"""int8 quantization of the CondComp ops and its Keras reference.

`quantize_kernel` gives the per-unit int8 weights the ops multiply,
`calibrate_input_scales` the static activation scales of `quantize="int8"`
(one per input block), and `quantized_reference` what the int8 ops compute,
in Keras (what `--verify` compares them with).
"""

from keras_condcomp.converter.network import ConversionError, gated_layers_of, input_block_size

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
