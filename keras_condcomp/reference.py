"""The masked reference computation and the block-major weight layout, written once.

Every path computes what these functions define: the Keras layers
(`GatedDense`, `GatedConv2D`), the TensorFlow sparse path's dense fallback
(`keras_condcomp.sparse`), and the body of the function the converter turns
into one TFLite custom op (`keras_condcomp.converter`); the C ops are tested
against them. Keras ops only, so they run on NumPy arrays, eagerly and inside
`tf.function`.

Semantics (docs/architecture.md): a gated layer's output is
`activation(x W + b) * repeat(mask, block_size)`, the mask applied *after* the
activation so that inactive blocks are exactly 0 for any activation (which is
what lets the next layer skip them). At inference the mask is
`sigma > threshold`, or each example's `top_k` blocks of largest policy logit.
A layer built with `scale_by_gate=True` multiplies each computed block by its
gate value instead of 1 (`block_scale`): top-k routing as in mixture-of-experts
routers, where the policy learns by backprop through the outputs it scales.
"""

from keras import ops


def top_k_mask(scores, k):
    """0./1. mask of each row's `k` largest entries of `scores`.

    The ranking rule of every path (the Keras layers, `keras_condcomp.sparse`
    and both TFLite ops): among equal values the lowest block index wins,
    and NaN ranks below every number. Written as a rank, so no backend's
    `top_k` kernel decides among equal values.
    """
    scores = ops.where(ops.isnan(scores), ops.cast(float("-inf"), scores.dtype), scores)
    num_blocks = scores.shape[-1]
    if num_blocks is None:
        num_blocks = ops.shape(scores)[-1]
    row = ops.expand_dims(scores, -1)     # (..., K, 1): the block ranked
    other = ops.expand_dims(scores, -2)   # (..., 1, K): the blocks it is compared with
    index = ops.arange(num_blocks)
    earlier = ops.expand_dims(index, -1) > ops.expand_dims(index, 0)  # other is a lower index
    ahead = ops.logical_or(other > row, ops.logical_and(other == row, earlier))
    rank = ops.sum(ops.cast(ahead, "int32"), axis=-1)
    return ops.cast(rank < k, scores.dtype)


def inference_mask(logits, threshold, top_k=None):
    """The deterministic block mask from the policy logits.

    With `top_k`, each row's `top_k` largest logits (`top_k_mask`). They are
    the blocks of largest sigma, ranked before the sigmoid rounds every logit
    above ~16.6 to the same float32 1.0: such saturated blocks would tie,
    and which of them win would hang on how each path rounds its sigmoid.
    Otherwise `sigmoid(logits) > threshold`.
    """
    if top_k is not None:
        return top_k_mask(logits, top_k)
    return ops.cast(ops.greater(ops.sigmoid(logits), threshold), logits.dtype)


def block_scale(mask, sigma, scale_by_gate):
    """What each block's output is multiplied by: its 0./1. mask, or mask * sigma.

    `mask` and `sigma = sigmoid(policy logits)` are `(batch, num_blocks)`.
    With `scale_by_gate` a computed block's outputs are scaled by its gate
    value sigma (after the activation), and blocks off stay exactly 0. In
    training `mask * sigma` passes gradients to both (straight-through masks
    keep theirs).
    """
    if not scale_by_gate:
        return mask
    sigma = ops.cast(sigma, mask.dtype)
    # A block off is exactly 0 even where sigma is NaN (non-finite policy weights).
    sigma = ops.where(ops.logical_and(ops.isnan(sigma), mask == 0), 0.0, sigma)
    return mask * sigma


def bias_activate_and_mask(outputs, bias, activation, mask, block_size):
    """`activation(outputs + bias)` with each block's units multiplied by its `mask` entry.

    `outputs` is channels last (`(batch, units)` or `(batch, ..., units)`);
    `mask` is `(batch, num_blocks)`: 0./1. floats, or `block_scale`'s values;
    `bias` and `activation` may be None.
    """
    if bias is not None:
        outputs = ops.add(outputs, bias)
    if activation is not None:
        outputs = activation(outputs)
    unit_mask = ops.repeat(ops.cast(mask, outputs.dtype), block_size, axis=1)
    for _ in range(len(outputs.shape) - 2):  # broadcast over spatial axes
        unit_mask = ops.expand_dims(unit_mask, 1)
    return outputs * unit_mask


def masked_dense(x, kernel, bias, activation, mask, block_size):
    """The GatedDense output for a given mask: `activation(x W + b) * unit mask`."""
    return bias_activate_and_mask(ops.matmul(x, kernel), bias, activation, mask, block_size)


def masked_conv2d(x, kernel, bias, activation, mask, block_size, strides, padding,
                  dilation_rate):
    """The GatedConv2D output (channels last) for a given mask."""
    outputs = ops.conv(x, kernel, strides=strides, padding=padding,
                       data_format="channels_last", dilation_rate=dilation_rate)
    return bias_activate_and_mask(outputs, bias, activation, mask, block_size)


def block_major(kernel, num_blocks):
    """`(..., D_in, K*bs)` -> `(K, ..., D_in, bs)`: each output block's weights contiguous.

    Dense `(D, K*bs)` -> `(K, D, bs)`; conv `(KH, KW, C, K*bs)` -> `(K, KH, KW, C, bs)`.
    The layout of the TFLite ops' kernels and of the sparse path's tiles.
    """
    shape = tuple(kernel.shape)
    units = shape[-1]
    blocks = ops.reshape(kernel, shape[:-1] + (num_blocks, units // num_blocks))
    rank = len(shape)
    return ops.transpose(blocks, (rank - 1,) + tuple(range(rank - 1)) + (rank,))


def from_block_major(kernel_bm):
    """The inverse of `block_major`: `(K, ..., D_in, bs)` -> `(..., D_in, K*bs)`."""
    shape = ops.shape(kernel_bm)
    rank = len(kernel_bm.shape)
    channels_last = ops.transpose(kernel_bm, tuple(range(1, rank - 1)) + (0, rank - 1))
    return ops.reshape(channels_last, tuple(shape[1:rank - 1]) + (shape[0] * shape[rank - 1],))


def quantize_activations(x, in_block_size, input_scale=None):
    """`x` as the int8 ops see it: rounded per input block to int8.

    `x` is `(batch, D)` or channels last `(batch, ..., C)`, its last axis split
    into blocks of `in_block_size` features. With per-example scales
    (`input_scale=None`, the "dynamic" ops) each (example, block), over all
    positions of a conv input, with `m = max |x|` > 0 becomes `q * (m / 127)`
    with `q = round_half_even(x * (127 / m))`; all-zero blocks stay 0. With
    static scales (`input_scale`, one float32 per block, > 0: the "int8" ops)
    block i becomes `q * s_i` with `q = clip(round_half_even(x * (1 / s_i)),
    -127, 127)`. The products are taken in float64, as the C ops do, so `q` is
    the same integer there; the ops then take exact int32 dot products of `q`
    with the int8 weights.
    """
    batch_shape = ops.shape(x)
    d = x.shape[-1]
    blocks = ops.reshape(x, (batch_shape[0], -1, d // in_block_size, in_block_size))
    if input_scale is None:
        m = ops.max(ops.abs(blocks), axis=(1, 3), keepdims=True)
        m64 = ops.cast(m, "float64")
        k = 127.0 / ops.where(m64 > 0, m64, 1.0)
        scale = ops.cast(m, x.dtype) / ops.cast(127.0, x.dtype)
    else:
        scale = ops.reshape(ops.cast(input_scale, x.dtype), (1, 1, -1, 1))
        k = 1.0 / ops.cast(scale, "float64")
    q = ops.clip(ops.round(ops.cast(blocks, "float64") * k), -127.0, 127.0)
    return ops.reshape(ops.cast(q, x.dtype) * scale, batch_shape)
