import os

import keras
import numpy as np
import pytest
from model_helpers import dense_mlp
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split

from keras_condcomp import CondCompModel, GatedDense, GatingScheduler, linear_schedule


@pytest.fixture(scope="module")
def digits():
    data = load_digits()
    x = (data.data / 16.0).astype("float32")
    return train_test_split(x, data.target, test_size=0.3, random_state=0)


def _gated_model(tau=0.25, seed=0):
    keras.utils.set_random_seed(seed)
    network = keras.Sequential(
        [
            keras.Input((64,)),
            GatedDense(128, num_blocks=8, activation="relu", tau=tau, name="g1"),
            GatedDense(128, num_blocks=8, activation="relu", tau=tau, name="g2"),
            keras.layers.Dense(10, activation="softmax"),
        ]
    )
    model = CondCompModel(network, estimator="reinforce")
    model.compile(keras.optimizers.Adam(3e-3), "sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    return model


def test_gated_mlp_learns_digits_close_to_dense_with_fewer_blocks(digits):
    x_train, x_test, y_train, y_test = digits
    keras.utils.set_random_seed(0)
    dense = dense_mlp(64, (128, 128))
    dense.compile(keras.optimizers.Adam(3e-3), "sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    dense.fit(x_train, y_train, epochs=40, batch_size=64, verbose=0)
    dense_accuracy = dense.evaluate(x_test, y_test, verbose=0)[1]

    model = _gated_model(tau=0.25)
    before = model.evaluate(x_test, y_test, verbose=0, return_dict=True)
    history = model.fit(
        x_train, y_train, epochs=40, batch_size=64, verbose=0,
        callbacks=[GatingScheduler(tau=linear_schedule(1.0, 0.25, epochs=20))],
    )
    after = model.evaluate(x_test, y_test, verbose=0, return_dict=True)
    assert dense_accuracy > 0.95
    assert after["accuracy"] > dense_accuracy - 0.05, (after, dense_accuracy)
    for name in ("g1_active", "g2_active"):
        assert abs(after[name] - 0.25) < abs(before[name] - 0.25), (name, before, after)
        assert 0.1 < after[name] < 0.45, (name, after)
    assert after["flop_fraction"] < 0.3
    # Training metrics are logged every epoch.
    for key in ("policy_loss", "baseline", "flop_fraction", "g1_active", "g2_active", "tau"):
        assert len(history.history[key]) == 40
    assert history.history["baseline"][-1] < history.history["baseline"][0]


def test_save_load_round_trip_and_resume(tmp_path, digits):
    x_train, x_test, y_train, _ = digits
    model = _gated_model()
    model.fit(x_train, y_train, epochs=2, batch_size=64, verbose=0)
    path = str(tmp_path / "model.keras")
    model.save(path)
    restored = keras.models.load_model(path)
    np.testing.assert_array_equal(model.predict(x_test, verbose=0),
                                  restored.predict(x_test, verbose=0))
    assert float(restored.baseline()) == pytest.approx(float(model.baseline()))
    assert float(restored.baseline_updates) == float(model.baseline_updates) > 0
    for a, b in zip(model.get_weights(), restored.get_weights()):
        np.testing.assert_array_equal(a, b)
    # Resuming fit continues from the saved baseline (no reset to zero).
    restored.fit(x_train[:64], y_train[:64], epochs=1, batch_size=64, verbose=0)
    assert float(restored.baseline_updates) == float(model.baseline_updates) + 1


def test_seeded_runs_are_reproducible(digits):
    x_train, _, y_train, _ = digits
    weights = []
    for _ in range(2):
        model = _gated_model(seed=42)
        model.fit(x_train[:256], y_train[:256], epochs=2, batch_size=64, verbose=0, shuffle=False)
        weights.append(model.get_weights())
    for a, b in zip(*weights):
        np.testing.assert_array_equal(a, b)


def test_standard_callbacks(tmp_path, digits):
    x_train, x_test, y_train, y_test = digits
    model = _gated_model()
    checkpoint = str(tmp_path / "best.keras")
    history = model.fit(
        x_train, y_train, epochs=30, batch_size=64, verbose=0,
        validation_data=(x_test, y_test),
        callbacks=[
            keras.callbacks.EarlyStopping(monitor="val_loss", patience=1, min_delta=10.0),
            keras.callbacks.ModelCheckpoint(checkpoint, monitor="val_loss", save_best_only=True),
            keras.callbacks.TensorBoard(str(tmp_path / "tb")),
        ],
    )
    assert len(history.history["loss"]) == 2  # stopped early by the absurd min_delta
    assert isinstance(keras.models.load_model(checkpoint), CondCompModel)
    assert os.listdir(tmp_path / "tb")


def test_sample_weights_and_custom_cost(digits):
    x_train, _, y_train, _ = digits
    seen = []

    def zero_one_cost(y_true, y_pred):
        seen.append(True)
        return keras.ops.cast(
            keras.ops.not_equal(keras.ops.cast(keras.ops.argmax(y_pred, -1), "int32"),
                                keras.ops.cast(keras.ops.reshape(y_true, (-1,)), "int32")),
            "float32",
        )

    model = _gated_model()
    model = CondCompModel(model.network, cost=zero_one_cost, estimator="reinforce")
    model.compile("adam", "sparse_categorical_crossentropy")
    model.fit(x_train[:128], y_train[:128], sample_weight=np.ones(128), epochs=1, verbose=0)
    assert seen
    assert 0.0 <= float(model.baseline()) <= 1.0


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"baseline_decay": 1.0}, "baseline_decay=1.0"),
        ({"policy_weight": -1}, "policy_weight=-1"),
        ({"cost": "zero_one"}, "cost='zero_one'"),
    ],
)
def test_model_bad_arguments(kwargs, match):
    network = keras.Sequential([keras.Input((4,)), GatedDense(4, num_blocks=2)])
    with pytest.raises(ValueError, match=match):
        CondCompModel(network, **{"estimator": "reinforce", **kwargs})


def test_model_without_gated_layers_is_rejected():
    network = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)])
    with pytest.raises(ValueError, match="no gated layer"):
        CondCompModel(network, estimator="reinforce")


def test_plain_fit_of_gated_layers_warns_once_naming_condcompmodel(digits):
    x_train, _, y_train, _ = digits
    keras.utils.set_random_seed(0)
    network = keras.Sequential([keras.Input((64,)), GatedDense(32, num_blocks=4, name="g"),
                                keras.layers.Dense(10, activation="softmax")])
    network.compile("adam", "sparse_categorical_crossentropy")
    with pytest.warns(UserWarning, match=r"Gated layer 'g' .*outside keras_condcomp.CondCompModel"):
        network.fit(x_train[:128], y_train[:128], epochs=2, verbose=0)
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        network.fit(x_train[:128], y_train[:128], epochs=1, verbose=0)  # once only
        model = CondCompModel(network, estimator="reinforce")  # wrapped: no warning
        model.compile("adam", "sparse_categorical_crossentropy")
        model.fit(x_train[:128], y_train[:128], epochs=1, verbose=0)
