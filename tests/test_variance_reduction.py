"""CondCompModel's REINFORCE baselines (ema, learned, leave_one_out), K mask samples,
and the logged `task_loss` / `policy_grad_var` metrics."""

import keras
import numpy as np
import pytest
from sklearn.datasets import load_digits

from keras_condcomp import CondCompModel, GatedDense


@pytest.fixture(scope="module")
def digits():
    data = load_digits()
    return (data.data / 16.0).astype("float32"), data.target


def _model(**kwargs):
    keras.utils.set_random_seed(0)
    network = keras.Sequential([
        keras.Input((64,)),
        GatedDense(64, num_blocks=8, activation="relu", tau=0.5, name="g1", seed=1),
        keras.layers.Dense(10, activation="softmax"),
    ])
    model = CondCompModel(network, **{"estimator": "reinforce", **kwargs})
    model.compile(keras.optimizers.Adam(3e-3), "sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    return model


@pytest.mark.parametrize("kwargs", [
    {}, {"baseline": "learned"}, {"baseline": "leave_one_out", "num_samples": 3},
    {"num_samples": 2},
])
def test_every_baseline_trains_and_logs_its_metrics(digits, kwargs, tmp_path):
    x, y = digits
    model = _model(**kwargs)
    history = model.fit(x, y, epochs=4, batch_size=64, verbose=0).history
    for key in ("task_loss", "policy_grad_var", "baseline", "loss"):
        assert np.all(np.isfinite(history[key])), (key, history[key])
    assert history["task_loss"][-1] < history["task_loss"][0]
    # The shifted L_v keeps the total loss >= the task loss.
    assert min(history["loss"]) >= min(history["task_loss"]) - 1e-6
    assert model.evaluate(x, y, verbose=0, return_dict=True)["accuracy"] > 0.8
    model.save(tmp_path / "m.keras")
    loaded = keras.models.load_model(tmp_path / "m.keras")
    assert loaded.baseline_kind == model.baseline_kind
    assert loaded.num_samples == model.num_samples
    np.testing.assert_allclose(loaded.predict(x[:16], verbose=0),
                               model.predict(x[:16], verbose=0), atol=1e-6)


def test_learned_baseline_head_fits_the_cost(digits):
    x, y = digits
    model = _model(baseline="learned")
    model.fit(x, y, epochs=3, batch_size=64, verbose=0)
    kernel = np.asarray(model.baseline_head.kernel)
    assert kernel.shape == (64, 1) and np.abs(kernel).max() > 0


def test_leave_one_out_baseline_lowers_gradient_variance_vs_no_baseline(digits):
    """Same data, same seed: the per-example REINFORCE gradient variance logged
    with a leave-one-out baseline is below that of a zero-decay EMA baseline
    (the previous batch's mean cost)."""
    x, y = digits
    ema = _model(baseline_decay=0.0).fit(x, y, epochs=3, batch_size=64, verbose=0)
    loo = _model(baseline="leave_one_out", num_samples=4).fit(
        x, y, epochs=3, batch_size=64, verbose=0)
    assert np.mean(loo.history["policy_grad_var"]) < np.mean(ema.history["policy_grad_var"])


@pytest.mark.parametrize("kwargs, match", [
    ({"baseline": "mean"}, "Argument `baseline` must be one of"),
    ({"num_samples": 0}, "num_samples"),
    ({"num_samples": 2.0}, "num_samples"),
    ({"baseline": "leave_one_out"}, "needs num_samples >= 2"),
])
def test_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        _model(**kwargs)


def test_policy_optimizer_trains_the_policies_with_its_own_learning_rate(digits, tmp_path):
    x, y = digits
    model = _model()
    model.compile(keras.optimizers.Adam(3e-3), "sparse_categorical_crossentropy",
                  metrics=["accuracy"], policy_optimizer=keras.optimizers.SGD(0.0))
    policy = np.asarray(model.network.get_layer("g1").policy.kernel).copy()
    kernel = np.asarray(model.network.get_layer("g1").kernel).copy()
    model.fit(x, y, epochs=1, batch_size=64, verbose=0)
    # Learning rate 0 for the policies: they stay; the network moves.
    np.testing.assert_array_equal(np.asarray(model.network.get_layer("g1").policy.kernel), policy)
    assert not np.array_equal(np.asarray(model.network.get_layer("g1").kernel), kernel)
    assert model.optimizer.iterations.numpy() == model.policy_optimizer.iterations.numpy() > 0

    model = _model()
    model.compile(keras.optimizers.Adam(3e-3), "sparse_categorical_crossentropy",
                  policy_optimizer=keras.optimizers.Adam(1e-4))
    model.fit(x, y, epochs=1, batch_size=64, verbose=0)
    model.save(tmp_path / "m.keras")
    loaded = keras.models.load_model(tmp_path / "m.keras")
    assert isinstance(loaded.policy_optimizer, keras.optimizers.Adam)
    assert float(loaded.policy_optimizer.learning_rate) == pytest.approx(1e-4)
    for saved, restored in zip(model.policy_optimizer.variables, loaded.policy_optimizer.variables):
        np.testing.assert_array_equal(np.asarray(saved), np.asarray(restored))
    loaded.fit(x, y, epochs=1, batch_size=64, verbose=0)  # resumes training
