import keras
import numpy as np
import pytest

from keras_condcomp import GatedConv2D, GatedDense, get_block_mask


def _constant_policy(layer, bias):
    layer.policy.kernel.assign(np.zeros(layer.policy.kernel.shape, "float32"))
    layer.policy.bias.assign(np.asarray(bias, "float32"))


def test_gated_dense_inference_masks_blocks_exactly():
    layer = GatedDense(6, num_blocks=3, activation="sigmoid")
    x = np.random.default_rng(0).normal(size=(4, 5)).astype("float32")
    layer.build(x.shape)
    _constant_policy(layer, [5.0, -5.0, 5.0])
    y = keras.ops.convert_to_numpy(layer(x, training=False))
    dense = 1 / (1 + np.exp(-(x @ layer.kernel.numpy() + layer.bias.numpy())))
    np.testing.assert_allclose(y[:, :2], dense[:, :2], rtol=1e-5)
    np.testing.assert_array_equal(y[:, 2:4], 0.0)  # sigmoid(.) != 0, still exactly off
    np.testing.assert_allclose(y[:, 4:], dense[:, 4:], rtol=1e-5)
    np.testing.assert_array_equal(np.asarray(layer.gate_outputs.mask), [[1, 0, 1]] * 4)


def test_block_mask_travels_to_next_gated_layer():
    first = GatedDense(8, num_blocks=4, activation="relu")
    second = GatedDense(4, num_blocks=2)
    x = np.ones((3, 5), "float32")
    h = first(x, training=False)
    _constant_policy(first, [5.0, -5.0, -5.0, 5.0])
    h = first(x, training=False)
    np.testing.assert_array_equal(np.asarray(get_block_mask(h)), [[1, 0, 0, 1]] * 3)
    second(h, training=False)
    np.testing.assert_allclose(np.asarray(second.gate_outputs.input_active), [0.5] * 3)


def test_gated_conv2d_matches_masked_conv():
    layer = GatedConv2D(8, 3, num_blocks=4, padding="same", strides=2, activation="relu")
    x = np.random.default_rng(1).normal(size=(2, 9, 9, 3)).astype("float32")
    y = keras.ops.convert_to_numpy(layer(x, training=False))
    assert y.shape == (2, 5, 5, 8) == tuple(layer.compute_output_shape(x.shape))
    _constant_policy(layer, [5.0, -5.0, 5.0, -5.0])
    y = keras.ops.convert_to_numpy(layer(x, training=False))
    reference = keras.layers.Conv2D(8, 3, strides=2, padding="same", activation="relu")
    reference.build(x.shape)
    reference.set_weights([layer.kernel.numpy(), layer.bias.numpy()])
    expected = keras.ops.convert_to_numpy(reference(x)) * np.repeat([1, 0, 1, 0], 2)
    np.testing.assert_allclose(y, expected, rtol=1e-5, atol=1e-6)


def test_layer_losses_are_the_weighted_regularizers():
    layer = GatedDense(4, num_blocks=2, tau=0.25, block_balance_weight=1.0,
                       example_balance_weight=0.0, variance_weight=0.0)
    x = np.zeros((3, 2), "float32")
    layer.build(x.shape)
    _constant_policy(layer, [0.0, 0.0])  # sigma = 0.5 everywhere
    layer(x, training=True)
    assert len(layer.losses) == 1
    assert float(layer.losses[0]) == pytest.approx(2 * 0.25, rel=1e-5)
    layer.set_gating(tau=0.5)
    layer(x, training=True)
    assert float(layer.losses[0]) == pytest.approx(0.0, abs=1e-6)


@pytest.mark.parametrize("cls, args", [(GatedDense, (12, 3)), (GatedConv2D, (6, (3, 1), 2))])
def test_config_round_trip(cls, args):
    layer = cls(*args, activation="relu", tau=0.3, threshold=0.4, seed=3,
                kernel_regularizer="l2", name="g")
    restored = cls.from_config(layer.get_config())
    assert restored.get_config() == layer.get_config()


@pytest.mark.parametrize(
    "make, match",
    [
        (lambda: GatedDense(10, num_blocks=3), r"units=10, num_blocks=3"),
        (lambda: GatedDense(8, num_blocks=0), r"num_blocks=0"),
        (lambda: GatedDense(0, num_blocks=1), r"units=0"),
        (lambda: GatedDense(8, num_blocks=2, tau=0.0), r"tau=0.0"),
        (lambda: GatedDense(8, num_blocks=2, tau=1.5), r"tau=1.5"),
        (lambda: GatedDense(8, num_blocks=2, variance_weight=-1), r"variance_weight=-1"),
        (lambda: GatedConv2D(10, 3, num_blocks=4), r"filters=10, num_blocks=4"),
        (lambda: GatedConv2D(8, 3, num_blocks=2, padding="full"), r"padding='full'"),
        (lambda: GatedConv2D(8, 0, num_blocks=2), r"kernel_size=\(0, 0\)"),
        (lambda: GatedConv2D(8, 3, num_blocks=2, data_format="channels_first"), r"channels_first"),
    ],
)
def test_bad_arguments_name_the_value(make, match):
    with pytest.raises(ValueError, match=match):
        make()


def test_wrong_input_rank():
    with pytest.raises(ValueError, match=r"rank 2.*Received: input_shape=\(2, 3, 4\)"):
        GatedDense(4, num_blocks=2).build((2, 3, 4))
    with pytest.raises(ValueError, match=r"rank 4.*Received: input_shape=\(2, 3\)"):
        GatedConv2D(4, 3, num_blocks=2).build((2, 3))
    layer = GatedDense(4, num_blocks=2)
    layer.build((None, 3))
    with pytest.raises(ValueError):
        layer(np.zeros((2, 3, 3), "float32"))


def test_set_gating_rejects_unknown_names():
    layer = GatedDense(4, num_blocks=2)
    layer.build((None, 3))
    with pytest.raises(ValueError, match="sparsity_weight"):
        layer.set_gating(sparsity_weight=1.0)
    with pytest.raises(ValueError, match="tau=2"):
        layer.set_gating(tau=2)
