"""Tests of `keras_condcomp.plotting`: collecting gates, figures, and the CLI."""

import keras
import numpy as np
import pytest
from matplotlib import image as mpl_image

from keras_condcomp import CondCompModel, GatedDense, plotting


def small_network(seed=0):
    keras.utils.set_random_seed(seed)
    return keras.Sequential(
        [
            keras.Input((12,)),
            GatedDense(16, num_blocks=4, activation="relu", tau=0.5, name="gated_1",
                       policy_bias_initializer=keras.initializers.RandomNormal(stddev=2.0)),
            GatedDense(8, num_blocks=8, activation="relu", tau=0.5, name="gated_2"),
            keras.layers.Dense(3),
        ]
    )


def fake_activations(num_examples=60, seed=0):
    rng = np.random.default_rng(seed)
    labels = np.arange(num_examples) % 3
    activations = {}
    for name, blocks in (("first", 4), ("second", 8)):
        sigma = rng.uniform(size=(num_examples, blocks)).astype(np.float32)
        # Class 0 always turns block 0 on: a pattern the per-class panel must show.
        sigma[labels == 0, 0] = 0.99
        activations[name] = {"mask": (sigma > 0.5).astype(np.float32), "sigma": sigma}
    return activations, labels


def assert_png_with_content(path):
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    pixels = mpl_image.imread(path)
    assert pixels.shape[0] > 200 and pixels.shape[1] > 200
    assert pixels[..., :3].std() > 0.05  # not a blank canvas


def test_gate_activations_match_the_policy_rule():
    network = small_network()
    x = np.random.default_rng(1).normal(size=(37, 12)).astype(np.float32)
    activations = plotting.gate_activations(network, x, batch_size=10)
    assert list(activations) == ["gated_1", "gated_2"]
    first = activations["gated_1"]
    assert first["mask"].shape == (37, 4) and activations["gated_2"]["mask"].shape == (37, 8)
    layer = network.layers[0]
    logits = x @ keras.ops.convert_to_numpy(layer.policy.kernel) + keras.ops.convert_to_numpy(
        layer.policy.bias
    )
    expected_sigma = 1.0 / (1.0 + np.exp(-logits))
    np.testing.assert_allclose(first["sigma"], expected_sigma, rtol=1e-4, atol=1e-5)
    np.testing.assert_array_equal(first["mask"], (expected_sigma > 0.5).astype(np.float32))
    # The random policy bias makes some blocks on and some off: the check is not vacuous.
    assert 0.0 < first["mask"].mean() < 1.0


def test_gate_activations_accepts_a_condcomp_model():
    model = CondCompModel(small_network(), estimator="reinforce")
    x = np.zeros((5, 12), np.float32)
    activations = plotting.gate_activations(model, x)
    assert set(activations) == {"gated_1", "gated_2"}
    frequencies = plotting.block_frequencies(activations)
    assert frequencies["gated_1"].shape == (4,)
    assert np.all((frequencies["gated_1"] >= 0) & (frequencies["gated_1"] <= 1))


def test_gate_activations_rejects_models_without_gates_and_bad_batch_size():
    plain = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
    with pytest.raises(ValueError, match="holds no gated layer"):
        plotting.gate_activations(plain, np.zeros((2, 3)))
    with pytest.raises(ValueError, match="Received: batch_size=0"):
        plotting.gate_activations(small_network(), np.zeros((2, 12)), batch_size=0)


def test_save_and_load_round_trip(tmp_path):
    activations, labels = fake_activations()
    path = tmp_path / "gates.npz"
    plotting.save_gate_activations(path, activations, labels=labels, tau=0.25)
    loaded, loaded_labels, tau = plotting.load_gate_activations(path)
    assert list(loaded) == ["first", "second"]
    np.testing.assert_array_equal(loaded["second"]["mask"], activations["second"]["mask"])
    np.testing.assert_array_equal(loaded_labels, labels)
    assert tau == pytest.approx(0.25)
    np.savez(tmp_path / "other.npz", x=np.zeros(2))
    with pytest.raises(ValueError, match="not a gate activations file"):
        plotting.load_gate_activations(tmp_path / "other.npz")


def test_heatmap_png_has_one_panel_per_layer_and_class_row(tmp_path):
    activations, labels = fake_activations()
    path = tmp_path / "heat.png"
    figure = plotting.plot_gate_heatmaps(activations, labels=labels, title="t", path=path)
    assert_png_with_content(path)
    images = [ax for ax in figure.axes if ax.images]
    assert len(images) == 4  # 2 layers x (examples row + class row)
    class_panel = images[2].images[0].get_array()  # row-major: row 2, layer "first"
    assert class_panel.shape == (3, 4)
    np.testing.assert_allclose(class_panel[0, 0], 1.0)  # class 0 always uses block 0
    without_labels = plotting.plot_gate_heatmaps(activations, max_examples=10)
    assert len([ax for ax in without_labels.axes if ax.images]) == 2


def test_heatmap_argument_errors():
    activations, labels = fake_activations()
    with pytest.raises(ValueError, match="Received: key='probs'"):
        plotting.plot_gate_heatmaps(activations, key="probs")
    with pytest.raises(ValueError, match="Received: len\\(labels\\)=2"):
        plotting.plot_gate_heatmaps(activations, labels=labels[:2])
    with pytest.raises(ValueError, match="Received: activations=\\{\\}"):
        plotting.plot_gate_heatmaps({})
    with pytest.raises(ValueError, match="Received: max_examples=0"):
        plotting.plot_gate_heatmaps(activations, max_examples=0)


def test_frequency_vs_tau_draws_one_curve_per_tau(tmp_path):
    path = tmp_path / "freq.png"
    by_tau = {
        0.25: {"a": np.array([0.5, 0.1, 0.2, 0.2]), "b": np.array([0.3, 0.2])},
        0.75: {"a": np.array([0.9, 0.7, 0.8, 0.6]), "b": np.array([0.7, 0.8])},
    }
    figure = plotting.plot_frequency_vs_tau(by_tau, path=path)
    assert_png_with_content(path)
    first_panel = figure.axes[0]
    curves = [line for line in first_panel.lines if line.get_marker() == "o"]
    assert len(curves) == 2
    np.testing.assert_allclose(curves[0].get_ydata(), [0.5, 0.2, 0.2, 0.1])  # sorted
    with pytest.raises(ValueError, match="is empty"):
        plotting.plot_frequency_vs_tau({})


def test_cli_writes_both_figures(tmp_path, capsys):
    for tau, seed in ((0.3, 0), (0.6, 1)):
        activations, labels = fake_activations(seed=seed)
        plotting.save_gate_activations(tmp_path / f"g{tau}.npz", activations, labels, tau=tau)
    assert plotting.main(["heatmap", str(tmp_path / "g0.3.npz"),
                          "--out", str(tmp_path / "h.png")]) == 0
    assert_png_with_content(tmp_path / "h.png")
    assert plotting.main(
        ["frequency", str(tmp_path / "g0.3.npz"), str(tmp_path / "g0.6.npz"),
         "--out", str(tmp_path / "f.png")]
    ) == 0
    assert_png_with_content(tmp_path / "f.png")
    assert "wrote" in capsys.readouterr().out


def test_cli_frequency_rejects_duplicate_tau(tmp_path):
    activations, labels = fake_activations()
    for name in ("a", "b"):
        plotting.save_gate_activations(tmp_path / f"{name}.npz", activations, labels, tau=0.5)
    with pytest.raises(ValueError, match="Two files have tau=0.5"):
        plotting.main(["frequency", str(tmp_path / "a.npz"), str(tmp_path / "b.npz"),
                       "--out", str(tmp_path / "f.png")])
