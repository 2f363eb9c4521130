"""`keras_condcomp.callbacks`: the gating schedules and the TensorBoard gate summaries.

The NaN/Inf stop (`TerminateOnNonFinite`) is tested with the other bad-input
cases in test_bad_input.py, and `BackupAndRestore` with resuming in
test_resume.py.
"""

import keras
import numpy as np
import pytest
from sklearn.datasets import load_digits

from keras_condcomp import CondCompModel, GatedDense, GateSummaries, GatingScheduler
from keras_condcomp.callbacks import linear_schedule


@pytest.fixture(scope="module")
def digits():
    data = load_digits()
    return (data.data / 16.0).astype("float32"), data.target


def _condnet(seed=0, **gating):
    keras.utils.set_random_seed(seed)
    network = keras.Sequential([
        keras.Input((64,)),
        GatedDense(64, num_blocks=8, activation="relu", seed=seed, name="h1", **gating),
        GatedDense(48, num_blocks=8, activation="relu", seed=seed + 1, name="h2", **gating),
        keras.layers.Dense(10, activation="softmax", name="out"),
    ])
    model = CondCompModel(network)
    model.compile("adam", "sparse_categorical_crossentropy")
    return model


def test_linear_schedule_goes_from_start_to_end_and_stays():
    schedule = linear_schedule(1.0, 0.25, epochs=4)
    assert [schedule(e) for e in range(6)] == pytest.approx([1.0, 0.75, 0.5, 0.25, 0.25, 0.25])
    assert linear_schedule(0.9, 0.3, epochs=1)(0) == pytest.approx(0.3)
    for bad in (0, -2, 1.5, "3"):
        with pytest.raises(ValueError, match="epochs"):
            linear_schedule(1.0, 0.5, epochs=bad)


def test_gating_scheduler_sets_every_gated_layer_at_each_epoch_and_logs_it(digits):
    x, y = digits
    model = _condnet(tau=0.9)
    seen = []

    class Record(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            seen.append([layer.gating_state() for layer in model.network.layers[:2]])

    scheduler = GatingScheduler(tau=linear_schedule(1.0, 0.5, epochs=3),
                                block_balance_weight=lambda epoch: 0.1 * epoch)
    history = model.fit(x[:256], y[:256], epochs=4, batch_size=64, verbose=0,
                        callbacks=[scheduler, Record()])
    for epoch, (tau, weight) in enumerate([(1.0, 0.0), (0.75, 0.1), (0.5, 0.2), (0.5, 0.3)]):
        for state in seen[epoch]:  # both gated layers, set before the epoch ran
            assert state["tau"] == pytest.approx(tau)
            assert state["block_balance_weight"] == pytest.approx(weight)
    assert history.history["tau"] == pytest.approx([1.0, 0.75, 0.5, 0.5])
    assert history.history["block_balance_weight"] == pytest.approx([0.0, 0.1, 0.2, 0.3])


def test_gating_scheduler_rejects_unknown_or_uncallable_schedules():
    with pytest.raises(ValueError, match="at least one schedule"):
        GatingScheduler()
    with pytest.raises(ValueError, match="Unknown schedule 'dropout'"):
        GatingScheduler(dropout=lambda epoch: 0.5)
    with pytest.raises(ValueError, match="must be callable. Received: tau=0.5"):
        GatingScheduler(tau=0.5)


def test_gating_scheduler_value_out_of_range_names_the_argument(digits):
    x, y = digits
    model = _condnet()
    with pytest.raises(ValueError, match="tau"):
        model.fit(x[:64], y[:64], epochs=1, verbose=0,
                  callbacks=[GatingScheduler(tau=lambda epoch: 1.5)])


def test_gate_summaries_are_readable_from_the_event_files(digits, tmp_path):
    import tensorflow as tf
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    x, y = digits
    model = _condnet(tau=0.5)
    model.fit(x, y, epochs=3, batch_size=64, verbose=0,
              callbacks=[GateSummaries(tmp_path, x[:200], y[:200], every_n_epochs=2)])
    events = EventAccumulator(str(tmp_path / "gates"), size_guidance={"tensors": 0})
    events.Reload()
    tags = events.Tags()["tensors"]
    for name in ("h1", "h2"):
        for tag in ("active_fraction", "sigma", "block_on_frequency", "block_7_on", "heatmap"):
            assert f"gates/{name}/{tag}" in tags, (tag, tags)
    steps = [e.step for e in events.Tensors("gates/h1/active_fraction")]
    assert steps == [0, 2]  # every 2 epochs
    active = float(tf.make_ndarray(events.Tensors("gates/h1/active_fraction")[-1].tensor_proto))
    model.network(x[:200], training=False)
    expected = float(np.mean(np.asarray(model.network.get_layer("h1").gate_outputs.mask)))
    assert active == pytest.approx(expected, abs=1e-6)


def test_gate_summaries_reject_bad_arguments(digits, tmp_path):
    x, y = digits
    with pytest.raises(ValueError, match="every_n_epochs"):
        GateSummaries(tmp_path, x, every_n_epochs=0)
    with pytest.raises(ValueError, match="non-empty batch"):
        GateSummaries(tmp_path, x[:0])
    with pytest.raises(ValueError, match="as many examples. Received: 100 and 99"):
        GateSummaries(tmp_path, x[:100], y[:99])
