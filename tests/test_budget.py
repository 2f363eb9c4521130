"""`calibrate_thresholds`: inference budgets set from a calibration set, in every path."""

import keras
import numpy as np
import pytest
from sklearn.datasets import load_digits

from keras_condcomp import CondCompModel, GatedDense, calibrate_thresholds
from keras_condcomp.budget import gate_sigmas, set_top_k
from keras_condcomp.sparse import SparseInference


@pytest.fixture(scope="module")
def digits():
    data = load_digits()
    return (data.data / 16.0).astype("float32"), data.target


def _trained(x, y, tau=0.5):
    keras.utils.set_random_seed(0)
    network = keras.Sequential([
        keras.Input((64,)),
        GatedDense(128, num_blocks=8, activation="relu", tau=tau, name="g1", seed=1),
        GatedDense(128, num_blocks=8, activation="relu", tau=tau, name="g2", seed=2),
        keras.layers.Dense(10, activation="softmax"),
    ])
    model = CondCompModel(network, estimator="reinforce")
    model.compile(keras.optimizers.Adam(3e-3), "sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    model.fit(x, y, epochs=3, batch_size=64, verbose=0)
    return model


@pytest.mark.parametrize("target", [0.25, 0.5, 1.0])
def test_calibrated_active_fraction_equals_target(digits, target):
    x, y = digits
    model = _trained(x, y)
    model.evaluate(x[:64], y[:64], verbose=0)  # compiled before: must be reset
    thresholds = calibrate_thresholds(model, x[:1000], target=target)
    assert set(thresholds) == {"g1", "g2"}
    for name, sigma in gate_sigmas(model, x[:1000]).items():
        assert np.mean(sigma > thresholds[name]) == pytest.approx(target, abs=0.01)
    metrics = model.evaluate(x[:1000], y[:1000], verbose=0, return_dict=True)
    for name in ("g1", "g2"):
        assert metrics[f"{name}_active"] == pytest.approx(target, abs=0.01)
    # Held-out data: close to the target, not exactly.
    held_out = model.evaluate(x[1000:], y[1000:], verbose=0, return_dict=True)
    assert held_out["g1_active"] == pytest.approx(target, abs=0.1)


def test_thresholds_are_saved_and_used_by_the_sparse_path(digits, tmp_path):
    x, y = digits
    model = _trained(x, y)
    thresholds = calibrate_thresholds(model, x[:500], target={"g1": 0.25, "g2": 0.5})
    assert model.network.get_layer("g1").get_config()["threshold"] == thresholds["g1"]
    model.save(tmp_path / "m.keras")
    loaded = keras.models.load_model(tmp_path / "m.keras")
    assert loaded.network.get_layer("g2").threshold == thresholds["g2"]
    expected = np.asarray(model.predict(x[500:700], verbose=0))
    np.testing.assert_allclose(np.asarray(loaded.predict(x[500:700], verbose=0)), expected,
                               atol=1e-6)
    sparse = SparseInference(model, mode="sparse")  # the CondCompModel itself
    np.testing.assert_allclose(np.asarray(sparse(x[500:700])), expected, atol=1e-5)


def test_default_target_is_each_layers_tau(digits):
    x, y = digits
    model = _trained(x, y, tau=0.25)
    calibrate_thresholds(model, x[:800])
    for sigma, name in zip(gate_sigmas(model, x[:800]).values(), ("g1", "g2")):
        layer = model.network.get_layer(name)
        assert np.mean(sigma > layer.threshold) == pytest.approx(0.25, abs=0.01)


@pytest.mark.parametrize("kwargs, match", [
    ({"target": 0.0}, "target"),
    ({"target": {"nope": 0.5}}, "not gated layers"),
    ({"target": "half"}, "Argument `target` must be"),
    ({"x": np.zeros((0, 64), "float32")}, "non-empty"),
    ({"x": np.full((4, 64), np.nan, "float32")}, "finite"),
])
def test_bad_arguments(digits, kwargs, match):
    x, y = digits
    model = _trained(x[:200], y[:200])
    kwargs = {"x": x[:100], **kwargs}
    with pytest.raises(ValueError, match=match):
        calibrate_thresholds(model, **kwargs)


def test_top_k_gives_every_example_exactly_k_blocks_in_keras_and_sparse(digits):
    from tflite_helpers import load_convert, require_ops_library

    x, y = digits
    model = _trained(x, y)
    set_top_k(model, 3)
    assert model.network.get_layer("g1").get_config()["top_k"] == 3
    expected = np.asarray(model.predict(x[:300], verbose=0))
    np.testing.assert_allclose(np.asarray(model(x[:300], training=False)), expected, atol=1e-6)
    for layer in model.gated_layers:
        np.testing.assert_array_equal(np.asarray(layer.gate_outputs.mask).sum(axis=1), 3)
    np.testing.assert_allclose(np.asarray(SparseInference(model, mode="sparse")(x[:300])),
                               expected, atol=1e-5)
    # The TFLite custom ops apply the same rule.
    require_ops_library()
    from keras_condcomp import litert

    tflite = litert.Interpreter(model_content=load_convert().convert(model))
    np.testing.assert_allclose(tflite.predict(x[:300]), expected, atol=1e-5)
    set_top_k(model, None)
    assert model.network.get_layer("g2").policy.top_k is None
    with pytest.raises(ValueError, match="top_k"):
        set_top_k(model, 9)


def test_top_k_conv_model_matches_in_keras_sparse_and_tflite():
    from tflite_helpers import load_convert, require_ops_library

    from keras_condcomp import GatedConv2D, litert, set_top_k

    require_ops_library()
    keras.utils.set_random_seed(3)
    network = keras.Sequential([
        keras.Input((8, 8, 3)),
        GatedConv2D(8, 3, num_blocks=4, padding="same", activation="relu", name="c1"),
        GatedConv2D(8, 3, num_blocks=4, activation="relu", name="c2"),
        keras.layers.Flatten(),
        keras.layers.Dense(5),
    ])
    x = np.random.default_rng(0).uniform(size=(16, 8, 8, 3)).astype("float32")
    set_top_k(network, 2)
    expected = np.asarray(network(x, training=False))
    for name in ("c1", "c2"):
        np.testing.assert_array_equal(
            np.asarray(network.get_layer(name).gate_outputs.mask).sum(axis=1), 2)
    tflite = litert.Interpreter(model_content=load_convert().convert(network))
    np.testing.assert_allclose(tflite.predict(x), expected, atol=1e-5)


def test_summary_table_reports_each_layers_budget(digits, tmp_path, capsys):
    from tflite_helpers import load_convert, require_ops_library

    from keras_condcomp import summary

    x, y = digits
    model = _trained(x, y)
    calibrate_thresholds(model, x[:800], target=0.25)
    text = summary(model, x[:800], print_fn=None)
    lines = text.splitlines()
    assert lines[0].split()[:3] == ["layer", "blocks", "block"]
    g1 = next(line for line in lines if line.startswith("g1 (dense)"))
    assert " 8 " in g1 and " 16 " in g1 and "0.250" in g1  # blocks, block size, active
    assert "of the dense multiply-adds over 800 examples" in lines[-1]
    # tflite/convert.py prints it for the model it converts.
    require_ops_library()
    model.save(tmp_path / "m.keras")
    np.save(tmp_path / "x.npy", x[:300])
    convert = load_convert()
    assert convert.main([str(tmp_path / "m.keras"), "-o", str(tmp_path / "m.tflite"),
                         "--summary-data", str(tmp_path / "x.npy")]) == 0
    out = capsys.readouterr().out
    assert "gates of the Keras model on 300 examples" in out and "g2 (dense)" in out
