"""Multiply-add counts of gated layers (keras_condcomp/flops.py)."""

import keras
import numpy as np
import pytest

from keras_condcomp import GatedConv2D, GatedDense, gate_activations
from keras_condcomp.flops import gated_flop_fraction, layer_multiply_adds


def _constant_policy(layer, bias):
    layer.policy.kernel.assign(np.zeros(layer.policy.kernel.shape, "float32"))
    layer.policy.bias.assign(np.asarray(bias, "float32"))


def test_dense_and_conv_multiply_adds():
    dense = GatedDense(12, num_blocks=4)
    dense.build((None, 10))
    assert layer_multiply_adds(dense, np.zeros((2, 10), "float32")) == (10 * 12, 10 * 4)
    conv = GatedConv2D(8, 3, num_blocks=2, strides=2, padding="same")
    x = np.zeros((1, 9, 7, 3), "float32")
    conv.build(x.shape)
    main, policy = layer_multiply_adds(conv, x)
    # 5 x 4 output positions, 3x3 taps, 3 -> 8 channels; the policy pools the
    # input (9*7*3 adds) and maps 3 channels to 2 blocks.
    assert main == 5 * 4 * 3 * 3 * 3 * 8
    assert policy == 9 * 7 * 3 + 3 * 2
    with pytest.raises(TypeError, match="Not a gated layer"):
        layer_multiply_adds(keras.layers.Dense(3), x)


def test_flop_fraction_counts_active_inputs_and_outputs():
    """Two layers, half the blocks of each on: the second reads half its inputs."""
    first = GatedDense(8, num_blocks=4, activation="relu", name="first")
    second = GatedDense(6, num_blocks=2, name="second")
    model = keras.Sequential([keras.Input((5,)), first, second])
    _constant_policy(first, [5.0, -5.0, -5.0, 5.0])
    _constant_policy(second, [5.0, -5.0])
    x = np.ones((3, 5), "float32")
    model(x, training=False)
    fraction = float(keras.ops.convert_to_numpy(
        gated_flop_fraction([first.gate_outputs, second.gate_outputs])))
    first_main, first_policy = 5 * 8, 5 * 4
    second_main, second_policy = 8 * 6, 8 * 2
    gated = (first_main * 0.5 + first_policy) + (second_main * 0.5 * 0.5 + second_policy * 0.5)
    assert fraction == pytest.approx(gated / (first_main + second_main))
    # The same counts as gate_activations reports them.
    gates = gate_activations(model, x)
    np.testing.assert_allclose(gates["second"]["input_active"], [0.5] * 3)
    assert tuple(gates["first"]["macs"]) == (first_main, first_policy)
