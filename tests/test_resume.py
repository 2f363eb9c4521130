"""Nothing lost: interrupted-and-resumed training and `.keras` round trips.

Every test compares the full training state (weights, policies, tau and
regularizer weights, baseline, seed generator states and optimizer
variables) of an interrupted or reloaded run with an uninterrupted one.
"""

import json
import os

import h5py
import keras
import numpy as np
import pytest

from keras_condcomp import CondCompModel, GatedDense, GatingScheduler, linear_schedule
from keras_condcomp.callbacks import BackupAndRestore
from keras_condcomp.models import SEED_STATE_KEY

BATCH = 8
NUM_EXAMPLES = 64  # 8 batches per epoch


class Interrupt(Exception):
    pass


class InterruptAt(keras.callbacks.Callback):
    """Raises before training batch `batch` of epoch `epoch` (a crash)."""

    def __init__(self, epoch, batch):
        super().__init__()
        self.at = (epoch, batch)
        self.epoch = None

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch = epoch

    def on_train_batch_begin(self, batch, logs=None):
        if (self.epoch, batch) == self.at:
            raise Interrupt(f"interrupted before epoch {self.epoch} batch {batch}")


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(NUM_EXAMPLES, 12)).astype("float32")
    y = (x[:, 0] > 0).astype("int32") + 2 * (x[:, 1] > 0).astype("int32")
    return x, y


def build_model(seed, steps_per_execution=1):
    """A small gated MLP; `seed` sets initial weights and the policies' seeds."""
    keras.utils.set_random_seed(seed)
    network = keras.Sequential(
        [
            keras.Input((12,)),
            GatedDense(16, num_blocks=4, activation="relu", name="g1"),
            # A second SeedGenerator, saved too. Seeded: on PyTorch, Keras' dropout
            # without a seed draws from torch's global generator, not from its state.
            keras.layers.Dropout(0.25, seed=seed),
            GatedDense(16, num_blocks=4, activation="relu", name="g2"),
            keras.layers.Dense(4, activation="softmax"),
        ]
    )
    model = CondCompModel(network, baseline_decay=0.8, estimator="reinforce")
    model.compile(
        keras.optimizers.Adam(1e-2),
        "sparse_categorical_crossentropy",
        steps_per_execution=steps_per_execution,
    )
    model.build((None, 12))
    return model


def training_state(model):
    """Every variable that determines how training continues.

    Keyed by position and name: paths embed the auto-generated model names,
    which differ between two models built in one process.
    """
    state = {}
    for i, v in enumerate(model.variables):  # includes SeedGenerator states
        state[f"model {i:03d} {v.name}"] = keras.ops.convert_to_numpy(v)
    for i, v in enumerate(model.optimizer.variables):
        state[f"optimizer {i:03d}"] = keras.ops.convert_to_numpy(v)
    return state


def assert_same_state(actual, expected):
    assert sorted(actual) == sorted(expected)
    for path, value in expected.items():
        np.testing.assert_allclose(actual[path], value, rtol=1e-6, atol=1e-7, err_msg=path)


def seed_states(model):
    return [keras.ops.convert_to_numpy(g.state) for g in model._all_seed_generators()]


def fit(model, data, epochs, callbacks=()):
    x, y = data
    return model.fit(x, y, batch_size=BATCH, epochs=epochs, shuffle=False, verbose=0,
                     callbacks=list(callbacks))


@pytest.mark.parametrize("steps_per_execution", [
    1,
    pytest.param(2, marks=pytest.mark.skipif(
        keras.backend.backend() == "torch",
        reason="Keras' PyTorch trainer runs one step per call (steps_per_execution=1)")),
])
def test_interrupted_mid_epoch_and_resumed_equals_uninterrupted(tmp_path, data,
                                                                steps_per_execution):
    reference = build_model(seed=1, steps_per_execution=steps_per_execution)
    fit(reference, data, epochs=3)
    expected = training_state(reference)

    backup_dir = str(tmp_path / "backup")
    first = build_model(seed=1, steps_per_execution=steps_per_execution)
    with pytest.raises(Interrupt):
        fit(first, data, epochs=3,
            callbacks=[BackupAndRestore(backup_dir, save_freq=2), InterruptAt(1, 4)])
    with open(os.path.join(backup_dir, "training_metadata.json")) as f:
        metadata = json.load(f)
    # Backed up after batch 3 of epoch 1 (8 batches an epoch, one backup every 2).
    assert metadata["epoch"] == 1 and metadata["batches_done"] == 4, metadata

    # A "new process": a model built with other seeds, so every restored value
    # (weights, baseline, seed generator states, optimizer) comes from the backup.
    resumed = build_model(seed=99, steps_per_execution=steps_per_execution)
    assert any(
        not np.array_equal(a, b) for a, b in zip(seed_states(resumed), seed_states(first))
    )
    history = fit(resumed, data, epochs=3, callbacks=[BackupAndRestore(backup_dir, save_freq=2)])
    assert len(history.history["loss"]) == 2  # epochs 1 (resumed) and 2
    assert_same_state(training_state(resumed), expected)
    assert not os.path.exists(backup_dir)  # deleted after a completed fit


def test_interrupted_twice_including_inside_the_resumed_epoch(tmp_path, data):
    reference = build_model(seed=2)
    fit(reference, data, epochs=3)
    expected = training_state(reference)

    backup_dir = str(tmp_path / "backup")
    with pytest.raises(Interrupt):
        fit(build_model(seed=2), data, epochs=3,
            callbacks=[BackupAndRestore(backup_dir, save_freq=3), InterruptAt(1, 2)])
    # Second crash in the same (resumed) epoch: the metadata written by the
    # resumed callback must still say epoch 1, not epoch 0.
    with pytest.raises(Interrupt):
        fit(build_model(seed=3), data, epochs=3,
            callbacks=[BackupAndRestore(backup_dir, save_freq=3), InterruptAt(1, 7)])
    with open(os.path.join(backup_dir, "training_metadata.json")) as f:
        metadata = json.load(f)
    assert metadata["epoch"] == 1 and metadata["batches_done"] == 6, metadata
    resumed = build_model(seed=4)
    fit(resumed, data, epochs=3, callbacks=[BackupAndRestore(backup_dir, save_freq=3)])
    assert_same_state(training_state(resumed), expected)


def test_backup_taken_after_last_batch_resumes_at_next_epoch(tmp_path, data):
    reference = build_model(seed=5)
    fit(reference, data, epochs=2)
    backup_dir = str(tmp_path / "backup")
    # save_freq=8: the only backup of epoch 0 is after its last batch.
    with pytest.raises(Interrupt):
        fit(build_model(seed=5), data, epochs=2,
            callbacks=[BackupAndRestore(backup_dir, save_freq=8), InterruptAt(1, 3)])
    resumed = build_model(seed=6)
    history = fit(resumed, data, epochs=2, callbacks=[BackupAndRestore(backup_dir, save_freq=8)])
    assert len(history.history["loss"]) == 1
    assert_same_state(training_state(resumed), training_state(reference))


def test_backup_and_restore_rejects_bad_save_freq(tmp_path):
    for bad in (0, -3, True):
        with pytest.raises(ValueError, match="save_freq"):
            BackupAndRestore(str(tmp_path), save_freq=bad)


def test_keras_file_carries_everything_training_needs(tmp_path, data):
    x, y = data
    model = build_model(seed=7)
    # Non-default tau / regularizer weights: the variables, not the config, hold them.
    scheduler = GatingScheduler(tau=linear_schedule(0.9, 0.4, epochs=2),
                                variance_weight=lambda epoch: 0.125)
    fit(model, data, epochs=2, callbacks=[scheduler])
    path = str(tmp_path / "model.keras")
    model.save(path)

    keras.backend.clear_session()
    keras.utils.set_random_seed(1234)  # a loaded model must not depend on it
    loaded = keras.models.load_model(path)
    assert isinstance(loaded, CondCompModel)
    assert loaded.get_config()["baseline_decay"] == 0.8
    assert_same_state(training_state(loaded), training_state(model))
    for layer in loaded.gated_layers:
        assert layer.gating_state()["tau"] == pytest.approx(0.4)
        assert layer.gating_state()["variance_weight"] == 0.125
    assert float(loaded.baseline()) == pytest.approx(float(model.baseline()))
    assert float(loaded.baseline_updates) == 16.0
    # Inference is identical ...
    np.testing.assert_array_equal(model.predict(x, verbose=0), loaded.predict(x, verbose=0))
    # ... and so is training on: same sampled gates, same optimizer steps.
    fit(model, data, epochs=1)
    fit(loaded, data, epochs=1)
    assert_same_state(training_state(loaded), training_state(model))


def test_seed_generator_state_is_saved_so_sampling_continues(tmp_path):
    model = build_model(seed=8)
    x = np.ones((4, 12), "float32")
    model(x, training=True)
    model(x, training=True)  # advance the sampling state
    path = str(tmp_path / "model.weights.h5")
    model.save_weights(path)
    expected = model(x, training=True)  # the draw after the saved state

    other = build_model(seed=9)
    assert any(not np.array_equal(a, b) for a, b in zip(seed_states(other), seed_states(model)))
    other.load_weights(path)
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(other(x, training=True)),
                                  keras.ops.convert_to_numpy(expected))


def _strip_seed_states(path):
    with h5py.File(path, "a") as f:
        for key in list(f["vars"].keys()):
            if key.startswith(SEED_STATE_KEY.format("")):
                del f["vars"][key]


def test_weights_file_without_seed_states_loads_with_a_warning(tmp_path):
    # Files written before seed states were saved (keras_condcomp < this change).
    model = build_model(seed=10)
    path = str(tmp_path / "old.weights.h5")
    model.save_weights(path)
    _strip_seed_states(path)
    other = build_model(seed=11)
    with pytest.warns(UserWarning, match="no seed generator state"):
        other.load_weights(path)
    for a, b in zip(other.weights, model.weights):
        np.testing.assert_array_equal(a, b)


def test_weights_file_of_another_architecture_is_rejected(tmp_path):
    model = build_model(seed=12)
    path = str(tmp_path / "model.weights.h5")
    model.save_weights(path)
    keras.utils.set_random_seed(0)
    network = keras.Sequential(
        [keras.Input((12,)), GatedDense(16, num_blocks=4, name="g1"), keras.layers.Dense(4)]
    )
    smaller = CondCompModel(network, estimator="reinforce")
    smaller.build((None, 12))
    with pytest.raises(ValueError, match="seed generator"):
        smaller.load_weights(path)
