"""`scale_by_gate` (computed blocks times their gate values) on every path, and the
`estimator="routing"` that trains the policies through those values."""

import keras
import numpy as np
import pytest
from sklearn.datasets import load_digits
from tflite_helpers import load_convert, require_ops_library

from keras_condcomp import CondCompModel, GatedConv2D, GatedDense, gate
from keras_condcomp.sparse import SparseInference


@pytest.fixture(scope="module")
def digits():
    data = load_digits()
    return (data.data / 16.0).astype("float32"), data.target


def _dense_network(scale_by_gate=True, top_k=(3, 2), seed=0, **gating):
    keras.utils.set_random_seed(seed)
    return keras.Sequential([
        keras.Input((64,)),
        GatedDense(64, num_blocks=8, activation="relu", top_k=top_k[0], name="g1",
                   scale_by_gate=scale_by_gate, **gating),
        GatedDense(64, num_blocks=8, activation="relu", top_k=top_k[1], name="g2",
                   scale_by_gate=scale_by_gate, **gating),
        keras.layers.Dense(10),
    ])


def _conv_network():
    keras.utils.set_random_seed(3)
    return keras.Sequential([
        keras.Input((8, 8, 3)),
        GatedConv2D(8, 3, num_blocks=4, padding="same", activation="relu", top_k=2,
                    scale_by_gate=True, name="c1"),
        GatedConv2D(8, 3, num_blocks=4, activation="relu", top_k=3, scale_by_gate=True,
                    name="c2"),
        keras.layers.Flatten(),
        keras.layers.Dense(5),
    ])


def test_scaled_output_is_the_masked_output_times_each_blocks_sigma():
    x = np.random.default_rng(0).standard_normal((40, 64)).astype("float32")
    plain = _dense_network(scale_by_gate=False)
    scaled = GatedDense.from_config({**plain.get_layer("g1").get_config(), "scale_by_gate": True})
    scaled.build((None, 64))
    scaled.set_weights(plain.get_layer("g1").get_weights())
    y_plain = np.asarray(plain.get_layer("g1")(x))
    y_scaled = np.asarray(scaled(x))
    mask = np.asarray(scaled.gate_outputs.mask)
    sigma = np.asarray(scaled.gate_outputs.sigma)
    np.testing.assert_array_equal(mask.sum(axis=1), 3)
    np.testing.assert_allclose(y_scaled, y_plain * np.repeat(mask * sigma, 8, axis=1),
                               rtol=1e-6, atol=1e-7)
    assert 0.0 < sigma[mask == 1].min() and sigma[mask == 1].max() < 1.0  # a real scaling
    assert scaled.get_config()["scale_by_gate"] is True


def test_scale_by_gate_is_checked_and_round_trips(tmp_path):
    with pytest.raises(ValueError, match="scale_by_gate.*Received: scale_by_gate=1"):
        GatedDense(16, num_blocks=4, scale_by_gate=1)
    network = _dense_network()
    x = np.random.default_rng(1).standard_normal((20, 64)).astype("float32")
    model = CondCompModel(network, estimator="routing")
    model(x)
    model.save(tmp_path / "m.keras")
    loaded = keras.saving.load_model(tmp_path / "m.keras")
    assert loaded.estimator == "routing"
    assert all(layer.scale_by_gate for layer in loaded.gated_layers)
    np.testing.assert_array_equal(np.asarray(loaded(x)), np.asarray(model(x)))


def test_routing_needs_every_gated_layer_scaled():
    network = keras.Sequential([
        keras.Input((64,)),
        GatedDense(64, num_blocks=8, top_k=2, scale_by_gate=True, name="scaled"),
        GatedDense(64, num_blocks=8, top_k=2, name="unscaled"),
    ])
    with pytest.raises(ValueError, match=r"scale_by_gate=True.*\['unscaled'\]"):
        CondCompModel(network, estimator="routing")


def test_routing_trains_with_the_inference_masks_and_learns_the_policy(digits):
    x, y = digits
    network = _dense_network(top_k=(2, 2), tau=0.25)
    model = CondCompModel(network, estimator="routing")
    # Training masks are the inference rule's: the same blocks for the same input.
    g1 = network.get_layer("g1")
    network(x[:64], training=True)
    train_mask = np.asarray(g1.gate_outputs.mask)
    network(x[:64], training=False)
    np.testing.assert_array_equal(train_mask, np.asarray(g1.gate_outputs.mask))
    # The task's gradient reaches the policy through the gate values.
    with __import__("tensorflow").GradientTape() as tape:
        logits = network(x[:64], training=True)
        loss = keras.losses.sparse_categorical_crossentropy(y[:64], logits, from_logits=True)
    grad = tape.gradient(loss, g1.policy.kernel)
    assert grad is not None and float(np.abs(np.asarray(grad)).max()) > 0.0
    model.compile(keras.optimizers.Adam(3e-3),
                  keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  metrics=["accuracy"])
    kernel_before = g1.policy.kernel.numpy()
    model.fit(x[:1400], y[:1400], epochs=8, batch_size=64, verbose=0)
    accuracy = model.evaluate(x[1400:], y[1400:], verbose=0, return_dict=True)["accuracy"]
    # 397 held-out digits with 16 of 64 units per layer: straight-through
    # reaches 0.81 here, routing 0.76 (chance: 0.1).
    assert accuracy > 0.7
    assert np.abs(g1.policy.kernel.numpy() - kernel_before).max() > 0.05
    network(x[1400:], training=False)
    for layer in model.gated_layers:
        used = np.asarray(layer.gate_outputs.mask).mean(axis=0)
        assert (used > 0).sum() >= 3  # L_b spreads the load over the blocks


@pytest.mark.parametrize("kind", ["dense", "conv"])
def test_every_path_computes_the_scaled_output(kind):
    require_ops_library()
    from keras_condcomp import litert

    cv = load_convert()
    rng = np.random.default_rng(2)
    if kind == "dense":
        network = _dense_network()
        x = rng.standard_normal((50, 64)).astype("float32")
    else:
        network = _conv_network()
        x = rng.uniform(size=(16, 8, 8, 3)).astype("float32")
    expected = np.asarray(network(x, training=False))
    assert (expected != 0).mean() > 0.5
    for mode in ("sparse", "dense"):
        np.testing.assert_allclose(np.asarray(SparseInference(network, mode=mode)(x)), expected,
                                   rtol=1e-5, atol=1e-6)
    got = litert.Interpreter(model_content=cv.convert(network)).predict(x)
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)
    unscaled = keras.models.clone_model(network)
    for layer in unscaled.layers:
        if hasattr(layer, "scale_by_gate"):
            layer.scale_by_gate = False
    unscaled.set_weights(network.get_weights())
    assert np.abs(np.asarray(unscaled(x)) - expected).max() > 1e-2  # scaling matters here
    for quantize in ("dynamic", "int8"):
        scales = cv.calibrate_input_scales(network, x) if quantize == "int8" else None
        data = cv.convert(network, quantize=quantize, input_scales=scales)
        errors = cv.verify_quantized_ops(network, data, len(x), input_scales=scales)
        assert errors < 1e-5


def test_nan_policy_weights_zero_the_blocks_off_and_spoil_the_ones_picked():
    """A block off is 0 even with a NaN gate value; a block top_k had to pick is NaN.

    (The converter refuses non-finite weights; the C ops apply the same rule
    to NaN logits from inputs that overflow the policy product:
    `store_gate_scale` in tflite/ops/cc_gate.c.)
    """
    x = np.random.default_rng(3).standard_normal((6, 64)).astype("float32")
    for top_k, nan_blocks in (((3, 2), [2]), ((None, None), [])):
        g1 = _dense_network(top_k=top_k).get_layer("g1")
        kernel = g1.policy.kernel.numpy()
        kernel[:, 2:] = np.nan  # blocks 2-7: NaN logits; top-3 takes 0, 1 and then 2
        g1.policy.kernel.assign(kernel)
        y = np.asarray(g1(x))
        nan_units = np.zeros(64, bool)
        for block in nan_blocks:
            nan_units[block * 8:(block + 1) * 8] = True
        np.testing.assert_array_equal(np.isnan(y), np.broadcast_to(nan_units, x.shape))
        np.testing.assert_array_equal(y[:, 24:], 0.0)  # blocks 3-7 off


def test_gate_passes_scale_by_gate_to_the_gated_layers():
    keras.utils.set_random_seed(0)
    dense = keras.Sequential([keras.Input((16,)), keras.layers.Dense(32, activation="relu"),
                              keras.layers.Dense(4)])
    network = gate(dense, num_blocks=4, top_k=2, scale_by_gate=True)
    layer = network.layers[0]
    assert isinstance(layer, GatedDense) and layer.scale_by_gate and layer.policy.top_k == 2
