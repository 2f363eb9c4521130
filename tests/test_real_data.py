"""A condnet on real images (Fashion-MNIST) learns an input-dependent policy.

Needs the Debian package `dataset-fashion-mnist` (idx files in
/usr/share/datasets/fashion-mnist; `.ci/run` installs it). Skips where the
files are absent, fails instead when $CONDCOMP_REQUIRE_REAL_DATA=1 (CI).
"""

import os
from pathlib import Path

import keras
import numpy as np
import pytest
from model_helpers import dense_mlp

from keras_condcomp import CondCompModel, calibrate_thresholds, gate
from keras_condcomp import data as condcomp_data

FASHION_DIR = Path(os.environ.get("CONDCOMP_FASHION_MNIST_DIR",
                                  "/usr/share/datasets/fashion-mnist"))


@pytest.fixture(scope="module")
def fashion():
    if not (FASHION_DIR / "train-images-idx3-ubyte.gz").is_file():
        message = (f"Fashion-MNIST idx files not in {FASHION_DIR} "
                   "(apt-get install -y dataset-fashion-mnist)")
        if os.environ.get("CONDCOMP_REQUIRE_REAL_DATA") == "1":
            pytest.fail(message + "; $CONDCOMP_REQUIRE_REAL_DATA=1 requires them")
        pytest.skip(message)
    dataset = condcomp_data.load_dataset("fashion_mnist", data_dir=FASHION_DIR,
                                         max_train=12000, max_test=2000, seed=0)
    assert dataset.x_train.shape[1:] == (28, 28, 1)
    return dataset.flattened()


def test_condnet_learns_an_input_dependent_policy_on_fashion_mnist(fashion):
    keras.utils.set_random_seed(0)
    x, y = fashion.x_train, fashion.y_train
    dense = dense_mlp(784, (256, 256))
    dense.compile(keras.optimizers.Adam(1e-3), "sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    dense.fit(x, y, epochs=2, batch_size=128, verbose=0)  # ~190 steps
    model = CondCompModel(gate(dense, num_blocks=8, tau=0.5, seed=0,
                               block_balance_weight=1.0, example_balance_weight=2.0,
                               variance_weight=1.0), estimator="reinforce")
    model.compile(keras.optimizers.Adam(3e-4), "sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    model.fit(x, y, epochs=3, batch_size=128, verbose=0)  # ~280 REINFORCE steps
    calibrate_thresholds(model, x[:2000], target=0.5)
    metrics = model.evaluate(fashion.x_test, fashion.y_test, verbose=0, return_dict=True)
    # Chance is 0.10; a dense net of this size reaches ~0.85 here.
    assert metrics["accuracy"] > 0.7, metrics
    for layer in model.gated_layers:
        assert metrics[f"{layer.name}_active"] == pytest.approx(0.5, abs=0.08), metrics
    # Input-dependent: the classes use clearly different blocks.
    model.network(fashion.x_test, training=False)
    mask = np.asarray(model.gated_layers[0].gate_outputs.mask)
    per_class = np.stack([mask[fashion.y_test == c].mean(axis=0) for c in range(10)])
    assert per_class.std(axis=0).mean() > 0.1, per_class.round(2)
    assert np.abs(per_class[:, None, :] - per_class[None, :, :]).sum(axis=-1).max() > 2.0
