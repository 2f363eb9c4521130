"""Block-sparse inference path for gated layers in TensorFlow.

At inference a gated layer needs only its active output blocks, computed from
its non-zero input blocks (the previous gated layer's mask). This module
computes exactly the masked dense result (docs/architecture.md) that way:

1. the policy first: `mask = sigmoid(x @ Wp + bp) > threshold` (same ops as
   `BernoulliBlockPolicy`, so the masks are bit-identical);
2. the union over the batch of the active output blocks and of the non-zero
   input blocks; their weight rows/columns are gathered (for batch 1 these are
   exactly that example's blocks);
3. one small matmul (or conv) over the gathered blocks, bias, activation,
   times the per-example mask (an example may not use every block of the
   union), scattered back into a zero output.

When the gathered fraction of the weights (`density`) is above
`max_density`, the gather costs more than it saves and the masked dense
computation runs instead (`mode="auto"`); `mode="sparse"` / `"dense"` force a
path. A batch whose input holds NaN or +-Inf always takes the dense path, so
the result equals the Keras layer's (a NaN input gives NaN outputs, not the
zeros of skipped blocks). Everything is TensorFlow ops, usable eagerly and
inside `tf.function`, on the Keras TensorFlow backend only.

    y, mask = gated_dense_inference(layer, x, input_mask=get_block_mask(x))

The layer-facing hook is `layer_inference(layer, inputs, mode)`.
"""

import numpy as np
import tensorflow as tf

from keras_condcomp import reference

MODES = ("auto", "sparse", "dense")
# TF's gather/scatter overhead makes the sparse path slower than the masked
# matmul above ~0.15 of the weights: 0.56x at max_density 0.5, tau 0.5, batch 1
# (`python benchmarks/benchmark.py --tf --max-density 0.5 0.15`, x86-64, 2 cores).
DEFAULT_MAX_DENSITY = 0.15


def _check_mode(mode, max_density):
    if mode not in MODES:
        raise ValueError(f"Argument `mode` must be one of {MODES}. Received: mode={mode!r}")
    if not isinstance(max_density, (int, float)) or isinstance(max_density, bool) or not (
        0.0 <= max_density <= 1.0
    ):
        raise ValueError(
            "Argument `max_density` must be a number in [0, 1]. "
            f"Received: max_density={max_density!r}"
        )


def _all_finite(x):
    """Scalar bool tensor: no NaN or +-Inf in `x` (the sparse path is exact only then)."""
    return tf.reduce_all(tf.math.is_finite(x))


def block_mask(x, policy_kernel, policy_bias, threshold, top_k=None, scale_by_gate=False):
    """`(mask, scale)`: the blocks computed and what their outputs are multiplied by.

    `mask` is `sigmoid(x @ Wp + bp) > threshold` (or each row's `top_k`
    largest) as 0./1. floats, the same rule as the policy layer's inference
    (`BernoulliBlockPolicy`); `scale` is `reference.block_scale`'s.
    """
    logits = tf.matmul(x, policy_kernel) + policy_bias
    mask = tf.cast(reference.inference_mask(logits, threshold, top_k), x.dtype)
    return mask, reference.block_scale(mask, tf.sigmoid(logits), scale_by_gate)


def _active_indices(mask):
    """Indices of the blocks on for at least one example of the batch."""
    return tf.cast(tf.reshape(tf.where(tf.reduce_any(mask > 0, axis=0)), [-1]), tf.int32)


def _block_units(blocks, block_size):
    """Unit indices of `blocks` (each `block_size` consecutive units)."""
    blocks = tf.cast(blocks, tf.int32)
    return tf.reshape(blocks[:, None] * block_size + tf.range(block_size)[None, :], [-1])


def _input_rows(x, input_mask, num_inputs):
    """Input unit indices that may be non-zero somewhere in the batch, or None (all)."""
    if input_mask is None:
        return None
    k_in = input_mask.shape[-1]
    if k_in is None or num_inputs % k_in:
        return None
    return _block_units(_active_indices(input_mask), num_inputs // k_in)


def _apply(activation, y):
    return y if activation is None else activation(y)


def _run_mode(mode, x, input_mask, num_inputs, mask, max_density, dense, sparse):
    """Runs `dense()` or `sparse()` as `mode` says; a batch holding NaN/Inf always runs dense.

    "auto" gathers only when the active share of the weights (active input
    rows x active output blocks of the batch) is at most `max_density`.
    """
    if mode == "dense":
        return dense()
    if mode == "sparse":
        return tf.cond(_all_finite(x), sparse, dense)
    rows = _input_rows(x, input_mask, num_inputs)
    in_frac = 1.0 if rows is None else tf.cast(tf.size(rows), tf.float32) / num_inputs
    out_frac = tf.reduce_mean(tf.cast(tf.reduce_any(mask > 0, axis=0), tf.float32))
    use_dense = tf.logical_or(in_frac * out_frac > max_density, tf.logical_not(_all_finite(x)))
    return tf.cond(use_dense, dense, sparse)


def block_major_kernel(kernel, num_blocks):
    """`(D_in, K*bs)` -> `(K, D_in, bs)` (`reference.block_major`) as a tensor."""
    return tf.convert_to_tensor(reference.block_major(tf.convert_to_tensor(kernel), num_blocks))


def _tiles_dense(x, kernel_bm, bias, activation, mask, scale, input_mask):
    """Sparse dense layer from block-major weights: gathers only the (out, in) tiles used."""
    k, d_in, bs = kernel_bm.shape
    k_in = input_mask.shape[-1] if input_mask is not None else None
    if k_in is None or d_in % k_in:
        k_in = 1
        in_blocks = tf.zeros([1], tf.int32)
    else:
        in_blocks = _active_indices(input_mask)
    ibs = d_in // k_in
    out_blocks = _active_indices(mask)
    n_out, n_in = tf.size(out_blocks), tf.size(in_blocks)
    # kernel_bm viewed as tiles [K * K_in, ibs, bs]; tile (j, i) = j * K_in + i
    tiles = tf.reshape(kernel_bm, (k * k_in, ibs, bs))
    idx = tf.reshape(out_blocks[:, None] * k_in + in_blocks[None, :], [-1])
    w = tf.reshape(tf.gather(tiles, idx), tf.stack([n_out, n_in * ibs, bs]))
    xs = tf.gather(tf.reshape(x, (-1, k_in, ibs)), in_blocks, axis=1)
    xs = tf.reshape(xs, tf.stack([tf.shape(x)[0], n_in * ibs]))
    y = tf.einsum("br,orc->boc", xs, w)  # (B, n_out, bs)
    if bias is not None:
        y = y + tf.gather(tf.reshape(bias, (k, bs)), out_blocks)
    y = _apply(activation, y) * tf.gather(scale, out_blocks, axis=1)[:, :, None]
    out = tf.scatter_nd(out_blocks[:, None], tf.transpose(y, (1, 0, 2)),
                        tf.stack([k, tf.shape(x)[0], bs]))
    return tf.reshape(tf.transpose(out, (1, 0, 2)), (-1, k * bs))


def gated_dense(x, kernel, bias, policy_kernel, policy_bias, num_blocks, threshold=0.5,
                activation=None, input_mask=None, mode="auto",
                max_density=DEFAULT_MAX_DENSITY, kernel_bm=None, top_k=None,
                scale_by_gate=False):
    """Inference of a GatedDense layer from its weights.

    Args:
        x: `(batch, D_in)` float tensor.
        kernel: `(D_in, units)`; bias: `(units,)` or None.
        policy_kernel: `(D_in, num_blocks)`; policy_bias: `(num_blocks,)`.
        num_blocks: Number of blocks dividing `units`.
        threshold: Inference rule `sigma > threshold`.
        top_k: Optional int: each example's `top_k` blocks of largest sigma
            instead of the threshold rule.
        scale_by_gate: Whether computed blocks are scaled by their gate
            values (`GatedLayer`'s argument).
        activation: Callable or None.
        input_mask: Optional `(batch, K_in)` mask of the input blocks (the
            previous gated layer's); inputs of blocks off for every example
            are skipped. Must be right: those inputs are assumed to be zero.
        mode: "auto", "sparse" or "dense".
        max_density: In "auto", fraction of the weights above which the dense
            path runs.
        kernel_bm: Optional `block_major_kernel(kernel, num_blocks)`, computed
            once (e.g. by `SparseInference`): the sparse path then gathers whole
            contiguous (output block, input block) tiles, much cheaper than
            gathering rows and columns of `kernel`.

    Returns:
        `(y, mask)`: `(batch, units)` outputs (inactive blocks exactly 0) and
        the `(batch, num_blocks)` 0./1. mask.
    """
    _check_mode(mode, max_density)
    x = tf.convert_to_tensor(x)
    kernel = tf.convert_to_tensor(kernel)
    d_in, units = kernel.shape
    block_size = units // num_blocks
    mask, scale = block_mask(x, policy_kernel, policy_bias, threshold, top_k, scale_by_gate)
    unit_scale = tf.repeat(scale, block_size, axis=1)

    def dense():
        return reference.masked_dense(x, kernel, bias, activation, scale, block_size)

    def sparse():
        if kernel_bm is not None:
            return _tiles_dense(x, kernel_bm, bias, activation, mask, scale, input_mask)
        out_blocks = _active_indices(mask)
        cols = _block_units(out_blocks, block_size)
        rows = _input_rows(x, input_mask, d_in)
        w = kernel if rows is None else tf.gather(kernel, rows, axis=0)
        xs = x if rows is None else tf.gather(x, rows, axis=1)
        y = tf.matmul(xs, tf.gather(w, cols, axis=1))
        if bias is not None:
            y = y + tf.gather(bias, cols)
        y = _apply(activation, y) * tf.gather(unit_scale, cols, axis=1)
        batch = tf.shape(x)[0]
        # scatter the gathered columns back into a zero (units, batch) tensor
        out = tf.scatter_nd(cols[:, None], tf.transpose(y), tf.stack([units, batch]))
        return tf.transpose(out)

    return _run_mode(mode, x, input_mask, d_in, mask, max_density, dense, sparse), mask


def gated_conv2d(x, kernel, bias, policy_kernel, policy_bias, num_blocks, strides=(1, 1),
                 padding="valid", dilation_rate=(1, 1), threshold=0.5, activation=None,
                 input_mask=None, mode="auto", max_density=DEFAULT_MAX_DENSITY, top_k=None,
                 scale_by_gate=False):
    """Inference of a GatedConv2D layer (channels_last) from its weights.

    Gathers the output-channel blocks on for some example and the input-channel
    blocks that are non-zero (per `input_mask`), convolves only those. Same
    arguments and return values as `gated_dense`, plus the convolution's.
    """
    _check_mode(mode, max_density)
    x = tf.convert_to_tensor(x)
    kernel = tf.convert_to_tensor(kernel)
    c_in, filters = kernel.shape[2], kernel.shape[3]
    block_size = filters // num_blocks
    mask, scale = block_mask(tf.reduce_mean(x, axis=(1, 2)), policy_kernel, policy_bias,
                             threshold, top_k, scale_by_gate)
    unit_scale = tf.repeat(scale, block_size, axis=1)[:, None, None, :]
    pad = padding.upper()

    def conv(inputs, w):
        return tf.nn.conv2d(inputs, w, strides=strides, padding=pad, dilations=dilation_rate)

    def dense():
        return reference.masked_conv2d(x, kernel, bias, activation, scale, block_size,
                                       strides, padding.lower(), dilation_rate)

    def at_least_one(indices):
        # TF's conv2d refuses a filter with a zero dimension. With no active
        # output block, output channel 0 is computed and then multiplied by
        # its mask, 0 for every example; with no non-zero input block, input
        # channel 0 is read, which is then zero for every example. Either way
        # the result is the defined one (exact zeros; activation(bias) in the
        # active blocks).
        return tf.cond(tf.size(indices) > 0, lambda: indices,
                       lambda: tf.zeros((1,), indices.dtype))

    def sparse():
        cols = at_least_one(_block_units(_active_indices(mask), block_size))
        rows = _input_rows(x, input_mask, c_in)
        if rows is not None:
            rows = at_least_one(rows)
        w = kernel if rows is None else tf.gather(kernel, rows, axis=2)
        xs = x if rows is None else tf.gather(x, rows, axis=3)
        y = conv(xs, tf.gather(w, cols, axis=3))
        if bias is not None:
            y = y + tf.gather(bias, cols)
        y = _apply(activation, y) * tf.gather(unit_scale, cols, axis=3)
        # channels last -> first to scatter, then back
        y_t = tf.transpose(y, (3, 0, 1, 2))
        shape = tf.concat([[filters], tf.shape(y_t)[1:]], axis=0)
        return tf.transpose(tf.scatter_nd(cols[:, None], y_t, shape), (1, 2, 3, 0))

    return _run_mode(mode, x, input_mask, c_in, mask, max_density, dense, sparse), mask


def layer_inference(layer, inputs, mode="auto", input_mask=None,
                    max_density=DEFAULT_MAX_DENSITY, kernel_bm=None):
    """Deterministic inference of a built `GatedDense` / `GatedConv2D` layer.

    `input_mask` defaults to the mask the previous gated layer attached to
    `inputs` (`keras_condcomp.layers.get_block_mask`). Returns `(y, mask)`.
    """
    from keras_condcomp.layers import (
        GatedConv2D,
        GatedDense,
        get_block_mask,
        nonfinite_rows_to_nan,
    )

    if not isinstance(layer, (GatedDense, GatedConv2D)):
        raise TypeError(
            f"Expected a GatedDense or GatedConv2D layer, got {type(layer).__name__}"
        )
    if layer.policy.inference_mode != "threshold":
        raise ValueError(
            f"Layer {layer.name!r} samples its gates at inference "
            f"(inference_mode={layer.policy.inference_mode!r}); the sparse path needs "
            "inference_mode='threshold'."
        )
    _check_layer_input(layer, inputs)
    if input_mask is None:
        input_mask = get_block_mask(inputs)
    common = dict(
        threshold=layer.threshold,
        top_k=layer.policy.top_k,
        scale_by_gate=layer.scale_by_gate,
        activation=layer.activation,
        input_mask=input_mask,
        mode=mode,
        max_density=max_density,
    )
    weights = (layer.kernel, layer.bias, layer.policy.kernel, layer.policy.bias,
               layer.num_blocks)
    if isinstance(layer, GatedDense):
        y, mask = gated_dense(inputs, *weights, kernel_bm=kernel_bm, **common)
    else:
        layer._check_output_not_empty(inputs.shape)
        y, mask = gated_conv2d(inputs, *weights, strides=layer.strides, padding=layer.padding,
                               dilation_rate=layer.dilation_rate, **common)
    # Same semantics as the Keras call for non-finite input rows.
    return nonfinite_rows_to_nan(tf.cast(inputs, y.dtype), y), mask


def _check_built(layer):
    if not layer.built:
        raise ValueError(
            f"Layer {layer.name!r} is not built: call it on data or `build(input_shape)` "
            "before running the sparse path."
        )


def _check_layer_input(layer, inputs):
    """Raises a ValueError naming the layer when `inputs` cannot be its input."""
    from keras_condcomp.layers import GatedConv2D

    _check_built(layer)
    shape = tuple(inputs.shape)
    if isinstance(layer, GatedConv2D):
        rank, features, what = 4, layer.input_channels, "(batch, height, width, {})"
    else:
        rank, features, what = 2, layer.input_dim, "(batch, {})"
    if len(shape) != rank or shape[-1] not in (None, features):
        raise ValueError(
            f"Layer {layer.name!r} ({type(layer).__name__}) expects inputs of shape "
            f"{what.format(features)}. Received: inputs.shape={shape}"
        )


def sequential_inference(layers, x, mode="auto", max_density=DEFAULT_MAX_DENSITY,
                         kernels_bm=None):
    """Runs a list of layers, gated ones through this path, passing block masks along.

    `kernels_bm` optionally maps a GatedDense layer's name to its block-major
    kernel. Returns `(y, masks)` with one mask per gated layer.
    """
    from keras_condcomp.layers import GatedLayer

    masks = []
    mask = None
    kernels_bm = kernels_bm or {}
    for layer in layers:
        if isinstance(layer, GatedLayer):
            x, mask = layer_inference(layer, x, mode=mode, input_mask=mask,
                                      max_density=max_density,
                                      kernel_bm=kernels_bm.get(layer.name))
            masks.append(mask)
        else:
            x = layer(x, training=False)
            mask = None  # zero blocks are not known to survive other layers
    return x, masks


def _check_chain(network):
    """Raises unless a functional `network` is a chain: each layer feeds only the next.

    SparseInference runs `network.layers` one after another, which computes
    the model only for such graphs (a Sequential always is one). Walks the
    graph back from the output through each layer's inbound node (Keras's
    `_keras_history`, the record `keras.Model` itself builds on).
    """
    import keras

    from keras_condcomp.layers import is_graph_model

    if isinstance(network, keras.Sequential) or not isinstance(network, keras.Model):
        return
    if not is_graph_model(network):
        raise ValueError(
            "SparseInference needs a Sequential or functional model (or a list of layers). "
            f"Received: network={network.name!r} of type {type(network).__name__}"
        )
    layers = [layer for layer in network.layers
              if not isinstance(layer, keras.layers.InputLayer)]
    reason = None
    if len(network.inputs) != 1 or len(network.outputs) != 1:
        reason = f"{len(network.inputs)} inputs and {len(network.outputs)} outputs"
    else:
        path, tensor = [], network.outputs[0]
        while tensor is not network.inputs[0]:
            history = getattr(tensor, "_keras_history", None)
            if history is None or isinstance(history.operation, keras.layers.InputLayer):
                reason = "a layer reads a tensor that is not the model input"
                break
            node = history.operation._inbound_nodes[history.node_index]
            if len(node.input_tensors) != 1:
                reason = (f"layer {history.operation.name!r} takes "
                          f"{len(node.input_tensors)} inputs")
                break
            path.append(history.operation)
            tensor = node.input_tensors[0]
        if reason is None and path[::-1] != layers:
            reason = "its layers are not one chain from input to output in `layers` order"
    if reason is not None:
        raise ValueError(
            f"SparseInference runs a model's layers one after another; {network.name!r} is "
            f"not a chain ({reason}). Use the Keras model itself (or convert it to TFLite) "
            "for branching graphs."
        )


class SparseInference:
    """Fast deterministic inference of a Sequential-like list of layers.

    Snapshots block-major copies of the GatedDense kernels once (so call it
    again, or `refresh()`, after the weights change) and runs
    `sequential_inference` in a `tf.function`.

        fast = SparseInference(network)      # network.layers in order
        y = fast(x)
    """

    def __init__(self, network, mode="auto", max_density=DEFAULT_MAX_DENSITY):
        import keras

        from keras_condcomp.layers import GatedDense, GatedLayer
        from keras_condcomp.models import CondCompModel

        if keras.backend.backend() != "tensorflow":
            raise RuntimeError(
                "SparseInference runs TensorFlow ops on the Keras TensorFlow backend; this "
                f"process uses KERAS_BACKEND={keras.backend.backend()!r}. On other backends, "
                "run the model itself or convert it (`python tflite/convert.py`)."
            )
        _check_mode(mode, max_density)
        if isinstance(network, CondCompModel):
            network = network.network  # its own `layers` is just [network]
        layers = getattr(network, "layers", network)
        if not isinstance(layers, (list, tuple)) or not all(
            isinstance(layer, keras.layers.Layer) for layer in layers
        ):
            raise ValueError(
                "Argument `network` must be a Keras model with a `layers` list (e.g. "
                f"keras.Sequential) or a list of Keras layers. Received: network={network!r}"
            )
        _check_chain(network)
        # A functional model lists its InputLayer, which is not called.
        self.layers = [layer for layer in layers
                       if not isinstance(layer, keras.layers.InputLayer)]
        for layer in self.layers:
            if isinstance(layer, GatedLayer):
                _check_built(layer)
        self._dense = [layer for layer in self.layers if isinstance(layer, GatedDense)]
        self.mode = mode
        self.max_density = max_density
        self.refresh()
        self._fn = tf.function(self._run)

    def refresh(self):
        """Re-snapshots the block-major kernels (after the layers' weights changed).

        Raises:
            ValueError: a weight of a layer is NaN or +-Inf (the gathered path
                would then differ from Keras, which propagates them).
        """
        for layer in self.layers:
            for weight in layer.weights:
                value = np.asarray(weight)
                if value.dtype.kind == "f" and not np.isfinite(value).all():
                    raise ValueError(
                        f"Layer {layer.name!r} has NaN or Inf values in its weight "
                        f"{weight.path!r}; SparseInference needs finite weights."
                    )
        if not hasattr(self, "kernels_bm"):
            self.kernels_bm = {
                layer.name: tf.Variable(block_major_kernel(layer.kernel, layer.num_blocks),
                                        trainable=False)
                for layer in self._dense
            }
        else:
            for layer in self._dense:
                self.kernels_bm[layer.name].assign(
                    block_major_kernel(layer.kernel, layer.num_blocks))

    def _run(self, x):
        return sequential_inference(self.layers, x, mode=self.mode, max_density=self.max_density,
                                    kernels_bm=self.kernels_bm)[0]

    def __call__(self, x):
        if isinstance(x, tf.Tensor):
            real = x.dtype.is_floating or x.dtype.is_integer or x.dtype.is_bool
        else:
            x = np.asarray(x)
            real = x.dtype.kind in "biuf"
        if not real:
            raise ValueError(
                "Argument `x` must hold real numbers (bool, int or float). "
                f"Received: x.dtype={x.dtype}"
            )
        return self._fn(tf.cast(x, tf.float32))
