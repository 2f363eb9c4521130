"""`keras_condcomp.gate` / `freeze_network`: gating an existing (trained) Keras model."""

import keras
import numpy as np
import pytest
from sklearn.datasets import load_digits

import keras_condcomp
import keras_condcomp.converter
from keras_condcomp import CondCompModel, GatedConv2D, GatedDense, freeze_network, gate
from keras_condcomp.layers import gated_layers


@pytest.fixture(scope="module")
def digits():
    data = load_digits()
    return (data.data / 16.0).astype("float32"), data.target


def _mlp(seed=0):
    keras.utils.set_random_seed(seed)
    return keras.Sequential([
        keras.Input((64,)),
        keras.layers.Dense(64, activation="relu", name="h1"),
        keras.layers.Dense(48, activation="tanh", name="h2", kernel_regularizer="l2"),
        keras.layers.Dense(10, activation="softmax", name="out"),
    ])


def _trained_mlp(x, y):
    model = _mlp()
    model.compile(keras.optimizers.Adam(3e-3), "sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    model.fit(x, y, epochs=5, batch_size=64, verbose=0)
    return model


def test_gated_copy_with_every_block_on_equals_the_trained_model(digits):
    x, y = digits
    dense = _trained_mlp(x, y)
    gated, report = gate(dense, num_blocks=8, threshold=0.0, return_report=True)
    assert report.gated == ["h1", "h2"]
    assert "output layer" in report.skipped["out"]
    assert [type(layer) for layer in gated.layers] == [
        GatedDense, GatedDense, keras.layers.Dense]
    assert gated.get_layer("h2").activation is keras.activations.tanh
    assert gated.get_layer("h2").kernel_regularizer is not None
    np.testing.assert_array_equal(np.asarray(gated(x, training=False)),
                                  np.asarray(dense(x, training=False)))
    # Copies, not shared variables: training the gated model leaves the original alone.
    before = np.asarray(dense.get_layer("h1").kernel).copy()
    gated.get_layer("h1").kernel.assign(np.zeros_like(before))
    np.testing.assert_array_equal(np.asarray(dense.get_layer("h1").kernel), before)
    assert isinstance(dense.get_layer("h1"), keras.layers.Dense)


def test_functional_conv_model_and_layer_selection():
    keras.utils.set_random_seed(1)
    inputs = keras.Input((8, 8, 3))
    h = keras.layers.Conv2D(8, 3, padding="same", activation="relu", name="c1")(inputs)
    h = keras.layers.Conv2D(12, 3, strides=2, activation="relu", name="c2")(h)
    h = keras.layers.Flatten()(h)
    h = keras.layers.Dense(16, activation="relu", name="fc")(h)
    outputs = keras.layers.Dense(5, name="logits")(h)
    model = keras.Model(inputs, outputs)
    x = np.random.default_rng(0).uniform(size=(4, 8, 8, 3)).astype("float32")

    gated, report = gate(model, num_blocks=4, threshold=0.0, return_report=True)
    assert report.gated == ["c1", "c2", "fc"]
    assert isinstance(gated.get_layer("c2"), GatedConv2D)
    assert gated.get_layer("c2").strides == (2, 2)
    np.testing.assert_allclose(np.asarray(gated(x)), np.asarray(model(x)), atol=1e-6)

    only, report = gate(model, num_blocks=4, layers=["c2"], return_report=True)
    assert report.gated == ["c2"] and isinstance(only.get_layer("c1"), keras.layers.Conv2D)
    by_type, report = gate(model, num_blocks=4, return_report=True,
                           layers=lambda layer: isinstance(layer, keras.layers.Conv2D))
    assert report.gated == ["c1", "c2"]
    _, report = gate(model, num_blocks=3, return_report=True)
    assert report.gated == ["c2"]  # 8 and 16 are not divisible by 3
    assert "not divisible" in report.skipped["c1"]
    _, report = gate(model, num_blocks=5, gate_output_layer=True, return_report=True)
    assert report.gated == ["logits"]


def test_nested_submodels_are_walked_and_keep_their_weights(digits):
    """A trained backbone inside a bigger model: its Dense layers are gated too."""
    x, y = digits
    keras.utils.set_random_seed(2)
    backbone = keras.Sequential([
        keras.Input((64,)),
        keras.layers.Dense(32, activation="relu", name="h1"),
        keras.layers.Dense(32, activation="relu", name="h2"),
    ], name="backbone")
    inputs = keras.Input((64,))
    features = backbone(inputs)
    outputs = keras.layers.Dense(10, activation="softmax", name="head")(features)
    model = keras.Model(inputs, outputs)
    model.compile("adam", "sparse_categorical_crossentropy")
    model.fit(x, y, epochs=2, verbose=0)

    gated, report = gate(model, num_blocks=4, threshold=0.0, seed=5, return_report=True)
    assert report.gated == ["backbone/h1", "backbone/h2"]
    assert "output layer" in report.skipped["head"]
    inner = gated.get_layer("backbone")
    assert isinstance(inner.get_layer("h1"), GatedDense)
    assert [inner.get_layer(n).get_config()["seed"] for n in ("h1", "h2")] == [5, 6]
    assert gated_layers(gated) == [inner.get_layer("h1"), inner.get_layer("h2")]
    np.testing.assert_allclose(np.asarray(gated(x[:50], training=False)),
                               np.asarray(model(x[:50], training=False)), atol=1e-6)
    # The original backbone is untouched and still plain Dense.
    assert isinstance(backbone.get_layer("h1"), keras.layers.Dense)
    # The converter finds the nested gated layers (one custom op each).
    counts = keras_condcomp.converter.op_counts(keras_condcomp.converter.convert(gated))
    assert counts.get("CondCompGatedDense") == 2

    only, report = gate(model, num_blocks=4, layers=["backbone/h2"], return_report=True)
    assert report.gated == ["backbone/h2"]
    assert isinstance(only.get_layer("backbone").get_layer("h1"), keras.layers.Dense)
    # A nested model that produces the outputs: its last layer is the output layer.
    tail = keras.Sequential([keras.Input((64,)), backbone])
    _, report = gate(tail, num_blocks=4, return_report=True)
    assert report.gated == ["backbone/h1"]
    assert "output layer" in report.skipped["backbone/h2"]


@pytest.mark.parametrize("kwargs, match", [
    ({"layers": ["nope"]}, "names layers that are not Dense/Conv2D"),
    ({"layers": 3}, "Argument `layers` must be"),
    ({"num_blocks": 0}, "num_blocks"),
    ({"tau_typo": 0.2}, "Unknown gating arguments"),
    ({"tau": 1.5}, "tau"),
])
def test_bad_arguments_are_named(kwargs, match):
    kwargs = {"num_blocks": 4, **kwargs}
    with pytest.raises(ValueError, match=match):
        gate(_mlp(), **kwargs)


def test_non_models_and_unbuilt_models_are_refused():
    with pytest.raises(ValueError, match="must be a keras.Model"):
        gate(keras.layers.Dense(4), num_blocks=2)
    with pytest.raises(ValueError, match="must be built"):
        gate(keras.Sequential([keras.layers.Dense(4)]), num_blocks=2)


def test_freeze_network_trains_only_the_policies_then_everything(digits, tmp_path):
    x, y = digits
    network = gate(_trained_mlp(x, y), num_blocks=8, tau=0.5, seed=0)
    model = CondCompModel(network, estimator="reinforce")
    all_trainable = len(model.trainable_variables)
    freeze_network(model)
    policies = [v for layer in model.gated_layers
                for v in layer.policy.trainable_variables]
    assert {id(v) for v in model.trainable_variables} == {id(v) for v in policies}
    kernel = np.asarray(network.get_layer("h1").kernel).copy()
    policy = np.asarray(network.get_layer("h1").policy.kernel).copy()
    model.compile("adam", "sparse_categorical_crossentropy", metrics=["accuracy"])
    model.fit(x, y, epochs=1, batch_size=64, verbose=0)
    np.testing.assert_array_equal(np.asarray(network.get_layer("h1").kernel), kernel)
    assert not np.array_equal(np.asarray(network.get_layer("h1").policy.kernel), policy)
    freeze_network(model, frozen=False)
    assert len(model.trainable_variables) == all_trainable
    model.compile("adam", "sparse_categorical_crossentropy", metrics=["accuracy"])
    model.fit(x, y, epochs=1, batch_size=64, verbose=0)
    assert not np.array_equal(np.asarray(network.get_layer("h1").kernel), kernel)
    # The gated model saves and loads like any CondCompModel.
    model.save(tmp_path / "gated.keras")
    loaded = keras.models.load_model(tmp_path / "gated.keras")
    np.testing.assert_allclose(np.asarray(loaded.predict(x[:32], verbose=0)),
                               np.asarray(model.predict(x[:32], verbose=0)), atol=1e-6)
    assert keras_condcomp.gate is gate
