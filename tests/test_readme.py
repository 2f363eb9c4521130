"""The README's usage example and docs/training.md's examples run as written."""

import os
import re
from pathlib import Path

import keras
import numpy as np
import pytest
from script_helpers import load_script

from keras_condcomp import data as condcomp_data

README = Path(__file__).resolve().parent.parent / "README.md"
TRAINING_GUIDE = README.parent / "docs" / "training.md"
# Test accuracy of the README recipe on 8,000 MNIST training images, 6 epochs:
# 0.955 on 2,000 test images (seed 0, Intel Xeon, TF 2.21), asserted with a margin.
ACCURACY_FLOOR = 0.90


MNIST_DIR = Path(os.environ.get(
    "CONDCOMP_MNIST_DIR", README.parent.parent / "shared" / "datasets" / "mnist"))


@pytest.fixture(scope="module")
def mnist_subset():
    """8,000 train / 2,000 validation / 2,000 test images of real MNIST."""
    if not (MNIST_DIR / "train-images-idx3-ubyte.gz").is_file():
        message = f"MNIST idx files not in {MNIST_DIR} (set $CONDCOMP_MNIST_DIR)"
        if os.environ.get("CONDCOMP_REQUIRE_REAL_DATA") == "1":
            pytest.fail(message + "; $CONDCOMP_REQUIRE_REAL_DATA=1 requires them")
        pytest.skip(message)
    dataset = condcomp_data.load_dataset("mnist", data_dir=MNIST_DIR, max_train=10000,
                                         max_test=2000, seed=0).flattened()
    return (dataset.x_train[:8000], dataset.y_train[:8000], dataset.x_train[8000:],
            dataset.y_train[8000:], dataset.x_test, dataset.y_test)


def test_readme_usage_example_is_the_recipe_and_learns(tmp_path, monkeypatch, mnist_subset):
    # Scaled down by data size and epochs only (the frontier recipe uses 12).
    code = load_script("benchmarks/training_backends.py").readme_recipe(epochs=6)
    monkeypatch.chdir(tmp_path)  # it writes model.keras and best.keras
    x_train, y_train, x_val, y_val, x_test, y_test = mnist_subset
    keras.utils.set_random_seed(0)
    namespace = {"x_train": x_train, "y_train": y_train, "x_val": x_val, "y_val": y_val}
    exec(compile(code, str(README), "exec"), namespace)  # noqa: S102 - our own README
    model = namespace["model"]
    history = model.history.history
    assert len(history["loss"]) == 6 and "flop_fraction" in history
    # Straight-through training with the annealed budget: every block on in
    # the first epoch, 4 of 16 from the last epoch of the anneal on.
    assert history["hidden_1_active"][0] == pytest.approx(1.0)
    assert history["hidden_1_active"][-1] == pytest.approx(0.25)
    assert (tmp_path / "model.keras").stat().st_size > 0 and (tmp_path / "best.keras").exists()
    # The documented model: 4 of 16 blocks per example at inference, and it learned.
    metrics = model.evaluate(x_test, y_test, verbose=0, return_dict=True)
    assert metrics["hidden_1_active"] == metrics["hidden_2_active"] == pytest.approx(0.25)
    assert metrics["accuracy"] > ACCURACY_FLOOR
    # What the code block saved is that model, without the teacher.
    import keras_condcomp  # noqa: F401  (registers the classes for loading)

    loaded = keras.models.load_model(tmp_path / "model.keras")
    assert loaded.teacher is None
    np.testing.assert_allclose(loaded.predict(x_test[:64], verbose=0),
                               model.predict(x_test[:64], verbose=0), rtol=1e-5, atol=1e-6)


def test_readme_gating_example_runs_as_written_and_learns(tmp_path, monkeypatch, mnist_subset):
    block = re.search(r"## Gate a model you already have.*?```python\n(.*?)```",
                      TRAINING_GUIDE.read_text(), re.S)
    assert block, "docs/training.md lost its gating example"
    code = re.sub(r"epochs=\d+", "epochs=2", block.group(1))
    monkeypatch.chdir(tmp_path)
    x_train, y_train, x_val, _, x_test, y_test = mnist_subset
    keras.utils.set_random_seed(0)
    namespace = {"x": x_train, "y": y_train, "x_val": x_val}
    exec(compile(code, str(TRAINING_GUIDE), "exec"), namespace)  # noqa: S102 - our own docs
    report = namespace["report"]
    assert len(report.gated) == 2 and len(report.skipped) == 1
    assert (tmp_path / "gated.keras").stat().st_size > 0
    metrics = namespace["model"].evaluate(x_test, y_test, verbose=0, return_dict=True)
    # 0.955 on 2,000 test images here (2 epochs per stage, seed 0, Intel Xeon);
    # the top-4 budget is in force.
    assert metrics["accuracy"] > 0.90
    assert metrics["flop_fraction"] < 0.2


def test_readme_distributed_example_runs_as_written(tmp_path, monkeypatch):
    """The `tf.distribute` block, with the two names it leaves to the reader
    (`build_network`, `dataset`) given on digits; one CPU device."""
    import tensorflow as tf
    from sklearn.datasets import load_digits

    import keras_condcomp
    from keras_condcomp import CondCompModel, GatedDense

    block = re.search(r"## Training on many GPUs or machines.*?```python\n(.*?)```",
                      TRAINING_GUIDE.read_text(), re.S)
    assert block, "docs/training.md lost its tf.distribute example"
    code = re.sub(r"epochs=\d+", "epochs=10", block.group(1))
    digits = load_digits()
    x, y = (digits.data / 16.0).astype("float32"), digits.target

    def build_network():
        return keras.Sequential([keras.Input((64,)),
                                 GatedDense(128, num_blocks=8, top_k=4, activation="relu"),
                                 keras.layers.Dense(10, activation="softmax")])

    monkeypatch.chdir(tmp_path)  # BackupAndRestore writes backup/
    keras.utils.set_random_seed(0)
    namespace = {"tf": tf, "CondCompModel": CondCompModel, "keras_condcomp": keras_condcomp,
                 "build_network": build_network,
                 "dataset": tf.data.Dataset.from_tensor_slices((x[:1400], y[:1400])).batch(64)}
    exec(compile(code, str(TRAINING_GUIDE), "exec"), namespace)  # noqa: S102 - our own docs
    metrics = namespace["model"].evaluate(x[1400:], y[1400:], verbose=0, return_dict=True)
    # 0.859 on the 397 held-out digits here (seed 0, REINFORCE, 10 epochs).
    assert metrics["accuracy"] > 0.8
