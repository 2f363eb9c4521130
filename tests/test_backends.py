"""Condnets on every Keras backend installed: JAX and PyTorch train what TensorFlow trains.

The backend is fixed when Keras is imported, so each check runs
tests/backend_worker.py in a process with $KERAS_BACKEND set; this process
(TensorFlow) makes the models, compares, converts. A backend that is not
installed is skipped, unless $CONDCOMP_REQUIRE_BACKENDS names it (CI).
"""

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import keras
import numpy as np
import pytest
from sklearn.datasets import load_digits
from tflite_helpers import require_ops_library

import keras_condcomp as kc

WORKER = Path(__file__).resolve().parent / "backend_worker.py"
REPO = WORKER.parent.parent
RECIPE = REPO / "benchmarks" / "training_backends.py"  # --worker: the README recipe
OTHER_BACKENDS = ("jax", "torch")
# The README's own 12 epochs: on 1,200 digits, 6 leave the condnet at 0.85-0.87 test
# accuracy on every backend; 12 give 0.90 (TensorFlow), 0.94 (JAX, PyTorch), seed 0.
RECIPE_EPOCHS = 12


@pytest.fixture(scope="module", params=OTHER_BACKENDS)
def backend(request):
    """Each other backend; skipped (before any TensorFlow training) when not installed."""
    name = request.param
    if importlib.util.find_spec(name) is None:
        required = os.environ.get("CONDCOMP_REQUIRE_BACKENDS", "").split(",")
        if name in required:
            pytest.fail(f"{name} is not installed; $CONDCOMP_REQUIRE_BACKENDS={required}")
        pytest.skip(f"{name} is not installed")
    return name


def run_worker(backend, script, *args):
    """Runs `script` with `args` under KERAS_BACKEND=backend; fails with its stderr."""
    env = dict(os.environ, KERAS_BACKEND=backend)
    result = subprocess.run([sys.executable, str(script), *map(str, args)], env=env,
                            capture_output=True, text=True, timeout=900, cwd=REPO)
    assert result.returncode == 0, f"{backend}: {script.name} failed:\n{result.stderr[-4000:]}"
    return result


@pytest.fixture(scope="module")
def trained_condnet(tmp_path_factory):
    """A condnet trained here (TensorFlow): dense + conv layers, top-k and threshold budgets."""
    keras.utils.set_random_seed(3)
    digits = load_digits()
    x = (digits.images[..., None] / 16.0).astype("float32")
    y = digits.target.astype("int32")
    network = keras.Sequential([
        keras.Input((8, 8, 1)),
        kc.GatedConv2D(16, 3, num_blocks=4, padding="same", activation="relu", top_k=2,
                       name="conv"),
        keras.layers.Flatten(),
        kc.GatedDense(64, num_blocks=8, activation="relu", name="hidden", scale_by_gate=True),
        keras.layers.Dense(10, activation="softmax"),
    ])
    model = kc.CondCompModel(network)
    model.compile("adam", "sparse_categorical_crossentropy", metrics=["accuracy"])
    model.fit(x[:1200], y[:1200], epochs=3, batch_size=64, verbose=0)
    path = tmp_path_factory.mktemp("tf") / "condnet.keras"
    model.save(path)
    return model, path, x[1200:1456]


def test_forward_pass_and_gates_equal_tensorflow_on_the_same_weights(
        backend, trained_condnet, tmp_path):
    model, path, x = trained_condnet
    np.save(tmp_path / "x.npy", x)
    run_worker(backend, WORKER, "forward", path, tmp_path / "x.npy", tmp_path / "out.npz")
    out = np.load(tmp_path / "out.npz")
    assert str(out["backend"]) == backend
    gates = kc.gate_activations(model, x)
    for name, g in gates.items():
        # The masks decide which blocks run: equal, example by example.
        np.testing.assert_array_equal(out[f"mask_{name}"], g["mask"], err_msg=name)
    np.testing.assert_allclose(out["y"], model.predict(x, verbose=0), rtol=1e-4, atol=1e-5)


def test_tensorflow_only_parts_say_so_on_other_backends(backend, trained_condnet, tmp_path):
    _, path, _ = trained_condnet
    run_worker(backend, WORKER, "tensorflow_only", path, tmp_path / "messages.json")
    messages = json.loads((tmp_path / "messages.json").read_text())
    assert f"KERAS_BACKEND='{backend}'" in messages["convert"]
    assert "python tflite/convert.py" in messages["convert"]
    assert f"KERAS_BACKEND='{backend}'" in messages["sparse"]


def test_policy_optimizer_state_is_trained_saved_and_loaded(backend, tmp_path):
    """The second optimizer's state is carried through the backend's train step (JAX: the
    jitted state) and restored by `load_model`, slot for slot."""
    run_worker(backend, WORKER, "policy_optimizer", tmp_path)
    result = json.loads((tmp_path / "policy_optimizer.json").read_text())
    assert result["optimizer_iterations"] == result["steps"]
    assert result["policy_optimizer_iterations"] == result["steps"]
    assert result["loaded_policy_optimizer_iterations"] == result["steps"]
    assert result["optimizer_variables"] == result["loaded_optimizer_variables"]
    # Adam: iterations, learning rate... plus two slots per network variable only.
    assert result["optimizer_variables"] == 2 + 2 * result["network_variables"]
    assert result["policy_momentum_nonzero"] and result["momentum_equal_after_load"]
    assert result["policy_moved"]


def _digits_split():
    digits = load_digits()
    x = (digits.data / 16.0).astype("float32")
    y = digits.target.astype("int32")
    order = np.random.default_rng(0).permutation(len(x))
    x, y = x[order], y[order]
    return {"x_train": x[:1200], "y_train": y[:1200], "x_val": x[1200:1400],
            "y_val": y[1200:1400], "x_test": x[1400:], "y_test": y[1400:]}


def _run_recipe(backend, directory):
    """The README's recipe on real data (scikit-learn's digits, in a 784-input layout)."""
    np.savez(directory / "digits.npz", **_as_recipe_input(_digits_split()))
    run_worker(backend, RECIPE, "--worker", "--data", directory / "digits.npz",
               "--out", directory / "run", "--epochs", RECIPE_EPOCHS)
    return json.loads((directory / "run" / "result.json").read_text())


@pytest.fixture(scope="module")
def tensorflow_recipe(tmp_path_factory):
    return _run_recipe("tensorflow", tmp_path_factory.mktemp("tensorflow_recipe"))


def test_readme_recipe_trains_on_the_backend_and_converts_with_tensorflow(
        backend, tmp_path, tensorflow_recipe):
    """The README's recipe on the backend reaches TensorFlow's accuracy; the saved
    condnet loads here and `python tflite/convert.py --verify` passes."""
    result = _run_recipe(backend, tmp_path)
    assert result["backend"] == backend
    history = result["history"]
    assert history["hidden_1_active"][0] == pytest.approx(1.0)
    assert history["hidden_1_active"][-1] == pytest.approx(0.25)
    assert result["test"]["hidden_1_active"] == pytest.approx(0.25)
    # Same recipe, seed and data; the backends' random streams differ.
    assert result["test"]["accuracy"] >= tensorflow_recipe["test"]["accuracy"] - 0.03
    assert tensorflow_recipe["test"]["accuracy"] > 0.85
    model_path = tmp_path / "run" / "model.keras"
    loaded = keras.models.load_model(model_path)
    x_test = _as_recipe_input(_digits_split())["x_test"][:64]
    np.testing.assert_allclose(loaded.predict(x_test, verbose=0),
                               np.load(tmp_path / "run" / "predictions.npy"),
                               rtol=1e-4, atol=1e-5)
    require_ops_library()
    convert = subprocess.run(
        [sys.executable, str(REPO / "tflite" / "convert.py"), str(model_path), "-o",
         str(tmp_path / "m.tflite"), "--verify", "16"],
        capture_output=True, text=True, timeout=600, cwd=REPO)
    assert convert.returncode == 0, convert.stderr[-4000:]
    assert (tmp_path / "m.tflite").stat().st_size > 0


def _as_recipe_input(data):
    """Digits in the recipe's 784-input layout: each 8x8 image in the corner of a 28x28."""
    out = {}
    for name, value in data.items():
        if name.startswith("x_"):
            images = np.zeros((len(value), 28, 28), "float32")
            images[:, :8, :8] = value.reshape(-1, 8, 8)
            value = images.reshape(len(value), 784)
        out[name] = value
    return out
