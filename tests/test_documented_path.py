"""The documented path gives the documented result: one top-k rule on every path, Keras
callbacks on a condnet's default monitors, the estimators, converting and verifying."""

import keras
import numpy as np
import pytest
from sklearn.datasets import load_digits
from tflite_helpers import load_convert, require_ops_library

from keras_condcomp import CondCompModel, GatedDense
from keras_condcomp.reference import top_k_mask
from keras_condcomp.sparse import SparseInference


def test_top_k_ties_go_to_the_lowest_block_index():
    sigma = np.array([[0.5, 0.9, 0.9, 0.9, 0.1, 0.9],
                      [1.0, 1.0, 1.0, 1.0, 1.0, 1.0],
                      [np.nan, 0.2, np.nan, 0.2, 0.2, 0.0]], "float32")
    expected = np.array([[0, 1, 1, 0, 0, 0],
                         [1, 1, 0, 0, 0, 0],
                         [0, 1, 0, 1, 0, 0]], "float32")  # NaN ranks below every number
    np.testing.assert_array_equal(np.asarray(top_k_mask(sigma, 2)), expected)
    all_nan = np.full((1, 4), np.nan, "float32")
    np.testing.assert_array_equal(np.asarray(top_k_mask(all_nan, 3)), [[1, 1, 1, 0]])


def _saturated_network(policy_bias, top_k=3):
    """Policy logits = `policy_bias` for every input: sigma saturated to float32 1.0."""
    keras.utils.set_random_seed(0)
    num_blocks = len(policy_bias)

    def gated(name):
        return GatedDense(32, num_blocks=num_blocks, activation="relu", name=name, top_k=top_k,
                          policy_bias_initializer=keras.initializers.Constant(policy_bias),
                          policy_kernel_initializer="zeros")

    return keras.Sequential([keras.Input((16,)), gated("g1"), gated("g2"), keras.layers.Dense(4)])


def _expected_output(network, x, blocks_on):
    """The network with `blocks_on` of every gated layer on, the rest off."""
    h = x
    for layer in network.layers:
        if isinstance(layer, GatedDense):
            mask = np.zeros((layer.num_blocks, layer.block_size), "float32")
            mask[blocks_on] = 1.0
            h = np.maximum(h @ layer.kernel.numpy() + layer.bias.numpy(), 0.0) * mask.ravel()
        else:
            h = h @ layer.kernel.numpy() + layer.bias.numpy()
    return h


@pytest.mark.parametrize("policy_bias, blocks_on", [
    ([40.0] * 8, [0, 1, 2]),  # exact ties: the lowest indices
    # Distinct logits whose float32 sigmoids are all 1.0: ranked by logit.
    ([17.0, 16.8, 30.0, 16.9, 16.7, 20.0, 17.2, 16.65], [2, 5, 6]),
])
def test_top_k_picks_the_same_blocks_on_every_path(policy_bias, blocks_on):
    network = _saturated_network(policy_bias)
    model = CondCompModel(network, estimator="reinforce")
    model.compile("adam", "mse")
    x = np.random.default_rng(0).standard_normal((300, 16)).astype("float32")
    expected = _expected_output(network, x, blocks_on)
    np.testing.assert_allclose(np.asarray(model(x)), expected, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(model.predict(x, batch_size=7, verbose=0), expected,
                               rtol=1e-5, atol=1e-5)
    # evaluate: the same outputs give the same loss against them.
    metrics = model.evaluate(x, expected, batch_size=64, verbose=0, return_dict=True)
    assert metrics["loss"] == pytest.approx(0.0, abs=1e-9)
    assert metrics["g1_active"] == metrics["g2_active"] == pytest.approx(3 / 8)
    np.testing.assert_allclose(np.asarray(SparseInference(network)(x)), expected,
                               rtol=1e-5, atol=1e-5)
    require_ops_library()
    cv = load_convert()
    from keras_condcomp.litert import Interpreter

    got = Interpreter(model_content=cv.convert(network)).predict(x)
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-5)
    want = np.zeros((len(x), 8))
    want[:, blocks_on] = 1
    for quantize in ("dynamic", "int8"):
        scales = cv.calibrate_input_scales(network, x[:100]) if quantize == "int8" else None
        data = cv.convert(network, quantize=quantize, input_scales=scales)
        reference, masks = cv.quantized_reference(network, x, scales)
        for mask in masks:  # the quantized reference applies the same rule
            np.testing.assert_array_equal(mask, want)
        # The int8 ops compute the quantized reference; the output Dense is a
        # dynamic-range builtin op, so the check is on the gated layers' masks
        # through the final classes.
        got = Interpreter(model_content=data).predict(x)
        assert np.mean(np.argmax(got, -1) == np.argmax(reference, -1)) > 0.97


@pytest.fixture(scope="module")
def digits():
    data = load_digits()
    return (data.data / 16.0).astype("float32"), data.target


def _digits_condnet(regularizer_weight=5.0, units=64, dropout=None, **model_kwargs):
    keras.utils.set_random_seed(0)
    network = keras.Sequential([
        keras.Input((64,)),
        GatedDense(units, num_blocks=8, activation="relu", tau=0.25, top_k=2, name="g1",
                   block_balance_weight=regularizer_weight,
                   example_balance_weight=regularizer_weight,
                   variance_weight=regularizer_weight),
        # a layer between keeps the classifier a builtin op (not folded)
        *([keras.layers.Dropout(dropout)] if dropout is not None else []),
        keras.layers.Dense(10, activation="softmax"),
    ])
    return CondCompModel(network, **{"estimator": "reinforce", **model_kwargs})


def test_val_loss_is_the_deployed_task_loss_without_gate_regularizers(digits):
    x, y = digits
    model = _digits_condnet()
    model.compile("adam", "sparse_categorical_crossentropy")
    history = model.fit(x[:1200], y[:1200], validation_data=(x[1200:], y[1200:]), epochs=2,
                        batch_size=64, verbose=0).history
    # The training loss is what the optimizer minimizes: the task plus the
    # (here heavily weighted) gate regularizers, logged apart as gate_loss.
    assert history["gate_loss"][-1] > 0.5
    assert history["loss"][-1] > history["task_loss"][-1] + 0.5
    # val_loss is the compiled loss of the deployed model: inference masks
    # (top-2), no regularizers.
    probs = model.predict(x[1200:], verbose=0)
    task = float(np.mean(keras.losses.sparse_categorical_crossentropy(y[1200:], probs)))
    assert history["val_loss"][-1] == pytest.approx(task, rel=1e-4)
    assert history["val_gate_loss"][-1] > 0.5


def test_default_monitor_callbacks_select_on_the_task(digits, tmp_path):
    x, y = digits
    model = _digits_condnet()
    model.compile("adam", "sparse_categorical_crossentropy", metrics=["accuracy"])
    stop = keras.callbacks.EarlyStopping(patience=2, restore_best_weights=True)
    checkpoint = keras.callbacks.ModelCheckpoint(tmp_path / "best.keras", save_best_only=True)
    plateau = keras.callbacks.ReduceLROnPlateau(patience=1)
    history = model.fit(x[:1200], y[:1200], validation_data=(x[1200:], y[1200:]), epochs=8,
                        batch_size=64, verbose=0, callbacks=[stop, checkpoint, plateau]).history
    best = int(np.argmin(history["val_loss"]))
    best_loaded = keras.models.load_model(tmp_path / "best.keras")
    loss = best_loaded.evaluate(x[1200:], y[1200:], verbose=0, return_dict=True)["loss"]
    assert loss == pytest.approx(history["val_loss"][best], rel=1e-4)
    restored = model.evaluate(x[1200:], y[1200:], verbose=0, return_dict=True)["loss"]
    assert restored == pytest.approx(min(history["val_loss"]), rel=1e-4)


@pytest.mark.parametrize("estimator", ["straight_through", "gumbel"])
def test_straight_through_trains_with_the_inference_budget(digits, estimator):
    x, y = digits
    # No regularizers: only the straight-through gradient can move the policy.
    model = _digits_condnet(regularizer_weight=0.0, estimator=estimator)
    model.compile(keras.optimizers.Adam(3e-3), "sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    policy = model.network.get_layer("g1").policy
    before = policy.kernel.numpy().copy()
    history = model.fit(x[:1200], y[:1200], epochs=20, batch_size=64, verbose=0).history
    # Training used the top-2 budget (exactly 2 of 8 blocks) and no REINFORCE term.
    assert history["g1_active"] == pytest.approx([0.25] * 20)
    assert history["policy_loss"] == pytest.approx([0.0] * 20)
    # The policy learned by backprop through the masks (the only gradient it gets).
    assert np.max(np.abs(policy.kernel.numpy() - before)) > 1e-2
    metrics = model.evaluate(x[1200:], y[1200:], verbose=0, return_dict=True)
    # 0.90 here; REINFORCE with the same budget and L_b/L_e/L_v 1: 0.88.
    assert metrics["accuracy"] > 0.87 and metrics["g1_active"] == pytest.approx(0.25)
    restored = CondCompModel.from_config(model.get_config())
    assert restored.estimator == estimator
    assert restored.network.get_layer("g1").policy.estimator == estimator


def test_straight_through_mask_value_is_exact_and_carries_the_sigma_gradient():
    import tensorflow as tf

    from keras_condcomp.policy import straight_through

    hard = tf.constant([[1.0, 0.0, 1.0]])
    sigma = tf.Variable([[0.3, 0.6, 0.999]])
    with tf.GradientTape() as tape:
        mask = straight_through(hard, sigma)
        loss = tf.reduce_sum(mask * tf.constant([[2.0, 3.0, 4.0]]))
    np.testing.assert_array_equal(mask.numpy(), hard.numpy())
    np.testing.assert_allclose(tape.gradient(loss, sigma).numpy(), [[2.0, 3.0, 4.0]])


def test_gumbel_masks_are_bernoulli_draws_and_explore_under_a_budget():
    import tensorflow as tf

    from keras_condcomp.policy import BernoulliBlockPolicy

    logits = np.array([[-2.0, 0.0, 1.0, 3.0]], "float32")
    sigma = 1.0 / (1.0 + np.exp(-logits))
    policy = BernoulliBlockPolicy(num_blocks=4, seed=3)
    policy.estimator = "gumbel"
    draws = np.concatenate([
        policy._straight_through_mask(tf.constant(np.repeat(logits, 5000, 0)),
                                      tf.constant(np.repeat(sigma, 5000, 0))).numpy()
        for _ in range(4)])
    assert set(np.unique(draws)) == {0.0, 1.0}
    # Without a budget, scores > 0 is a Bernoulli(sigma) draw (20,000 per gate).
    np.testing.assert_allclose(draws.mean(axis=0), sigma[0], atol=0.012)
    # Under a top-2 budget: exactly 2 blocks each time, not always the top 2.
    policy.top_k = 2
    budget = policy._straight_through_mask(tf.constant(np.repeat(logits, 2000, 0)),
                                           tf.constant(np.repeat(sigma, 2000, 0))).numpy()
    assert np.all(budget.sum(axis=1) == 2)
    top_two = np.all(budget == [0.0, 0.0, 1.0, 1.0], axis=1).mean()
    assert 0.3 < top_two < 0.95
    # The gradient is that of sigmoid(scores / temperature): never negative
    # (it underflows to 0 for extreme noise), larger at a lower temperature
    # for a gate near its decision.
    policy.top_k = None
    grads = {}
    for temperature in (0.5, 2.0):
        policy.gumbel_temperature = temperature
        z = tf.Variable(np.zeros((2000, 4), "float32"))
        with tf.GradientTape() as tape:
            mask = policy._straight_through_mask(z, tf.sigmoid(z))
            total = tf.reduce_sum(mask)
        grads[temperature] = tape.gradient(total, z).numpy()
    assert np.all(grads[0.5] >= 0) and np.all(grads[2.0] > 0)
    assert np.median(grads[0.5]) > np.median(grads[2.0])


def test_default_estimator_and_configs_saved_before_the_option():
    network = keras.Sequential([keras.Input((4,)), GatedDense(4, num_blocks=2, name="g")])
    assert CondCompModel(network).estimator == "straight_through"
    config = CondCompModel(network, estimator="reinforce").get_config()
    del config["estimator"], config["gumbel_temperature"]  # as saved before the option
    restored = CondCompModel.from_config(config)
    assert restored.estimator == "reinforce"
    assert restored.network.get_layer("g").policy.estimator == "reinforce"


@pytest.mark.parametrize("kwargs, match", [
    ({"estimator": "hard_concrete"}, "Argument `estimator` must be one of"),
    ({"estimator": "straight_through", "baseline": "learned"}, "REINFORCE baseline"),
    ({"estimator": "gumbel", "baseline": "leave_one_out", "num_samples": 2},
     "REINFORCE baseline"),
    ({"estimator": "gumbel", "gumbel_temperature": 0.0}, "gumbel_temperature"),
    ({"estimator": "gumbel", "gumbel_temperature": float("inf")}, "gumbel_temperature"),
])
def test_estimator_arguments(kwargs, match):
    network = keras.Sequential([keras.Input((4,)), GatedDense(4, num_blocks=2)])
    with pytest.raises(ValueError, match=match):
        CondCompModel(network, **kwargs)


def test_plain_keras_model_converts_with_and_without_dense_flag(tmp_path, digits):
    from model_helpers import dense_mlp

    x, y = digits
    cv = load_convert()
    model = dense_mlp(64, [32, 32])
    model.compile("adam", "sparse_categorical_crossentropy")
    model.fit(x, y, epochs=1, verbose=0)
    path = tmp_path / "plain.keras"
    model.save(path)
    for flags in ([], ["--dense"], ["--dense", "--quantize", "dynamic"]):
        out = tmp_path / f"plain{len(flags)}.tflite"
        assert cv.main([str(path), "-o", str(out), "--verify", "8", *flags]) == 0
        assert out.stat().st_size > 0
    np.save(tmp_path / "rep.npy", x[:100])
    out = tmp_path / "plain_int8.tflite"
    assert cv.main([str(path), "-o", str(out), "--quantize", "int8",
                    "--representative-data", str(tmp_path / "rep.npy")]) == 0
    from keras_condcomp.litert import Interpreter

    got = Interpreter(model_path=str(out), custom_ops=False).predict(x[:500])
    assert np.mean(np.argmax(got, -1) == np.argmax(model.predict(x[:500], verbose=0), -1)) > 0.95


@pytest.mark.parametrize("quantize", ["dynamic", "int8"])
@pytest.mark.parametrize("folded", [True, False])
def test_verify_passes_on_a_trained_condnet_with_a_builtin_or_folded_classifier(
        digits, tmp_path, quantize, folded):
    """`--verify` with `--quantize` checks each CondComp op against its layer's int8
    reference. A classifier right after the gated layer is folded into its op
    and stays float32: then the whole model matches the int8 reference. Behind
    a Dropout it stays a builtin op, quantized by the standard converter, and
    is not compared with a float layer at 1e-5."""
    x, y = digits
    # 128 x 10 classifier weights: the converter quantizes weight tensors of
    # at least 1024 elements.
    model = _digits_condnet(regularizer_weight=1.0, units=128,
                            dropout=None if folded else 0.1)
    model.compile("adam", "sparse_categorical_crossentropy")
    model.fit(x, y, epochs=3, batch_size=64, verbose=0)
    path = tmp_path / "condnet.keras"
    model.save(path)
    np.save(tmp_path / "rep.npy", x[:200])
    extra = ["--representative-data", str(tmp_path / "rep.npy")] if quantize == "int8" else []
    cv = load_convert()
    require_ops_library()
    code = cv.main([str(path), "-o", str(tmp_path / "q.tflite"), "--quantize", quantize,
                    "--verify", "32", *extra])
    assert code == 0
    data = (tmp_path / "q.tflite").read_bytes()
    counts = cv.op_counts(data)
    assert counts.get("FULLY_CONNECTED", 0) == (0 if folded else 1), counts
    scales = cv.calibrate_input_scales(model.network, x[:200]) if quantize == "int8" else None
    worst = cv.verify(model, data, 32, quantized=True, input_scales=scales)
    if folded:
        assert worst <= cv.VERIFY_TOLERANCE
    else:  # the int8 reference with a float classifier, the classifier int8 in the file
        assert worst > 1e-5
