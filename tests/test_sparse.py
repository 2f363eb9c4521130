"""keras_condcomp.sparse: the gathered block-sparse TF path equals the masked dense layers."""

import keras
import numpy as np
import pytest
import tensorflow as tf

import keras_condcomp as kc
from keras_condcomp import sparse
from keras_condcomp.layers import get_block_mask

TOL = 1e-5


def _randomize_policy(layer, rng, spread=3.0, bias=0.0):
    k = layer.policy.kernel.shape
    layer.policy.kernel.assign(rng.normal(0, spread / np.sqrt(k[0]), k).astype("f4"))
    layer.policy.bias.assign(np.full(layer.policy.bias.shape, bias, "f4"))


def _mlp(rng, bias=-0.5):
    keras.utils.set_random_seed(int(rng.integers(1 << 30)))  # weights independent of test order
    net = keras.Sequential([
        keras.Input((30,)),
        kc.GatedDense(64, num_blocks=8, activation="relu"),
        kc.GatedDense(48, num_blocks=6, activation="tanh"),
        keras.layers.Dense(4),
    ])
    for layer in net.layers[:2]:
        _randomize_policy(layer, rng, bias=bias)
    return net


@pytest.mark.parametrize("batch", [1, 2, 9])
@pytest.mark.parametrize("mode", ["sparse", "auto", "dense"])
def test_dense_layer_paths_equal_masked_dense(batch, mode):
    rng = np.random.default_rng(batch)
    net = _mlp(rng)
    first, second = net.layers[:2]
    x = rng.normal(size=(batch, 30)).astype("f4")
    h = first(x, training=False)
    ref = np.asarray(second(h, training=False))
    y, mask = sparse.layer_inference(second, h, mode=mode)
    np.testing.assert_allclose(np.asarray(y), ref, atol=TOL)
    np.testing.assert_array_equal(np.asarray(mask), np.asarray(second.gate_outputs.mask))
    # the input mask travelled on `h` and was used
    assert get_block_mask(h) is not None


def test_sparse_path_skips_blocks_for_batch_one():
    rng = np.random.default_rng(0)
    net = _mlp(rng, bias=-1.0)
    x = rng.normal(size=(1, 30)).astype("f4")
    for layer in net.layers[:2]:  # every other block on, whatever the random weights
        k = layer.policy.bias.shape[0]
        layer.policy.kernel.assign(np.zeros(layer.policy.kernel.shape, "f4"))
        layer.policy.bias.assign(np.where(np.arange(k) % 2 == 0, 5.0, -5.0).astype("f4"))
    y, masks = sparse.sequential_inference(net.layers, x, mode="sparse")
    np.testing.assert_allclose(np.asarray(y), np.asarray(net(x, training=False)), atol=TOL)
    assert all(0 < np.asarray(m).mean() < 1 for m in masks)


@pytest.mark.parametrize("batch", [1, 6])
def test_sparse_inference_block_major_tiles(batch):
    rng = np.random.default_rng(batch + 10)
    net = _mlp(rng, bias=-0.8)
    fast = sparse.SparseInference(net, mode="sparse")
    x = rng.normal(size=(batch, 30)).astype("f4")
    np.testing.assert_allclose(np.asarray(fast(x)), np.asarray(net(x, training=False)),
                               atol=TOL)
    # weights changed: stale until refresh()
    first = net.layers[0]
    first.kernel.assign(first.kernel.numpy() * 2)
    fast.refresh()
    np.testing.assert_allclose(np.asarray(fast(x)), np.asarray(net(x, training=False)),
                               atol=TOL)


def test_whole_network_in_tf_function_and_extreme_masks():
    rng = np.random.default_rng(1)
    net = _mlp(rng)
    fn = tf.function(lambda x: sparse.sequential_inference(net.layers, x, mode="auto")[0])
    for bias in (-50.0, 50.0, -0.3):  # every block off, every block on, mixed
        for layer in net.layers[:2]:
            layer.policy.bias.assign(np.full(layer.policy.bias.shape, bias, "f4"))
        for batch in (1, 5):
            x = rng.normal(size=(batch, 30)).astype("f4")
            np.testing.assert_allclose(np.asarray(fn(x)), np.asarray(net(x, training=False)),
                                       atol=TOL)


@pytest.mark.parametrize("mode", ["sparse", "auto"])
@pytest.mark.parametrize("padding,strides", [("same", 1), ("valid", 2)])
def test_conv_paths_equal_masked_conv(mode, padding, strides):
    rng = np.random.default_rng(2)
    net = keras.Sequential([
        keras.Input((9, 9, 4)),
        kc.GatedConv2D(12, 3, num_blocks=4, padding=padding, strides=strides,
                       activation="relu"),
        kc.GatedConv2D(8, 2, num_blocks=2, padding="same"),
    ])
    for layer in net.layers:
        _randomize_policy(layer, rng, spread=8.0, bias=-0.2)
    for batch in (1, 3):
        x = rng.normal(size=(batch, 9, 9, 4)).astype("f4")
        y, masks = sparse.sequential_inference(net.layers, x, mode=mode)
        np.testing.assert_allclose(np.asarray(y), np.asarray(net(x, training=False)), atol=TOL)


def test_argument_errors():
    layer = kc.GatedDense(4, num_blocks=2)
    layer.build((None, 3))
    x = np.zeros((1, 3), "f4")
    with pytest.raises(ValueError, match="mode"):
        sparse.layer_inference(layer, x, mode="fast")
    with pytest.raises(ValueError, match="max_density"):
        sparse.layer_inference(layer, x, max_density=2.0)
    with pytest.raises(TypeError, match="GatedDense or GatedConv2D"):
        sparse.layer_inference(keras.layers.Dense(2), x)
    sampled = kc.GatedDense(4, num_blocks=2, inference_mode="sample")
    sampled.build((None, 3))
    with pytest.raises(ValueError, match="inference_mode"):
        sparse.layer_inference(sampled, x)


def test_auto_mode_gathers_only_below_max_density(monkeypatch):
    """Eagerly, tf.cond runs one branch: the tile gather runs iff density <= max_density."""
    rng = np.random.default_rng(3)
    kernel = rng.normal(size=(8, 16)).astype("f4")
    kernel_bm = sparse.block_major_kernel(kernel, 4)
    policy_kernel = np.zeros((8, 4), "f4")
    x = rng.normal(size=(1, 8)).astype("f4")
    calls = []
    original = sparse._tiles_dense
    monkeypatch.setattr(sparse, "_tiles_dense", lambda *a: calls.append(1) or original(*a))
    # density = on_blocks / 4 (dense input)
    for on_blocks, max_density, gathers in ((1, 0.3, True), (2, 0.3, False), (2, 0.5, True),
                                            (3, 0.8, True), (4, 0.8, False)):
        calls.clear()
        policy_bias = np.array([10.0] * on_blocks + [-10.0] * (4 - on_blocks), "f4")
        y, _ = sparse.gated_dense(x, kernel, None, policy_kernel, policy_bias, 4,
                                  max_density=max_density, kernel_bm=kernel_bm)
        assert bool(calls) == gathers, (on_blocks, max_density)
        expected = (x @ kernel) * np.repeat(policy_bias > 0, 4)[None]
        np.testing.assert_allclose(np.asarray(y), expected, atol=TOL)


@pytest.mark.parametrize("kind", ["dense", "conv"])
@pytest.mark.parametrize("bias_value", [-50.0, 50.0])  # every block off / every block on
@pytest.mark.parametrize("mode", ["auto", "sparse"])
def test_zero_and_all_active_blocks_match_keras(kind, bias_value, mode):
    """No active block (was `filter must not have zero elements` for conv) and all active."""
    import keras_condcomp as kc

    keras.utils.set_random_seed(0)
    if kind == "dense":
        net = keras.Sequential([keras.Input((12,)),
                                kc.GatedDense(8, num_blocks=4, activation="relu", name="g1"),
                                kc.GatedDense(8, num_blocks=4, activation="tanh", name="g2")])
        x = np.random.default_rng(0).uniform(size=(3, 12)).astype("float32")
    else:
        net = keras.Sequential([
            keras.Input((6, 6, 4)),
            kc.GatedConv2D(8, 3, num_blocks=4, padding="same", activation="relu", name="g1"),
            kc.GatedConv2D(8, 3, num_blocks=4, padding="same", activation="tanh", name="g2"),
        ])
        x = np.random.default_rng(0).uniform(size=(3, 6, 6, 4)).astype("float32")
    for layer in net.layers:
        layer.bias.assign(np.full(layer.bias.shape, 0.3, "float32"))
        layer.policy.bias.assign(np.full((4,), bias_value, "float32"))
    expected = np.asarray(net(x, training=False))
    assert (expected == 0).all() if bias_value < 0 else (expected != 0).any()
    got = np.asarray(sparse.SparseInference(net, mode=mode)(x))
    np.testing.assert_allclose(got, expected, atol=1e-5)


def test_sparse_inference_accepts_functional_chains_and_rejects_branches():
    inputs = keras.Input((8,))
    h = kc.GatedDense(8, num_blocks=2, name="g1")(inputs)
    chain = keras.Model(inputs, keras.layers.Dense(3, name="out")(h))
    x = np.random.default_rng(0).normal(size=(4, 8)).astype("f4")
    np.testing.assert_allclose(np.asarray(sparse.SparseInference(chain)(x)),
                               np.asarray(chain(x, training=False)), atol=1e-5)
    g2 = kc.GatedDense(8, num_blocks=2, name="g2")(h)
    residual = keras.Model(inputs, keras.layers.Add(name="add")([h, g2]))
    with pytest.raises(ValueError, match=r"not a chain \(layer 'add' takes 2 inputs\)"):
        sparse.SparseInference(residual)
    two_outputs = keras.Model(inputs, [h, g2])
    with pytest.raises(ValueError, match="1 inputs and 2 outputs"):
        sparse.SparseInference(two_outputs)
