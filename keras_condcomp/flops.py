"""Multiply-add counts of gated layers, dense and as gated at run time."""

from keras import ops


def layer_multiply_adds(layer, inputs):
    """Returns `(main, policy)` multiply-adds per example of a gated layer.

    `main` is the dense cost of the layer's own product (all blocks, all
    inputs); `policy` is the cost of computing sigma (plus the spatial pooling
    for convolutions).
    """
    from keras_condcomp.layers import GatedConv2D, GatedDense

    if isinstance(layer, GatedDense):
        return layer.input_dim * layer.units, layer.input_dim * layer.num_blocks
    if isinstance(layer, GatedConv2D):
        height, width = _spatial_size(inputs)
        out_shape = layer.compute_output_shape((None, height, width, layer.input_channels))
        positions = out_shape[1] * out_shape[2]
        kernel_h, kernel_w = layer.kernel_size
        main = positions * kernel_h * kernel_w * layer.input_channels * layer.filters
        policy = height * width * layer.input_channels + layer.input_channels * layer.num_blocks
        return main, policy
    raise TypeError(f"Not a gated layer: {layer!r}")


def _spatial_size(inputs):
    height, width = inputs.shape[1], inputs.shape[2]
    if height is None or width is None:
        shape = ops.shape(inputs)
        height, width = shape[1], shape[2]
    return height, width


def gated_flop_fraction(gate_outputs):
    """Multiply-adds of the gated layers as run, over the same layers run densely.

    A block-sparse product over a fraction `a_in` of input units and `a_out`
    of output blocks costs `a_in * a_out` of the dense product; the policy
    reads only the active inputs and always runs. Returns a scalar tensor
    averaged over the batch.
    """
    gated, dense = 0.0, 0.0
    for outputs in gate_outputs:
        main, policy = outputs.macs
        main = ops.cast(main, "float32")
        policy = ops.cast(policy, "float32")
        input_active = ops.cast(outputs.input_active, "float32")
        output_active = ops.mean(ops.cast(outputs.mask, "float32"), axis=-1)
        gated = gated + main * ops.mean(input_active * output_active) + policy * ops.mean(
            input_active
        )
        dense = dense + main
    return gated / dense
